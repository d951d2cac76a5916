"""Carrying out one incident action: its own transaction, with its audit row, or a failure audit row.

The approach of `RequestContext.mutate` for gateway-owned incidents, whose engine comes from the record rather
than from `?engine=`. The action (a `IncidentService` method) writes the history entry and queues the event;
this adds the audit row and commits all three together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway import journal
from gateway.db import Database
from gateway.errors import ConcurrentModification, GatewayError
from gateway.uow import AuditDraft, UnitOfWork, transaction
from incidents.repository import Row

MAX_CONCURRENT_RETRIES = 3  # an embedded-engine write that lost an optimistic lock race is run again


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
    for attempt in range(1, MAX_CONCURRENT_RETRIES + 1):
        try:
            async with transaction(db, actor=actor) as uow:
                incident = await change(uow)
                if incident is not None:
                    uow.audit(_audit(operation, incident["id"], incident["engine"], request, status))
            return incident
        except ConcurrentModification as exc:
            if attempt < MAX_CONCURRENT_RETRIES:
                continue
            await _audit_failure(db, actor, operation, incident_id, request, exc)
            raise
        except GatewayError as exc:
            await _audit_failure(db, actor, operation, incident_id, request, exc)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


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


async def _audit_failure(
    db: Database, actor: str, operation: str, incident_id: str | None, request: dict[str, Any], exc: GatewayError
) -> None:
    entry = _audit(operation, incident_id, exc.engine, request, exc.status)
    entry.outcome, entry.detail = "failure", exc.detail
    await journal.record_failure(db, actor, entry)
