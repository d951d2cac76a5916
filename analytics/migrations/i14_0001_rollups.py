"""analytics roll-ups: activity runs per UTC day, instances per slot and day, completions per slot, tasks per slot

Revision ID: i14_0001_rollups
Revises: i19_0002_analytics_tenant
"""

import sqlalchemy as sa
from alembic import op

revision = "i14_0001_rollups"
down_revision = "i19_0002_analytics_tenant"
branch_labels = None
depends_on = None


def _key_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("engine", sa.String(100), primary_key=True),
        sa.Column("definition_key", sa.String(255), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "analytics_activity_days",
        *_key_columns(),
        sa.Column("activity_id", sa.String(255), primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("activity_name", sa.String(255)),
        sa.Column("activity_type", sa.String(50), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("first_runs", sa.Integer, nullable=False),
        sa.Column("total_ms", sa.Float, nullable=False),
        sa.Column("squares", sa.Float, nullable=False),
    )
    op.create_index("ix_analytics_activity_days_day", "analytics_activity_days", ["engine", "day"])
    for table, period in (("analytics_instance_slots", "start_slot"), ("analytics_instance_days", "day")):
        op.create_table(
            table,
            *_key_columns(),
            sa.Column("status", sa.String(30), primary_key=True),
            sa.Column(period, sa.Integer, primary_key=True),
            sa.Column("definition_name", sa.String(255)),
            sa.Column("instances", sa.Integer, nullable=False),
            sa.Column("duration_ms", sa.BigInteger, nullable=False),
        )
        op.create_index(f"ix_{table}_{'slot' if period == 'start_slot' else 'day'}", table, ["engine", period])
    op.create_table(
        "analytics_completion_slots",
        *_key_columns(),
        sa.Column("end_slot", sa.Integer, primary_key=True),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_analytics_completion_slots_slot", "analytics_completion_slots", ["engine", "end_slot"])
    op.create_table(
        "analytics_task_slots",
        *_key_columns(),
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("created_slot", sa.Integer, primary_key=True),
        sa.Column("tasks", sa.Integer, nullable=False),
    )
    op.create_index("ix_analytics_task_slots_slot", "analytics_task_slots", ["engine", "created_slot"])
    op.create_table(
        "analytics_task_completion_slots",
        *_key_columns(),
        sa.Column("completed_slot", sa.Integer, primary_key=True),
        sa.Column("tasks", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_analytics_task_completion_slots_slot", "analytics_task_completion_slots", ["engine", "completed_slot"]
    )
    # Projections kept before this revision are rolled up at once, so their periods keep their answers.
    _roll_up_existing()


def _roll_up_existing() -> None:
    """The roll-ups of the rows already projected (96: the 15-minute slots of a day)."""
    op.execute(
        """INSERT INTO analytics_activity_days (engine, definition_key, activity_id, day, activity_name,
            activity_type, runs, first_runs, total_ms, squares)
        SELECT engine, definition_key, activity_id, start_slot / 96, max(activity_name), max(activity_type),
            sum(runs), sum(first_runs), sum(total_ms), sum(squares)
        FROM analytics_activity_slots GROUP BY engine, definition_key, activity_id, start_slot / 96"""
    )
    op.execute(
        """INSERT INTO analytics_instance_slots (engine, definition_key, status, start_slot, definition_name,
            instances, duration_ms)
        SELECT engine, definition_key, status, start_slot, max(definition_name), count(*), coalesce(sum(duration_ms), 0)
        FROM analytics_instances GROUP BY engine, definition_key, status, start_slot"""
    )
    op.execute(
        """INSERT INTO analytics_instance_days (engine, definition_key, status, day, definition_name, instances,
            duration_ms)
        SELECT engine, definition_key, status, start_slot / 96, max(definition_name), sum(instances), sum(duration_ms)
        FROM analytics_instance_slots GROUP BY engine, definition_key, status, start_slot / 96"""
    )
    op.execute(
        """INSERT INTO analytics_completion_slots (engine, definition_key, end_slot, instances, duration_ms)
        SELECT engine, definition_key, end_slot, count(*), coalesce(sum(duration_ms), 0)
        FROM analytics_instances WHERE status = 'completed' GROUP BY engine, definition_key, end_slot"""
    )
    op.execute(
        """INSERT INTO analytics_task_slots (engine, definition_key, status, created_slot, tasks)
        SELECT engine, coalesce(definition_key, ''), status, created_slot, count(*) FROM analytics_tasks
        WHERE created_slot IS NOT NULL GROUP BY engine, coalesce(definition_key, ''), status, created_slot"""
    )
    op.execute(
        """INSERT INTO analytics_task_completion_slots (engine, definition_key, completed_slot, tasks)
        SELECT engine, coalesce(definition_key, ''), completed_slot, count(*) FROM analytics_tasks
        WHERE status = 'completed' AND completed_slot IS NOT NULL
        GROUP BY engine, coalesce(definition_key, ''), completed_slot"""
    )


def downgrade() -> None:
    for table in (
        "analytics_task_completion_slots",
        "analytics_task_slots",
        "analytics_completion_slots",
        "analytics_instance_days",
        "analytics_instance_slots",
        "analytics_activity_days",
    ):
        op.drop_table(table)
