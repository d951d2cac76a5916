"""The Incident Center as one caller may use it: `incident:read` to list and inspect, `incident:act` for the
actions on one incident, `incident:bulk-retry` for bulk retries; only incidents of the caller's tenants
(another tenant's incident answers 404). Refused actions are audited like failed ones (`gateway.changes`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.auth import Caller
from gateway.changes import ChangeLog
from gateway.db import utcnow
from gateway.errors import Forbidden, NotFound
from gateway.journal import AuditDraft
from gateway.schemas import EngineIncident, Page
from gateway.uow import UnitOfWork, reading
from incidents import operations, repository
from incidents.actions import perform
from incidents.center import IncidentCenter
from incidents.models import (
    BulkRetryRequest,
    ErrorGroups,
    Incident,
    IncidentDetails,
    IncidentQuery,
    OperationAccepted,
    OperationProgress,
)
from incidents.repository import Row


def _listing(caller: Caller, permission: str, definition_key: str | None) -> None:
    caller.require(permission)
    if definition_key is not None:
        caller.require_for(permission, definition_key)
    elif not caller.may(permission):
        raise Forbidden(
            f"Your roles grant '{permission}' only for some process definitions; filter by one of them (definition_key)"
        )


def _known_engine(center: IncidentCenter, engine: str | None) -> None:
    """NotFound naming the configured engines (EngineRegistry.get) when `engine` is none of them; None and `*`
    mean every engine."""
    if engine not in (None, "*"):
        center.service.registry.get(engine)


async def list_incidents(center: IncidentCenter, caller: Caller, query: IncidentQuery) -> Page[Incident]:
    _known_engine(center, query.engine)
    _listing(caller, "incident:read", query.definition_key)
    async with reading(center.db) as session:
        return await repository.list_incidents(session, query, caller.tenants)


async def error_groups(center: IncidentCenter, caller: Caller, engine: str | None) -> ErrorGroups:
    """Open incidents of the caller's tenants grouped by normalised error (`incident:read`)."""
    _known_engine(center, engine)
    _listing(caller, "incident:read", None)
    now = utcnow()  # read before the query: every incident committed by then is counted
    async with reading(center.db) as session:
        groups = await repository.open_error_groups(session, engine, caller.tenants)
    return ErrorGroups(items=groups, generated_at=utcnow(), data_as_of=now)


def _check(caller: Caller, permission: str, incident: Incident) -> None:
    caller.require(permission)
    caller.visible(incident.tenant_id, f"Incident {incident.id}")
    caller.require_for(permission, incident.definition_key)


async def incident_details(center: IncidentCenter, caller: Caller, incident_id: str) -> IncidentDetails:
    """Errors: NotFound (unknown or another tenant's), Forbidden."""
    caller.require("incident:read")
    async with reading(center.db) as session:
        details = await repository.incident_details(session, incident_id)
    _check(caller, "incident:read", details)
    return details


async def engine_incident(
    center: IncidentCenter, caller: Caller, incident_id: str, engine_incident_id: str
) -> EngineIncident:
    """One engine incident of a visible incident, read live from the engine with its stack trace (`incident:read`).
    Errors: NotFound (unknown or another tenant's incident, an engine incident not linked to it or no longer kept
    by the engine), Forbidden, the engine's errors."""
    details = await incident_details(center, caller, incident_id)
    return await center.service.engine_incident(details, engine_incident_id)


async def act(
    center: IncidentCenter,
    caller: Caller,
    incident_id: str,
    operation: str,
    request: dict[str, Any],
    change: Callable[[UnitOfWork], Awaitable[Row]],
    status: int = 200,
) -> IncidentDetails:
    """Run one action (`incident:act`) on a visible incident and answer the incident as it is now."""
    audit = AuditDraft(operation, "incident", incident_id, None, request, status, tenant_id=caller.home_tenant)
    async with ChangeLog(center.db).checking(caller.actor, audit):
        caller.require("incident:act")
        async with reading(center.db) as session:
            _check(caller, "incident:act", await repository.incident_details(session, incident_id))
    await perform(
        center.db,
        actor=caller.actor,
        operation=operation,
        incident_id=incident_id,
        request=request,
        change=change,
        status=status,
    )
    async with reading(center.db) as session:
        return await repository.incident_details(session, incident_id)


async def bulk_retry(center: IncidentCenter, caller: Caller, body: BulkRetryRequest) -> OperationAccepted:
    """A bulk retry over the incidents the filter selects among the caller's tenants (`incident:bulk-retry`)."""
    audit = AuditDraft(
        "bulk_retry",
        "operation",
        None,
        body.filter.engine,
        body.model_dump(mode="json"),
        202,
        tenant_id=caller.home_tenant,
    )
    async with ChangeLog(center.db).checking(caller.actor, audit):
        _listing(caller, "incident:bulk-retry", body.filter.definition_key)
    accepted = await operations.start_bulk_retry(center.db, caller.actor, body, caller.tenants)
    center.nudge_operations()
    return accepted


async def operation(center: IncidentCenter, caller: Caller, operation_id: str) -> OperationProgress:
    """A bulk operation's progress: `incident:read`; a caller limited to tenants sees only the ones they started."""
    caller.require("incident:read")
    async with reading(center.db) as session:
        progress = await repository.operation(session, operation_id)
    if caller.tenants is not None and progress.requested_by != caller.actor:
        raise NotFound(f"Operation {operation_id} does not exist")
    return progress
