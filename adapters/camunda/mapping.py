"""Pure translations between Camunda 7 REST JSON and the unified models: variables, dates, states, objects."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from gateway.schemas import (
    Activity,
    ActivityRecord,
    ActivityStatus,
    CurrentActivity,
    EngineIncident,
    ExecutionStep,
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    Task,
    TaskDetails,
    TaskStatus,
)
from gateway.variables import (
    TypedValue,
    Variables,
    VariableType,
    format_datetime,
    parse_datetime,
)


# ---------------------------------------------------------------- dates
def format_moment(value: datetime) -> str:
    """Camunda's default REST date format `yyyy-MM-dd'T'HH:mm:ss.SSSZ`, in UTC: `2026-11-22T10:00:00.250+0000`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def moment(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


# ---------------------------------------------------------------- variables
_PLAIN_TYPES = {
    VariableType.BOOLEAN: "Boolean",
    VariableType.STRING: "String",
    VariableType.INTEGER: "Integer",
    VariableType.LONG: "Long",
    VariableType.DOUBLE: "Double",
}


def to_rest_variable(typed: TypedValue) -> dict[str, Any]:
    """One unified variable as Camunda's `{value, type}`; Json travels as Camunda's Spin `Json` type (a string)."""
    match typed.type:
        case VariableType.NULL:
            return {"value": None, "type": "Null"}
        case VariableType.DATE:
            value = None if typed.value is None else format_moment(parse_datetime(typed.value))
            return {"value": value, "type": "Date"}
        case VariableType.JSON:
            value = None if typed.value is None else json.dumps(typed.value, ensure_ascii=False, separators=(",", ":"))
            return {"value": value, "type": "Json"}
    return {"value": typed.value, "type": _PLAIN_TYPES[typed.type]}


def to_rest_variables(variables: Variables) -> dict[str, dict[str, Any]]:
    return {name: to_rest_variable(typed) for name, typed in variables.items()}


def from_rest_variable(raw: dict[str, Any]) -> TypedValue:
    """Camunda's `{type, value, valueInfo}` (read with deserializeValues=false) as a unified variable.

    Types the unified model lacks arrive as String: Xml and non-JSON serialized Objects as their serialized
    text, Bytes as Camunda's base64 text, File without a value (Camunda never sends file contents inline).
    """
    kind, value = raw.get("type"), raw.get("value")
    match kind:
        case "Null":
            return TypedValue(value=None, type=VariableType.NULL)
        case "Boolean":
            return TypedValue(value=value, type=VariableType.BOOLEAN)
        case "Short" | "Integer":
            return TypedValue(value=value, type=VariableType.INTEGER)
        case "Long":
            return TypedValue(value=value, type=VariableType.LONG)
        case "Double":
            return TypedValue(value=None if value is None else float(value), type=VariableType.DOUBLE)
        case "Date":
            return TypedValue(value=value and format_datetime(parse_datetime(value)), type=VariableType.DATE)
        case "Json":
            return _json(value)
        case "Object" if (raw.get("valueInfo") or {}).get("serializationDataFormat") == "application/json":
            return _json(value)
    return TypedValue(value=value if value is None or isinstance(value, str) else str(value), type=VariableType.STRING)


def _json(text: str | None) -> TypedValue:
    if text is None:
        return TypedValue(value=None, type=VariableType.JSON)
    try:
        return TypedValue(value=json.loads(text), type=VariableType.JSON)
    except ValueError:  # Camunda stores serialized values unchecked; text that is no JSON stays text
        return TypedValue(value=text, type=VariableType.STRING)


def variables_from_rest(raw: dict[str, dict[str, Any]]) -> Variables:
    return {name: from_rest_variable(entry) for name, entry in raw.items()}


def variables_from_history(rows: Iterable[dict[str, Any]], instance_id: str) -> Variables:
    """The process-scope variables among a finished instance's historic variable instances."""
    return {
        row["name"]: from_rest_variable(row) for row in rows if row.get("activityInstanceId") in (None, instance_id)
    }


# ---------------------------------------------------------------- definitions
def activity_names(bpmn_xml: str) -> dict[str, str]:
    """Element id -> name for every named element of a deployed BPMN (activities, events, gateways)."""
    root = ElementTree.fromstring(bpmn_xml.encode("utf-8"))
    return {
        element_id: name
        for element in root.iter()
        if (element_id := element.get("id")) and (name := element.get("name"))
    }


def definition(
    raw: dict[str, Any], *, engine: str, deployed_at: datetime | None = None, deployed_by: str | None = None
) -> ProcessDefinition:
    suspended = bool(raw.get("suspended"))
    return ProcessDefinition(
        id=raw["id"],
        key=raw["key"],
        name=raw.get("name"),
        version=raw["version"],
        category=raw.get("category"),
        description=raw.get("description"),
        deployment_id=raw.get("deploymentId"),
        deployed_at=deployed_at,
        deployed_by=deployed_by,
        active=not suspended,
        suspended=suspended,
        tenant_id=raw.get("tenantId"),
        engine=engine,
    )


# ---------------------------------------------------------------- instances
_HISTORY_STATES: dict[str, InstanceStatus] = {
    "ACTIVE": "active",
    "SUSPENDED": "suspended",
    "COMPLETED": "completed",
    "INTERNALLY_TERMINATED": "terminated",  # ended by a terminate end event, or a cancelled call activity's parent
    "EXTERNALLY_TERMINATED": "externally_terminated",  # cancelled through the API
}

# The unified status filter as flags of GET /history/process-instance.
STATUS_FILTERS: dict[InstanceStatus, str] = {
    "active": "active",
    "suspended": "suspended",
    "completed": "completed",
    "terminated": "internallyTerminated",
    "externally_terminated": "externallyTerminated",
}


def instance_status(state: str | None) -> InstanceStatus:
    if state not in _HISTORY_STATES:
        raise ValueError(f"unknown Camunda process instance state {state!r}")
    return _HISTORY_STATES[state]


def historic_instance(raw: dict[str, Any], *, engine: str, started_by: str | None = None) -> ProcessInstance:
    return ProcessInstance(
        id=raw["id"],
        definition_id=raw["processDefinitionId"],
        definition_key=raw["processDefinitionKey"],
        definition_name=raw.get("processDefinitionName"),
        business_key=raw.get("businessKey"),
        start_time=moment(raw.get("startTime")),
        end_time=moment(raw.get("endTime")),
        duration_ms=raw.get("durationInMillis"),
        status=instance_status(raw.get("state")),
        started_by=started_by or raw.get("startUserId"),
        tenant_id=raw.get("tenantId"),
        super_instance_id=raw.get("superProcessInstanceId"),
        engine=engine,
    )


def runtime_instance(raw: dict[str, Any], *, engine: str, started_by: str | None = None) -> ProcessInstance:
    """A running instance when the engine keeps no history (history level `none`): no times are known."""
    return ProcessInstance(
        id=raw["id"],
        definition_id=raw["definitionId"],
        definition_key=raw.get("definitionKey") or "",
        business_key=raw.get("businessKey"),
        status="suspended" if raw.get("suspended") else "active",
        started_by=started_by,
        tenant_id=raw.get("tenantId"),
        engine=engine,
    )


def current_activities(
    tree: dict[str, Any], *, started: dict[str, datetime | None], assignees: dict[str, str | None]
) -> list[CurrentActivity]:
    """Every activity the instance is in, from the activity instance tree (the root is the process itself).

    A transition instance is a token waiting in front of or behind an activity (an asynchronous continuation):
    it waits for the job executor. Anything with an incident has failed.
    """
    found: list[CurrentActivity] = []

    def visit(node: dict[str, Any]) -> None:
        for child in node.get("childActivityInstances") or []:
            status: ActivityStatus = "failed" if child.get("incidentIds") else "active"
            found.append(_current(child, status, started, assignees))
            visit(child)
        for transition in node.get("childTransitionInstances") or []:
            status = "failed" if transition.get("incidentIds") else "waiting"
            found.append(_current(transition, status, started, assignees))

    visit(tree)
    return found


def _current(
    node: dict[str, Any], status: ActivityStatus, started: dict[str, datetime | None], assignees: dict[str, str | None]
) -> CurrentActivity:
    return CurrentActivity(
        id=node["activityId"],
        name=node.get("activityName"),
        type=node.get("activityType") or "unknown",
        assignee=assignees.get(node["activityId"]),
        status=status,
        started_at=started.get(node["id"]),
    )


def activity(raw: dict[str, Any], *, failed_activities: set[str]) -> Activity:
    if raw.get("endTime") is None:
        status: ActivityStatus = "failed" if raw["activityId"] in failed_activities else "active"
    else:
        status = "cancelled" if raw.get("canceled") else "completed"
    return Activity(
        id=raw["activityId"],
        instance_id=raw["processInstanceId"],
        name=raw.get("activityName"),
        type=raw.get("activityType") or "unknown",
        status=status,
        start_time=moment(raw.get("startTime")),
        end_time=moment(raw.get("endTime")),
        assignee=raw.get("assignee"),
    )


def execution_path(history: Iterable[dict[str, Any]]) -> list[ExecutionStep]:
    """The activities in the order they were entered (the rows come sorted by occurrence)."""
    return [
        ExecutionStep(
            activity_id=row["activityId"],
            activity_name=row.get("activityName"),
            timestamp=moment(row.get("startTime")),
        )
        for row in history
    ]


def activity_record(raw: dict[str, Any]) -> ActivityRecord:
    return ActivityRecord(
        activity_id=raw["activityId"],
        activity_name=raw.get("activityName"),
        activity_type=raw.get("activityType") or "unknown",
        instance_id=raw["processInstanceId"],
        definition_key=raw.get("processDefinitionKey"),
        start_time=moment(raw.get("startTime")),
        end_time=moment(raw.get("endTime")),
        duration_ms=raw.get("durationInMillis"),
        assignee=raw.get("assignee"),
    )


# ---------------------------------------------------------------- tasks
def task_status(raw: dict[str, Any]) -> TaskStatus:
    if raw.get("delegationState") == "PENDING":
        return "delegated"
    return "assigned" if raw.get("assignee") else "created"


def candidates(links: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(candidate users, candidate groups) from a task's identity links."""
    users, groups = [], []
    for link in links:
        if link.get("type") != "candidate":
            continue
        if link.get("userId"):
            users.append(link["userId"])
        if link.get("groupId"):
            groups.append(link["groupId"])
    return users, groups


def task(raw: dict[str, Any], *, engine: str, definition_key: str | None, links: Iterable[dict[str, Any]] = ()) -> Task:
    users, groups = candidates(links)
    return Task(
        id=raw["id"],
        name=raw.get("name"),
        description=raw.get("description"),
        instance_id=raw.get("processInstanceId"),
        definition_id=raw.get("processDefinitionId"),
        definition_key=definition_key,
        task_definition_key=raw.get("taskDefinitionKey"),
        assignee=raw.get("assignee"),
        owner=raw.get("owner"),
        created=moment(raw.get("created")),
        due=moment(raw.get("due")),
        follow_up=moment(raw.get("followUp")),
        priority=raw.get("priority", 50),
        status=task_status(raw),
        form_key=raw.get("formKey"),
        tenant_id=raw.get("tenantId"),
        candidate_users=users,
        candidate_groups=groups,
        engine=engine,
    )


def task_details(task: Task, raw: dict[str, Any], variables: Variables) -> TaskDetails:
    state = raw.get("delegationState")
    return TaskDetails(
        **task.model_dump(),
        variables=variables,
        delegation_state=state.lower() if state else None,
        suspension_state="suspended" if raw.get("suspended") else "active",
    )


# Camunda records why a historic task ended; "completed" is the only reason that is not a cancellation.
COMPLETED_TASK_REASON = "completed"
# The reason Camunda gives tasks removed with their process instance when no reason was passed.
DELETED_TASK_REASON = "deleted"


def historic_task(raw: dict[str, Any], *, engine: str) -> Task:
    return Task(
        id=raw["id"],
        name=raw.get("name"),
        description=raw.get("description"),
        instance_id=raw.get("processInstanceId"),
        definition_id=raw.get("processDefinitionId"),
        definition_key=raw.get("processDefinitionKey"),
        task_definition_key=raw.get("taskDefinitionKey"),
        assignee=raw.get("assignee"),
        owner=raw.get("owner"),
        created=moment(raw.get("startTime")),
        due=moment(raw.get("due")),
        follow_up=moment(raw.get("followUp")),
        priority=raw.get("priority", 50),
        status="completed" if raw.get("deleteReason") == COMPLETED_TASK_REASON else "cancelled",
        tenant_id=raw.get("tenantId"),
        engine=engine,
    )


# ---------------------------------------------------------------- incidents
FAILED_JOB = "failedJob"
FAILED_EXTERNAL_TASK = "failedExternalTask"


def incident(
    raw: dict[str, Any],
    *,
    engine: str,
    definition_key: str | None,
    activity_name: str | None = None,
    detail: str | None = None,
) -> EngineIncident:
    """A runtime incident (GET /incident) or a historic one (GET /history/incident: other time field, key given)."""
    kind = raw["incidentType"]
    return EngineIncident(
        id=raw["id"],
        incident_type=kind,
        message=raw.get("incidentMessage"),
        instance_id=raw.get("processInstanceId"),
        definition_id=raw.get("processDefinitionId"),
        definition_key=raw.get("processDefinitionKey") or definition_key,
        activity_id=raw.get("failedActivityId") or raw.get("activityId"),
        activity_name=activity_name,
        created=moment(raw.get("incidentTimestamp") or raw.get("createTime")),
        job_id=raw.get("configuration") if kind == FAILED_JOB else None,
        annotation=raw.get("annotation"),
        detail=detail,
        tenant_id=raw.get("tenantId"),
        engine=engine,
    )
