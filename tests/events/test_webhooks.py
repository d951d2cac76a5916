"""Webhooks end to end: the gateway on a real HTTP server POSTs to real loopback receivers that verify both
signatures (Standard Webhooks and X-PM-Signature)."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from events.webhooks import new_secret
from gateway.db import Database
from gateway.engines.testing.polling import eventually
from tests.events.conftest import ServedGateway, serve, write_events
from tests.events.receiver import Receiver


async def deliveries(gateway: ServedGateway, subscription_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await gateway.client.get(f"/api/processes/subscriptions/{subscription_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_events_arrive_signed_both_ways_with_the_envelope(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    await served.subscribe(receiver, event_types=["task.created"])
    await write_events(
        database,
        [("instance.started", "i-1", {"definition_key": "order"}), ("task.created", "i-1", {"task_id": "t-1"})],
    )

    received = await receiver.wait_for(lambda got: len(got) >= 1)
    await asyncio.sleep(0.3)  # nothing else may follow: instance.started is not subscribed

    assert len(received) == 1
    request = received[0]
    assert request.standard_valid == receiver.secrets and request.legacy_valid == receiver.secrets
    event = request.event
    assert event["type"] == "process_manager.task.created"
    assert event["instance_id"] == "i-1" and event["data"] == {"task_id": "t-1"} and event["actor"] == "tester"
    assert set(event) == {"id", "cursor", "type", "occurred_at", "engine", "tenant_id", "actor", "instance_id", "data"}
    assert request.headers["webhook-id"] == event["id"]
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 30
    assert request.headers["content-type"] == "application/json"


async def test_a_failing_receiver_gets_retries_with_the_same_webhook_id_and_retry_after_is_honoured(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    receiver.answer = lambda event, attempt: (503, {"Retry-After": "1"}) if attempt == 1 else (200, {})
    subscription = await served.subscribe(receiver)
    await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])

    received = await receiver.wait_for(lambda got: len(got) >= 2)

    assert [r.status for r in received] == [503, 200]
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    assert received[1].at - received[0].at >= 0.9  # Retry-After: 1, not the schedule's 0.2 s
    assert all(r.standard_valid and r.legacy_valid for r in received)
    [delivery] = await eventually(
        lambda: deliveries(served, subscription["id"]), lambda items: items and items[0]["status"] == "delivered"
    )
    assert delivery["attempts"] == 2 and delivery["response_status"] == 200


async def test_after_the_last_attempt_a_delivery_is_dead_lettered_and_can_be_retried(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    failing = True
    receiver.answer = lambda event, attempt: (500, {}) if failing else (200, {})
    subscription = await served.subscribe(receiver)
    await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])

    failed = await eventually(
        lambda: deliveries(served, subscription["id"], status="failed"), lambda items: len(items) == 1
    )
    assert len(receiver.received) == 3  # the test schedule has three attempts
    assert failed[0]["attempts"] == 3 and failed[0]["response_status"] == 500
    assert "500" in failed[0]["last_error"]

    failing = False
    response = await served.client.post(
        f"/api/processes/subscriptions/{subscription['id']}/deliveries/{failed[0]['id']}/retry"
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    await receiver.wait_for(lambda got: len(got) == 4)
    assert receiver.received[-1].status == 200
    assert receiver.received[-1].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
    again = await served.client.post(
        f"/api/processes/subscriptions/{subscription['id']}/deliveries/{failed[0]['id']}/retry"
    )
    assert again.status_code == 409 or again.json()["status"] == "pending"


async def test_410_disables_the_subscription_and_emits_subscription_disabled(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    receiver.answer = lambda event, attempt: (410, {})
    subscription = await served.subscribe(receiver)
    await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])

    found = await eventually(
        lambda: served.client.get(f"/api/processes/subscriptions/{subscription['id']}"),
        lambda response: response.json()["active"] is False,
    )
    assert "410" in found.json()["disabled_reason"]
    assert len(receiver.received) == 1  # no retry after 410
    events = (await served.client.get("/api/processes/events", params={"types": "subscription.disabled"})).json()
    assert [e["data"]["subscription_id"] for e in events["items"]] == [subscription["id"]]
    await write_events(database, [("task.created", "i-2", {"task_id": "t-2"})])
    await asyncio.sleep(0.4)
    assert len(receiver.received) == 1  # a disabled subscription gets nothing


async def test_each_instance_is_delivered_in_order_under_concurrent_writes_to_50_instances(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    rng = random.Random(13)
    receiver.answer = lambda event, attempt: (500, {}) if attempt == 1 and rng.random() < 0.2 else (200, {})
    await served.subscribe(receiver)
    instances = [f"i-{n}" for n in range(50)]
    steps = 6

    async def drive(instance_id: str) -> None:
        for step in range(steps):
            await write_events(
                database, [("task.created", instance_id, {"task_id": f"{instance_id}/{step}", "step": step})]
            )

    await asyncio.gather(*(drive(instance_id) for instance_id in instances))
    await receiver.wait_for(lambda got: len({r.headers["webhook-id"] for r in receiver.delivered()}) >= 300, 60)

    seen: dict[str, list[int]] = {}
    for request in receiver.delivered():
        event = request.event
        seen.setdefault(event["instance_id"], []).append(event["data"]["step"])
    assert sorted(seen) == sorted(instances)
    for instance_id, order in seen.items():
        assert order == list(range(steps)), f"{instance_id} delivered out of order: {order}"
    assert any(r.status == 500 for r in receiver.received)  # retries did happen in between


async def test_a_private_target_is_refused_unless_the_setting_allows_it(
    event_env: Any, gateway_settings: Any, receiver: Receiver
) -> None:
    event_env(ALLOW_PRIVATE_TARGETS="false")
    async with serve(gateway_settings()) as gateway:
        for url in (receiver.url, "http://10.1.2.3/hook", "http://169.254.169.254/latest", "http://[::1]:9/x"):
            response = await gateway.client.post("/api/processes/subscriptions", json={"url": url})
            assert response.status_code == 422, response.text
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "PM_EVENTS_ALLOW_PRIVATE_TARGETS" in problem["detail"]
        bad = await gateway.client.post("/api/processes/subscriptions", json={"url": "ftp://example.com/x"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "url"
        assert (await gateway.client.get("/api/processes/subscriptions")).json()["total"] == 0


async def test_a_target_that_resolves_to_a_private_address_at_send_time_is_not_called(
    event_env: Any, gateway_settings: Any, receiver: Receiver, database: Database
) -> None:
    # Made while the operator allowed private targets (or while the name resolved to a public address), then
    # delivered by a gateway that refuses them: the check is made again against the address actually called.
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    async with serve(gateway_settings()) as allowing:
        subscribed = [await allowing.subscribe(receiver, url=url) for url in (by_name, receiver.url)]
    event_env(ALLOW_PRIVATE_TARGETS="false")
    async with serve(gateway_settings()) as refusing:
        await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])
        for subscription in subscribed:
            [delivery] = await eventually(
                lambda s=subscription: deliveries(refusing, s["id"]),
                lambda items: items and items[0]["status"] == "failed",
            )
            assert delivery["attempts"] == 3 and delivery["response_status"] is None
            assert "private, loopback or link-local address (127.0.0.1)" in delivery["last_error"]
    assert receiver.received == []


async def test_during_a_secret_rotation_both_secrets_sign(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    subscription = await served.subscribe(receiver)
    old = subscription["secret"]
    rotated = new_secret()
    response = await served.client.patch(f"/api/processes/subscriptions/{subscription['id']}", json={"secret": rotated})
    assert response.status_code == 200, response.text
    assert response.json()["previous_secret_until"] is not None and response.json()["secret"] == rotated
    assert (await served.client.get(f"/api/processes/subscriptions/{subscription['id']}")).json()["secret"] is None
    receiver.secrets = [rotated, old]
    await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])

    [request] = await receiver.wait_for(lambda got: len(got) >= 1)

    assert request.standard_valid == [rotated, old] and request.legacy_valid == [rotated, old]
    assert len(request.headers["webhook-signature"].split(" ")) == 2


async def test_recover_replays_a_window_and_the_test_endpoint_posts_a_signed_test_event(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    witness = Receiver()  # its deliveries show that the events were handed on to the subscriptions of that time
    await witness.start()
    try:
        await served.subscribe(witness)
        await write_events(database, [("task.created", f"i-{n}", {"task_id": f"t-{n}"}) for n in range(3)])
        await witness.wait_for(lambda got: len(got) >= 3)
    finally:
        await witness.stop()
    subscription = await served.subscribe(receiver)  # subscribed after the events were handed on
    await asyncio.sleep(0.3)
    assert receiver.received == []

    response = await served.client.post(
        f"/api/processes/subscriptions/{subscription['id']}/recover", json={"since": before.isoformat()}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"deliveries": 3}
    received = await receiver.wait_for(lambda got: len(got) >= 3)
    assert sorted(r.event["data"]["task_id"] for r in received) == ["t-0", "t-1", "t-2"]

    empty = await served.client.post(
        f"/api/processes/subscriptions/{subscription['id']}/recover",
        json={"since": before.isoformat(), "until": (before - timedelta(hours=1)).isoformat()},
    )
    assert empty.status_code == 422

    tested = await served.client.post(f"/api/processes/subscriptions/{subscription['id']}/test")
    assert tested.status_code == 200, tested.text
    assert tested.json()["delivered"] is True and tested.json()["response_status"] == 200
    assert receiver.received[-1].event["type"] == "process_manager.subscription.test"
    assert receiver.received[-1].standard_valid and receiver.received[-1].legacy_valid


async def test_cloudevents_structured_mode(served: ServedGateway, receiver: Receiver, database: Database) -> None:
    await served.subscribe(receiver, format="cloudevents", filter={"definition_key": "order"})
    await write_events(
        database,
        [
            ("task.created", "i-1", {"task_id": "t-1", "definition_key": "other"}),
            ("task.created", "i-2", {"task_id": "t-2", "definition_key": "order"}),
        ],
    )
    [request] = await receiver.wait_for(lambda got: len(got) >= 1)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1
    cloud_event = request.event
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert cloud_event["specversion"] == "1.0" and cloud_event["type"] == "process_manager.task.created"
    assert cloud_event["source"] == "/engines/default" and cloud_event["subject"] == "i-2"
    assert cloud_event["id"] == request.headers["webhook-id"] and cloud_event["data"]["data"]["task_id"] == "t-2"
    assert request.standard_valid and request.legacy_valid


async def test_subscription_crud_and_problems(served: ServedGateway, receiver: Receiver) -> None:
    subscription = await served.subscribe(receiver, event_types=["task.completed", "process_manager.task.created"])
    assert subscription["event_types"] == ["process_manager.task.completed", "process_manager.task.created"]
    assert subscription["secret"].startswith("whsec_")
    listed = (await served.client.get("/api/processes/subscriptions")).json()
    assert listed["total"] == 1 and listed["items"][0]["secret"] is None
    patched = await served.client.patch(f"/api/processes/subscriptions/{subscription['id']}", json={"active": False})
    assert patched.json()["active"] is False
    assert (await served.client.delete(f"/api/processes/subscriptions/{subscription['id']}")).status_code == 204
    missing = await served.client.get(f"/api/processes/subscriptions/{subscription['id']}")
    assert (
        missing.status_code == 404 and missing.json()["detail"] == f"Subscription {subscription['id']} does not exist"
    )
    short = await served.client.post("/api/processes/subscriptions", json={"url": receiver.url, "secret": "short"})
    assert short.status_code == 422
    audit = (await served.client.get("/api/processes/audit", params={"resource_type": "subscription"})).json()
    assert [entry["operation"] for entry in audit["items"]][:3] == ["delete", "update", "create"]
    assert all("whsec_" not in str(entry["request"]) for entry in audit["items"])


async def test_a_subscription_failing_for_longer_than_the_limit_is_disabled(
    event_env: Any, gateway_settings: Any, receiver: Receiver, database: Database
) -> None:
    event_env(WEBHOOK_DISABLE_AFTER="0.5", WEBHOOK_RETRY_SCHEDULE="0,0.2,0.2,0.2,0.2,0.2,0.2,0.2")
    receiver.answer = lambda event, attempt: (500, {})
    async with serve(gateway_settings()) as gateway:
        subscription = await gateway.subscribe(receiver)
        await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])

        found = await eventually(
            lambda: gateway.client.get(f"/api/processes/subscriptions/{subscription['id']}"),
            lambda response: response.json()["active"] is False,
        )
        assert found.json()["disabled_reason"].startswith("every delivery failed since")
        assert 2 <= len(receiver.received) < 8  # disabled before the schedule ran out
        disabled = (await gateway.client.get("/api/processes/events", params={"types": "subscription.disabled"})).json()
        assert [e["data"]["subscription_id"] for e in disabled["items"]] == [subscription["id"]]

        # Re-enabled, the waiting delivery goes out again.
        receiver.answer = lambda event, attempt: (200, {})
        enabled = await gateway.client.patch(
            f"/api/processes/subscriptions/{subscription['id']}", json={"active": True}
        )
        assert enabled.json()["active"] is True and enabled.json()["disabled_reason"] is None
        await receiver.wait_for(
            lambda got: any(r.status == 200 and r.event["data"].get("task_id") == "t-1" for r in got)
        )


async def test_a_recover_window_outside_the_utc_calendar_is_a_422_naming_the_field(
    served: ServedGateway, receiver: Receiver, database: Database
) -> None:
    await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])
    subscription = await served.subscribe(receiver)
    recover = f"/api/processes/subscriptions/{subscription['id']}/recover"
    # Year 1 at +14:00 is before 0001-01-01 in UTC: this was a 500 (OverflowError).
    for body, field in [
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "0001-01-01T05:00:00+10:00"}, "until"),
    ]:
        response = await served.client.post(recover, json=body)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"][0]["loc"] == ["body", field]
        assert "outside 0001-01-01..9999-12-31 once moved to UTC" in problem["detail"]


async def test_a_whsec_secret_that_is_not_base64_is_refused_on_create_and_on_rotation(
    served: ServedGateway, receiver: Receiver
) -> None:
    # Receivers' Standard Webhooks libraries base64-decode what follows `whsec_`; such a secret was accepted and
    # then signed with a key no receiver could reproduce.
    bad = "whsec_!!!not-base64!!!"
    created = await served.client.post("/api/processes/subscriptions", json={"url": receiver.url, "secret": bad})
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["loc"] == ["body", "secret"]
    assert "must be base64 after the prefix" in created.json()["detail"]
    listed = await served.client.get("/api/processes/subscriptions")
    assert listed.json()["total"] == 0

    subscription = await served.subscribe(receiver)
    rotated = await served.client.patch(f"/api/processes/subscriptions/{subscription['id']}", json={"secret": bad})
    assert rotated.status_code == 422, rotated.text
    assert "must be base64 after the prefix" in rotated.json()["detail"]
    current = (await served.client.get(f"/api/processes/subscriptions/{subscription['id']}")).json()
    assert current["previous_secret_until"] is None  # no rotation started


async def test_retrying_a_pending_delivery_is_a_409_that_says_when_it_is_tried_in_iso_8601(
    event_env: Any, gateway_settings: Any, receiver: Receiver, database: Database
) -> None:
    event_env(WEBHOOK_RETRY_SCHEDULE="0,3600")  # after the first failure the delivery waits an hour
    receiver.answer = lambda event, attempt: (500, {})
    async with serve(gateway_settings()) as gateway:
        subscription = await gateway.subscribe(receiver)
        await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])
        (waiting,) = await eventually(
            lambda: deliveries(gateway, subscription["id"], status="pending"),
            lambda items: len(items) == 1 and items[0]["attempts"] == 1,
        )
        response = await gateway.client.post(
            f"/api/processes/subscriptions/{subscription['id']}/deliveries/{waiting['id']}/retry"
        )
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    # the moment as the API writes every date-time (was Python's str(): `2026-11-30 17:46:44.837581+00:00`)
    assert re.search(r"it is tried at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$", detail), detail


async def test_an_unknown_or_empty_event_type_is_refused_not_a_subscription_to_nothing_or_everything(
    served: ServedGateway, receiver: Receiver
) -> None:
    for types, said in [
        (["task.create"], "unknown event type 'task.create'"),
        ([""], "an event type is empty"),
        (["task.created", "nope"], "unknown event type 'nope'"),
    ]:
        created = await served.client.post(
            "/api/processes/subscriptions", json={"url": receiver.url, "event_types": types}
        )
        assert created.status_code == 422, created.text
        assert created.json()["errors"][0]["loc"][:2] == ["body", "event_types"] and said in created.json()["detail"]
    assert (await served.client.get("/api/processes/subscriptions")).json()["total"] == 0
    subscription = await served.subscribe(receiver)
    changed = await served.client.patch(
        f"/api/processes/subscriptions/{subscription['id']}", json={"event_types": ["process_manager.task.complete"]}
    )
    assert changed.status_code == 422 and "unknown event type" in changed.json()["detail"]
    for path in ("/api/processes/events", "/api/processes/events/stream"):
        listed = await served.client.get(path, params={"types": "task.created,task.create"})
        assert listed.status_code == 400, (path, listed.text)
        assert "unknown event type 'task.create'" in listed.json()["detail"]
    kept = await served.client.get(
        "/api/processes/events", params={"types": "task.created, process_manager.task.created"}
    )
    assert kept.status_code == 200


async def test_a_webhook_url_longer_than_browsers_take_is_refused(served: ServedGateway, receiver: Receiver) -> None:
    created = await served.client.post("/api/processes/subscriptions", json={"url": receiver.url + "?" + "x" * 3000})
    assert created.status_code == 422, created.text
    assert (
        created.json()["errors"][0]["loc"] == ["body", "url"] and "at most 2083 characters" in created.json()["detail"]
    )


async def test_a_filter_on_an_engine_that_is_not_configured_is_refused(
    served: ServedGateway, receiver: Receiver
) -> None:
    """A typo in `filter.engine` would make a subscription that never receives an event."""
    created = await served.client.post(
        "/api/processes/subscriptions", json={"url": receiver.url, "filter": {"engine": "camunda-prod"}}
    )
    assert created.status_code == 422, created.text
    assert (
        created.json()["detail"] == "filter.engine 'camunda-prod' is not a configured engine; the engines are default"
    )
    subscription = await served.subscribe(receiver)
    changed = await served.client.patch(
        f"/api/processes/subscriptions/{subscription['id']}", json={"filter": {"engine": "nope"}}
    )
    assert changed.status_code == 422 and "'nope' is not a configured engine" in changed.json()["detail"]
    kept = await served.client.patch(
        f"/api/processes/subscriptions/{subscription['id']}", json={"filter": {"engine": "default"}}
    )
    assert kept.status_code == 200 and kept.json()["filter"]["engine"] == "default"


async def test_a_change_setting_a_field_to_null_is_refused_not_silently_ignored(
    served: ServedGateway, receiver: Receiver
) -> None:
    subscription = await served.subscribe(receiver)
    path = f"/api/processes/subscriptions/{subscription['id']}"
    changed = await served.client.patch(path, json={"url": None, "active": False, "event_types": None})
    assert changed.status_code == 422, changed.text
    assert "event_types, url cannot be null; omit a field to keep its value" in changed.json()["detail"]
    assert (await served.client.get(path)).json()["active"] is True  # nothing of the refused change was applied


async def test_an_empty_tenant_is_refused_not_a_tenant_of_its_own(served: ServedGateway, receiver: Receiver) -> None:
    created = await served.client.post("/api/processes/subscriptions", json={"url": receiver.url, "tenant_id": ""})
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["loc"] == ["body", "tenant_id"]
    for path, body in [
        ("/api/processes/signals", {"signal_name": "order-cancelled", "tenant_id": ""}),
        ("/api/processes/messages", {"message_name": "paid", "tenant_id": ""}),
        ("/api/processes/instances", {"definition_key": "approval", "tenant_id": ""}),
        ("/api/processes/definitions", {"bpmn_xml": "<definitions/>", "tenant_id": ""}),
    ]:
        refused = await served.client.post(path, json=body)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["errors"][0]["loc"][-1] == "tenant_id", (path, refused.text)
