"""Unit of work: one database transaction per change, carrying the audit row and outbox events with it.

Services never commit; `transaction()` does, after writing the journal (events and audit row) into the
same transaction. Code running inside a transaction (the embedded engine, for one) joins it through
`current()`, so an engine change, its events and its audit row commit or roll back together.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, utcnow

EVENT_PREFIX = "process_manager."


@dataclass
class EventDraft:
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
    operation: str
    resource_type: str
    resource_id: str | None
    engine: str | None
    request: dict[str, Any]
    status: int
    outcome: str = "success"
    detail: str | None = None


class UnitOfWork:
    def __init__(self, db: Database, session: AsyncSession, actor: str) -> None:
        self.db = db
        self.session = session
        self.actor = actor
        self.events: list[EventDraft] = []
        self.audit_entry: AuditDraft | None = None

    def emit(
        self,
        event_type: str,
        *,
        engine: str | None,
        data: dict[str, Any],
        instance_id: str | None = None,
        tenant_id: str | None = None,
        at: int | None = None,
    ) -> None:
        """Queue an event (type without the `process_manager.` prefix); written when the transaction commits.

        `at` (from `mark()`) puts the event before those queued since the mark: the API-level event of a call
        ("instance.started") comes before the transitions the engine drove during it ("task.created").
        """
        self.events.insert(
            len(self.events) if at is None else at,
            EventDraft(
                type=EVENT_PREFIX + event_type,
                engine=engine,
                data=data,
                instance_id=instance_id,
                tenant_id=tenant_id,
                actor=self.actor,
            ),
        )

    def mark(self) -> int:
        return len(self.events)

    def audit(self, entry: AuditDraft) -> None:
        self.audit_entry = entry


_current: ContextVar[UnitOfWork | None] = ContextVar("pm_gateway_uow", default=None)


def current() -> UnitOfWork | None:
    return _current.get()


@contextlib.asynccontextmanager
async def transaction(db: Database, *, actor: str = "system") -> AsyncIterator[UnitOfWork]:
    """Open a transaction, or join the one already running in this task for the same database."""
    from gateway import journal  # journal imports this module's drafts

    running = _current.get()
    if running is not None and running.db is db:
        yield running
        return
    async with db.writer(), db.sessionmaker() as session, session.begin():
        uow = UnitOfWork(db, session, actor)
        token = _current.set(uow)
        try:
            yield uow
            await journal.write(uow)
        finally:
            _current.reset(token)


@contextlib.asynccontextmanager
async def reading(db: Database) -> AsyncIterator[AsyncSession]:
    """A session for queries: the running transaction's (to see its own writes) or a fresh one."""
    running = _current.get()
    if running is not None and running.db is db:
        yield running.session
        return
    async with db.sessionmaker() as session:
        yield session
