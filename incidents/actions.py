"""Carrying out one incident action as an audited change (`gateway.changes`): its history entry, event and
audit row commit together, and a failed action is audited too.

Gateway-owned incidents live in the gateway's database, so every action is a transactional change; its
engine comes from the incident record rather than from `?engine=`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.changes import ChangeLog
from gateway.db import Database
from gateway.journal import AuditDraft
from gateway.uow import UnitOfWork
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
    """Run `change` (an `IncidentService` method) and audit it; a change that returns None changed nothing and
    is not audited. Raises what `change` raises, after auditing the failure."""
    audit = AuditDraft(operation, "incident", incident_id, None, request, status)
    async for attempt in ChangeLog(db).attempts(actor, audit, transactional=True):
        async with attempt as uow:
            incident = await change(uow)
            if incident is None:
                uow.audit(None)
            elif uow.audit_entry is not None:
                entry = uow.audit_entry
                entry.resource_id, entry.engine, entry.tenant_id = (
                    incident["id"],
                    incident["engine"],
                    incident["tenant_id"],
                )
    return incident
