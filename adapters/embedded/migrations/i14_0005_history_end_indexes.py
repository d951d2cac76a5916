"""embedded engine: the analytics projection reads the runs that finished since its last read
(`HistoryQuery.finished_after`), by end time (issue 14)

Revision ID: i14_0005_history_end_indexes
Revises: i14_0003_claim_queue
"""

from alembic import op

revision = "i14_0005_history_end_indexes"
down_revision = "i14_0003_claim_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_embedded_instances_end_time", "embedded_instances", ["end_time"])
    op.create_index("ix_embedded_activities_ended_at", "embedded_activities", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_embedded_activities_ended_at", "embedded_activities")
    op.drop_index("ix_embedded_instances_end_time", "embedded_instances")
