"""Carrying out one incident action: its own transaction, with its audit row, or a failure audit row.

`journal.audited`, as `RequestContext.mutate` uses it, for gateway-owned incidents, whose engine comes from the
record rather than from `?engine=`. The action (a `IncidentService` method) writes the history entry and queues the event;
this adds the audit row and commits all three together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway import journal
from gateway.db import Database
from gateway.uow import AuditDraft, UnitOfWork
from incidents.repository import Row


async def perform(
    db: Database,
    *,
    actor: str,
    operation: str,
    incident_id: str | None,
    request: dict[str, Any],
    change: Callable[[UnitOfWork], Awaitable[Row | None]],
    status: int = 200,
) -> Row | None:
    """Run `change` and audit it; a change that returns None changed nothing and is not audited."""
    return await journal.audited(
        db,
        actor,
        change,
        success=lambda incident: None
        if incident is None
        else _audit(operation, incident["id"], incident["engine"], request, status),
        failure=lambda exc: _audit(operation, incident_id, exc.engine, request, exc.status),
    )


def _audit(
    operation: str, incident_id: str | None, engine: str | None, request: dict[str, Any], status: int
) -> AuditDraft:
    return AuditDraft(
        operation=operation,
        resource_type="incident",
        resource_id=incident_id,
        engine=engine,
        request=request,
        status=status,
    )
