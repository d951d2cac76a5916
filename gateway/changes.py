"""Every audited change goes through here, one way: process use cases and incident actions alike.

    async for attempt in changes.attempts(actor, audit, transactional=engine.adapter.transactional):
        async with attempt as uow:
            task = await engine.adapter.complete_task(...)   # the change itself
            uow.emit("task.completed", ...)                   # its events

How a change is recorded depends on where the changed state lives:

- **Transactional** (the embedded engine, gateway-owned incidents): the attempt is one database transaction;
  the engine joins it, and its state, its events and the audit row commit together.
- **Remote** (an HTTP engine): no transaction is open while the engine answers, so one slow engine never
  holds database locks (on SQLite, the single writer lock) that other writes wait for. Before the call a
  small *intent* row is committed; after it, one short transaction writes the events and the audit row and
  deletes the intent. An intent that outlives `STALE_INTENT_AGE` (the gateway stopped between the engine's
  answer and that write) is settled by `settle_stale_intents` into an audit row with outcome `unknown`, so
  no change sent to an engine goes unaudited.

A change that fails with a GatewayError is audited as a failure (status, detail from the error) in its own
transaction. One that lost an optimistic-locking race (`ConcurrentModification`) is attempted again, up to
`MAX_ATTEMPTS` in all. Changes do not nest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from gateway.db import Database, rowcount, utcnow
from gateway.errors import ConcurrentModification, GatewayError
from gateway.journal import AuditDraft, EventDraft
from gateway.tables import change_intents
from gateway.uow import UnitOfWork, transaction

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
STALE_INTENT_AGE = timedelta(minutes=10)  # far beyond any engine call's deadline


class ChangeLog:
    """Runs audited changes on one gateway database (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def attempts(self, actor: str, audit: AuditDraft, *, transactional: bool) -> Attempts:
        """The attempts of one change by `actor`, recorded as `audit` (its `resource_id` may be set in the body,
        or the entry dropped with `uow.audit(None)` when the change turned out to change nothing)."""
        return Attempts(self.db, actor, audit, transactional)

    async def refused(self, actor: str, audit: AuditDraft, error: GatewayError) -> None:
        """Audit a change refused before it reached the engine (no permission, not visible, lookup failed) as a
        failure with the error's status and detail."""
        await Attempts(self.db, actor, audit, transactional=True).fail(error)

    @contextlib.asynccontextmanager
    async def checking(self, actor: str, audit: AuditDraft) -> AsyncIterator[None]:
        """The access checks before a change: a GatewayError raised inside (no permission, not visible, lookup
        failed) is audited as a refused change (`refused`) and raised again."""
        try:
            yield
        except GatewayError as error:
            await self.refused(actor, audit, error)
            raise

    async def settle_stale_intents(self, older_than: timedelta = STALE_INTENT_AGE) -> int:
        """Audit every intent older than `older_than` with outcome `unknown`; returns how many were settled.

        Safe on several replicas at once: an intent is settled by whoever deletes it.
        """
        cutoff = utcnow() - older_than
        async with self.db.sessionmaker() as session:
            stale = (
                await session.execute(sa.select(change_intents).where(change_intents.c.started_at <= cutoff))
            ).all()
        settled = 0
        for intent in stale:
            async with transaction(self.db, actor=intent.actor) as uow:
                deleted = await uow.session.execute(change_intents.delete().where(change_intents.c.id == intent.id))
                if rowcount(deleted) != 1:
                    continue
                uow.audit(
                    AuditDraft(
                        **intent.audit,
                        outcome="unknown",
                        detail=f"The gateway stopped after sending this change to engine {intent.engine!r} at "
                        f"{intent.started_at.isoformat()} and before it recorded the answer; check the engine for "
                        "the outcome",
                    )
                )
                settled += 1
        if settled:
            log.warning("settled %d change(s) whose outcome the gateway never recorded", settled)
        return settled


class Attempts:
    """An async iterator of `Attempt`s: the next one only after a lost optimistic-locking race."""

    def __init__(self, db: Database, actor: str, audit: AuditDraft, transactional: bool) -> None:
        self.db, self.actor, self.audit, self.transactional = db, actor, audit, transactional
        self.made = 0
        self.finished = False
        self.intent_id: str | None = None

    def __aiter__(self) -> Attempts:
        return self

    async def __anext__(self) -> Attempt:
        if self.finished:
            raise StopAsyncIteration
        if not self.transactional and self.intent_id is None:
            self.intent_id = await self._record_intent()
        self.made += 1
        return Attempt(self)

    async def _record_intent(self) -> str:
        intent_id = str(uuid.uuid4())
        async with self.db.writer(), self.db.sessionmaker() as session, session.begin():
            await session.execute(
                change_intents.insert().values(
                    id=intent_id,
                    started_at=utcnow(),
                    actor=self.actor,
                    engine=self.audit.engine,
                    audit=_audit_fields(self.audit),
                )
            )
        return intent_id

    async def close(self, uow: UnitOfWork) -> None:
        """Write the outcome of a remote change: its journal and the intent's removal, in one transaction."""
        await self._record(uow.events, uow.audit_entry)

    async def fail(self, error: GatewayError) -> None:
        """Audit the failed change in its own transaction (the change itself rolled back or never happened)."""
        failed = dataclasses.replace(
            self.audit,
            engine=self.audit.engine or error.engine,
            status=error.status,
            outcome="failure",
            detail=error.detail,
        )
        await self._record([], failed)

    async def _record(self, events: list[EventDraft], audit: AuditDraft | None) -> None:
        async with transaction(self.db, actor=self.actor) as outcome:
            outcome.events, outcome.audit_entry = events, audit
            if self.intent_id is not None:
                await outcome.session.execute(change_intents.delete().where(change_intents.c.id == self.intent_id))


class Attempt:
    """One try of a change; `async with attempt as uow` runs the body in the change's unit of work."""

    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts
        self.uow: UnitOfWork | None = None
        self._transaction: Any = None

    async def __aenter__(self) -> UnitOfWork:
        attempts = self.attempts
        if attempts.transactional:
            self._transaction = transaction(attempts.db, actor=attempts.actor)
            self.uow = await self._transaction.__aenter__()
        else:
            self.uow = UnitOfWork(attempts.db, None, attempts.actor)
        self.uow.audit(dataclasses.replace(attempts.audit))
        return self.uow

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        attempts = self.attempts
        if self._transaction is not None:
            await self._transaction.__aexit__(exc_type, exc, tb)  # commits the journal with the change, or rolls back
        if exc is None:
            attempts.finished = True
            if self.uow is not None and not attempts.transactional:
                await attempts.close(self.uow)
            return False
        if not isinstance(exc, GatewayError):
            attempts.finished = True  # a bug or a database failure: a remote change's intent stays for the sweeper
            return False
        if isinstance(exc, ConcurrentModification) and attempts.made < MAX_ATTEMPTS:
            return True  # the engine rolled the change back: attempt it again
        attempts.finished = True
        if self.uow is not None and self.uow.audit_entry is not None:
            attempts.audit = self.uow.audit_entry  # keeps a resource id the body learned before failing
        await attempts.fail(exc)
        return False


def _audit_fields(audit: AuditDraft) -> dict[str, Any]:
    return {
        "operation": audit.operation,
        "resource_type": audit.resource_type,
        "resource_id": audit.resource_id,
        "engine": audit.engine,
        "request": audit.request,
        "status": audit.status,
        "tenant_id": audit.tenant_id,
    }
