"""Operations: the caller's permissions, engines, audit log, event log, liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from gateway import __version__, records
from gateway.api.context import AUTH_RESPONSES, CurrentCaller, operational_access
from gateway.errors import BadRequest
from gateway.journal import known_event_types
from gateway.registry import EngineRegistry
from gateway.schemas import MAX_PAGE, Page, UtcDatetime
from gateway.variables import INT64_MAX

router = APIRouter(tags=["operations"])


class EngineCircuit(BaseModel):
    """The engine's circuit breaker: `closed` (calls go through), `open` (calls answered 503 at once) or
    `half-open` (the next call probes the engine)."""

    state: str
    failure_count: int = Field(description="Failures counted since the circuit last closed")
    opened_at: datetime | None = Field(None, description="When the circuit opened (null while closed)")
    last_error: str | None = Field(None, description="The last network or engine error seen on this engine")


class EngineStatus(BaseModel):
    name: str
    type: str
    url: str | None = None
    default: bool
    status: str
    version: str | None = None
    detail: str | None = None
    tenant_id: str | None = None
    capabilities: list[str]
    emulated: dict[str, str] = Field(default_factory=dict)
    circuit: EngineCircuit | None = None


class AuditEntry(BaseModel):
    id: str
    timestamp: datetime
    actor: str
    operation: str
    resource_type: str
    resource_id: str | None = None
    engine: str | None = None
    request: dict[str, Any]
    status: int
    outcome: str
    detail: str | None = None
    tenant_id: str | None = Field(None, description="The tenant of the changed object")
    hash: str


class Event(BaseModel):
    id: str
    cursor: str
    type: str
    occurred_at: datetime
    engine: str | None = None
    tenant_id: str | None = None
    actor: str | None = None
    instance_id: str | None = None
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str


class CallerPermissions(BaseModel):
    """Who the gateway takes the caller to be and what they may do: what a frontend needs to offer only the
    actions that will not be refused (README "Authentication and authorization")."""

    user: str = Field(description="The actor of audit rows and events (the token's `sub`, or X-User-Id with auth off)")
    roles: list[str] = Field(description="The token's roles (empty with auth off)")
    groups: list[str] = Field(description="The token's groups (task queues)")
    tenants: list[str] | None = Field(description="The tenants the caller sees; null: every tenant")
    permissions: dict[str, list[str] | None] = Field(
        description="Each granted permission (`resource:action`) and the process definition key globs it is "
        "granted for; null: for every definition. With auth off every permission is granted."
    )


@router.get(
    "/api/processes/me",
    response_model=CallerPermissions,
    summary="The caller and their permissions",
    description="Needs a valid token (any role) when auth is on.",
    responses=AUTH_RESPONSES,
)
async def describe_caller(caller: CurrentCaller) -> CallerPermissions:
    """The caller of this request as the gateway authorizes it: user, roles, groups, tenants and the permissions
    their roles grant (PM_AUTH_ROLES_FILE), so a frontend can hide what would be refused with 403."""
    return CallerPermissions(
        user=caller.actor,
        roles=sorted(caller.roles),
        groups=sorted(caller.groups),
        tenants=None if caller.tenants is None else sorted(caller.tenants),
        permissions={name: None if keys is None else list(keys) for name, keys in sorted(caller.grants.items())},
    )


@router.get(
    "/api/processes/engines",
    response_model=list[EngineStatus],
    summary="Configured engines and their state",
    description="Needs `engines:read`.",
    responses=AUTH_RESPONSES,
)
async def list_engines(request: Request, caller: CurrentCaller) -> list[dict[str, Any]]:
    """Every configured engine: type, URL (without credentials), whether it is the default, health, version,
    capabilities, emulated operations and its circuit breaker (state, since when, last error).
    """
    caller.require("engines:read")
    registry: EngineRegistry = request.app.state.registry
    return list(await asyncio.gather(*(registry.describe(name) for name in registry.engines)))


@router.get(
    "/api/processes/audit",
    response_model=Page[AuditEntry],
    summary="The audit log, newest first",
    description="Needs `audit:read`; only the rows of the caller's tenants.",
    responses=AUTH_RESPONSES,
)
async def list_audit(
    request: Request,
    caller: CurrentCaller,
    resource_type: str | None = None,
    resource_id: str | None = None,
    actor: str | None = None,
    operation: str | None = None,
    since: Annotated[UtcDatetime | None, Query(alias="from")] = None,
    until: Annotated[UtcDatetime | None, Query(alias="to")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """A page of the tamper-evident audit log, newest first, filtered by resource, actor, operation and time; only
    the rows of the caller's tenants."""
    items, total = await records.audit_page(
        request.app.state.db,
        caller,
        resource_type=resource_type,
        resource_id=resource_id,
        actor=actor,
        operation=operation,
        since=since,
        until=until,
        offset=(page - 1) * size,
        limit=size,
    )
    return {"items": items, "total": total, "page": page, "size": size}


@router.get(
    "/api/processes/events",
    response_model=EventPage,
    summary="The event log, oldest first, by cursor",
    description="Needs `events:read`; only the events of the caller's tenants.",
    responses=AUTH_RESPONSES,
)
async def list_events(
    request: Request,
    caller: CurrentCaller,
    after: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="Cursor of the last event seen; 0 for the beginning")
    ] = 0,
    types: Annotated[str | None, Query(description="Comma-separated event types, e.g. instance.started")] = None,
    size: Annotated[int | None, Query(ge=1, le=1000, description="Events per page (default 100)")] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, deprecated=True, description="Old name of `size`")] = None,
) -> dict[str, Any]:
    """Events after the cursor `after`, oldest first, at most `size` of them; pass `next_cursor` as `after` to
    read on. Event types carry the `process_manager.` prefix; `types` accepts them with or without it."""
    limit = size or limit or 100
    wanted = None
    if types:
        try:
            wanted = known_event_types(types.split(","))
        except ValueError as error:
            raise BadRequest(f"types: {error}") from None
    items, next_cursor = await records.event_page(request.app.state.db, caller, after=after, types=wanted, limit=limit)
    return {"items": items, "next_cursor": str(next_cursor)}


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never checks dependencies."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness: database, Redis and each engine",
    description="Open, or behind a bearer token when left out of PM_AUTH_OPEN_PATHS.",
    dependencies=[Depends(operational_access)],
    responses={401: AUTH_RESPONSES[401]},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: database, Redis (when configured) and each engine with its URL and circuit; 200 when all are up, else
    503 naming what is down.
    """
    state = request.app.state
    checks: dict[str, Any] = {}
    try:
        await asyncio.wait_for(state.db.ping(), timeout=2)
        checks["database"] = {"status": "up"}
    except Exception as exc:  # readiness reports any failure
        checks["database"] = {"status": "down", "detail": str(exc) or exc.__class__.__name__}
    if state.redis is not None:
        try:
            await asyncio.wait_for(state.redis.ping(), timeout=2)
            checks["redis"] = {"status": "up"}
        except Exception as exc:
            checks["redis"] = {"status": "down", "detail": str(exc) or exc.__class__.__name__}
    registry: EngineRegistry = state.registry
    for description in await asyncio.gather(*(registry.describe(name) for name in registry.engines)):
        checks[f"engine:{description['name']}"] = {
            "status": description["status"],
            "detail": description["detail"],
            "url": description["url"],
            "circuit": description["circuit"],
        }
    ok = all(check["status"] == "up" for check in checks.values())
    body = jsonable_encoder({"status": "ready" if ok else "not_ready", "checks": checks})
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Open, or behind a bearer token when left out of PM_AUTH_OPEN_PATHS.",
    response_class=Response,
    dependencies=[Depends(operational_access)],
    responses={401: AUTH_RESPONSES[401]},
)
async def prometheus_metrics() -> Response:
    """Prometheus metrics: request latency by route and status, engine call latency and retries, circuit states."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
