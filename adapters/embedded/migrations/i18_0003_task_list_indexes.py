"""embedded engine: task lists index-driven for every documented filter pair and for ended tasks (issue 18)

- the task inbox gets the keys of two filters (`repository.inbox_key`: every open task and each candidate user's and
  group's tasks by whether they are assigned; the candidate lists by tenant and by process) and is refilled;
  its key column widens to hold them;
- ended tasks (completed, cancelled) get an index per sort field on (status, field, id), replacing
  ix_embedded_tasks_status (status, created), whose lists sorted every ended task of the status for one page.

Revision ID: i18_0003_task_list_indexes
Revises: i18_0001_task_inbox
"""

import sqlalchemy as sa
from alembic import op

revision = "i18_0003_task_list_indexes"
down_revision = "i18_0001_task_inbox"
branch_labels = None
depends_on = None

BATCH = 1000
SORT_COLUMNS = ("created", "due", "follow_up", "priority", "name", "assignee")
ENDED_TASK = sa.text("ended_at IS NOT NULL")


def _refill_inbox() -> None:
    # the one mapping of a task to its inbox rows, and the tables to read and write
    from adapters.embedded.repository import inbox_rows
    from adapters.embedded.tables import task_inbox, tasks

    bind = op.get_bind()
    bind.execute(task_inbox.delete())
    rows: list[dict] = []
    names = ["id", "instance_id", "definition_key", "tenant_id", "status", "assignee", "name", "priority", "due"]
    names += ["follow_up", "created", "candidate_users", "candidate_groups"]
    for task in bind.execute(sa.select(*(tasks.c[name] for name in names)).where(tasks.c.ended_at.is_(None))):
        rows += inbox_rows(task._mapping)
        if len(rows) >= BATCH:
            bind.execute(task_inbox.insert(), rows)
            rows = []
    if rows:
        bind.execute(task_inbox.insert(), rows)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite does not enforce lengths
        op.alter_column("embedded_task_inbox", "key", type_=sa.String(600), existing_nullable=False)
    _refill_inbox()
    for column in SORT_COLUMNS:
        op.create_index(
            f"ix_embedded_tasks_ended_{column}",
            "embedded_tasks",
            ["status", column, "id"],
            sqlite_where=ENDED_TASK,
            postgresql_where=ENDED_TASK,
        )
    op.drop_index("ix_embedded_tasks_status", "embedded_tasks")


def downgrade() -> None:
    op.create_index("ix_embedded_tasks_status", "embedded_tasks", ["status", "created"])
    for column in SORT_COLUMNS:
        op.drop_index(f"ix_embedded_tasks_ended_{column}", "embedded_tasks")
    # the rows of two filters go; rows of one filter stay what i18_0001 wrote
    op.execute(sa.text("DELETE FROM embedded_task_inbox WHERE key LIKE :qualified").bindparams(qualified="%\x1f%"))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("embedded_task_inbox", "key", type_=sa.String(300), existing_nullable=False)
