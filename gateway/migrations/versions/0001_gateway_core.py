"""gateway core tables: audit log, outbox, idempotency keys, engine object metadata

Revision ID: 0001_gateway_core
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import BigId, JsonColumn, UTCDateTime

revision = "0001_gateway_core"
down_revision = None
branch_labels = ("gateway",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(50), nullable=False),
        sa.Column("resource_id", sa.String(255)),
        sa.Column("engine", sa.String(100)),
        sa.Column("request", JsonColumn, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_resource", "audit_log", ["resource_type", "resource_id"])
    op.create_index("ix_audit_actor", "audit_log", ["actor"])
    op.create_index("ix_audit_occurred_at", "audit_log", ["occurred_at"])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("engine", sa.String(100)),
        sa.Column("tenant_id", sa.String(100)),
        sa.Column("actor", sa.String(255)),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("data", JsonColumn, nullable=False),
    )
    op.create_index("ix_outbox_type", "outbox", ["type"])
    op.create_index("ix_outbox_instance", "outbox", ["instance_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(400), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_headers", JsonColumn),
        sa.Column("response_body", sa.LargeBinary),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_idempotency_created_at", "idempotency_keys", ["created_at"])

    op.create_table(
        "engine_object_meta",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("object_type", sa.String(50), primary_key=True),
        sa.Column("object_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text),
    )
    op.create_index("ix_engine_object_meta_value", "engine_object_meta", ["engine", "object_type", "name", "value"])


def downgrade() -> None:
    for table in ("engine_object_meta", "idempotency_keys", "outbox", "audit_log"):
        op.drop_table(table)
