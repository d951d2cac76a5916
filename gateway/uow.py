"""Unit of work: one change's events and audit row, and (when the change writes the gateway's database) the
transaction they commit in.

A transactional engine (the embedded one, whose state lives in the gateway's database) joins the
transaction of the change that calls it through `transaction()`: its state, its events and the audit row
commit or roll back together. That join is the one thing this module keeps in a ContextVar; services get
their unit of work explicitly from `gateway.changes.ChangeLog`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import journal, tracing
from gateway.db import Database
from gateway.journal import EVENT_PREFIX, AuditDraft, EventDraft


class UnitOfWork:
    """What one change queues: events (`emit`) and its audit row (`audit_entry`), written when it commits.

    `session` is the open transaction for changes that write the gateway's database; a change on a remote
    engine has none while the engine is called (see `gateway.changes`).
    """

    def __init__(self, db: Database, session: AsyncSession | None, actor: str) -> None:
        self.db = db
        self._session = session
        self.actor = actor
        self.events: list[EventDraft] = []
        self.audit_entry: AuditDraft | None = None

    @property
    def session(self) -> AsyncSession:
        """The change's transaction. Raises RuntimeError for a change on a remote engine (none is open)."""
        if self._session is None:
            raise RuntimeError("this change holds no database transaction while its remote engine is called")
        return self._session

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
        """Queue an event (type without the `process_manager.` prefix); written when the change commits.

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
        """A position in the event queue, for `emit(..., at=mark)`."""
        return len(self.events)

    def audited_resource(self, resource_id: str) -> None:
        """Name the resource the change created (e.g. a new instance's id) in its audit row."""
        if self.audit_entry is not None:
            self.audit_entry.resource_id = resource_id

    def audit(self, entry: AuditDraft | None) -> None:
        """Set (or with None drop) the audit row this change writes."""
        self.audit_entry = entry

    async def write_journal(self, session: AsyncSession) -> None:
        """Append the queued events and the audit row inside `session`'s transaction."""
        await journal.write(session, self.actor, self.events, self.audit_entry)


_current: ContextVar[UnitOfWork | None] = ContextVar("pm_gateway_uow", default=None)


@contextlib.asynccontextmanager
async def transaction(db: Database, *, actor: str = "system") -> AsyncIterator[UnitOfWork]:
    """Open a transaction, or join the one already running in this task for the same database.

    The journal (events and audit row) is written just before the commit; any exception rolls back all of it.
    """
    running = _current.get()
    if running is not None and running.db is db and running._session is not None:
        yield running
        return
    with tracing.span("db transaction", **{"db.system": db.engine.dialect.name}):
        async with db.writer(), db.sessionmaker() as session, session.begin():
            uow = UnitOfWork(db, session, actor)
            token = _current.set(uow)
            try:
                yield uow
                await uow.write_journal(session)
            finally:
                _current.reset(token)


@contextlib.asynccontextmanager
async def reading(db: Database) -> AsyncIterator[AsyncSession]:
    """A session for queries: the running transaction's (to see its own writes) or a fresh one."""
    running = _current.get()
    if running is not None and running.db is db and running._session is not None:
        yield running._session
        return
    with tracing.span("db read", **{"db.system": db.engine.dialect.name}):
        async with db.sessionmaker() as session:
            yield session
