"""embedded engine: event subscriptions, the message and signal names waiting activities catch, so that a
message or signal finds its instances with one indexed query instead of loading every workflow

Revision ID: i15_0001_event_subscriptions
Revises: i12_0002_called_definitions
"""

import sqlalchemy as sa
from alembic import op

revision = "i15_0001_event_subscriptions"
down_revision = "i12_0002_called_definitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embedded_event_subscriptions",
        sa.Column("task_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(10), primary_key=True),
        sa.Column("event_name", sa.String(255), primary_key=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("activity_id", sa.String(255), nullable=False),
    )
    op.create_index(
        "ix_embedded_event_subscriptions_name", "embedded_event_subscriptions", ["event_type", "event_name"]
    )
    op.create_index("ix_embedded_event_subscriptions_instance", "embedded_event_subscriptions", ["instance_id"])


def downgrade() -> None:
    op.drop_table("embedded_event_subscriptions")
