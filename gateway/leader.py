"""Background work on the leader replica: `Leadership` elects one replica per database and kind of work, and
`LeaderLoops` runs that work's loops there (the Incident Center, the event relays and change feeds).

A SQLite deployment is one process: always the leader. On PostgreSQL the leader holds an advisory lock on a
connection of its own; a replica that stops or dies releases it with its connection, and another takes it at
its next refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import Database
from gateway.logs import log_failed_round
from gateway.resilience import mark_background

log = logging.getLogger(__name__)


class Leadership:
    """Whether this replica runs the background work. A SQLite deployment is one process: always the leader.

    Each kind of background work elects its leader with a lock id of its own (`lock_id`); `role` names it in logs.
    """

    def __init__(self, db: Database, lock_id: int, role: str) -> None:
        self.db = db
        self.lock_id = lock_id
        self.role = role
        self._connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self.db.is_sqlite or self._connection is not None

    async def refresh(self) -> bool:
        """Keep the lock (checking its connection still lives) or try to take it."""
        if self.db.is_sqlite:
            return True
        if self._connection is not None:
            try:
                await self._connection.execute(sa.text("SELECT 1"))
                return True
            except Exception:
                log.warning("%s: the leader's database connection failed; leadership released", self.role)
                await self._drop()
        connection = await self.db.engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            acquired = await connection.scalar(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": self.lock_id})
        except BaseException:
            await connection.close()
            raise
        if not acquired:
            await connection.close()
            return False
        self._connection = connection
        log.info("%s: this replica is the leader and runs its background work", self.role)
        return True

    async def release(self) -> None:
        if self._connection is None:
            return
        try:
            await self._connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": self.lock_id})
            await self._connection.close()
        except Exception:
            await self._drop()
        self._connection = None

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Invalidating closes the database session itself, which releases the lock, instead of pooling it.
            await connection.invalidate()
            await connection.close()


async def wait_for_wake(wake: asyncio.Event, seconds: float) -> None:
    """Wait until `wake` is set or `seconds` have passed, then clear it.

    Not `asyncio.wait_for(wake.wait(), ...)`: on Python 3.11 it swallows a cancellation that arrives as the event
    is set, and the loop it sleeps in then outlives the application's shutdown. `asyncio.timeout` tells its own
    timeout from a cancellation.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()
    wake.clear()


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class LeaderWork:
    """One loop of background work: `run` does one round and returns how much it found. A truthy count runs the
    next round at once (with `batch`, only a full batch: a round that found fewer took all there was); None or 0
    waits `interval` seconds, or until `wake` is set."""

    name: str
    run: Callable[[], Awaitable[int | None]]
    interval: float
    wake: asyncio.Event | None = None
    batch: int | None = None


class LeaderLoops:
    """Runs `LeaderWork` loops while this replica holds `leadership`, refreshing it every `refresh_interval`
    seconds. A failed round is logged once (and its recovery once) and tried again at the next interval."""

    def __init__(self, leadership: Leadership, refresh_interval: float) -> None:
        self.leadership = leadership
        self.refresh_interval = refresh_interval
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def role(self) -> str:
        return self.leadership.role

    async def start(self, works: list[LeaderWork]) -> None:
        await self._refresh()
        self._tasks = [asyncio.create_task(self._keep_leadership(), name=f"{self.role}: leadership")]
        self._tasks += [asyncio.create_task(self._loop(work), name=f"{self.role}: {work.name}") for work in works]

    async def stop(self) -> None:
        """Cancel every loop, then release the leadership."""
        await cancel_tasks(self._tasks)
        self._tasks = []
        await self.leadership.release()

    async def _refresh(self) -> None:
        try:
            await self.leadership.refresh()
        except Exception:  # the database may be restarting: try again at the next interval
            log.exception("%s: checking leadership failed", self.role)

    async def _keep_leadership(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self._refresh()

    async def _loop(self, work: LeaderWork) -> None:
        mark_background()
        failing = False
        while True:
            found: int | None = None
            if self.leadership.held:
                try:
                    found = await work.run()
                    if failing:
                        log.info("%s: %s works again", self.role, work.name)
                    failing = False
                except Exception as exc:  # a failed round is tried again at the next interval
                    if not failing:
                        log_failed_round(log, exc, f"{self.role}: {work.name}", work.interval)
                    failing = True
            if not found or (work.batch is not None and found < work.batch):
                await self._sleep(work)

    @staticmethod
    async def _sleep(work: LeaderWork) -> None:
        if work.wake is None:
            await asyncio.sleep(work.interval)
            return
        await wait_for_wake(work.wake, work.interval)
