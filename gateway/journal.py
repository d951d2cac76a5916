"""The audit log (hash-chained, append-only) and the event outbox: every query on both tables.

`EventDraft` and `AuditDraft` are what a change queues; `write` appends them inside the change's
transaction (see `gateway.uow`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, utcnow
from gateway.tables import audit_log, outbox

EVENT_PREFIX = "process_manager."


@dataclass
class EventDraft:
    """An event to append to the outbox: `type` with its `process_manager.` prefix, `data` as API.md gives it."""

    type: str
    engine: str | None
    data: dict[str, Any]
    instance_id: str | None = None
    tenant_id: str | None = None
    actor: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=utcnow)


@dataclass
class AuditDraft:
    """An audit row to append: who did `operation` on which resource, with what (`request`, no values of
    variables) and how it ended (`status` the HTTP status, `outcome` success | failure | unknown)."""

    operation: str
    resource_type: str
    resource_id: str | None
    engine: str | None
    request: dict[str, Any]
    status: int
    outcome: str = "success"
    detail: str | None = None
    tenant_id: str | None = None  # the tenant of the changed object: who may read the row (PM_AUTH_TENANTS_CLAIM)


GENESIS_HASH = "0" * 64
JOURNAL_LOCK_ID = 7_301_002  # PostgreSQL advisory lock that serialises journal appends


def _chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    # tenant_id came later (migration 0003): rows without one hash as they did before it existed.
    material = {
        key: row[key]
        for key in sorted(row)
        if key not in {"id", "hash", "prev_hash"} and not (key == "tenant_id" and row[key] is None)
    }
    material["occurred_at"] = row["occurred_at"].isoformat()
    payload = prev_hash + json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


_LAST_HASH = sa.select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1).scalar_subquery()


async def _lock(session: AsyncSession) -> str:
    """Serialise journal appends and return the audit chain's last hash (one round trip).

    Taking the lock before inserting makes outbox and audit ids follow commit order, so a reader paging by
    id never skips a row that commits later, and the hash chain has one linear order.
    """
    if session.bind.dialect.name == "postgresql":
        lock = sa.func.pg_advisory_xact_lock(JOURNAL_LOCK_ID)
        row = (await session.execute(sa.select(lock, _LAST_HASH))).one()
        return row[1] or GENESIS_HASH
    return await session.scalar(sa.select(_LAST_HASH)) or GENESIS_HASH


async def write(session: AsyncSession, actor: str, events: list[EventDraft], audit: AuditDraft | None) -> None:
    """Append events (in the given order) and the audit row inside the caller's transaction."""
    if not events and audit is None:
        return
    last_hash = await _lock(session)
    if events:
        await session.execute(
            outbox.insert(),
            [
                {
                    "event_id": event.id,
                    "type": event.type,
                    "occurred_at": event.occurred_at,
                    "engine": event.engine,
                    "tenant_id": event.tenant_id,
                    "actor": event.actor,
                    "instance_id": event.instance_id,
                    "data": event.data,
                }
                for event in events
            ],
        )
    if audit is not None:
        await _append_audit(session, actor, audit, last_hash)


async def _append_audit(session: AsyncSession, actor: str, entry: AuditDraft, prev_hash: str) -> None:
    row = {
        "occurred_at": utcnow(),
        "actor": actor,
        "operation": entry.operation,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "engine": entry.engine,
        "request": entry.request,
        "status": entry.status,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "tenant_id": entry.tenant_id,
    }
    row["prev_hash"] = prev_hash
    row["hash"] = _chain_hash(prev_hash, row)
    await session.execute(audit_log.insert().values(**row))


@dataclass
class ChainCheck:
    rows: int
    ok: bool
    first_bad_id: int | None = None


async def verify_chain(db: Database, batch: int = 5000) -> ChainCheck:
    """Recompute every hash in id order; the first row whose hash or link is wrong is reported."""
    prev_hash, rows, last_id = GENESIS_HASH, 0, 0
    async with db.sessionmaker() as session:
        while True:
            result = await session.execute(
                sa.select(audit_log).where(audit_log.c.id > last_id).order_by(audit_log.c.id).limit(batch)
            )
            chunk = [dict(r._mapping) for r in result]
            if not chunk:
                return ChainCheck(rows=rows, ok=True)
            for row in chunk:
                if row["prev_hash"] != prev_hash or _chain_hash(prev_hash, row) != row["hash"]:
                    return ChainCheck(rows=rows, ok=False, first_bad_id=row["id"])
                prev_hash, last_id, rows = row["hash"], row["id"], rows + 1


def _audit_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "timestamp": row["occurred_at"],
        "actor": row["actor"],
        "operation": row["operation"],
        "resource_type": row["resource_type"],
        "resource_id": row["resource_id"],
        "engine": row["engine"],
        "request": row["request"],
        "status": row["status"],
        "outcome": row["outcome"],
        "detail": row["detail"],
        "tenant_id": row["tenant_id"],
        "hash": row["hash"],
    }


async def list_audit(
    session: AsyncSession,
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
    tenants: frozenset[str] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Audit rows matching the filters; with `tenants`, only rows of those tenants (None: every row)."""
    conditions = [
        column == value
        for column, value in (
            (audit_log.c.resource_type, resource_type),
            (audit_log.c.resource_id, resource_id),
            (audit_log.c.actor, actor),
            (audit_log.c.operation, operation),
        )
        if value is not None
    ]
    if tenants is not None:
        conditions.append(audit_log.c.tenant_id.in_(sorted(tenants)))
    if since is not None:
        conditions.append(audit_log.c.occurred_at >= since)
    if until is not None:
        conditions.append(audit_log.c.occurred_at <= until)
    order = audit_log.c.id.desc() if newest_first else audit_log.c.id.asc()
    rows = await session.execute(sa.select(audit_log).where(*conditions).order_by(order).offset(offset).limit(limit))
    total = await session.scalar(sa.select(sa.func.count()).select_from(audit_log).where(*conditions))
    return [_audit_public(dict(r._mapping)) for r in rows], int(total or 0)


def event_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["event_id"],
        "cursor": str(row["id"]),
        "type": row["type"],
        "occurred_at": row["occurred_at"],
        "engine": row["engine"],
        "tenant_id": row["tenant_id"],
        "actor": row["actor"],
        "instance_id": row["instance_id"],
        "data": row["data"],
    }


async def list_events(
    session: AsyncSession, *, after: int, types: list[str] | None, limit: int, tenants: frozenset[str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Events with a cursor above `after`, oldest first; returns them and the cursor to continue from. With
    `tenants`, only events of those tenants (None: every event)."""
    conditions = [outbox.c.id > after]
    if tenants is not None:
        conditions.append(outbox.c.tenant_id.in_(sorted(tenants)))
    if types:
        conditions.append(outbox.c.type.in_(types))
    rows = [dict(r._mapping) for r in await session.execute(
        sa.select(outbox).where(*conditions).order_by(outbox.c.id).limit(limit)
    )]
    next_cursor = rows[-1]["id"] if rows else after
    return [event_public(row) for row in rows], next_cursor
