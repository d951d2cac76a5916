"""embedded engine: claim-next reads the task inbox's queue of each candidate group (and of the caller), an index
over unassigned inbox rows in queue order (priority high to low, then oldest), so that it stops at the first task
of the caller's groups instead of walking every group's tasks in the task table's queue index, which it drops
(issue 14)

Revision ID: i14_0003_claim_queue
Revises: i20_0003_variable_statistics
"""

import sqlalchemy as sa
from alembic import op

revision = "i14_0003_claim_queue"
down_revision = "i20_0003_variable_statistics"
branch_labels = None
depends_on = None

UNASSIGNED = sa.text("assignee IS NULL")
UNASSIGNED_TASK = sa.text("ended_at IS NULL AND assignee IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_embedded_task_inbox_queue",
        "embedded_task_inbox",
        ["key", sa.text("priority DESC"), "created", "task_id"],
        sqlite_where=UNASSIGNED,
        postgresql_where=UNASSIGNED,
        # a filter on the definition key is read from the index too (else PostgreSQL sorts the group's tasks)
        postgresql_include=["definition_key"],
    )
    op.drop_index("ix_embedded_tasks_queue", "embedded_tasks")


def downgrade() -> None:
    op.create_index(
        "ix_embedded_tasks_queue",
        "embedded_tasks",
        [sa.text("priority DESC"), "created", "id"],
        sqlite_where=UNASSIGNED_TASK,
        postgresql_where=UNASSIGNED_TASK,
    )
    op.drop_index("ix_embedded_task_inbox_queue", "embedded_task_inbox")
