"""The Incident Center API (API.md "Incidents") and the progress of bulk operations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from gateway.api.context import CurrentCaller
from gateway.schemas import EngineIncident, Page
from gateway.variables import audit_summary, parse_request_variables
from incidents import access
from incidents.center import IncidentCenter
from incidents.models import (
    BulkRetryRequest,
    ErrorGroups,
    Incident,
    IncidentAcknowledgement,
    IncidentAssignment,
    IncidentComment,
    IncidentDetails,
    IncidentEscalateRequest,
    IncidentQuery,
    IncidentResolveRequest,
    IncidentRetryRequest,
    OperationAccepted,
    OperationProgress,
    ResolutionType,
)

router = APIRouter(prefix="/api/processes", tags=["incidents"])


def incident_center(request: Request) -> IncidentCenter:
    return request.app.state.incidents


Center = Annotated[IncidentCenter, Depends(incident_center)]
_act = access.act


@router.get("/incidents", response_model=Page[Incident], summary="List incidents of every engine (`engine` filters)")
async def list_incidents(
    center: Center, caller: CurrentCaller, query: Annotated[IncidentQuery, Query()]
) -> Page[Incident]:
    """A page of incidents of every engine (or the one `engine` names), filtered by status, instance, definition, type,
    assignee, severity or age, and sorted.
    """
    return await access.list_incidents(center, caller, query)


@router.get(
    "/incidents/statistics/by-error",
    response_model=ErrorGroups,
    summary="Open incidents grouped by their normalised error message",
    description="Unresolved incidents (every status but resolved) grouped by `error_hash`: the message lower-cased, "
    "UUIDs, long hex ids and numbers replaced by one placeholder, whitespace collapsed, SHA-256, first 16 hex digits. "
    "Largest group first. `GET /incidents?error_hash=` lists a group's incidents. Needs `incident:read`; only the "
    "incidents of the caller's tenants count.",
)
async def incidents_by_error(
    center: Center,
    caller: CurrentCaller,
    engine: Annotated[str | None, Query(description="Only this engine's incidents")] = None,
) -> ErrorGroups:
    return await access.error_groups(center, caller, engine)


@router.post(
    "/incidents/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationAccepted,
    summary="Retry every incident a filter selects, as an operation (progress: GET /operations/{id})",
)
async def bulk_retry(body: BulkRetryRequest, center: Center, caller: CurrentCaller) -> OperationAccepted:
    """Retry every incident the filter selects, as a background operation; answers 202 with its id (progress: GET
    /api/processes/operations/{operation_id}).
    """
    return await access.bulk_retry(center, caller, body)


@router.get("/incidents/{incident_id}", response_model=IncidentDetails, summary="An incident with its history")
async def get_incident(incident_id: str, center: Center, caller: CurrentCaller) -> IncidentDetails:
    """One incident with its linked engine incidents and its history of actions."""
    return await access.incident_details(center, caller, incident_id)


@router.get(
    "/incidents/{incident_id}/engine-incidents/{engine_incident_id}",
    response_model=EngineIncident,
    summary="One of an incident's engine incidents, with the stack trace, read live from the engine",
    description="The engine incident as the engine keeps it now, with `detail`: the failure's stack trace or error "
    "details (Camunda 7: the failed job's stack trace or the failed external task's error details; Flowable: the "
    "job's exception stack trace; Camunda 8 keeps none; the embedded engine: the chain of the failure's causes). "
    "`detail` is null when the engine keeps nothing beyond the message. Read from the engine on each call, unlike "
    "`GET /incidents/{incident_id}`, which answers from the Incident Center's records. Needs `incident:read`; "
    "another tenant's incident answers 404, as does an engine incident not linked to the incident or no longer "
    "kept by the engine; an unreachable or failing engine answers 502, 503 or 504.",
)
async def get_engine_incident(
    incident_id: str,
    engine_incident_id: Annotated[
        str, Path(description="One of `engine_incidents[].id` of GET /incidents/{incident_id}")
    ],
    center: Center,
    caller: CurrentCaller,
) -> EngineIncident:
    """One engine incident linked to the incident (`engine_incidents[].id` of GET /incidents/{incident_id}), read
    live from its engine with its stack trace (`EngineAdapter.get_engine_incident`).
    """
    return await access.engine_incident(center, caller, incident_id, engine_incident_id)


@router.post(
    "/incidents/{incident_id}/acknowledge", response_model=IncidentDetails, summary="Acknowledge an open incident"
)
async def acknowledge(
    incident_id: str, center: Center, caller: CurrentCaller, body: IncidentAcknowledgement | None = None
) -> IncidentDetails:
    """Acknowledge an open incident, optionally with a message."""
    message = body.message if body else None
    return await _act(
        center,
        caller,
        incident_id,
        "acknowledge",
        {"message": message},
        lambda uow: center.service.acknowledge(uow, incident_id, message),
    )


@router.post(
    "/incidents/{incident_id}/assign", response_model=IncidentDetails, summary="Assign (acknowledges an open one)"
)
async def assign(incident_id: str, body: IncidentAssignment, center: Center, caller: CurrentCaller) -> IncidentDetails:
    """Assign an incident to a user (an open one is acknowledged too)."""
    return await _act(
        center,
        caller,
        incident_id,
        "assign",
        body.model_dump(),
        lambda uow: center.service.assign(uow, incident_id, body.user_id),
    )


@router.post(
    "/incidents/{incident_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=IncidentDetails,
    summary="Add a comment",
)
async def comment(incident_id: str, body: IncidentComment, center: Center, caller: CurrentCaller) -> IncidentDetails:
    """Add a comment to an incident's history."""
    return await _act(
        center,
        caller,
        incident_id,
        "comment",
        {},  # the text is in the incident's history; the audit log keeps no free text
        lambda uow: center.service.comment(uow, incident_id, body.message),
        status=201,
    )


@router.post(
    "/incidents/{incident_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IncidentDetails,
    summary="Set variables (optional), then retry in the engine",
)
async def retry(incident_id: str, body: IncidentRetryRequest, center: Center, caller: CurrentCaller) -> IncidentDetails:
    """Retry the failed job or external task behind an incident, optionally setting variables first."""
    variables = parse_request_variables(body.variables)
    incident = await _act(
        center,
        caller,
        incident_id,
        "retry",
        {"retries": body.retries, "variables": audit_summary(variables)},
        lambda uow: center.service.retry(uow, incident_id, retries=body.retries, variables=variables),
        status=202,
    )
    center.nudge_detection(incident.engine)  # detection sees the engine's answer (gone, or failed again) at once
    return incident


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentDetails, summary="Resolve an incident")
async def resolve(
    incident_id: str, body: IncidentResolveRequest, center: Center, caller: CurrentCaller
) -> IncidentDetails:
    """Resolve an incident by hand, saying how (`resolution_type`) and why."""
    resolution = ResolutionType(body.resolution_type)
    return await _act(
        center,
        caller,
        incident_id,
        "resolve",
        {"resolution_type": resolution.value},
        lambda uow: center.service.resolve(uow, incident_id, resolution, body.message),
    )


@router.post("/incidents/{incident_id}/escalate", response_model=IncidentDetails, summary="Escalate an incident")
async def escalate(
    incident_id: str, body: IncidentEscalateRequest, center: Center, caller: CurrentCaller
) -> IncidentDetails:
    """Escalate an incident, with a message and an optional level."""
    return await _act(
        center,
        caller,
        incident_id,
        "escalate",
        {"level": body.level},
        lambda uow: center.service.escalate(uow, incident_id, body.message, body.level),
    )


@router.get("/operations/{operation_id}", response_model=OperationProgress, summary="Progress of a bulk operation")
async def get_operation(operation_id: str, center: Center, caller: CurrentCaller) -> OperationProgress:
    """Progress of a bulk operation: counts of incidents done, failed and pending, and each failure."""
    return await access.operation(center, caller, operation_id)
