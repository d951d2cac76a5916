"""Event delivery in one gateway process: the subscription operations the API uses and, on the leader replica,
the relays (Redis stream, webhook fan-out and dispatch) and the engines' change feeds, each in a loop of its own.

The leader is elected like the Incident Center's (`gateway.leader`, a PostgreSQL advisory lock held on a
connection of its own) with a lock of its own, so the two kinds of work may run on different replicas.
A replica that stops or dies releases the lock with its connection; another takes over at its next refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from events import repository
from events.feeds import ChangeFeed
from events.models import (
    DeliveryStatus,
    EventFilter,
    RecoverRequest,
    Subscription,
    SubscriptionCreate,
    SubscriptionUpdate,
    TestDeliveryResult,
    delivered_to,
)
from events.relay import SAFETY_NET_SECONDS, OutboxWatch, RedisRelay, WebhookDispatcher, WebhookFanOut
from events.settings import EventSettings
from events.webhooks import check_target, new_secret
from gateway.auth import Caller
from gateway.db import Database, utcnow
from gateway.errors import Conflict, ValidationFailed
from gateway.leader import LeaderLoops, Leadership, LeaderWork, cancel_tasks
from gateway.registry import EngineRegistry
from gateway.uow import UnitOfWork, reading
from gateway.variables import format_datetime

log = logging.getLogger(__name__)

EVENTS_LEADER_LOCK_ID = 7_301_013  # PostgreSQL advisory lock held by the replica that relays events
LEADERSHIP_INTERVAL = 1.0
DISPATCH_INTERVAL = 1.0  # seconds: at most this long before a delivery queued on another replica goes out
RECOVER_BATCH = 1000
RECOVER_LIMIT = 100_000


class EventService:
    def __init__(
        self, db: Database, registry: EngineRegistry, settings: EventSettings, redis: Redis | None = None
    ) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.leadership = Leadership(db, EVENTS_LEADER_LOCK_ID, "Event relay")
        self.loops = LeaderLoops(self.leadership, LEADERSHIP_INTERVAL)
        self.events_written = asyncio.Event()  # set by the watch: the fan-out's wake-up
        self.stream_events_written = asyncio.Event()  # the same, for the Redis relay
        self.watch = OutboxWatch(db, settings.poll_interval, [self.events_written, self.stream_events_written])
        self.deliveries_written = asyncio.Event()
        self.fan_out = WebhookFanOut(db, settings, self.deliveries_written)
        self.dispatcher = WebhookDispatcher(db, settings, due=self.deliveries_written)
        self.redis_relay = RedisRelay(db, redis, settings) if redis is not None else None
        self.change_feeds = change_feeds(db, registry, settings)
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Each loop is woken when it has work: the fan-out and the Redis relay by the watch when events were written,
        # the dispatcher by new deliveries (the fan-out's, this replica's API calls) and by its own retries falling
        # due. Their intervals are a safety net; the dispatcher's is shorter for deliveries queued by another
        # replica's API calls (a retried or recovered delivery), which cannot wake it.
        works = [
            LeaderWork(
                "webhook fan-out",
                self.fan_out.run_once,
                SAFETY_NET_SECONDS,
                wake=self.events_written,
                batch=self.settings.batch_size,
            ),
            LeaderWork(
                "webhook dispatch",
                self.dispatcher.run_once,
                DISPATCH_INTERVAL,
                wake=self.deliveries_written,
                batch=self.settings.batch_size,
            ),
        ]
        if self.redis_relay is not None:
            works.append(
                LeaderWork(
                    "Redis stream relay",
                    self.redis_relay.run_once,
                    SAFETY_NET_SECONDS,
                    wake=self.stream_events_written,
                    batch=self.settings.batch_size,
                )
            )
        works += [
            LeaderWork(f"change feed of {feed.engine}", feed.run_once, self.settings.change_feed_interval)
            for feed in self.change_feeds
        ]
        self._watch = asyncio.create_task(self.watch.run(), name="events: outbox watch")
        await self.loops.start(works)

    async def stop(self) -> None:
        if self._watch is not None:
            await cancel_tasks([self._watch])
            self._watch = None
        await self.loops.stop()
        await self.dispatcher.close()

    # ------------------------------------------------------------ subscriptions
    async def create_subscription(self, uow: UnitOfWork, body: SubscriptionCreate, caller: Caller) -> Subscription:
        """Create a webhook subscription of one of the caller's tenants (`Caller.tenant_for_new`: `body.tenant_id`
        or the caller's only tenant; none for a caller of every tenant who names none); its secret is returned
        here only (generated when not given).

        Raises Forbidden / BadRequest for the tenant (see `Caller.tenant_for_new`), ValidationFailed (422) for a
        filter on an engine that is not configured or a target on a private, loopback or link-local address unless
        allowed.
        """
        tenant_id = caller.tenant_for_new(body.tenant_id, "subscribe to events")
        self._check_filter(body.filter)
        url = str(body.url)
        await check_target(url, allow_private=self.settings.allow_private_targets)
        secret = body.secret or new_secret()
        row = await repository.insert_subscription(
            uow.session,
            {
                "url": url,
                "event_types": body.event_types,
                "filter": body.filter.model_dump(exclude_none=True),
                "format": body.format.value,
                "secret": secret,
                "active": body.active,
                "tenant_id": tenant_id,
                "created_by": caller.actor,
            },
        )
        return repository.subscription_view(row, secret=secret)

    async def update_subscription(
        self, uow: UnitOfWork, subscription_id: str, body: SubscriptionUpdate
    ) -> Subscription:
        """Change a subscription. A new secret rotates: the old one keeps signing for the configured overlap.
        Activating clears what disabled it; its pending deliveries then go out again."""
        current = await repository.get_subscription(uow.session, subscription_id, lock=True)
        values: dict[str, Any] = {}
        if body.url is not None:
            await check_target(str(body.url), allow_private=self.settings.allow_private_targets)
            values["url"] = str(body.url)
        if body.event_types is not None:
            values["event_types"] = body.event_types
        if body.filter is not None:
            self._check_filter(body.filter)
            values["filter"] = body.filter.model_dump(exclude_none=True)
        if body.format is not None:
            values["format"] = body.format.value
        if body.secret is not None and body.secret != current["secret"]:
            values.update(
                secret=body.secret,
                previous_secret=current["secret"],
                previous_secret_until=utcnow() + self.settings.webhook_secret_overlap,
            )
        if body.active is not None:
            values["active"] = body.active
            if body.active:
                values.update(disabled_reason=None, failing_since=None)
        row = await repository.update_subscription(uow.session, subscription_id, values) if values else current
        return repository.subscription_view(row, secret=body.secret if "secret" in values else None)

    def _check_filter(self, event_filter: EventFilter) -> None:
        """ValidationFailed (422) for a filter on an engine that is not configured: it would match no event."""
        if event_filter.engine is not None and event_filter.engine not in self.registry.engines:
            raise ValidationFailed(
                f"filter.engine {event_filter.engine!r} is not a configured engine; the engines are "
                f"{', '.join(sorted(self.registry.engines))}"
            )

    def deliveries_queued(self) -> None:
        """Wake this replica's dispatcher: deliveries were committed (a retry, a recovered window)."""
        self.deliveries_written.set()

    async def retry_delivery(self, uow: UnitOfWork, subscription_id: str, delivery_id: str) -> None:
        """Send a failed (dead-lettered) delivery again, with a fresh retry schedule. A pending one is a Conflict."""
        delivery = await repository.get_delivery(uow.session, subscription_id, delivery_id)
        if delivery["status"] == DeliveryStatus.PENDING:
            raise Conflict(
                f"Delivery {delivery_id} is pending already; it is tried at {format_datetime(delivery['next_attempt_at'])}"
            )
        await repository.update_delivery(
            uow.session,
            delivery_id,
            {"status": DeliveryStatus.PENDING.value, "attempts": 0, "next_attempt_at": utcnow(), "delivered_at": None},
        )

    async def recover(self, uow: UnitOfWork, subscription_id: str, window: RecoverRequest) -> int:
        """Queue a new delivery of every event that occurred in [since, until) and goes to the subscription
        (`delivered_to`: its types, filter and tenant); returns their number.

        Raises ValidationFailed when the window is empty or holds more than 100,000 events (replay in parts).
        """
        subscription = await repository.get_subscription(uow.session, subscription_id)
        until = window.until or utcnow()
        since = _utc(window.since)
        if _utc(until) <= since:
            raise ValidationFailed("The window is empty: `until` must be after `since`")
        now, after, queued = utcnow(), 0, 0
        while True:
            events = await repository.events_between(uow.session, since, _utc(until), after, RECOVER_BATCH)
            if not events:
                return queued
            rows = [
                repository.new_delivery(subscription_id, event, now)
                for event in events
                if delivered_to(event, subscription)
            ]
            queued += len(rows)
            if queued > RECOVER_LIMIT:
                raise ValidationFailed(f"The window holds more than {RECOVER_LIMIT} events; recover it in parts")
            await repository.insert_deliveries(uow.session, rows)
            after = int(events[-1]["cursor"])

    async def test_delivery(self, subscription_id: str, caller: Caller) -> TestDeliveryResult:
        """POST a `process_manager.subscription.test` event (not in the outbox, of the subscription's tenant) now
        and report the answer. NotFound for an unknown subscription or one of a tenant not the caller's."""
        async with reading(self.db) as session:
            subscription = await repository.get_subscription(session, subscription_id, tenants=caller.tenants)
        now = utcnow()
        event: dict[str, Any] = {
            "id": f"test-{int(time.time() * 1000)}",
            "cursor": "0",
            "type": "process_manager.subscription.test",
            "occurred_at": now,
            "engine": None,
            "tenant_id": subscription["tenant_id"],
            "actor": caller.actor,
            "instance_id": None,
            "data": {"subscription_id": subscription_id},
        }
        signing = [subscription["secret"]]
        if subscription["previous_secret"] and (subscription["previous_secret_until"] or now) > now:
            signing.append(subscription["previous_secret"])
        attempt = await self.dispatcher.client.post(
            subscription["url"], event["id"], event, subscription["format"], signing
        )
        return TestDeliveryResult(
            delivered=attempt.ok, response_status=attempt.status, error=attempt.error, duration_ms=attempt.duration_ms
        )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def change_feeds(db: Database, registry: EngineRegistry, settings: EventSettings) -> list[ChangeFeed]:
    """One change feed per engine whose adapter reads its engine's changes (the HTTP engines)."""
    return [ChangeFeed(db, handle, settings) for handle in registry.engines.values() if handle.adapter.observes_changes]
