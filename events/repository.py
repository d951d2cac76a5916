"""Every query of event delivery. Functions take the session of the running unit of work or a reader."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from events.models import Delivery, DeliveryStatus, EventFilter, Subscription
from events.tables import change_marks, deliveries, relay_positions, subscriptions
from gateway.db import utcnow
from gateway.errors import NotFound
from gateway.journal import event_public
from gateway.tables import change_intents, outbox

Row = sa.RowMapping


# ---------------------------------------------------------------- outbox reading
async def events_after(session: AsyncSession, position: int, limit: int) -> list[dict[str, Any]]:
    """Outbox events with a cursor above `position`, oldest first (as `GET /events` shows them)."""
    rows = await session.execute(sa.select(outbox).where(outbox.c.id > position).order_by(outbox.c.id).limit(limit))
    return [event_public(dict(row._mapping)) for row in rows]


async def events_between(
    session: AsyncSession, since: datetime, until: datetime, after: int, limit: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        sa.select(outbox)
        .where(outbox.c.occurred_at >= since, outbox.c.occurred_at < until, outbox.c.id > after)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return [event_public(dict(row._mapping)) for row in rows]


async def last_cursor(session: AsyncSession) -> int:
    return int(await session.scalar(sa.select(sa.func.coalesce(sa.func.max(outbox.c.id), 0))) or 0)


async def read_position(session: AsyncSession, relay: str) -> int:
    """A relay's durable position without locking it (0 before its first round)."""
    position = await session.scalar(sa.select(relay_positions.c.position).where(relay_positions.c.relay == relay))
    return int(position or 0)


async def lock_position(session: AsyncSession, relay: str, start: int = 0) -> int:
    """A relay's durable position (the cursor of the last event it handed on), locked until the transaction ends.

    A relay seen for the first time starts at `start`.
    """
    query = sa.select(relay_positions.c.position).where(relay_positions.c.relay == relay).with_for_update()
    position = await session.scalar(query)
    if position is None:
        await session.execute(relay_positions.insert().values(relay=relay, position=start, updated=utcnow()))
        return start  # the new row is this transaction's, locked until it ends
    return int(position)


async def save_position(session: AsyncSession, relay: str, position: int) -> None:
    await session.execute(
        relay_positions.update().where(relay_positions.c.relay == relay).values(position=position, updated=utcnow())
    )


# ---------------------------------------------------------------- subscriptions
def subscription_view(row: Row, *, secret: str | None = None) -> Subscription:
    return Subscription(
        id=row["id"],
        url=row["url"],
        event_types=row["event_types"],
        filter=EventFilter.model_validate(row["filter"]),
        format=row["format"],
        tenant_id=row["tenant_id"],
        active=row["active"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
        previous_secret_until=row["previous_secret_until"],
        secret=secret,
        created_by=row["created_by"],
        created=row["created"],
        updated=row["updated"],
    )


async def insert_subscription(session: AsyncSession, values: dict[str, Any]) -> Row:
    now = utcnow()
    values = {"id": str(uuid.uuid4()), "created": now, "updated": now, "failing_since": None, **values}
    await session.execute(subscriptions.insert().values(**values))
    return await get_subscription(session, values["id"])


def _of_tenants(tenants: frozenset[str] | None) -> list[sa.ColumnElement[bool]]:
    """Subscriptions of `tenants` (None: every subscription, with or without a tenant)."""
    return [] if tenants is None else [subscriptions.c.tenant_id.in_(sorted(tenants))]


async def get_subscription(
    session: AsyncSession, subscription_id: str, *, lock: bool = False, tenants: frozenset[str] | None = None
) -> Row:
    """One subscription; with `tenants`, only one of those tenants. NotFound when unknown or another tenant's
    (the same answer, so that it tells nothing about the other tenant)."""
    query = sa.select(subscriptions).where(subscriptions.c.id == subscription_id, *_of_tenants(tenants))
    row = (await session.execute(query.with_for_update() if lock else query)).mappings().first()
    if row is None:
        raise NotFound(f"Subscription {subscription_id} does not exist")
    return row


async def update_subscription(session: AsyncSession, subscription_id: str, values: dict[str, Any]) -> Row:
    await session.execute(
        subscriptions.update().where(subscriptions.c.id == subscription_id).values(updated=utcnow(), **values)
    )
    return await get_subscription(session, subscription_id)


async def delete_subscription(session: AsyncSession, subscription_id: str) -> None:
    await get_subscription(session, subscription_id, lock=True)
    await session.execute(deliveries.delete().where(deliveries.c.subscription_id == subscription_id))
    await session.execute(subscriptions.delete().where(subscriptions.c.id == subscription_id))


async def list_subscriptions(
    session: AsyncSession, offset: int, limit: int, tenants: frozenset[str] | None = None
) -> tuple[Sequence[Row], int]:
    """A page of subscriptions (of `tenants` when given), oldest first, and their total."""
    rows = (
        (
            await session.execute(
                sa.select(subscriptions)
                .where(*_of_tenants(tenants))
                .order_by(subscriptions.c.created, subscriptions.c.id)
                .offset(offset)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    total = await session.scalar(sa.select(sa.func.count()).select_from(subscriptions).where(*_of_tenants(tenants)))
    return rows, int(total or 0)


async def active_subscriptions(session: AsyncSession) -> Sequence[Row]:
    return (await session.execute(sa.select(subscriptions).where(subscriptions.c.active))).mappings().all()


# ---------------------------------------------------------------- deliveries
def delivery_view(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        subscription_id=row["subscription_id"],
        event_id=row["event_id"],
        event_cursor=str(row["event_cursor"]),
        event_type=row["event_type"],
        instance_id=row["instance_id"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == DeliveryStatus.PENDING else None,
        last_attempt_at=row["last_attempt_at"],
        response_status=row["response_status"],
        last_error=row["last_error"],
        created=row["created"],
        delivered_at=row["delivered_at"],
    )


def new_delivery(subscription_id: str, event: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "subscription_id": subscription_id,
        "event_cursor": int(event["cursor"]),
        "event_id": event["id"],
        "event_type": event["type"],
        "instance_id": event["instance_id"],
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created": now,
    }


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(deliveries.insert(), rows)


async def list_deliveries(
    session: AsyncSession, subscription_id: str, status: DeliveryStatus | None, offset: int, limit: int
) -> tuple[Sequence[Row], int]:
    conditions = [deliveries.c.subscription_id == subscription_id]
    if status is not None:
        conditions.append(deliveries.c.status == status.value)
    rows = (
        (
            await session.execute(
                sa.select(deliveries)
                .where(*conditions)
                .order_by(deliveries.c.event_cursor.desc(), deliveries.c.created.desc())
                .offset(offset)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    total = await session.scalar(sa.select(sa.func.count()).select_from(deliveries).where(*conditions))
    return rows, int(total or 0)


async def get_delivery(session: AsyncSession, subscription_id: str, delivery_id: str) -> Row:
    row = (
        (
            await session.execute(
                sa.select(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.subscription_id == subscription_id)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Subscription {subscription_id} has no delivery {delivery_id}")
    return row


async def update_delivery(session: AsyncSession, delivery_id: str, values: dict[str, Any]) -> None:
    await session.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))


async def due_deliveries(session: AsyncSession, now: datetime, limit: int) -> Sequence[Row]:
    """Pending, due deliveries of active subscriptions that no earlier event of their instance holds back,
    oldest event first, each joined with its subscription's url, format and secrets.

    An instance's delivery is held back while an earlier pending delivery of the same instance, on the same
    subscription, waits for a retry: a receiver never gets an instance's event before the earlier ones were
    delivered or dead-lettered. The caller sends an instance's deliveries in the order returned, stopping at
    the first failure.
    """
    waiting = deliveries.alias("waiting")
    held_back = sa.exists().where(
        waiting.c.subscription_id == deliveries.c.subscription_id,
        waiting.c.instance_id == deliveries.c.instance_id,
        waiting.c.status == DeliveryStatus.PENDING.value,
        waiting.c.next_attempt_at > now,
        waiting.c.event_cursor < deliveries.c.event_cursor,
    )
    query = (
        sa.select(
            deliveries,
            subscriptions.c.url,
            subscriptions.c.format,
            subscriptions.c.secret,
            subscriptions.c.previous_secret,
            subscriptions.c.previous_secret_until,
        )
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(
            subscriptions.c.active,
            deliveries.c.status == DeliveryStatus.PENDING.value,
            deliveries.c.next_attempt_at <= now,
            ~held_back,
        )
        .order_by(deliveries.c.event_cursor)
        .limit(limit)
    )
    return (await session.execute(query)).mappings().all()


async def record_delivered(session: AsyncSession, outcomes: list[dict[str, Any]]) -> None:
    """Mark deliveries delivered: `[{"delivery_id", "attempts", "at", "response_status"}]`, one statement."""
    if outcomes:
        await session.execute(
            deliveries.update()
            .where(deliveries.c.id == sa.bindparam("delivery_id"))
            .values(
                status=DeliveryStatus.DELIVERED.value,
                attempts=sa.bindparam("attempts"),
                last_attempt_at=sa.bindparam("at"),
                delivered_at=sa.bindparam("at"),
                response_status=sa.bindparam("response_status"),
                last_error=None,
            ),
            outcomes,
        )


async def events_by_cursor(session: AsyncSession, cursors: set[int]) -> dict[int, dict[str, Any]]:
    rows = await session.execute(sa.select(outbox).where(outbox.c.id.in_(cursors)))
    return {row.id: event_public(dict(row._mapping)) for row in rows}


async def next_due(session: AsyncSession) -> datetime | None:
    """When the earliest pending delivery of an active subscription is due."""
    return await session.scalar(
        sa.select(sa.func.min(deliveries.c.next_attempt_at))
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(subscriptions.c.active, deliveries.c.status == DeliveryStatus.PENDING.value)
    )


# ---------------------------------------------------------------- change feeds
async def lock_change_mark(session: AsyncSession, engine: str, feed: str) -> dict[str, Any]:
    """An engine's change-feed mark (`{}` before its first round), locked until the transaction ends."""
    query = (
        sa.select(change_marks.c.mark)
        .where(change_marks.c.engine == engine, change_marks.c.feed == feed)
        .with_for_update()
    )
    mark = await session.scalar(query)
    if mark is None:
        await session.execute(change_marks.insert().values(engine=engine, feed=feed, mark={}, updated=utcnow()))
        return {}  # the new row is this transaction's, locked until it ends
    return dict(mark)


async def save_change_mark(session: AsyncSession, engine: str, feed: str, mark: dict[str, Any]) -> None:
    await session.execute(
        change_marks.update()
        .where(change_marks.c.engine == engine, change_marks.c.feed == feed)
        .values(mark=mark, updated=utcnow())
    )


async def instance_events(session: AsyncSession, engine: str, instance_ids: set[str]) -> list[dict[str, Any]]:
    """Every outbox event of these instances on this engine, oldest first."""
    if not instance_ids:
        return []
    rows = await session.execute(
        sa.select(outbox.c.type, outbox.c.instance_id, outbox.c.data)
        .where(outbox.c.engine == engine, outbox.c.instance_id.in_(instance_ids))
        .order_by(outbox.c.id)
    )
    return [dict(row._mapping) for row in rows]


async def oldest_open_change(session: AsyncSession, engine: str) -> datetime | None:
    """When the oldest change the gateway is making on this engine began (`change_intents`): its events are not
    in the outbox yet, so the change feed reads nothing from that moment on."""
    return await session.scalar(
        sa.select(sa.func.min(change_intents.c.started_at)).where(change_intents.c.engine == engine)
    )


async def tasks_being_changed(session: AsyncSession, engine: str, started_before: datetime) -> set[str | None]:
    """The tasks the gateway began changing on this engine before `started_before` and has not recorded yet (the
    `resource_id` of open task `change_intents`; None for a change that names no task, such as claiming the next
    task of a queue)."""
    rows = await session.execute(
        sa.select(change_intents.c.audit).where(
            change_intents.c.engine == engine, change_intents.c.started_at <= started_before
        )
    )
    return {audit.get("resource_id") for (audit,) in rows if audit.get("resource_type") == "task"}
