"""The event delivery API (API.md "Events"): the SSE stream and webhook subscriptions with their deliveries.

The stream needs `events:read` and carries only events of the caller's tenants; subscriptions and their deliveries
need `subscriptions:manage`. A subscription belongs to a tenant (`tenant_id`, fixed at creation) and receives only
its events; a caller limited to tenants sees and changes only their tenants' subscriptions (another tenant's
answers 404, as an unknown id). Refused subscription changes are audited like failed ones (`gateway.changes`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from events import repository
from events.models import (
    Delivery,
    DeliveryStatus,
    RecoverAccepted,
    RecoverRequest,
    Subscription,
    SubscriptionCreate,
    SubscriptionUpdate,
    TestDeliveryResult,
    envelope,
    event_json,
    matches,
)
from events.service import EventService
from gateway.api.context import CurrentCaller
from gateway.auth import Caller
from gateway.changes import ChangeLog
from gateway.errors import BadRequest
from gateway.journal import AuditDraft, known_event_types
from gateway.schemas import MAX_PAGE, Page
from gateway.uow import UnitOfWork, reading
from gateway.variables import INT64_MAX

router = APIRouter(prefix="/api/processes", tags=["events"])
T = TypeVar("T")
STREAM_PAGE = 500


def event_service(request: Request) -> EventService:
    return request.app.state.events


Events = Annotated[EventService, Depends(event_service)]


async def _audited(
    service: EventService,
    caller: Caller,
    operation: str,
    subscription_id: str | None,
    request: dict[str, Any],
    change: Callable[[UnitOfWork], Awaitable[T]],
    status_code: int = 200,
) -> T:
    """Run a subscription change (`subscriptions:manage`) as an audited change (`gateway.changes`); a failed or
    refused one is audited too. The change of an existing subscription first reads it among the caller's
    tenants (NotFound otherwise); the audit row carries the subscription's tenant."""
    audit = AuditDraft(
        operation, "subscription", subscription_id, None, request, status_code, tenant_id=caller.home_tenant
    )
    async with ChangeLog(service.db).checking(caller.actor, audit):
        caller.require("subscriptions:manage")
    async for attempt in ChangeLog(service.db).attempts(caller.actor, audit, transactional=True):
        async with attempt as uow:
            if subscription_id is not None:
                current = await repository.get_subscription(uow.session, subscription_id, tenants=caller.tenants)
                _audit_tenant(uow, current["tenant_id"])
            result = await change(uow)
            if subscription_id is None and uow.audit_entry is not None:
                uow.audit_entry.resource_id = getattr(result, "id", None)
                _audit_tenant(uow, getattr(result, "tenant_id", None))
    return result


def _audit_tenant(uow: UnitOfWork, tenant_id: str | None) -> None:
    """The audit row belongs to the subscription's tenant: who may read it."""
    if uow.audit_entry is not None:
        uow.audit_entry.tenant_id = tenant_id


def _safe_request(body: Any) -> dict[str, Any]:
    """The request as audited: never the secret."""
    data = body.model_dump(mode="json", exclude_unset=True)
    if data.get("secret"):
        data["secret"] = "***"
    return data


# ------------------------------------------------------------------ SSE
def _cursor_of(last_event_id: str) -> int:
    """The cursor a `Last-Event-ID` header names: ASCII digits within the signed 64-bit range (the outbox's
    cursors), else BadRequest (400)."""
    text = last_event_id.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= INT64_MAX):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise BadRequest(f"Last-Event-ID must be an event cursor (a whole number up to {INT64_MAX}), not '{shown}'")
    return int(text)


@router.get(
    "/events/stream",
    summary="Server-Sent Events: every event as it is written, resumable by cursor",
    description="Each SSE message has `id:` = the event cursor, `event:` = the event type and `data:` = the event "
    "envelope as JSON. Resume after a disconnect or a gateway restart with the `Last-Event-ID` header (browsers "
    "send it on their own) or `?after=CURSOR`; without either the stream starts with the next new event "
    "(`?after=0`: from the first event). The stream opens with a message of `retry:` and `id:` (the cursor it starts "
    "after, so that a reconnection before the first event misses nothing) and no data, and sends a `: ping` comment at "
    "least every 15 seconds. Needs `events:read`; carries only the events of the caller's tenants. It ends once the "
    "caller's token has expired (within a heartbeat): reconnect with a fresh token and `Last-Event-ID`.",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An endless event stream"}},
)
async def stream_events(
    request: Request,
    service: Events,
    caller: CurrentCaller,
    after: Annotated[int | None, Query(ge=0, description="Cursor of the last event seen")] = None,
    types: Annotated[str | None, Query(description="Comma-separated event types, e.g. task.created")] = None,
    instance_id: Annotated[str | None, Query(description="Only events of this process instance")] = None,
    definition_key: Annotated[str | None, Query(description="Only events of this process definition key")] = None,
    last_event_id: Annotated[str | None, Header(description="The `id:` of the last event received")] = None,
) -> EventSourceResponse:
    caller.require("events:read")
    if last_event_id is not None:
        cursor = _cursor_of(last_event_id)
    elif after is not None:
        cursor = after
    else:
        async with reading(service.db) as session:
            cursor = await repository.last_cursor(session)
    try:
        wanted = known_event_types(types.split(",")) if types else []
    except ValueError as error:
        raise BadRequest(f"types: {error}") from None
    event_filter = {"instance_id": instance_id, "definition_key": definition_key}
    settings = service.settings

    async def messages() -> AsyncIterator[ServerSentEvent]:
        nonlocal cursor
        # The opening message's `id:` is the cursor the stream starts after: a client that reconnects before any
        # event arrived resumes from there (Last-Event-ID), not from the newest event at reconnection.
        yield ServerSentEvent(id=str(cursor), retry=settings.sse_retry_ms, comment="pm-gateway event stream")
        while not caller.expired():  # an expired token ends the stream (within a heartbeat); the client reconnects
            async with reading(service.db) as session:
                events = await repository.events_after(session, cursor, STREAM_PAGE)
            for event in events:
                cursor = int(event["cursor"])
                if caller.sees_tenant(event["tenant_id"]) and matches(event, wanted, event_filter):
                    yield ServerSentEvent(
                        id=event["cursor"], event=event["type"], data=event_json(envelope(event)).decode()
                    )
            if len(events) < STREAM_PAGE:
                with contextlib.suppress(TimeoutError):  # nothing new within a heartbeat: read again
                    async with asyncio.timeout(settings.sse_heartbeat):
                        await service.watch.wait_past(cursor)

    return EventSourceResponse(messages(), ping=settings.sse_heartbeat, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------ subscriptions
@router.post(
    "/subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=Subscription,
    summary="Subscribe a webhook to events (the answer holds the signing secret, shown only here)",
)
async def create_subscription(body: SubscriptionCreate, service: Events, caller: CurrentCaller) -> Subscription:
    """Register a webhook receiver for event types (and an optional filter) of one tenant: `tenant_id`, by default the caller's only tenant (see the field); it receives only that tenant's events. Deliveries are signed per the Standard Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and with `X-PM-Signature: sha256=<hex HMAC of the body>`; target URLs on private, loopback or link-local addresses are refused unless allowed by a setting."""
    return await _audited(
        service,
        caller,
        "create",
        None,
        _safe_request(body),
        lambda uow: service.create_subscription(uow, body, caller),
        status.HTTP_201_CREATED,
    )


@router.get("/subscriptions", response_model=Page[Subscription], summary="List webhook subscriptions")
async def list_subscriptions(
    service: Events,
    caller: CurrentCaller,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The webhook subscriptions of the caller's tenants (a caller of every tenant: all of them), paged; secrets
    are never shown. Needs `subscriptions:manage`."""
    caller.require("subscriptions:manage")
    async with reading(service.db) as session:
        rows, total = await repository.list_subscriptions(session, (page - 1) * size, size, caller.tenants)
    return {"items": [repository.subscription_view(row) for row in rows], "total": total, "page": page, "size": size}


@router.get("/subscriptions/{subscription_id}", response_model=Subscription, summary="One webhook subscription")
async def get_subscription(subscription_id: str, service: Events, caller: CurrentCaller) -> Subscription:
    """One subscription with its state (active, failing since, disabled). 404 when unknown or of a tenant not the
    caller's. Needs `subscriptions:manage`."""
    caller.require("subscriptions:manage")
    async with reading(service.db) as session:
        return repository.subscription_view(
            await repository.get_subscription(session, subscription_id, tenants=caller.tenants)
        )


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=Subscription,
    summary="Change a subscription: url, types, filter, format, active; a new secret starts a rotation",
)
async def update_subscription(
    subscription_id: str, body: SubscriptionUpdate, service: Events, caller: CurrentCaller
) -> Subscription:
    """Change url, event types, filter, format or active; giving a new secret starts a rotation during which both signatures are sent. The tenant stays. 404 when the subscription is unknown or of a tenant not the caller's."""
    return await _audited(
        service,
        caller,
        "update",
        subscription_id,
        _safe_request(body),
        lambda uow: service.update_subscription(uow, subscription_id, body),
    )


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a subscription and its deliveries",
)
async def delete_subscription(subscription_id: str, service: Events, caller: CurrentCaller) -> Response:
    """Delete a subscription and its delivery records; nothing more is sent to it. 404 when the subscription is unknown or of a tenant not the caller's."""
    await _audited(
        service,
        caller,
        "delete",
        subscription_id,
        {},
        lambda uow: repository.delete_subscription(uow.session, subscription_id),
        status.HTTP_204_NO_CONTENT,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=Page[Delivery],
    summary="A subscription's deliveries, newest event first (`status=failed`: the dead letters)",
)
async def list_deliveries(
    subscription_id: str,
    service: Events,
    caller: CurrentCaller,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Deliveries of one subscription, newest event first; `status=failed` lists the dead-lettered ones. 404 when
    the subscription is unknown or of a tenant not the caller's. Needs `subscriptions:manage`."""
    caller.require("subscriptions:manage")
    async with reading(service.db) as session:
        await repository.get_subscription(session, subscription_id, tenants=caller.tenants)
        rows, total = await repository.list_deliveries(
            session, subscription_id, delivery_status, (page - 1) * size, size
        )
    return {"items": [repository.delivery_view(row) for row in rows], "total": total, "page": page, "size": size}


@router.post(
    "/subscriptions/{subscription_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Delivery,
    summary="Send a failed delivery again, with a fresh retry schedule",
)
async def retry_delivery(subscription_id: str, delivery_id: str, service: Events, caller: CurrentCaller) -> Delivery:
    """Send a failed (dead-lettered) delivery again now, with a fresh retry schedule. 404 when the subscription is unknown or of a tenant not the caller's."""

    async def change(uow: UnitOfWork) -> Delivery:
        await service.retry_delivery(uow, subscription_id, delivery_id)
        return repository.delivery_view(await repository.get_delivery(uow.session, subscription_id, delivery_id))

    delivery = await _audited(
        service,
        caller,
        "retry_delivery",
        subscription_id,
        {"delivery_id": delivery_id},
        change,
        status.HTTP_202_ACCEPTED,
    )
    service.deliveries_queued()
    return delivery


@router.post(
    "/subscriptions/{subscription_id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoverAccepted,
    summary="Deliver again every matching event of a time window [since, until)",
)
async def recover(
    subscription_id: str, body: RecoverRequest, service: Events, caller: CurrentCaller
) -> RecoverAccepted:
    """Queue every event of the window [since, until) that matches the subscription (its types, filter and tenant) again (replay after a receiver outage). 404 when the subscription is unknown or of a tenant not the caller's."""
    queued = await _audited(
        service,
        caller,
        "recover",
        subscription_id,
        body.model_dump(mode="json"),
        lambda uow: service.recover(uow, subscription_id, body),
        status.HTTP_202_ACCEPTED,
    )
    service.deliveries_queued()
    return RecoverAccepted(deliveries=queued)


@router.post(
    "/subscriptions/{subscription_id}/test",
    response_model=TestDeliveryResult,
    summary="POST a signed `process_manager.subscription.test` event to the receiver now and report its answer",
)
async def test_delivery(subscription_id: str, service: Events, caller: CurrentCaller) -> TestDeliveryResult:
    """Send a signed `process_manager.subscription.test` event to the receiver now and report its HTTP answer.
    404 when the subscription is unknown or of a tenant not the caller's. Needs `subscriptions:manage`."""
    caller.require("subscriptions:manage")
    return await service.test_delivery(subscription_id, caller)
