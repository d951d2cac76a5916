"""The audit log and event log as a caller may read them: `audit:read` / `events:read`, and only the rows of
the caller's tenants (rows without a tenant only for callers of every tenant). The one entry point the API
and other channels use for both logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway import journal
from gateway.auth import Caller
from gateway.db import Database
from gateway.uow import reading


async def audit_page(
    db: Database,
    caller: Caller,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    actor: str | None = None,
    operation: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
    newest_first: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """Audit rows (journal.list_audit's shape) the caller may read. Errors: Forbidden (no `audit:read`)."""
    caller.require("audit:read")
    async with reading(db) as session:
        return await journal.list_audit(
            session,
            resource_type=resource_type,
            resource_id=resource_id,
            actor=actor,
            operation=operation,
            since=since,
            until=until,
            offset=offset,
            limit=limit,
            newest_first=newest_first,
            tenants=caller.tenants,
        )


async def event_page(
    db: Database, caller: Caller, *, after: int, types: list[str] | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Events after the cursor the caller may read, and the next cursor. Errors: Forbidden (no `events:read`)."""
    caller.require("events:read")
    async with reading(db) as session:
        return await journal.list_events(session, after=after, types=types, limit=limit, tenants=caller.tenants)
