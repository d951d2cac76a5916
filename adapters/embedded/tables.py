"""The embedded engine's tables in the gateway database (schema changes go through the migrations here).

A workflow's run state is one JSON document per instance (`embedded_instances.state`); everything the API
lists or filters on is projected from it into plain tables when the state changes, so no query ever has
to load a workflow.
"""

import sqlalchemy as sa

from adapters.embedded.variables import INDEXED_NAME_LENGTH, INDEXED_TEXT_LENGTH
from gateway.db import JsonColumn, UTCDateTime, metadata

UNASSIGNED = sa.text("assignee IS NULL")
ENDED_TASK = sa.text("ended_at IS NOT NULL")
OPEN_INCIDENT = sa.text("resolved_at IS NULL")
# The task-list sort fields: each has an index on the task inbox (key, field, task id) and on the ended tasks
# (status, field, id).
INBOX_SORT_COLUMNS = ("created", "due", "follow_up", "priority", "name", "assignee")


def partial_index(name: str, *columns: str | sa.TextClause, where: sa.TextClause) -> sa.Index:
    return sa.Index(name, *columns, sqlite_where=where, postgresql_where=where)


deployments = sa.Table(
    "embedded_deployments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("filename", sa.String(255)),
    sa.Column("resource", sa.LargeBinary, nullable=False),  # the BPMN exactly as uploaded
    sa.Column("deployed_at", UTCDateTime, nullable=False),
    sa.Column("deployed_by", sa.String(255)),
    sa.Column("tenant_id", sa.String(100)),
)

definitions = sa.Table(
    "embedded_definitions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("deployment_id", sa.String(36), sa.ForeignKey("embedded_deployments.id"), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("description", sa.Text),
    sa.Column("category", sa.String(255)),
    sa.Column("deployed_at", UTCDateTime, nullable=False),
    sa.Column("deployed_by", sa.String(255)),
    sa.Column("suspended", sa.Boolean, nullable=False, default=False),
    sa.Column("tenant_id", sa.String(100)),
    # One version number per key and tenant; a concurrent deployment of the same key fails here, not silently.
    sa.Index("ux_embedded_definitions_version", "key", sa.text("coalesce(tenant_id, '')"), "version", unique=True),
    sa.Index("ix_embedded_definitions_deployment", "deployment_id"),
)

instances = sa.Table(
    "embedded_instances",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("definition_id", sa.String(36), nullable=False),
    sa.Column("definition_key", sa.String(255), nullable=False),
    sa.Column("definition_name", sa.String(255)),
    sa.Column("business_key", sa.String(255)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_by", sa.String(255)),
    sa.Column("tenant_id", sa.String(100)),
    sa.Column("super_instance_id", sa.String(36)),
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("end_time", UTCDateTime),
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("variables", JsonColumn, nullable=False),  # {name: {value, type}}: the typed truth
    sa.Column("state", sa.Text, nullable=False),  # the SpiffWorkflow run state, without specs
    # The definitions its call activities call (latest binding resolved at its start); NULL: resolve on each change
    sa.Column("called_definitions", JsonColumn),
    sa.Column("version", sa.Integer, nullable=False),  # optimistic lock
    sa.Index("ix_embedded_instances_definition_key", "definition_key", "start_time"),
    sa.Index("ix_embedded_instances_definition_id", "definition_id"),
    sa.Index("ix_embedded_instances_business_key", "business_key"),
    sa.Index("ix_embedded_instances_status", "status", "start_time"),
    sa.Index("ix_embedded_instances_start_time", "start_time"),
    sa.Index("ix_embedded_instances_end_time", "end_time"),
    sa.Index("ix_embedded_instances_tenant", "tenant_id"),
)

tasks = sa.Table(
    "embedded_tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the SpiffWorkflow task id
    sa.Column("instance_id", sa.String(36), nullable=False),
    sa.Column("definition_id", sa.String(36), nullable=False),
    sa.Column("definition_key", sa.String(255), nullable=False),
    sa.Column("task_definition_key", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("description", sa.Text),
    sa.Column("assignee", sa.String(255)),
    sa.Column("owner", sa.String(255)),
    sa.Column("delegation_state", sa.String(20)),
    # Shown with the task; filtering goes through embedded_task_candidates.
    sa.Column("candidate_users", JsonColumn, nullable=False),
    sa.Column("candidate_groups", JsonColumn, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("due", UTCDateTime),
    sa.Column("follow_up", UTCDateTime),
    sa.Column("form_key", sa.String(255)),
    sa.Column("status", sa.String(20), nullable=False),  # created, assigned, delegated, completed, cancelled
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),  # completed or cancelled; NULL while the task is open
    sa.Column("completed_by", sa.String(255)),
    sa.Column("tenant_id", sa.String(100)),
    # The task's own variables where they differ from its instance's, e.g. a multi-instance element variable.
    sa.Column("local_variables", JsonColumn),
    sa.Index("ix_embedded_tasks_instance", "instance_id"),
    # Lists of open tasks read the task inbox (embedded_task_inbox), and so does claim-next (i14_0003).
    # Lists of ended tasks (a status given: completed or cancelled): one index per sort field (i18_0003).
    *(
        partial_index(f"ix_embedded_tasks_ended_{column}", "status", column, "id", where=ENDED_TASK)
        for column in INBOX_SORT_COLUMNS
    ),
)

task_candidates = sa.Table(
    "embedded_task_candidates",
    metadata,
    sa.Column("task_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),  # "user" or "group"
    sa.Column("value", sa.String(255), primary_key=True),
    # Copies of the task's state, so that counting a group's (or user's) inbox reads this index alone.
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("assigned", sa.Boolean, nullable=False),
    sa.Index("ix_embedded_task_candidates_inbox", "kind", "value", "open", "assigned"),
)

# The task inbox: one row per open task and list filter it can be found by (`key`: "*" for every open task, then
# "group:<name>", "user:<id>", "assignee:<id>", "instance:<id>", "definition:<key>", "tenant:<id>", "status:<status>",
# and the keys of two filters, `repository.inbox_key`),
# carrying the task's sort keys and the other filters' columns. A task list reads one key's rows through the index
# of its sort field in order, so it is an index range scan stopped by LIMIT whatever the planner's statistics say
# (a fresh bulk load with stale statistics made PostgreSQL sort 100,000 tasks instead). Rows are written from the
# task row on every change (`repository.refresh_inbox`) and deleted when the task ends (i18_0001).
task_inbox = sa.Table(
    "embedded_task_inbox",
    metadata,
    sa.Column("task_id", sa.String(36), primary_key=True),
    sa.Column("key", sa.String(600), primary_key=True),  # two filters: "group:<name>\x1ftenant:<id>" (i18_0003)
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
    *(sa.Index(f"ix_embedded_task_inbox_{column}", "key", column, "task_id") for column in INBOX_SORT_COLUMNS),
    # claim-next's queue of a key (a group, a user, "*"): unassigned, highest priority first, then oldest; with the
    # definition key on PostgreSQL, so that a queue of one process is read from the index alone too (i14_0003)
    sa.Index(
        "ix_embedded_task_inbox_queue",
        "key",
        sa.text("priority DESC"),
        "created",
        "task_id",
        sqlite_where=UNASSIGNED,
        postgresql_where=UNASSIGNED,
        postgresql_include=["definition_key"],
    ),
)

activities = sa.Table(
    "embedded_activities",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the SpiffWorkflow task id
    sa.Column("instance_id", sa.String(36), nullable=False),
    sa.Column("definition_id", sa.String(36), nullable=False),
    sa.Column("definition_key", sa.String(255), nullable=False),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("activity_name", sa.String(255)),
    sa.Column("activity_type", sa.String(50), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # active, waiting, failed, completed, cancelled
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("assignee", sa.String(255)),
    sa.Index("ix_embedded_activities_instance", "instance_id", "started_at"),
    sa.Index("ix_embedded_activities_definition_key", "definition_key", "started_at"),
    sa.Index("ix_embedded_activities_started_at", "started_at"),
    sa.Index("ix_embedded_activities_ended_at", "ended_at"),
)

incidents = sa.Table(
    "embedded_incidents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("incident_type", sa.String(50), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("instance_id", sa.String(36), nullable=False),
    sa.Column("definition_id", sa.String(36), nullable=False),
    sa.Column("definition_key", sa.String(255), nullable=False),
    sa.Column("activity_id", sa.String(255)),
    sa.Column("activity_name", sa.String(255)),
    sa.Column("task_id", sa.String(36)),  # the failed SpiffWorkflow task, run again by a retry
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("annotation", sa.Text),
    sa.Column("resolved_at", UTCDateTime),  # NULL while open
    sa.Column("tenant_id", sa.String(100)),
    sa.Index("ix_embedded_incidents_instance", "instance_id"),
    partial_index("ix_embedded_incidents_open", "created", where=OPEN_INCIDENT),
)

jobs = sa.Table(
    "embedded_jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the waiting SpiffWorkflow task id
    sa.Column("instance_id", sa.String(36), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # "timer" (due_at) or "external" (topic)
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Column("due_at", UTCDateTime),  # a timer's due time; a failed job's next attempt
    sa.Column("topic", sa.String(255)),
    sa.Column("failures", sa.Integer, nullable=False, default=0),  # failed background attempts in a row
    sa.Index("ix_embedded_jobs_instance", "instance_id"),
    sa.Index("ix_embedded_jobs_due", "kind", "due_at"),
    sa.Index("ix_embedded_jobs_topic", "kind", "topic"),
)

# The variables of instances and tasks as plain, indexed values, for `?variable=` / `?task_variable=` conditions;
# written with `embedded_instances.variables` (the typed truth) and a task's `local_variables` (i20_0001).
# Numbers are in `number_value`; strings, dates (ISO 8601) and booleans ("true"/"false") in `text_value`; a
# string longer than INDEXED_TEXT_LENGTH and Json/Null values are not indexed, so no condition matches them.
# On PostgreSQL, multi-column statistics on (name, text_value) and (name, number_value) give the planner the
# number of rows a condition matches (i20_0003), and statistics of `scope_id = instance_id` the share of instance
# variables (i20_0004; a migration only, metadata cannot declare them).
# The value indexes end with the instance id, so that a list's total is counted from them alone (the instances'
# own variables are the rows whose scope is their instance); the scope index holds the values, so that checking a
# condition on one instance's (or task's) variable, when a list is read in its sort order, reads no table row.
variable_index = sa.Table(
    "embedded_variable_index",
    metadata,
    sa.Column("scope_id", sa.String(36), primary_key=True),  # the instance id, or the task id for a task's own
    sa.Column("name", sa.String(INDEXED_NAME_LENGTH), primary_key=True),
    sa.Column("instance_id", sa.String(36), nullable=False),
    # byte order ("C") on PostgreSQL, so that a `like` with a fixed prefix is a range scan of the index
    sa.Column(
        "text_value",
        sa.String(INDEXED_TEXT_LENGTH).with_variant(sa.String(INDEXED_TEXT_LENGTH, collation="C"), "postgresql"),
    ),
    sa.Column("number_value", sa.Float(precision=53)),
    sa.Index("ix_embedded_variable_index_number", "name", "number_value", "scope_id", "instance_id"),
    sa.Index("ix_embedded_variable_index_text", "name", "text_value", "scope_id", "instance_id"),
    sa.Index("ix_embedded_variable_index_instance", "instance_id"),
    sa.Index("ix_embedded_variable_index_scope_values", "scope_id", "name", "text_value", "number_value"),
)


start_timers = sa.Table(
    "embedded_start_timers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("definition_id", sa.String(36), nullable=False),
    sa.Column("definition_key", sa.String(255), nullable=False),
    sa.Column("tenant_id", sa.String(100)),
    sa.Column("activity_id", sa.String(255), nullable=False),  # the timer start event
    sa.Column("due_at", UTCDateTime, nullable=False),  # its next occurrence
    sa.Column("remaining", sa.Integer, nullable=False),  # occurrences left; -1: a cycle without end
    sa.Column("interval_seconds", sa.Float),  # a cycle's interval; NULL: it fires once
    sa.Index("ix_embedded_start_timers_due", "due_at"),
    sa.Index("ix_embedded_start_timers_definition", "definition_id"),
    sa.Index("ix_embedded_start_timers_key", "definition_key", "tenant_id"),
)


event_subscriptions = sa.Table(
    "embedded_event_subscriptions",
    metadata,
    sa.Column("task_id", sa.String(36), primary_key=True),  # the waiting SpiffWorkflow task
    sa.Column("event_type", sa.String(10), primary_key=True),  # "message" or "signal"
    sa.Column("event_name", sa.String(255), primary_key=True),
    sa.Column("instance_id", sa.String(36), nullable=False),
    sa.Column("activity_id", sa.String(255), nullable=False),
    sa.Index("ix_embedded_event_subscriptions_name", "event_type", "event_name"),
    sa.Index("ix_embedded_event_subscriptions_instance", "instance_id"),
)
