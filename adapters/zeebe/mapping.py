"""Camunda 8 (Orchestration Cluster REST API v2) JSON to the gateway's unified models and back, as pure functions.

Keys are int64 decimals and stay strings from end to end: as JSON numbers, keys beyond 2^53 lose digits in
many clients. Camunda 8 keeps variables as plain JSON, so a declared type that plain JSON cannot carry (a
Date string, a small Long, a whole Double, a typed null, a Json string) is remembered by the gateway as a
*type marker* and applied again when the value is read back.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

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
    TaskStatus,
)
from gateway.variables import (
    TypedValue,
    Variables,
    VariableType,
    coerce,
    infer_type,
    parse_datetime,
)

DEFAULT_TENANT = "<default>"  # the tenant of every object when multi-tenancy is off
DELETED = "deleted"  # type marker of a variable deleted through the gateway; Camunda 8 keeps it as null
OPEN_TASK_STATES = ["CREATED", "ASSIGNING", "UPDATING"]
FINISHED_INSTANCE_STATES = ["COMPLETED", "TERMINATED"]

INSTANCE_STATUS = {"ACTIVE": "active", "COMPLETED": "completed", "TERMINATED": "terminated"}
INSTANCE_STATE = {
    "active": "ACTIVE",
    "completed": "COMPLETED",
    "terminated": "TERMINATED",
    "externally_terminated": "TERMINATED",
}
ACTIVITY_STATUS = {"ACTIVE": "active", "COMPLETED": "completed", "TERMINATED": "cancelled"}
# Incident types shared with the other engines; every other Camunda 8 error type becomes its camelCase name.
INCIDENT_TYPES = {"JOB_NO_RETRIES": "failedJob", "UNHANDLED_ERROR_EVENT": "unhandledBpmnError"}
ERROR_TYPES = {incident_type: error_type for error_type, incident_type in INCIDENT_TYPES.items()}

_KEY = re.compile(r"[0-9]{1,19}")


# ------------------------------------------------------------------ scalars
def is_key(value: str) -> bool:
    return _KEY.fullmatch(value) is not None


def key(value: Any) -> str | None:
    return None if value is None else str(value)


def tenant(value: str | None) -> str | None:
    return None if value in (None, DEFAULT_TENANT) else value


def moment(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


def camel(name: str) -> str:
    """A Camunda 8 enum name in the gateway's style: SERVICE_TASK -> serviceTask."""
    first, *rest = name.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


def resource_name(filename: str) -> str:
    """The uploaded file's name, with a BPMN extension Camunda 8 recognises.

    Camunda 8 answers a deployment whose resource name and content equal the latest version's with that
    version instead of a new one; the gateway keeps that behaviour, which Operate users expect.
    """
    _, dot, extension = filename.rpartition(".")
    return filename if dot and extension.lower() in ("bpmn", "xml") else f"{filename}.bpmn"


# ------------------------------------------------------------------ definitions
def definition(item: dict[str, Any], *, engine: str, meta: dict[str, str | None]) -> ProcessDefinition:
    """A ProcessDefinitionResult; `meta` is what the gateway recorded when it deployed the definition."""
    return ProcessDefinition(
        id=str(item["processDefinitionKey"]),
        key=item["processDefinitionId"],
        name=item.get("name"),
        version=item["version"],
        deployment_id=meta.get("deployment_id"),
        deployed_at=moment(meta.get("deployed_at")),
        deployed_by=meta.get("deployed_by"),
        tenant_id=tenant(item.get("tenantId")),
        engine=engine,
    )


def deployed_definition(
    item: dict[str, Any], *, name: str | None, engine: str, meta: dict[str, str | None]
) -> ProcessDefinition:
    """A DeploymentProcessResult (which carries no name: it comes from the deployed XML)."""
    return definition({**item, "version": item["processDefinitionVersion"], "name": name}, engine=engine, meta=meta)


# ------------------------------------------------------------------ instances
def instance(item: dict[str, Any], *, engine: str, meta: dict[str, str | None]) -> ProcessInstance:
    """A ProcessInstanceResult; `meta` holds the business key and starter the gateway recorded."""
    start, end = moment(item.get("startDate")), moment(item.get("endDate"))
    return ProcessInstance(
        id=str(item["processInstanceKey"]),
        definition_id=str(item["processDefinitionKey"]),
        definition_key=item["processDefinitionId"],
        definition_name=item.get("processDefinitionName"),
        business_key=meta.get("business_key") or item.get("businessId"),  # businessId: Camunda 8.9 and later
        start_time=start,
        end_time=end,
        duration_ms=duration_ms(start, end),
        status=INSTANCE_STATUS[item["state"]],
        started_by=meta.get("started_by"),
        tenant_id=tenant(item.get("tenantId")),
        super_instance_id=key(item.get("parentProcessInstanceKey")),
        engine=engine,
    )


def started_instance(
    item: dict[str, Any],
    *,
    engine: str,
    business_key: str | None,
    started_by: str,
    started_at: datetime,
    variables: Variables,
) -> ProcessInstance:
    """A CreateProcessInstanceResult, which has neither start time nor definition name."""
    return ProcessInstance(
        id=str(item["processInstanceKey"]),
        definition_id=str(item["processDefinitionKey"]),
        definition_key=item["processDefinitionId"],
        business_key=business_key,
        start_time=started_at,
        status="active",
        started_by=started_by,
        tenant_id=tenant(item.get("tenantId")),
        variables=variables,
        engine=engine,
    )


def _activity_status(item: dict[str, Any]) -> str:
    if item["state"] == "ACTIVE" and item.get("hasIncident"):
        return "failed"
    return ACTIVITY_STATUS[item["state"]]


def instance_details(
    item: dict[str, Any],
    *,
    engine: str,
    meta: dict[str, str | None],
    elements: list[dict[str, Any]],
    incidents: list[EngineIncident],
    variables: Variables,
    assignees: dict[str, str | None],
) -> ProcessInstanceDetails:
    """An instance with its element instances (`assignees`: user task assignee by element instance key)."""
    base = instance(item, engine=engine, meta=meta)
    elements = sorted(elements, key=lambda e: (moment(e["startDate"]), int(e["elementInstanceKey"])))
    activities = [
        Activity(
            id=element["elementId"],
            instance_id=base.id,
            name=element.get("elementName"),
            type=camel(element["type"]),
            status=_activity_status(element),
            start_time=moment(element.get("startDate")),
            end_time=moment(element.get("endDate")),
            assignee=assignees.get(str(element["elementInstanceKey"])),
        )
        for element in elements
    ]
    return ProcessInstanceDetails(
        **base.model_dump(exclude={"variables", "current_activities"}),
        variables=variables,
        current_activities=[
            CurrentActivity(
                id=activity.id,
                name=activity.name,
                type=activity.type,
                assignee=activity.assignee,
                status=activity.status,
                started_at=activity.start_time,
            )
            for activity in activities
            if activity.status in ("active", "failed")
        ],
        activities=activities,
        incidents=incidents,
        execution_path=[
            ExecutionStep(activity_id=activity.id, activity_name=activity.name, timestamp=activity.start_time)
            for activity in activities
        ],
    )


def activity_record(item: dict[str, Any]) -> ActivityRecord:
    """An ElementInstanceResult, for statistics."""
    start, end = moment(item.get("startDate")), moment(item.get("endDate"))
    return ActivityRecord(
        activity_id=item["elementId"],
        activity_name=item.get("elementName"),
        activity_type=camel(item["type"]),
        instance_id=str(item["processInstanceKey"]),
        definition_key=item.get("processDefinitionId"),
        start_time=start,
        end_time=end,
        duration_ms=duration_ms(start, end),
    )


# ------------------------------------------------------------------ user tasks
def is_delegated(item: dict[str, Any], delegation: dict[str, str | None]) -> bool:
    """Delegation is the gateway's emulation: the task is open and still with the delegate it recorded."""
    assignee = item.get("assignee")
    return item.get("state") in OPEN_TASK_STATES and assignee is not None and delegation.get("delegate") == assignee


def _task_status(item: dict[str, Any], delegated: bool) -> TaskStatus:
    state = item.get("state")
    if state in ("COMPLETING", "COMPLETED"):
        return "completed"
    if state in ("CANCELING", "CANCELED"):
        return "cancelled"
    if delegated:
        return "delegated"
    return "assigned" if item.get("assignee") else "created"


def task(item: dict[str, Any], *, engine: str, delegation: dict[str, str | None]) -> Task:
    """A UserTaskResult; `delegation` holds the owner and delegate the gateway recorded, if any."""
    delegated = is_delegated(item, delegation)
    return Task(
        id=str(item["userTaskKey"]),
        name=item.get("name"),
        instance_id=key(item.get("processInstanceKey")),
        definition_id=key(item.get("processDefinitionKey")),
        definition_key=item.get("processDefinitionId"),
        task_definition_key=item.get("elementId"),
        assignee=item.get("assignee") or None,
        owner=delegation.get("owner") if delegated else None,
        created=moment(item.get("creationDate")),
        due=moment(item.get("dueDate")),
        follow_up=moment(item.get("followUpDate")),
        priority=item.get("priority") if item.get("priority") is not None else 50,
        status=_task_status(item, delegated),
        form_key=item.get("externalFormReference") or key(item.get("formKey")),
        tenant_id=tenant(item.get("tenantId")),
        candidate_users=item.get("candidateUsers") or [],
        candidate_groups=item.get("candidateGroups") or [],
        engine=engine,
    )


def task_details(
    item: dict[str, Any], *, engine: str, delegation: dict[str, str | None], variables: Variables
) -> TaskDetails:
    base = task(item, engine=engine, delegation=delegation)
    return TaskDetails(
        **base.model_dump(),
        variables=variables,
        delegation_state="pending" if base.status == "delegated" else None,
    )


# ------------------------------------------------------------------ incidents
def incident_type(error_type: str) -> str:
    return INCIDENT_TYPES.get(error_type) or camel(error_type)


def error_type(incident_type: str) -> str:
    """The Camunda 8 errorType of an incident type (the engine's own enum names are accepted too)."""
    if incident_type in ERROR_TYPES:
        return ERROR_TYPES[incident_type]
    if incident_type.isupper():
        return incident_type
    return re.sub(r"(?<!^)(?=[A-Z])", "_", incident_type).upper()


def incident(item: dict[str, Any], *, engine: str) -> EngineIncident:
    return EngineIncident(
        id=str(item["incidentKey"]),
        incident_type=incident_type(item["errorType"]),
        message=item.get("errorMessage"),
        instance_id=key(item.get("processInstanceKey")),
        definition_id=key(item.get("processDefinitionKey")),
        definition_key=item.get("processDefinitionId"),
        activity_id=item.get("elementId"),
        created=moment(item.get("creationTime")),
        job_id=key(item.get("jobKey")),
        tenant_id=tenant(item.get("tenantId")),
        engine=engine,
    )


# ------------------------------------------------------------------ variables
def type_marker(typed: TypedValue) -> str | None:
    """The declared type when its plain JSON would read back as another type (or a whole Double as a Long)."""
    if typed.type is VariableType.DOUBLE and typed.value is not None and float(typed.value).is_integer():
        return typed.type.value
    return None if infer_type(typed.value) is typed.type else typed.type.value


def variable(name: str, text: str, marker: str | None) -> TypedValue | None:
    """A variable value as Camunda 8 returns it (JSON text) in canonical typed form; None if it was deleted."""
    value = json.loads(text)
    if marker == DELETED:
        if value is None:
            return None
        marker = None  # given a value again since its deletion
    if marker is not None:
        try:
            return coerce(name, value, marker)
        except ValueError:
            pass  # the process changed it since: its JSON type is all there is
    return TypedValue(value=value, type=infer_type(value))


def variables(items: list[dict[str, Any]], markers: dict[str, str | None]) -> Variables:
    """VariableSearchResult items (with full values) as typed variables, deleted ones left out."""
    result: Variables = {}
    for item in items:
        typed = variable(item["name"], item["value"], markers.get(item["name"]))
        if typed is not None:
            result[item["name"]] = typed
    return result
