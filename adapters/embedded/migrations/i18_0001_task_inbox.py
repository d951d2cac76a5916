"""embedded engine: the task inbox, one row per open task and list filter carrying the task's sort keys, so that
every task list is an index range scan in the requested order, also on stale planner statistics (issue 18);
filled from the open tasks

Revision ID: i18_0001_task_inbox
Revises: i20_0001
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision = "i18_0001_task_inbox"
down_revision = "i20_0001"
branch_labels = None
depends_on = None

BATCH = 1000
SORT_COLUMNS = ("created", "due", "follow_up", "priority", "name", "assignee")
INBOX_COLUMNS = [
    "instance_id",
    "definition_key",
    "tenant_id",
    "status",
    "assignee",
    "name",
    "priority",
    "due",
    "follow_up",
    "created",
]
# the partial indexes on open tasks that lists used (the inbox's indexes replace them)
SUPERSEDED = {
    "ix_embedded_tasks_open_created": ["created", "id"],
    "ix_embedded_tasks_open_assignee": ["assignee", "created"],
    "ix_embedded_tasks_open_unassigned": ["created"],
    "ix_embedded_tasks_open_definition": ["definition_key", "created"],
    "ix_embedded_tasks_open_due": ["due"],
    "ix_embedded_tasks_open_priority": ["priority", "created"],
    "ix_embedded_tasks_open_name": ["name"],
    "ix_embedded_tasks_open_tenant": ["tenant_id", "created"],
}


def upgrade() -> None:
    # the one mapping of a task to its inbox rows, and the task table to read them from
    from adapters.embedded.repository import inbox_rows
    from adapters.embedded.tables import tasks

    inbox = op.create_table(
        "embedded_task_inbox",
        sa.Column("task_id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("tenant_id", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("assignee", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("due", UTCDateTime),
        sa.Column("follow_up", UTCDateTime),
        sa.Column("created", UTCDateTime, nullable=False),
    )
    for column in SORT_COLUMNS:
        op.create_index(f"ix_embedded_task_inbox_{column}", "embedded_task_inbox", ["key", column, "task_id"])
    bind = op.get_bind()
    rows: list[dict] = []
    columns = [tasks.c[name] for name in [*INBOX_COLUMNS, "id", "candidate_users", "candidate_groups"]]
    for task in bind.execute(sa.select(*columns).where(tasks.c.ended_at.is_(None))):
        rows += inbox_rows(task._mapping)
        if len(rows) >= BATCH:
            bind.execute(inbox.insert(), rows)
            rows = []
    if rows:
        bind.execute(inbox.insert(), rows)
    for name in SUPERSEDED:
        op.drop_index(name, "embedded_tasks")


def downgrade() -> None:
    for name, columns in SUPERSEDED.items():
        where = sa.text("ended_at IS NULL AND assignee IS NULL" if name.endswith("unassigned") else "ended_at IS NULL")
        op.create_index(name, "embedded_tasks", columns, sqlite_where=where, postgresql_where=where)
    op.drop_table("embedded_task_inbox")
