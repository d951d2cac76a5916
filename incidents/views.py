"""The Incident Center API (API.md "Incidents") and the progress of bulk operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from gateway.api.context import caller
from gateway.db import utcnow
from gateway.schemas import Page
from gateway.uow import UnitOfWork, reading
from gateway.variables import parse_request_variables, audit_summary
from incidents import operations, repository
from incidents.actions import perform
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
from incidents.repository import Row

router = APIRouter(prefix="/api/processes", tags=["incidents"])


def incident_center(request: Request) -> IncidentCenter:
    return request.app.state.incidents


Center = Annotated[IncidentCenter, Depends(incident_center)]
Actor = Annotated[str, Depends(caller)]


async def _act(
    center: IncidentCenter,
    actor: str,
    incident_id: str,
    operation: str,
    request: dict[str, Any],
    change: Callable[[UnitOfWork], Awaitable[Row]],
    status: int = 200,
) -> IncidentDetails:
    await perform(
        center.db,
        actor=actor,
        operation=operation,
        incident_id=incident_id,
        request=request,
        change=change,
        status=status,
    )
    async with reading(center.db) as session:
        return await repository.incident_details(session, incident_id)


@router.get("/incidents", response_model=Page[Incident], summary="List incidents of every engine (`engine` filters)")
async def list_incidents(center: Center, query: Annotated[IncidentQuery, Query()]) -> Page[Incident]:
    """A page of incidents of every engine (or the one `engine` names), filtered by status, instance, definition, type,
    assignee, severity or age, and sorted.
    """
    async with reading(center.db) as session:
        return await repository.list_incidents(session, query)


@router.get(
    "/incidents/statistics/by-error",
    response_model=ErrorGroups,
    summary="Open incidents grouped by their normalised error message",
    description="Unresolved incidents (every status but resolved) grouped by `error_hash`: the message lower-cased, "
    "UUIDs, long hex ids and numbers replaced by one placeholder, whitespace collapsed, SHA-256, first 16 hex digits. "
    "Largest group first. `GET /incidents?error_hash=` lists a group's incidents.",
)
async def incidents_by_error(
    center: Center, engine: Annotated[str | None, Query(description="Only this engine's incidents")] = None
) -> ErrorGroups:
    now = utcnow()  # read before the query: every incident committed by then is counted
    async with reading(center.db) as session:
        groups = await repository.open_error_groups(session, engine)
    return ErrorGroups(items=groups, generated_at=utcnow(), data_as_of=now)


@router.post(
    "/incidents/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationAccepted,
    summary="Retry every incident a filter selects, as an operation (progress: GET /operations/{id})",
)
async def bulk_retry(body: BulkRetryRequest, center: Center, actor: Actor) -> OperationAccepted:
    """Retry every incident the filter selects, as a background operation; answers 202 with its id (progress: GET
    /api/processes/operations/{operation_id}).
    """
    accepted = await operations.start_bulk_retry(center.db, actor, body)
    center.nudge_operations()
    return accepted


@router.get("/incidents/{incident_id}", response_model=IncidentDetails, summary="An incident with its history")
async def get_incident(incident_id: str, center: Center) -> IncidentDetails:
    """One incident with its linked engine incidents and its history of actions."""
    async with reading(center.db) as session:
        return await repository.incident_details(session, incident_id)


@router.post(
    "/incidents/{incident_id}/acknowledge", response_model=IncidentDetails, summary="Acknowledge an open incident"
)
async def acknowledge(
    incident_id: str, center: Center, actor: Actor, body: IncidentAcknowledgement | None = None
) -> IncidentDetails:
    """Acknowledge an open incident, optionally with a message."""
    message = body.message if body else None
    return await _act(
        center,
        actor,
        incident_id,
        "acknowledge",
        {"message": message},
        lambda uow: center.service.acknowledge(uow, incident_id, message),
    )


@router.post(
    "/incidents/{incident_id}/assign", response_model=IncidentDetails, summary="Assign (acknowledges an open one)"
)
async def assign(incident_id: str, body: IncidentAssignment, center: Center, actor: Actor) -> IncidentDetails:
    """Assign an incident to a user (an open one is acknowledged too)."""
    return await _act(
        center,
        actor,
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
async def comment(incident_id: str, body: IncidentComment, center: Center, actor: Actor) -> IncidentDetails:
    """Add a comment to an incident's history."""
    return await _act(
        center,
        actor,
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
async def retry(incident_id: str, body: IncidentRetryRequest, center: Center, actor: Actor) -> IncidentDetails:
    """Retry the failed job or external task behind an incident, optionally setting variables first."""
    variables = parse_request_variables(body.variables)
    incident = await _act(
        center,
        actor,
        incident_id,
        "retry",
        {"retries": body.retries, "variables": audit_summary(variables)},
        lambda uow: center.service.retry(uow, incident_id, retries=body.retries, variables=variables),
        status=202,
    )
    center.nudge_detection(incident.engine)  # detection sees the engine's answer (gone, or failed again) at once
    return incident


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentDetails, summary="Resolve an incident")
async def resolve(incident_id: str, body: IncidentResolveRequest, center: Center, actor: Actor) -> IncidentDetails:
    """Resolve an incident by hand, saying how (`resolution_type`) and why."""
    resolution = ResolutionType(body.resolution_type)
    return await _act(
        center,
        actor,
        incident_id,
        "resolve",
        {"resolution_type": resolution.value},
        lambda uow: center.service.resolve(uow, incident_id, resolution, body.message),
    )


@router.post("/incidents/{incident_id}/escalate", response_model=IncidentDetails, summary="Escalate an incident")
async def escalate(incident_id: str, body: IncidentEscalateRequest, center: Center, actor: Actor) -> IncidentDetails:
    """Escalate an incident, with a message and an optional level."""
    return await _act(
        center,
        actor,
        incident_id,
        "escalate",
        {"level": body.level},
        lambda uow: center.service.escalate(uow, incident_id, body.message, body.level),
    )


@router.get("/operations/{operation_id}", response_model=OperationProgress, summary="Progress of a bulk operation")
async def get_operation(operation_id: str, center: Center) -> OperationProgress:
    """Progress of a bulk operation: counts of incidents done, failed and pending, and each failure."""
    async with reading(center.db) as session:
        return await repository.operation(session, operation_id)
