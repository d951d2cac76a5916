"""embedded engine: the schedules of timer start events, so that the engine starts instances on them (and
they survive a restart)

Revision ID: i12_0001_start_timers
Revises: embedded_0003
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision = "i12_0001_start_timers"
down_revision = "embedded_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embedded_start_timers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("definition_id", sa.String(36), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("tenant_id", sa.String(100)),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("remaining", sa.Integer, nullable=False),
        sa.Column("interval_seconds", sa.Float),
    )
    op.create_index("ix_embedded_start_timers_due", "embedded_start_timers", ["due_at"])
    op.create_index("ix_embedded_start_timers_definition", "embedded_start_timers", ["definition_id"])
    op.create_index("ix_embedded_start_timers_key", "embedded_start_timers", ["definition_key", "tenant_id"])


def downgrade() -> None:
    op.drop_table("embedded_start_timers")
