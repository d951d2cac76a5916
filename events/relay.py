"""Moving events out of the outbox: to the Redis stream, to webhook deliveries, and from deliveries to receivers.

Each relay keeps a durable position (`event_relay_positions`, the cursor of the last event it handed on). A round
locks the position, reads the events after it and moves them, and saves the new position:
- the webhook fan-out writes the deliveries and the position in one transaction: exactly once;
- the Redis relay XADDs first and saves the position after: a crash between the two re-sends a batch, never
  loses one (each entry carries the event id, so consumers deduplicate);
- the dispatcher POSTs due deliveries and records each outcome; a crash before recording sends again, with the
  same `webhook-id`.
Only the leader replica runs them (`events.service.EventService`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from events import repository
from events.models import DeliveryStatus, delivered_to, envelope, event_json
from events.settings import EventSettings
from events.webhooks import Attempt, WebhookClient, refused_literal
from gateway.db import Database, utcnow
from gateway.errors import NotFound
from gateway.leader import wait_for_wake
from gateway.uow import UnitOfWork, reading, transaction

log = logging.getLogger(__name__)

SYSTEM = "system"
MAX_RETRY_AFTER = 86_400.0  # a receiver asking for more than a day is waited for a day


OUTBOX_CHANNEL = "pm_outbox"  # notified when a transaction that wrote events commits (migration i13_0001)
# Seconds between two looks at the outbox that nothing asked for, where a look is asked for: by a notification on
# PostgreSQL (the watch), by the watch's wake-up (the relays). A safety net: a look costs a statement or two, and
# at the poll interval (0.1 s) the idle gateway's event loops sent 38 statements a second.
SAFETY_NET_SECONDS = 5.0


class OutboxWatch:
    """The newest event cursor on every replica, for SSE streams (`wait_past`) and the leader's relays (`wakes`,
    set each time it moves).

    On PostgreSQL it listens on `OUTBOX_CHANNEL` on a connection of its own and reads the cursor as soon as a commit
    that wrote events is notified, so an event goes out without waiting a poll interval, and otherwise every
    SAFETY_NET_SECONDS; it reads every `interval` seconds while it does not listen (SQLite, whose single process
    polls; a listening connection lost and not yet replaced).
    """

    def __init__(self, db: Database, interval: float, wakes: list[asyncio.Event] | None = None) -> None:
        self.db = db
        self.interval = interval
        self.wakes = wakes or []
        self.latest = 0
        self._changed = asyncio.Condition()
        self._notified = asyncio.Event()
        self._listening: AsyncConnection | None = None
        self._listener: Any = None  # the asyncpg connection under `_listening`

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._listen()
                    async with reading(self.db) as session:
                        latest = await repository.last_cursor(session)
                    if latest != self.latest:
                        self.latest = latest
                        for wake in self.wakes:
                            wake.set()
                        async with self._changed:
                            self._changed.notify_all()
                except Exception:  # the database may be restarting; look again next interval
                    log.debug("reading the outbox's last cursor failed", exc_info=True)
                await wait_for_wake(self._notified, self.interval if self._listening is None else SAFETY_NET_SECONDS)
        finally:
            await self._unlisten()

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL (again, when the listening connection was lost)."""
        if self.db.is_sqlite:
            return
        if self._listening is not None:
            if not self._listening.closed and not self._listener.is_closed():
                return
            await self._unlisten()
        connection = await self.db.engine.connect()
        try:
            self._listener = (await connection.get_raw_connection()).driver_connection  # asyncpg's connection
            await self._listener.add_listener(OUTBOX_CHANNEL, self._on_notification)
        except BaseException:
            await connection.invalidate()
            await connection.close()
            raise
        self._listening = connection

    def _on_notification(self, *_: object) -> None:
        self._notified.set()

    async def _unlisten(self) -> None:
        connection, self._listening = self._listening, None
        if connection is not None:
            with contextlib.suppress(Exception):
                # Invalidating closes the database session, its LISTEN with it, instead of pooling it.
                await connection.invalidate()
                await connection.close()

    async def wait_past(self, cursor: int) -> None:
        """Return once an event newer than `cursor` exists; the caller bounds the wait (`asyncio.timeout`)."""
        if self.latest > cursor:
            return
        async with self._changed:
            await self._changed.wait_for(lambda: self.latest > cursor)


class RedisRelay:
    """Appends every event to the Redis stream (`XADD <stream> MAXLEN ~ N * id … event …`)."""

    RELAY = "redis"

    def __init__(self, db: Database, redis: Redis, settings: EventSettings) -> None:
        self.db = db
        self.redis = redis
        self.settings = settings

    async def run_once(self) -> int:
        """Move one batch; returns how many events were appended.

        No database transaction is open while Redis answers (on SQLite it would hold the single writer lock).
        """
        async with reading(self.db) as session:
            position = await repository.read_position(session, self.RELAY)
            events = await repository.events_after(session, position, self.settings.batch_size)
        if not events:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    self.settings.redis_stream,
                    stream_fields(event),  # type: ignore[arg-type]  # redis-py types the fields as an invariant dict of its own unions
                    maxlen=self.settings.redis_maxlen,
                    approximate=True,
                )
            await pipe.execute()
        async with transaction(self.db, actor=SYSTEM) as uow:
            if await repository.lock_position(uow.session, self.RELAY) == position:
                await repository.save_position(uow.session, self.RELAY, int(events[-1]["cursor"]))
        return len(events)


def stream_fields(event: dict[str, Any]) -> dict[str, str]:
    """A stream entry: `id` (the event id, for deduplication), `cursor`, `type`, `instance_id`, `tenant_id` (empty
    for an event of no tenant; a consumer serving one tenant skips the others without parsing `event`), `event`
    (JSON)."""
    return {
        "id": event["id"],
        "cursor": event["cursor"],
        "type": event["type"],
        "instance_id": event["instance_id"] or "",
        "tenant_id": event["tenant_id"] or "",
        "event": event_json(envelope(event)).decode(),
    }


class WebhookFanOut:
    """Turns each new event into one pending delivery per active subscription it matches (`delivered_to`: a
    subscription of a tenant gets only that tenant's events); sets `written` (the dispatcher's wake-up) once new
    deliveries are committed, so they go out without waiting a poll interval."""

    RELAY = "webhooks"

    def __init__(self, db: Database, settings: EventSettings, written: asyncio.Event | None = None) -> None:
        self.db = db
        self.settings = settings
        self.written = written

    async def run_once(self) -> int:
        """Fan out one batch; returns how many events were handed on. It runs when the watch saw new events (and
        every SAFETY_NET_SECONDS), so it locks its position at once: a look without the lock first cost two more
        statements per round and widened the window in which a subscription made just after events still gets
        them (`ecd6d67`)."""
        async with transaction(self.db, actor=SYSTEM) as uow:
            position = await repository.lock_position(uow.session, self.RELAY)
            events = await repository.events_after(uow.session, position, self.settings.batch_size)
            if not events:
                return 0
            now = utcnow()
            subscriptions = await repository.active_subscriptions(uow.session)
            rows = [
                repository.new_delivery(subscription["id"], event, now)
                for event in events
                for subscription in subscriptions
                if delivered_to(event, subscription)
            ]
            await repository.insert_deliveries(uow.session, rows)
            await repository.save_position(uow.session, self.RELAY, int(events[-1]["cursor"]))
        if rows and self.written is not None:
            self.written.set()
        return len(events)


class WebhookDispatcher:
    """POSTs due deliveries (one per instance and subscription at a time) and records each outcome. Sets `due` (its
    own wake-up) when a retry it scheduled falls due; retries scheduled before this process led are found by the
    loop's safety net."""

    def __init__(self, db: Database, settings: EventSettings, due: asyncio.Event | None = None) -> None:
        self.db = db
        self.settings = settings
        self.due = due
        self.client = WebhookClient(
            concurrency=settings.webhook_concurrency,
            timeout=settings.webhook_timeout,
            allow_private=settings.allow_private_targets,
        )
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)

    async def close(self) -> None:
        await self.client.close()

    async def run_once(self) -> int:
        """Attempt one batch of due deliveries; returns how many were attempted.

        Each instance's deliveries (per subscription) go out one after the other in event order, stopping at
        the first failure; different instances go out concurrently.
        """
        now = utcnow()
        async with reading(self.db) as session:
            due = await repository.due_deliveries(session, now, self.settings.batch_size)
            events = await repository.events_by_cursor(session, {row["event_cursor"] for row in due}) if due else {}
        queues: dict[tuple[str, str], list[Any]] = {}
        for row in due:
            queues.setdefault((row["subscription_id"], row["instance_id"] or row["id"]), []).append(row)
        outcomes = await asyncio.gather(*(self._send_in_order(queue, events, now) for queue in queues.values()))
        attempted = [outcome for queue_outcomes in outcomes for outcome in queue_outcomes]
        if attempted:
            async with transaction(self.db, actor=SYSTEM) as uow:
                await self._record(uow, attempted)
        return len(attempted)

    async def _send_in_order(
        self, queue: list[Any], events: dict[int, dict[str, Any]], now: datetime
    ) -> list[tuple[Any, Attempt]]:
        outcomes = []
        for row in queue:
            attempt = await self._attempt(row, events[row["event_cursor"]], now)
            outcomes.append((row, attempt))
            if not attempt.ok:
                break
        return outcomes

    async def _attempt(self, row: Any, event: dict[str, Any], now: datetime) -> Attempt:
        signing = [row["secret"]]
        if row["previous_secret"] and row["previous_secret_until"] and row["previous_secret_until"] > now:
            signing.append(row["previous_secret"])
        if not self.settings.allow_private_targets and (refused := refused_literal(row["url"])):
            return Attempt(False, None, refused, None, 0)
        async with self._slots:
            return await self.client.post(row["url"], row["event_id"], event, row["format"], signing)

    async def _record(self, uow: UnitOfWork, attempted: list[tuple[Any, Attempt]]) -> None:
        now = utcnow()
        await repository.record_delivered(
            uow.session,
            [
                {"delivery_id": row["id"], "attempts": row["attempts"] + 1, "at": now, "response_status": a.status}
                for row, a in attempted
                if a.ok
            ],
        )
        succeeded = {row["subscription_id"] for row, attempt in attempted if attempt.ok}
        failed = [(row, attempt) for row, attempt in attempted if not attempt.ok]
        for subscription_id in sorted(succeeded | {row["subscription_id"] for row, _ in failed}):
            try:
                subscription = await repository.get_subscription(uow.session, subscription_id, lock=True)
            except NotFound:
                continue  # deleted while the requests were in flight, its deliveries with it
            failures = [(row, attempt) for row, attempt in failed if row["subscription_id"] == subscription_id]
            for row, attempt in failures:
                await self._record_failure(uow, row, attempt, now)
            if any(attempt.gone for _, attempt in failures):
                await disable(uow, subscription, "the receiver answered 410 Gone")
            elif subscription_id in succeeded:
                if subscription["failing_since"] is not None:
                    await repository.update_subscription(uow.session, subscription_id, {"failing_since": None})
            elif failures:
                await self._subscription_failed(uow, subscription, failures, now)

    async def _record_failure(self, uow: UnitOfWork, row: Any, attempt: Attempt, now: datetime) -> None:
        attempts = row["attempts"] + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "response_status": attempt.status,
            "last_error": attempt.error,
        }
        if attempt.gone or attempts >= len(self.settings.webhook_retry_schedule):
            values["status"] = DeliveryStatus.FAILED.value
        else:
            delay = self.retry_delay(attempts, attempt.retry_after)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
            if self.due is not None:
                asyncio.get_running_loop().call_later(delay, self.due.set)
        await repository.update_delivery(uow.session, row["id"], values)

    async def _subscription_failed(
        self, uow: UnitOfWork, subscription: Any, failures: list[tuple[Any, Attempt]], now: datetime
    ) -> None:
        """Nothing went through to this subscription this round: failing for too long disables it."""
        failing_since = subscription["failing_since"] or now
        if now - failing_since >= self.settings.webhook_disable_after:
            await disable(uow, subscription, f"every delivery failed since {failing_since.isoformat()}")
        elif subscription["failing_since"] is None:
            await repository.update_subscription(uow.session, subscription["id"], {"failing_since": now})

    def retry_delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before attempt number `attempts + 1`: the receiver's Retry-After if it sent one, else the
        schedule's delay varied by up to ± the jitter fraction (so retries of many deliveries spread out)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        delay = self.settings.webhook_retry_schedule[attempts]
        return delay * (1 + random.uniform(-self.settings.webhook_jitter, self.settings.webhook_jitter))


async def disable(uow: UnitOfWork, subscription: Any, reason: str) -> None:
    """Deactivate a subscription the gateway gave up on and emit `subscription.disabled`."""
    if not subscription["active"]:
        return
    await repository.update_subscription(uow.session, subscription["id"], {"active": False, "disabled_reason": reason})
    uow.emit(
        "subscription.disabled",
        engine=None,
        tenant_id=subscription["tenant_id"],
        data={"subscription_id": subscription["id"], "url": subscription["url"], "reason": reason},
    )
    log.warning("Webhook subscription %s disabled: %s", subscription["id"], reason)
