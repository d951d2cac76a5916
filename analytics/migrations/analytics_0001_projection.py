"""analytics projection: instances, activities and their per-slot sums, tasks and their groups, state

Revision ID: analytics_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import BigId, UTCDateTime

revision = "analytics_0001"
down_revision = None
branch_labels = ("analytics",)
depends_on = "0001_gateway_core"


def upgrade() -> None:
    op.create_table(
        "analytics_instances",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("instance_id", sa.String(255), primary_key=True),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("definition_name", sa.String(255)),
        sa.Column("tenant_id", sa.String(100)),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("start_time", UTCDateTime, nullable=False),
        sa.Column("end_time", UTCDateTime),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("start_slot", sa.Integer, nullable=False),
        sa.Column("end_slot", sa.Integer),
    )
    op.create_index("ix_analytics_instances_start", "analytics_instances", ["engine", "start_time"])
    op.create_index(
        "ix_analytics_instances_key_start", "analytics_instances", ["engine", "definition_key", "start_time"]
    )
    op.create_index("ix_analytics_instances_end", "analytics_instances", ["engine", "end_time"])

    op.create_table(
        "analytics_activities",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("engine", sa.String(100), nullable=False),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("activity_name", sa.String(255)),
        sa.Column("activity_type", sa.String(50), nullable=False),
        sa.Column("start_time", UTCDateTime, nullable=False),
        sa.Column("end_time", UTCDateTime),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("start_slot", sa.Integer, nullable=False),
        sa.Column("canceled", sa.Boolean, nullable=False),
        sa.Column("first_run", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(255)),
    )
    op.create_index("ix_analytics_activities_start", "analytics_activities", ["engine", "start_time"])
    op.create_index(
        "ix_analytics_activities_key", "analytics_activities", ["engine", "definition_key", "activity_id", "start_time"]
    )
    op.create_index("ix_analytics_activities_instance", "analytics_activities", ["engine", "instance_id"])

    op.create_table(
        "analytics_activity_slots",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("definition_key", sa.String(255), primary_key=True),
        sa.Column("activity_id", sa.String(255), primary_key=True),
        sa.Column("start_slot", sa.Integer, primary_key=True),
        sa.Column("activity_name", sa.String(255)),
        sa.Column("activity_type", sa.String(50), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("first_runs", sa.Integer, nullable=False),
        sa.Column("total_ms", sa.Float, nullable=False),
        sa.Column("squares", sa.Float, nullable=False),
    )
    op.create_index("ix_analytics_activity_slots_slot", "analytics_activity_slots", ["engine", "start_slot"])

    op.create_table(
        "analytics_tasks",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("task_id", sa.String(255), primary_key=True),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("definition_key", sa.String(255)),
        sa.Column("task_definition_key", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("assignee", sa.String(255)),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created", UTCDateTime),
        sa.Column("due", UTCDateTime),
        sa.Column("claimed_at", UTCDateTime),
        sa.Column("completed_at", UTCDateTime),
        sa.Column("completed_by", sa.String(255)),
        sa.Column("claim_wait_ms", sa.BigInteger),
        sa.Column("completion_ms", sa.BigInteger),
        sa.Column("overdue_at", UTCDateTime),
        sa.Column("created_slot", sa.Integer),
        sa.Column("completed_slot", sa.Integer),
    )
    op.create_index("ix_analytics_tasks_created", "analytics_tasks", ["engine", "created"])
    op.create_index("ix_analytics_tasks_completed", "analytics_tasks", ["engine", "completed_at"])
    op.create_index("ix_analytics_tasks_open_due", "analytics_tasks", ["status", "due"])

    op.create_table(
        "analytics_task_groups",
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("task_id", sa.String(255), primary_key=True),
        sa.Column("group_id", sa.String(255), primary_key=True),
    )
    op.create_index("ix_analytics_task_groups_group", "analytics_task_groups", ["engine", "group_id"])

    op.create_table(
        "analytics_state",
        sa.Column("name", sa.String(150), primary_key=True),
        sa.Column("cursor", sa.BigInteger),
        sa.Column("synced_at", UTCDateTime),
    )


def downgrade() -> None:
    for table in (
        "analytics_state",
        "analytics_task_groups",
        "analytics_tasks",
        "analytics_activity_slots",
        "analytics_activities",
    ):
        op.drop_table(table)
    op.drop_table("analytics_instances")
