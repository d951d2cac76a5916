"""embedded engine: an index in task-queue order (priority high to low, then oldest) over unassigned open tasks,
so that claim-next walks it and stops at the first task it may take instead of sorting the whole queue

Revision ID: embedded_0003
Revises: embedded_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "embedded_0003"
down_revision = "embedded_0002"
branch_labels = None
depends_on = None

UNASSIGNED_TASK = sa.text("ended_at IS NULL AND assignee IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_embedded_tasks_queue",
        "embedded_tasks",
        [sa.text("priority DESC"), "created", "id"],
        sqlite_where=UNASSIGNED_TASK,
        postgresql_where=UNASSIGNED_TASK,
    )


def downgrade() -> None:
    op.drop_index("ix_embedded_tasks_queue", "embedded_tasks")
