"""embedded engine: deployments, definitions, instances, tasks, activities, incidents, jobs

Revision ID: embedded_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import JsonColumn, UTCDateTime

revision = "embedded_0001"
down_revision = None
branch_labels = ("embedded",)
depends_on = "0001_gateway_core"

OPEN_TASK = sa.text("ended_at IS NULL")
UNASSIGNED_TASK = sa.text("ended_at IS NULL AND assignee IS NULL")
OPEN_INCIDENT = sa.text("resolved_at IS NULL")


def partial_index(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    op.create_table(
        "embedded_deployments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255)),
        sa.Column("filename", sa.String(255)),
        sa.Column("resource", sa.LargeBinary, nullable=False),
        sa.Column("deployed_at", UTCDateTime, nullable=False),
        sa.Column("deployed_by", sa.String(255)),
        sa.Column("tenant_id", sa.String(100)),
    )

    op.create_table(
        "embedded_definitions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("deployment_id", sa.String(36), sa.ForeignKey("embedded_deployments.id"), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.Text),
        sa.Column("category", sa.String(255)),
        sa.Column("deployed_at", UTCDateTime, nullable=False),
        sa.Column("deployed_by", sa.String(255)),
        sa.Column("suspended", sa.Boolean, nullable=False),
        sa.Column("tenant_id", sa.String(100)),
    )
    op.create_index(
        "ux_embedded_definitions_version",
        "embedded_definitions",
        ["key", sa.text("coalesce(tenant_id, '')"), "version"],
        unique=True,
    )
    op.create_index("ix_embedded_definitions_deployment", "embedded_definitions", ["deployment_id"])

    op.create_table(
        "embedded_instances",
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
        sa.Column("variables", JsonColumn, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_embedded_instances_definition_key", "embedded_instances", ["definition_key", "start_time"])
    op.create_index("ix_embedded_instances_definition_id", "embedded_instances", ["definition_id"])
    op.create_index("ix_embedded_instances_business_key", "embedded_instances", ["business_key"])
    op.create_index("ix_embedded_instances_status", "embedded_instances", ["status", "start_time"])
    op.create_index("ix_embedded_instances_start_time", "embedded_instances", ["start_time"])
    op.create_index("ix_embedded_instances_tenant", "embedded_instances", ["tenant_id"])

    op.create_table(
        "embedded_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("definition_id", sa.String(36), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("task_definition_key", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.Text),
        sa.Column("assignee", sa.String(255)),
        sa.Column("owner", sa.String(255)),
        sa.Column("delegation_state", sa.String(20)),
        sa.Column("candidate_users", JsonColumn, nullable=False),
        sa.Column("candidate_groups", JsonColumn, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("due", UTCDateTime),
        sa.Column("follow_up", UTCDateTime),
        sa.Column("form_key", sa.String(255)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("completed_by", sa.String(255)),
        sa.Column("tenant_id", sa.String(100)),
    )
    op.create_index("ix_embedded_tasks_instance", "embedded_tasks", ["instance_id"])
    partial_index("ix_embedded_tasks_open_created", "embedded_tasks", ["created", "id"], OPEN_TASK)
    partial_index("ix_embedded_tasks_open_assignee", "embedded_tasks", ["assignee", "created"], OPEN_TASK)
    partial_index("ix_embedded_tasks_open_unassigned", "embedded_tasks", ["created"], UNASSIGNED_TASK)
    partial_index("ix_embedded_tasks_open_definition", "embedded_tasks", ["definition_key", "created"], OPEN_TASK)
    partial_index("ix_embedded_tasks_open_due", "embedded_tasks", ["due"], OPEN_TASK)
    partial_index("ix_embedded_tasks_open_priority", "embedded_tasks", ["priority", "created"], OPEN_TASK)
    partial_index("ix_embedded_tasks_open_name", "embedded_tasks", ["name"], OPEN_TASK)
    partial_index("ix_embedded_tasks_open_tenant", "embedded_tasks", ["tenant_id", "created"], OPEN_TASK)
    op.create_index("ix_embedded_tasks_status", "embedded_tasks", ["status", "created"])

    op.create_table(
        "embedded_task_candidates",
        sa.Column("task_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("value", sa.String(255), primary_key=True),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("assigned", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_embedded_task_candidates_inbox", "embedded_task_candidates", ["kind", "value", "open", "assigned"]
    )

    op.create_table(
        "embedded_activities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("definition_id", sa.String(36), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("activity_name", sa.String(255)),
        sa.Column("activity_type", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("assignee", sa.String(255)),
    )
    op.create_index("ix_embedded_activities_instance", "embedded_activities", ["instance_id", "started_at"])
    op.create_index("ix_embedded_activities_definition_key", "embedded_activities", ["definition_key", "started_at"])
    op.create_index("ix_embedded_activities_started_at", "embedded_activities", ["started_at"])

    op.create_table(
        "embedded_incidents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("incident_type", sa.String(50), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("definition_id", sa.String(36), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("activity_id", sa.String(255)),
        sa.Column("activity_name", sa.String(255)),
        sa.Column("task_id", sa.String(36)),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("annotation", sa.Text),
        sa.Column("resolved_at", UTCDateTime),
        sa.Column("tenant_id", sa.String(100)),
    )
    op.create_index("ix_embedded_incidents_instance", "embedded_incidents", ["instance_id"])
    partial_index("ix_embedded_incidents_open", "embedded_incidents", ["created"], OPEN_INCIDENT)

    op.create_table(
        "embedded_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("due_at", UTCDateTime),
        sa.Column("topic", sa.String(255)),
    )
    op.create_index("ix_embedded_jobs_instance", "embedded_jobs", ["instance_id"])
    op.create_index("ix_embedded_jobs_due", "embedded_jobs", ["kind", "due_at"])
    op.create_index("ix_embedded_jobs_topic", "embedded_jobs", ["kind", "topic"])


def downgrade() -> None:
    for table in (
        "embedded_jobs",
        "embedded_incidents",
        "embedded_activities",
        "embedded_task_candidates",
        "embedded_tasks",
        "embedded_instances",
        "embedded_definitions",
        "embedded_deployments",
    ):
        op.drop_table(table)
