"""incident center: incidents, their engine incident links and history; bulk operations and their items

Revision ID: incidents_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import BigId, JsonColumn, UTCDateTime

revision = "incidents_0001"
down_revision = None
branch_labels = ("incidents",)
depends_on = "0001_gateway_core"

OPEN_LINK = sa.text("closed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("engine", sa.String(100), nullable=False),
        sa.Column("incident_type", sa.String(100), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("definition_id", sa.String(255)),
        sa.Column("definition_key", sa.String(255)),
        sa.Column("activity_id", sa.String(255)),
        sa.Column("activity_name", sa.String(255)),
        sa.Column("tenant_id", sa.String(100)),
        sa.Column("assignee", sa.String(255)),
        sa.Column("retry_count", sa.Integer, nullable=False),
        sa.Column("auto_retries", sa.Integer, nullable=False),
        sa.Column("next_retry_at", UTCDateTime),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("resolution_type", sa.String(20)),
        sa.Column("resolution_message", sa.Text),
        sa.Column("resolved_by", sa.String(255)),
        sa.Column("resolved_at", UTCDateTime),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("detected_at", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        sa.Column("status_changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_incidents_status", "incidents", ["status", "status_changed_at"])
    op.create_index("ix_incidents_place", "incidents", ["engine", "instance_id", "activity_id"])
    op.create_index("ix_incidents_created", "incidents", ["created"])
    op.create_index("ix_incidents_definition_key", "incidents", ["definition_key"])
    op.create_index("ix_incidents_assignee", "incidents", ["assignee"])

    op.create_table(
        "incident_links",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("engine_incident_id", sa.String(255), primary_key=True),
        sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("incident_type", sa.String(100), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("created", UTCDateTime),
        sa.Column("linked_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime),
    )
    op.create_index("ix_incident_links_incident", "incident_links", ["incident_id"])
    op.create_index(
        "ix_incident_links_open", "incident_links", ["engine"], sqlite_where=OPEN_LINK, postgresql_where=OPEN_LINK
    )

    op.create_table(
        "incident_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("details", JsonColumn, nullable=False),
    )
    op.create_index("ix_incident_history_incident", "incident_history", ["incident_id", "id"])

    op.create_table(
        "operations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("request", JsonColumn, nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        sa.Column("finished", UTCDateTime),
    )
    op.create_index("ix_operations_status", "operations", ["status", "created"])

    op.create_table(
        "operation_items",
        sa.Column("operation_id", sa.String(36), sa.ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("engine_incident_ids", JsonColumn),
        sa.Column("detail", sa.Text),
        sa.Column("updated", UTCDateTime, nullable=False),
    )
    op.create_index("ix_operation_items_state", "operation_items", ["operation_id", "state", "position"])


def downgrade() -> None:
    for table in ("operation_items", "operations", "incident_history", "incident_links", "incidents"):
        op.drop_table(table)
