"""The audit log (hash-chained, append-only) and the event outbox: every query on both tables.

`EventDraft` and `AuditDraft` are what a change queues; `write` appends them inside the change's
transaction (see `gateway.uow`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, utcnow
from gateway.tables import audit_checkpoints, audit_log, journal_pending, outbox

log = logging.getLogger(__name__)

EVENT_PREFIX = "process_manager."
# Every event type the gateway writes, without the prefix: API.md "Events" and what issues 13, 14 and 15 added.
EVENT_TYPES = frozenset(
    {
        "definition.deployed",
        *(
            f"instance.{change}"
            for change in (
                "started",
                "completed",
                "terminated",
                "suspended",
                "activated",
                "modified",
                "migrated",
                "variables_updated",
            )
        ),
        *(f"task.{change}" for change in ("created", "assigned", "completed", "overdue")),
        *(f"incident.{change}" for change in ("created", "updated", "resolved")),
        "message.correlated",
        "message.published",
        "signal.broadcast",
        "subscription.disabled",
    }
)


def known_event_types(names: Iterable[str]) -> list[str]:
    """Event types a caller names (with or without the `process_manager.` prefix) as full types, sorted, without
    duplicates. Raises ValueError naming an empty or unknown one, so that a filter never silently matches nothing
    (or, emptied, everything)."""
    wanted = set()
    for name in names:
        short = name.strip().removeprefix(EVENT_PREFIX)
        if short not in EVENT_TYPES:
            raise ValueError(
                f"unknown event type {name.strip()!r}; the event types are {', '.join(sorted(EVENT_TYPES))}"
                if short
                else "an event type is empty"
            )
        wanted.add(EVENT_PREFIX + short)
    return sorted(wanted)


@dataclass
class EventDraft:
    """An event to append to the outbox: `type` with its `process_manager.` prefix (one of `EVENT_TYPES`; another
    is a ValueError, a programming error), `data` as API.md gives it."""

    type: str
    engine: str | None
    data: dict[str, Any]
    instance_id: str | None = None
    tenant_id: str | None = None
    actor: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.type.removeprefix(EVENT_PREFIX) not in EVENT_TYPES or not self.type.startswith(EVENT_PREFIX):
            raise ValueError(f"{self.type!r} is not an event type of the gateway (gateway.journal.EVENT_TYPES)")


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


_appends: ContextVar[list[str] | None] = ContextVar("pm_gateway_audit_appends", default=None)


@contextlib.contextmanager
def watching_appends() -> Iterator[list[str]]:
    """Collect the operations of the audit rows appended in this context (the request guard's way of
    knowing whether a failed call was audited by its route)."""
    seen: list[str] = []
    token = _appends.set(seen)
    try:
        yield seen
    finally:
        _appends.reset(token)


def _chain_material(row: dict[str, Any]) -> str:
    """The JSON text of an audit row that its hash covers (all but id, hash and prev_hash)."""
    # tenant_id came later (migration 0003): rows without one hash as they did before it existed.
    material = {
        key: row[key]
        for key in sorted(row)
        if key not in {"id", "hash", "prev_hash"} and not (key == "tenant_id" and row[key] is None)
    }
    material["occurred_at"] = row["occurred_at"].isoformat()
    return json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)


def _chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """sha256 of the previous row's hash followed by the row's material, hex (`pm_journal_append` computes the same
    in SQL)."""
    return hashlib.sha256((prev_hash + _chain_material(row)).encode()).hexdigest()


_LAST_HASH = sa.select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)


async def _lock(session: AsyncSession) -> str:
    """Serialise journal appends and return the audit chain's last hash (SQLite's appends, where the gateway's
    single writer serialises them already, and audit checkpoints; PostgreSQL's appends do the same in the trigger
    `pm_journal_append` at commit).

    Taking the lock before inserting makes outbox and audit ids follow commit order, so a reader paging by
    id never skips a row that commits later, and the hash chain has one linear order. On PostgreSQL the head
    is read in a statement of its own, after the lock is granted: a statement's snapshot is taken when it
    starts (READ COMMITTED), so reading the head in the statement that waits for the lock would see the
    chain as it was before the previous holder committed, and two appends would share one `prev_hash`.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(JOURNAL_LOCK_ID)))
    return await session.scalar(_LAST_HASH) or GENESIS_HASH


async def write(session: AsyncSession, actor: str, events: list[EventDraft], audit: AuditDraft | None) -> None:
    """Append events (in the given order) and the audit row inside the caller's transaction.

    Appends are serialised by the journal lock, held until the transaction commits (see `_lock`). On PostgreSQL
    they are staged and appended at COMMIT (`_append_in_postgresql`), so that the lock is held for the commit only,
    not for a round trip per statement: concurrent changes queue on it. There, the events and the audit row exist
    once the transaction has committed, not before (nothing reads them inside the change's transaction).
    """
    if not events and audit is None:
        return
    row = _audit_row(actor, audit) if audit is not None else None
    if audit is not None and audit.outcome == "success":  # the key's stamp needs no lock: before taking it
        from gateway.idempotency import record_commit  # idempotency imports the API context, which imports us

        await record_commit(session, audit.status, audit.resource_type, audit.resource_id)
    if session.get_bind().dialect.name == "postgresql":
        await _append_in_postgresql(session, events, row)
    else:
        last_hash = await _lock(session)
        if events:
            await session.execute(outbox.insert(), [_outbox_row(event) for event in events])
        if row is not None:
            row["prev_hash"] = last_hash
            row["hash"] = _chain_hash(last_hash, row)
            await session.execute(audit_log.insert().values(**row))
    if audit is not None and (seen := _appends.get()) is not None:
        seen.append(audit.operation)


def _outbox_row(event: EventDraft) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "engine": event.engine,
        "tenant_id": event.tenant_id,
        "actor": event.actor,
        "instance_id": event.instance_id,
        "data": event.data,
    }


def _audit_row(actor: str, entry: AuditDraft) -> dict[str, Any]:
    """The audit row's columns but its place in the chain (prev_hash, hash)."""
    return {
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


async def _append_in_postgresql(session: AsyncSession, events: list[EventDraft], row: dict[str, Any] | None) -> None:
    """Stage the journal in `journal_pending`; its deferred trigger appends it at COMMIT (migration i14_0006): takes
    the journal lock, reads the chain's head after it, inserts the events and the audit row, whose hash it computes
    from the head and `_chain_material`. The lock is then held while PostgreSQL commits, not across round trips to
    the gateway. Timestamps travel as ISO 8601 text with their offset."""
    staged = [{**_outbox_row(event), "occurred_at": _utc(event.occurred_at).isoformat()} for event in events]
    await session.execute(
        journal_pending.insert().values(
            events=staged,
            audit=None if row is None else {**row, "occurred_at": row["occurred_at"].isoformat()},
            material=None if row is None else _chain_material(row),
        )
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass
class ChainCheck:
    """What `verify_chain` found. `ok` is False when a hash, a link, a checkpoint's signature or an anchored
    row is wrong or missing; `problem` says which. `anchored_id`/`anchored_at`: the newest checkpoint (None
    without checkpoints or without a key); `rows_after_anchor`: rows written after it, which no anchor covers."""

    rows: int
    ok: bool
    first_bad_id: int | None = None
    problem: str | None = None
    anchored_id: int | None = None
    anchored_at: datetime | None = None
    rows_after_anchor: int | None = None


def _checkpoint_mac(key: bytes, checkpoint: dict[str, Any]) -> str:
    material = (
        "|".join(str(checkpoint[name]) for name in ("audit_id", "audit_hash", "rows", "prev_mac"))
        + "|"
        + checkpoint["created_at"].isoformat()
    )
    return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()


async def write_checkpoint(db: Database, key: bytes) -> dict[str, Any] | None:
    """Anchor the chain's head: a checkpoint row signed with HMAC-SHA256 (`key`, PM_AUDIT_ANCHOR_KEY) over the
    newest audit row's id and hash, the row count and the previous checkpoint's mac; also logged, so a copy
    lives outside the database. None when nothing was written since the last checkpoint."""
    async with db.writer(), db.sessionmaker() as session, session.begin():
        head_hash = await _lock(session)  # no append can slip in between the head and the count
        head_id = await session.scalar(sa.select(sa.func.max(audit_log.c.id)))
        if head_id is None:
            return None
        last = (
            (await session.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.id.desc()).limit(1)))
            .mappings()
            .first()
        )
        if last is not None and last["audit_id"] == head_id:
            return None
        rows = await session.scalar(sa.select(sa.func.count()).select_from(audit_log))
        checkpoint: dict[str, Any] = {
            "created_at": utcnow(),
            "audit_id": head_id,
            "audit_hash": head_hash,
            "rows": rows,
            "prev_mac": last["mac"] if last is not None else GENESIS_HASH,
        }
        checkpoint["mac"] = _checkpoint_mac(key, checkpoint)
        await session.execute(audit_checkpoints.insert().values(**checkpoint))
    log.info("audit checkpoint: row %s hash %s rows %s mac %s", head_id, head_hash, rows, checkpoint["mac"])
    return checkpoint


async def _checkpoints(db: Database, key: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The checkpoints in order, and the first problem with their signatures or their own chain."""
    async with db.sessionmaker() as session:
        result = await session.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.id))
        checkpoints = [dict(r._mapping) for r in result]
    prev_mac = GENESIS_HASH
    for checkpoint in checkpoints:
        if not hmac.compare_digest(_checkpoint_mac(key, checkpoint), checkpoint["mac"]):
            return (
                checkpoints,
                f"checkpoint {checkpoint['id']} has an invalid signature (forged, edited or another key)",
            )
        if checkpoint["prev_mac"] != prev_mac:
            return (
                checkpoints,
                f"checkpoint {checkpoint['id']} does not follow the one before it (a checkpoint was removed)",
            )
        prev_mac = checkpoint["mac"]
    return checkpoints, None


async def verify_chain(db: Database, batch: int = 5000, *, anchor_key: bytes | None = None) -> ChainCheck:
    """Recompute every hash in id order; the first row whose hash or link is wrong is reported.

    With `anchor_key`, the signed checkpoints are checked too: each must be signed with the key and follow
    the one before it, and the row it anchors must still be there with the same hash and the same number of
    rows up to it. That finds rows deleted from the tail up to the newest checkpoint, and rows edited with
    every later hash recomputed. Rows after the newest checkpoint are counted, not vouched for.
    """
    checkpoints: list[dict[str, Any]] = []
    if anchor_key is not None:
        checkpoints, problem = await _checkpoints(db, anchor_key)
        if problem is not None:
            return ChainCheck(rows=0, ok=False, problem=problem)
    anchors = {checkpoint["audit_id"]: checkpoint for checkpoint in checkpoints}
    prev_hash, rows, last_id = GENESIS_HASH, 0, 0
    async with db.sessionmaker() as session:
        while True:
            result = await session.execute(
                sa.select(audit_log).where(audit_log.c.id > last_id).order_by(audit_log.c.id).limit(batch)
            )
            chunk = [dict(r._mapping) for r in result]
            if not chunk:
                break
            for row in chunk:
                if row["prev_hash"] != prev_hash or _chain_hash(prev_hash, row) != row["hash"]:
                    return ChainCheck(
                        rows=rows, ok=False, first_bad_id=row["id"], problem="hash or link does not match"
                    )
                prev_hash, last_id, rows = row["hash"], row["id"], rows + 1
                anchor = anchors.pop(row["id"], None)
                if anchor is not None and (anchor["audit_hash"] != row["hash"] or anchor["rows"] != rows):
                    return ChainCheck(
                        rows=rows,
                        ok=False,
                        first_bad_id=row["id"],
                        problem=f"row {row['id']} differs from checkpoint {anchor['id']} (rows before it were "
                        "changed or removed and the hashes recomputed)",
                    )
    check = ChainCheck(rows=rows, ok=True)
    if checkpoints:
        newest = checkpoints[-1]
        check.anchored_id, check.anchored_at = newest["audit_id"], newest["created_at"]
        check.rows_after_anchor = max(rows - newest["rows"], 0)
    if anchors:  # anchored rows the walk never met: deleted
        missing = min(anchors.values(), key=lambda c: c["audit_id"])
        check.ok = False
        check.problem = (
            f"rows are missing: checkpoint {missing['id']} anchors row {missing['audit_id']} "
            f"({missing['rows']} rows), which is gone; the log ends at row {last_id} ({rows} rows)"
        )
    return check


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
    rows = [
        dict(r._mapping)
        for r in await session.execute(sa.select(outbox).where(*conditions).order_by(outbox.c.id).limit(limit))
    ]
    next_cursor = rows[-1]["id"] if rows else after
    return [event_public(row) for row in rows], next_cursor
