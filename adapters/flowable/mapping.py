"""Pure translation between Flowable 7.2 process REST JSON and the unified models.

Nothing here talks to the engine: the adapter fetches, these functions translate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.schemas import (
    Activity,
    ActivityRecord,
    CurrentActivity,
    EngineIncident,
    ExecutionStep,
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    Task,
    TaskDetails,
)
from gateway.variables import (
    INT64_MAX,
    INT64_MIN,
    TypedValue,
    Variables,
    VariableType,
    format_datetime,
    infer_type,
    parse_datetime,
)

# Flowable records every sequence flow it takes as an activity instance of this type.
SEQUENCE_FLOW = "sequenceFlow"
# The delete reason Flowable gives an instance ended by a terminate end event (DeleteReason.TERMINATE_END_EVENT).
TERMINATE_END_EVENT = "terminate end event"


def moment(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


def tenant(value: str | None) -> str | None:
    """Flowable marks 'no tenant' with an empty string."""
    return value or None


def definition_key_from_id(definition_id: str) -> str | None:
    """Flowable ids definitions `key:version:unique` unless that would exceed 64 characters."""
    parts = definition_id.split(":")
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0]
    return None


# ---------------------------------------------------------------- variables
# Dates are written as `instant`, not `date`: Flowable REST reads `date` values back without their
# milliseconds (Jackson's ISO8601DateFormat), while `instant` round-trips exactly (epoch milliseconds).
WRITE_TYPES: dict[VariableType, str] = {
    VariableType.BOOLEAN: "boolean",
    VariableType.STRING: "string",
    VariableType.INTEGER: "integer",
    VariableType.LONG: "long",
    VariableType.DOUBLE: "double",
    VariableType.DATE: "instant",
    VariableType.JSON: "json",
}


def to_rest_variable(name: str, typed: TypedValue) -> dict[str, Any]:
    """One entry of Flowable's variable array. A null value is sent untyped: Flowable stores it as null.

    Json objects and arrays are kept as Flowable `json`; a Json scalar is stored by Flowable as the plain
    value and reads back with that value's own type.
    """
    if typed.value is None:
        return {"name": name, "value": None}
    return {"name": name, "type": WRITE_TYPES[typed.type], "value": typed.value}


def to_rest_variables(variables: Variables) -> list[dict[str, Any]]:
    return [to_rest_variable(name, typed) for name, typed in variables.items()]


def _as_date(text: str) -> TypedValue:
    return TypedValue(value=format_datetime(parse_datetime(text)), type=VariableType.DATE)


def _big_integer(text: str) -> TypedValue:
    number = int(text)
    if INT64_MIN <= number <= INT64_MAX:
        return TypedValue(value=number, type=VariableType.LONG)
    return TypedValue(value=text, type=VariableType.STRING)


def _big_decimal(text: str) -> TypedValue:
    """A Double when the decimal survives the conversion exactly, else the exact digits as a String."""
    try:
        exact = Decimal(text)
        number = float(exact)
    except (InvalidOperation, ValueError):
        return TypedValue(value=text, type=VariableType.STRING)
    if math.isfinite(number) and Decimal(number) == exact:
        return TypedValue(value=number, type=VariableType.DOUBLE)
    return TypedValue(value=text, type=VariableType.STRING)


def from_rest_variable(variable: dict[str, Any]) -> TypedValue:
    """Read one Flowable variable; every type Flowable REST can report maps to the nearest unified type.

    Binary and serializable values are not readable over REST (only a `valueUrl`), so they read as Null.
    """
    value = variable.get("value")
    if value is None:
        return TypedValue(value=None, type=VariableType.NULL)
    match variable.get("type"):
        case "string" | "uuid":
            return TypedValue(value=str(value), type=VariableType.STRING)
        case "integer" | "short":
            return TypedValue(value=int(value), type=VariableType.INTEGER)
        case "long":
            return TypedValue(value=int(value), type=VariableType.LONG)
        case "bigInteger":
            return _big_integer(str(value))
        case "double":
            return TypedValue(value=float(value), type=VariableType.DOUBLE)
        case "bigDecimal":
            return _big_decimal(str(value))
        case "boolean":
            return TypedValue(value=bool(value), type=VariableType.BOOLEAN)
        case "date" | "instant" | "localDate" | "localDateTime":
            # localDate and localDateTime carry no zone; they are read as UTC.
            return _as_date(str(value))
        case "json":
            return TypedValue(value=value, type=VariableType.JSON)
    return TypedValue(value=value, type=infer_type(value))


def variables_from_rest(items: list[dict[str, Any]]) -> Variables:
    return {item["name"]: from_rest_variable(item) for item in items}


def variables_from_history(items: list[dict[str, Any]]) -> Variables:
    """Historic variable instances wrap the variable: `{id, processInstanceId, variable: {...}}`."""
    return variables_from_rest([item["variable"] for item in items])


# ---------------------------------------------------------------- definitions
@dataclass(frozen=True)
class DeploymentFacts:
    deployed_at: datetime | None
    deployed_by: str | None


def definition(data: dict[str, Any], *, engine: str, deployment: DeploymentFacts | None) -> ProcessDefinition:
    suspended = bool(data.get("suspended"))
    return ProcessDefinition(
        id=data["id"],
        key=data["key"],
        name=data.get("name"),
        version=data["version"],
        category=data.get("category"),
        description=data.get("description"),
        deployment_id=data.get("deploymentId"),
        deployed_at=deployment.deployed_at if deployment else None,
        deployed_by=deployment.deployed_by if deployment else None,
        active=not suspended,
        suspended=suspended,
        tenant_id=tenant(data.get("tenantId")),
        engine=engine,
    )


# ---------------------------------------------------------------- instances
def historic_status(data: dict[str, Any]) -> InstanceStatus:
    """How a historic process instance ended; Flowable tells it by the delete reason."""
    if data.get("endTime") is None:
        return "active"
    reason = data.get("deleteReason")
    if reason is None:
        return "completed"
    if reason.startswith(TERMINATE_END_EVENT):
        return "terminated"
    return "externally_terminated"


def runtime_status(data: dict[str, Any]) -> InstanceStatus:
    """A start answers with the instance as it stands; one without wait states has ended already."""
    if data.get("ended"):
        return "completed"
    return "suspended" if data.get("suspended") else "active"


def runtime_instance(
    data: dict[str, Any], *, engine: str, definition_key: str, started_by: str | None
) -> ProcessInstance:
    return ProcessInstance(
        id=data["id"],
        definition_id=data["processDefinitionId"],
        definition_key=definition_key,
        definition_name=data.get("processDefinitionName"),
        business_key=data.get("businessKey"),
        start_time=moment(data.get("startTime")),
        status=runtime_status(data),
        started_by=started_by or data.get("startUserId"),
        tenant_id=tenant(data.get("tenantId")),
        super_instance_id=data.get("superProcessInstanceId"),
        engine=engine,
    )


def historic_instance(
    data: dict[str, Any], *, engine: str, definition_key: str, started_by: str | None, suspended: bool = False
) -> ProcessInstance:
    """A historic process instance; `suspended` comes from the runtime, history does not know it."""
    status = historic_status(data)
    return ProcessInstance(
        id=data["id"],
        definition_id=data["processDefinitionId"],
        definition_key=definition_key,
        definition_name=data.get("processDefinitionName"),
        business_key=data.get("businessKey"),
        start_time=moment(data.get("startTime")),
        end_time=moment(data.get("endTime")),
        duration_ms=data.get("durationInMillis"),
        status="suspended" if status == "active" and suspended else status,
        started_by=started_by or data.get("startUserId"),
        tenant_id=tenant(data.get("tenantId")),
        super_instance_id=data.get("superProcessInstanceId"),
        engine=engine,
    )


# ---------------------------------------------------------------- activities
def is_activity(data: dict[str, Any]) -> bool:
    return data.get("activityType") != SEQUENCE_FLOW


def activity(data: dict[str, Any], *, failed_activities: set[str]) -> Activity:
    if data.get("endTime") is not None:
        status = "completed"
    elif data["activityId"] in failed_activities:
        status = "failed"
    else:
        status = "active"
    return Activity(
        id=data["activityId"],
        instance_id=data["processInstanceId"],
        name=data.get("activityName"),
        type=data["activityType"],
        status=status,
        start_time=moment(data.get("startTime")),
        end_time=moment(data.get("endTime")),
        assignee=data.get("assignee"),
    )


def current_activity(step: Activity) -> CurrentActivity:
    return CurrentActivity(
        id=step.id,
        name=step.name,
        type=step.type,
        assignee=step.assignee,
        status=step.status,
        started_at=step.start_time,
    )


def execution_step(step: Activity) -> ExecutionStep:
    return ExecutionStep(activity_id=step.id, activity_name=step.name, timestamp=step.start_time)


def activity_record(data: dict[str, Any], *, definition_key: str | None) -> ActivityRecord:
    return ActivityRecord(
        activity_id=data["activityId"],
        activity_name=data.get("activityName"),
        activity_type=data["activityType"],
        instance_id=data["processInstanceId"],
        definition_key=definition_key,
        start_time=moment(data.get("startTime")),
        end_time=moment(data.get("endTime")),
        duration_ms=data.get("durationInMillis"),
        assignee=data.get("assignee"),
    )


# ---------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Candidates:
    users: list[str]
    groups: list[str]


NO_CANDIDATES = Candidates(users=[], groups=[])


def candidates(links: list[dict[str, Any]]) -> Candidates:
    """Candidate users and groups from runtime (`user`/`group`) or historic (`userId`/`groupId`) links."""
    users, groups = [], []
    for link in links:
        if link.get("type") != "candidate":
            continue
        user, group = link.get("user") or link.get("userId"), link.get("group") or link.get("groupId")
        if user:
            users.append(user)
        if group:
            groups.append(group)
    return Candidates(users=users, groups=groups)


def task_status(data: dict[str, Any]) -> str:
    if data.get("endTime") is not None:
        return "completed" if data.get("deleteReason") is None else "cancelled"
    if data.get("delegationState") == "pending":
        return "delegated"
    return "assigned" if data.get("assignee") else "created"


def task(data: dict[str, Any], *, engine: str, definition_key: str | None, links: Candidates) -> Task:
    """A runtime task (`createTime`) or a historic one (`startTime`, `endTime`, `deleteReason`)."""
    return Task(
        id=data["id"],
        name=data.get("name"),
        description=data.get("description"),
        instance_id=data.get("processInstanceId"),
        definition_id=data.get("processDefinitionId"),
        definition_key=definition_key,
        task_definition_key=data.get("taskDefinitionKey"),
        assignee=data.get("assignee"),
        owner=data.get("owner"),
        created=moment(data.get("createTime") or data.get("startTime")),
        due=moment(data.get("dueDate")),
        priority=data.get("priority", 50),
        status=task_status(data),
        form_key=data.get("formKey"),
        tenant_id=tenant(data.get("tenantId")),
        candidate_users=links.users,
        candidate_groups=links.groups,
        engine=engine,
    )


def task_details(
    data: dict[str, Any], *, engine: str, definition_key: str | None, links: Candidates, variables: Variables
) -> TaskDetails:
    summary = task(data, engine=engine, definition_key=definition_key, links=links)
    return TaskDetails(
        **summary.model_dump(),
        variables=variables,
        delegation_state=data.get("delegationState"),
        suspension_state="suspended" if data.get("suspended") else "active",
    )


# ---------------------------------------------------------------- failed jobs as engine incidents
@dataclass(frozen=True)
class JobKind:
    """One of the job tables in which Flowable keeps a job whose execution threw."""

    token: str  # first part of the incident id
    path: str  # REST collection of this table
    incident_type: str
    retry_action: str  # the action that lets the engine run the job again


# A failed job with retries left waits in the timer-job table until it is due again, then sits in the
# executable table until the executor picks it; once its retries are exhausted it moves to the dead-letter
# table and stays there until someone acts (Camunda calls that an incident).
DEAD_LETTER = JobKind("deadletter", "/management/deadletter-jobs", "deadLetterJob", "move")
RETRY_SCHEDULED = JobKind("timer", "/management/timer-jobs", "failedJob", "move")
RETRY_DUE = JobKind("job", "/management/jobs", "failedJob", "execute")
JOB_KINDS = (DEAD_LETTER, RETRY_SCHEDULED, RETRY_DUE)


def incident_id(kind: JobKind, job_id: str) -> str:
    return f"{kind.token}:{job_id}"


def parse_incident_id(value: str) -> tuple[JobKind, str] | None:
    token, _, job_id = value.partition(":")
    kind = next((k for k in JOB_KINDS if k.token == token), None)
    return (kind, job_id) if kind is not None and job_id else None


def incident(
    data: dict[str, Any], kind: JobKind, *, engine: str, definition_key: str | None, detail: str | None = None
) -> EngineIncident:
    return EngineIncident(
        id=incident_id(kind, data["id"]),
        incident_type=kind.incident_type,
        message=data.get("exceptionMessage"),
        instance_id=data.get("processInstanceId"),
        definition_id=data.get("processDefinitionId"),
        definition_key=definition_key,
        activity_id=data.get("elementId"),
        activity_name=data.get("elementName"),
        created=moment(data.get("createTime")),
        job_id=data["id"],
        rerun_pending=kind is RETRY_DUE,
        detail=detail,
        tenant_id=tenant(data.get("tenantId")),
        engine=engine,
    )
