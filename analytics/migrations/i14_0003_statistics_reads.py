"""analytics: indexes that answer two reads of a cold /statistics from the index alone: the median duration of
the completed instances (it sorted every completed instance of the period: 85,000 rows, 190 ms) and the overdue
open tasks per process (a bitmap heap scan over 10,000 task rows, 110 ms). The included columns are the period
and scope filters; SQLite has no INCLUDE and gets the plain index

Revision ID: i14_0003_statistics_reads
Revises: i14_0001_rollups
"""

from alembic import op

revision = "i14_0003_statistics_reads"
down_revision = "i14_0001_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_analytics_instances_duration",
        "analytics_instances",
        ["engine", "status", "duration_ms"],
        postgresql_include=["start_time", "definition_key", "tenant_id"],
    )
    op.create_index(
        "ix_analytics_tasks_overdue",
        "analytics_tasks",
        ["engine", "status", "due"],
        postgresql_include=["created", "definition_key", "tenant_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_tasks_overdue", "analytics_tasks")
    op.drop_index("ix_analytics_instances_duration", "analytics_instances")
