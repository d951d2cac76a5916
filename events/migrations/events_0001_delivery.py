"""events: webhook subscriptions and deliveries, relay positions, engine change-feed marks

Revision ID: events_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import JsonColumn, UTCDateTime

revision = "events_0001"
down_revision = None
branch_labels = ("events",)
depends_on = "0001_gateway_core"

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", JsonColumn, nullable=False),
        sa.Column("filter", JsonColumn, nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("previous_secret", sa.String(255)),
        sa.Column("previous_secret_until", UTCDateTime),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("failing_since", UTCDateTime),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("event_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_cursor", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_attempt_at", UTCDateTime),
        sa.Column("response_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
    )
    op.create_index(
        "ix_event_deliveries_subscription", "event_deliveries", ["subscription_id", "status", "event_cursor"]
    )
    # The dispatcher's per-instance order check and its due scan look only at pending deliveries.
    op.create_index(
        "ix_event_deliveries_instance_pending",
        "event_deliveries",
        ["subscription_id", "instance_id", "event_cursor"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_event_deliveries_due",
        "event_deliveries",
        ["next_attempt_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_table(
        "event_relay_positions",
        sa.Column("relay", sa.String(50), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
    )
    op.create_table(
        "engine_change_marks",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("feed", sa.String(50), primary_key=True),
        sa.Column("mark", JsonColumn, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("engine_change_marks", "event_relay_positions", "event_deliveries", "event_subscriptions"):
        op.drop_table(table)
