"""Rows of the embedded engine's tables as the unified API models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.embedded.variables import loaded
from gateway.schemas import (
    Activity,
    ActivityRecord,
    CurrentActivity,
    EngineIncident,
    ExecutionStep,
    ProcessDefinition,
    ProcessInstance,
    ProcessInstanceDetails,
    Task,
    TaskDetails,
)
from gateway.variables import Variables

Row = Any  # a SQLAlchemy row of the matching table


def definition(row: Row, engine: str) -> ProcessDefinition:
    return ProcessDefinition(
        id=row.id,
        key=row.key,
        name=row.name,
        version=row.version,
        category=row.category,
        description=row.description,
        deployment_id=row.deployment_id,
        deployed_at=row.deployed_at,
        deployed_by=row.deployed_by,
        active=not row.suspended,
        suspended=row.suspended,
        tenant_id=row.tenant_id,
        engine=engine,
    )


def instance(row: Row, open_activities: Sequence[Row], engine: str) -> ProcessInstance:
    return ProcessInstance(**_instance_fields(row, open_activities, engine))


def instance_details(
    row: Row, activities: Sequence[Row], incidents: Sequence[Row], engine: str
) -> ProcessInstanceDetails:
    open_activities = [a for a in activities if a.ended_at is None]
    return ProcessInstanceDetails(
        **_instance_fields(row, open_activities, engine),
        activities=[
            Activity(
                id=a.activity_id,
                instance_id=a.instance_id,
                name=a.activity_name,
                type=a.activity_type,
                status=a.status,
                start_time=a.started_at,
                end_time=a.ended_at,
                assignee=a.assignee,
            )
            for a in activities
        ],
        incidents=[incident(i, engine) for i in incidents],
        execution_path=[
            ExecutionStep(activity_id=a.activity_id, activity_name=a.activity_name, timestamp=a.started_at)
            for a in activities
            if a.status != "cancelled"
        ],
    )


def _instance_fields(row: Row, open_activities: Sequence[Row], engine: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "definition_id": row.definition_id,
        "definition_key": row.definition_key,
        "definition_name": row.definition_name,
        "business_key": row.business_key,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "duration_ms": row.duration_ms,
        "status": row.status,
        "started_by": row.started_by,
        "tenant_id": row.tenant_id,
        "super_instance_id": row.super_instance_id,
        "variables": variables(row),
        "current_activities": [
            CurrentActivity(
                id=a.activity_id,
                name=a.activity_name,
                type=a.activity_type,
                assignee=a.assignee,
                status=a.status,
                started_at=a.started_at,
            )
            for a in open_activities
        ],
        "engine": engine,
    }


def variables(row: Row) -> Variables:
    return loaded(row.variables)


def activity_record(row: Row) -> ActivityRecord:
    return ActivityRecord(
        activity_id=row.activity_id,
        activity_name=row.activity_name,
        activity_type=row.activity_type,
        instance_id=row.instance_id,
        definition_key=row.definition_key,
        start_time=row.started_at,
        end_time=row.ended_at,
        duration_ms=_duration_ms(row.started_at, row.ended_at),
        assignee=row.assignee,
    )


def task(row: Row, engine: str) -> Task:
    return Task(**_task_fields(row, engine))


def task_details(row: Row, engine: str) -> TaskDetails:
    """A task row read with its instance's status and variables (`repository.get_task`); the task's own
    variables (a multi-instance element variable) over its instance's."""
    return TaskDetails(
        **_task_fields(row, engine),
        variables={**loaded(row.instance_variables), **loaded(row.local_variables or {})},
        delegation_state=row.delegation_state,
        suspension_state="suspended" if row.instance_status == "suspended" else "active",
    )


def _task_fields(row: Row, engine: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "instance_id": row.instance_id,
        "definition_id": row.definition_id,
        "definition_key": row.definition_key,
        "task_definition_key": row.task_definition_key,
        "assignee": row.assignee,
        "owner": row.owner,
        "created": row.created,
        "due": row.due,
        "follow_up": row.follow_up,
        "priority": row.priority,
        "status": row.status,
        "form_key": row.form_key,
        "tenant_id": row.tenant_id,
        "candidate_users": row.candidate_users,
        "candidate_groups": row.candidate_groups,
        "engine": engine,
    }


def incident(row: Row, engine: str) -> EngineIncident:
    return EngineIncident(
        id=row.id,
        incident_type=row.incident_type,
        message=row.message,
        instance_id=row.instance_id,
        definition_id=row.definition_id,
        definition_key=row.definition_key,
        activity_id=row.activity_id,
        activity_name=row.activity_name,
        created=row.created,
        job_id=row.task_id,
        annotation=row.annotation,
        detail=row.detail,
        tenant_id=row.tenant_id,
        engine=engine,
    )


def _duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))
