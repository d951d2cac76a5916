"""The analytics projection: the gateway's own copy of each engine's instances, activities and user tasks.

Rows are written only by `analytics.projection` (from the engines' history and the gateway's events) and read
only by `analytics.repository`. Instances, activity runs and tasks carry their tenant (`tenant_id`), so that a
caller limited to tenants gets figures over their tenants' rows only. Every time also has its 15-minute slot (`*_slot`: Unix seconds // 900) so that
day and hour buckets in any time zone are integer GROUP BYs (every zone's offset is a multiple of 15 minutes).
"""

import sqlalchemy as sa

from gateway.db import BigId, UTCDateTime, metadata

SLOT_SECONDS = 900
SLOTS_PER_DAY = 86_400 // SLOT_SECONDS

analytics_instances = sa.Table(
    "analytics_instances",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("instance_id", sa.String(255), primary_key=True),
    sa.Column("definition_key", sa.String(255), nullable=False),
    sa.Column("definition_name", sa.String(255)),
    sa.Column("tenant_id", sa.String(100)),
    sa.Column("status", sa.String(30), nullable=False),  # API.md instance status
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("end_time", UTCDateTime),
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("start_slot", sa.Integer, nullable=False),
    sa.Column("end_slot", sa.Integer),
    sa.Index("ix_analytics_instances_start", "engine", "start_time"),
    sa.Index("ix_analytics_instances_key_start", "engine", "definition_key", "start_time"),
    sa.Index("ix_analytics_instances_end", "engine", "end_time"),
    # the median duration: completed instances in duration order, read from the index alone (i14_0003)
    sa.Index(
        "ix_analytics_instances_duration",
        "engine",
        "status",
        "duration_ms",
        postgresql_include=["start_time", "definition_key", "tenant_id"],
    ),
)

analytics_activities = sa.Table(
    "analytics_activities",
    metadata,
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
    sa.Column("canceled", sa.Boolean, nullable=False),  # ended because its instance was terminated
    sa.Column("first_run", sa.Boolean, nullable=False),  # the instance's earliest run of this activity
    sa.Column("assignee", sa.String(255)),
    sa.Column("tenant_id", sa.String(100)),  # its instance's (`repository.refresh_derived` copies it)
    sa.Index("ix_analytics_activities_start", "engine", "start_time"),
    sa.Index("ix_analytics_activities_key", "engine", "definition_key", "activity_id", "start_time"),
    sa.Index("ix_analytics_activities_instance", "engine", "instance_id"),
)

# Completed runs per (activity, 15-minute slot of their start): what bottlenecks and the statistics' bottleneck
# lists sum over a period instead of reading every run. Not kept per tenant: answers for a caller limited to
# tenants sum their tenants' runs themselves. Rebuilt from analytics_activities for the slots a
# projection round replaced.
analytics_activity_slots = sa.Table(
    "analytics_activity_slots",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("activity_id", sa.String(255), primary_key=True),
    sa.Column("start_slot", sa.Integer, primary_key=True),
    sa.Column("activity_name", sa.String(255)),
    sa.Column("activity_type", sa.String(50), nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("first_runs", sa.Integer, nullable=False),  # runs that are their instance's first of the activity
    sa.Column("total_ms", sa.Float, nullable=False),
    sa.Column("squares", sa.Float, nullable=False),  # sum of squared durations (ms²)
    sa.Index("ix_analytics_activity_slots_slot", "engine", "start_slot"),
)

# The roll-ups below, like analytics_activity_slots, are rebuilt by `repository.rebuild_rollups` from the rows
# of the slots (and days) a projection round replaced. A period is read as whole UTC days (the *_days tables:
# `day` = Unix seconds // 86400), whole 15-minute slots at its ends (*_slots), and the rows themselves for the
# part of a slot at each end; answers per local day sum slots, which fit every time zone's days.

# analytics_activity_slots summed per UTC day of the runs' start.
analytics_activity_days = sa.Table(
    "analytics_activity_days",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("activity_id", sa.String(255), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("activity_name", sa.String(255)),
    sa.Column("activity_type", sa.String(50), nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("first_runs", sa.Integer, nullable=False),
    sa.Column("total_ms", sa.Float, nullable=False),
    sa.Column("squares", sa.Float, nullable=False),
    sa.Index("ix_analytics_activity_days_day", "engine", "day"),
)

# Instances per (process, current status, 15-minute slot of their start): their count and summed duration.
analytics_instance_slots = sa.Table(
    "analytics_instance_slots",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(30), primary_key=True),
    sa.Column("start_slot", sa.Integer, primary_key=True),
    sa.Column("definition_name", sa.String(255)),
    sa.Column("instances", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.BigInteger, nullable=False),  # sum over the instances that have one
    sa.Index("ix_analytics_instance_slots_slot", "engine", "start_slot"),
)

# analytics_instance_slots summed per UTC day of the instances' start.
analytics_instance_days = sa.Table(
    "analytics_instance_days",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(30), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("definition_name", sa.String(255)),
    sa.Column("instances", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_analytics_instance_days_day", "engine", "day"),
)

# Completed instances per (process, 15-minute slot of their end): their count and summed duration.
analytics_completion_slots = sa.Table(
    "analytics_completion_slots",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("end_slot", sa.Integer, primary_key=True),
    sa.Column("instances", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_analytics_completion_slots_slot", "engine", "end_slot"),
)

analytics_tasks = sa.Table(
    "analytics_tasks",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("task_id", sa.String(255), primary_key=True),
    sa.Column("instance_id", sa.String(255)),
    sa.Column("definition_key", sa.String(255)),
    sa.Column("task_definition_key", sa.String(255)),
    sa.Column("name", sa.String(255)),
    sa.Column("assignee", sa.String(255)),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # open, completed, cancelled
    sa.Column("created", UTCDateTime),
    sa.Column("due", UTCDateTime),
    sa.Column("claimed_at", UTCDateTime),  # the first claim or assignment
    sa.Column("completed_at", UTCDateTime),
    sa.Column("completed_by", sa.String(255)),
    sa.Column("claim_wait_ms", sa.BigInteger),  # claimed_at - created
    sa.Column("completion_ms", sa.BigInteger),  # completed_at - created
    sa.Column("overdue_at", UTCDateTime),  # when task.overdue was emitted (once)
    sa.Column("created_slot", sa.Integer),
    sa.Column("completed_slot", sa.Integer),
    sa.Column("tenant_id", sa.String(100)),
    sa.Index("ix_analytics_tasks_created", "engine", "created"),
    sa.Index("ix_analytics_tasks_completed", "engine", "completed_at"),
    sa.Index("ix_analytics_tasks_open_due", "status", "due"),
    # overdue open tasks of an engine counted per process from the index alone (i14_0003)
    sa.Index(
        "ix_analytics_tasks_overdue",
        "engine",
        "status",
        "due",
        postgresql_include=["created", "definition_key", "tenant_id"],
    ),
)

# User tasks per (process, current status, 15-minute slot of their creation), and completed ones per slot of
# their completion; definition_key '' when not known. Kept by `repository.insert_task`/`update_task`, which
# recount the slots a task leaves and enters.
analytics_task_slots = sa.Table(
    "analytics_task_slots",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(20), primary_key=True),
    sa.Column("created_slot", sa.Integer, primary_key=True),
    sa.Column("tasks", sa.Integer, nullable=False),
    sa.Index("ix_analytics_task_slots_slot", "engine", "created_slot"),
)

analytics_task_completion_slots = sa.Table(
    "analytics_task_completion_slots",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("definition_key", sa.String(255), primary_key=True),
    sa.Column("completed_slot", sa.Integer, primary_key=True),
    sa.Column("tasks", sa.Integer, nullable=False),
    sa.Index("ix_analytics_task_completion_slots_slot", "engine", "completed_slot"),
)

analytics_task_groups = sa.Table(
    "analytics_task_groups",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("task_id", sa.String(255), primary_key=True),
    sa.Column("group_id", sa.String(255), primary_key=True),
    sa.Index("ix_analytics_task_groups_group", "engine", "group_id"),
)

# Where the projection stands: the outbox cursor ("events") and each engine's last history sync ("engine:NAME").
analytics_state = sa.Table(
    "analytics_state",
    metadata,
    sa.Column("name", sa.String(150), primary_key=True),
    sa.Column("cursor", sa.BigInteger),
    sa.Column("synced_at", UTCDateTime),
)
