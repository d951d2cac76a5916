"""The Camunda 7 change feed: what is done in the engine outside the gateway (Cockpit, Tasklist, another
service) reaches the event log exactly once, in order per instance, next to what the gateway did itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.settings import Settings
from tests.camunda.simulator import CamundaSimulator
from tests.conformance.harnesses.camunda7 import APPROVAL, CREDENTIALS, HARNESS

URL = HARNESS.engine["url"]


@pytest.fixture
def simulator() -> CamundaSimulator:
    return CamundaSimulator(credentials=CREDENTIALS)


@pytest.fixture
async def engine(simulator: CamundaSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the engine itself, acting as another engine user would."""
    async with httpx.AsyncClient(transport=simulator.transport, base_url=URL, auth=CREDENTIALS) as client:
        yield client


@pytest.fixture
async def gateway(
    simulator: CamundaSimulator, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    for name, value in {"CHANGE_FEED_INTERVAL": "0.1", "CHANGE_FEED_SETTLE": "0.2"}.items():
        monkeypatch.setenv(f"PM_EVENTS_{name}", value)
    settings = Settings(
        engines=[{"name": "c7", "default": True, **HARNESS.engine}], database_url=database.url, auto_migrate=False
    )
    app = create_app(settings, engine_transports={"c7": simulator.transport})
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


async def events_of(gateway: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    items = (await gateway.get("/api/processes/events", params={"limit": 1000})).json()["items"]
    return [event for event in items if event["instance_id"] == instance_id]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].removeprefix("process_manager.") for event in events]


async def settled(gateway: httpx.AsyncClient, instance_id: str, last_type: str, count: int) -> list[dict[str, Any]]:
    """The instance's events once `last_type` appears `count` times, after one more feed round added nothing."""
    await eventually(
        lambda: events_of(gateway, instance_id), lambda found: types(found).count(last_type) >= count, timeout=5
    )
    before = await events_of(gateway, instance_id)
    await eventually(lambda: events_of(gateway, instance_id), lambda found: len(found) > len(before), timeout=0.6)
    return await events_of(gateway, instance_id)


async def test_changes_made_in_the_engine_become_events_exactly_once(
    gateway: httpx.AsyncClient, engine: httpx.AsyncClient
) -> None:
    deployed = await gateway.post(
        "/api/processes/definitions", files={"file": ("a.bpmn", APPROVAL.encode(), "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    # Started in the engine, not through the gateway: the gateway sees its task and its end.
    started = await engine.post("/process-definition/key/approval/start", json={})
    instance_id = started.json()["id"]
    created = await settled(gateway, instance_id, "task.created", 1)
    task_id = created[0]["data"]["task_id"]
    assert created[0]["data"]["task_name"] == "Review request" and created[0]["data"]["definition_key"] == "approval"

    await engine.post(f"/task/{task_id}/assignee", json={"userId": "bob"})
    await engine.post(f"/task/{task_id}/assignee", json={"userId": "carol"})
    await engine.put(f"/process-instance/{instance_id}/suspended", json={"suspended": True})
    await engine.put(f"/process-instance/{instance_id}/suspended", json={"suspended": False})
    await settled(gateway, instance_id, "instance.activated", 1)
    # The gateway assigns it back to carol's colleague; the feed then sees that assignment too, and adds nothing.
    assigned = await gateway.post(f"/api/processes/tasks/{task_id}/assign", json={"user_id": "dave"})
    assert assigned.status_code == 200, assigned.text
    await engine.post(f"/task/{task_id}/complete", json={"variables": {}})
    events = await settled(gateway, instance_id, "instance.completed", 1)

    assert types(events) == [
        "task.created",
        "task.assigned",
        "task.assigned",
        "instance.suspended",
        "instance.activated",
        "task.assigned",
        "task.completed",
        "instance.completed",
    ]
    assert [e["data"]["assignee"] for e in events if e["type"].endswith("task.assigned")] == ["bob", "carol", "dave"]
    assert events[6]["data"]["completed_by"] == "dave"
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(cursors)


async def test_an_instance_terminated_through_the_gateway_or_in_the_engine_gives_one_event(
    gateway: httpx.AsyncClient, engine: httpx.AsyncClient
) -> None:
    await gateway.post("/api/processes/definitions", files={"file": ("a.bpmn", APPROVAL.encode(), "application/xml")})
    by_gateway = (await gateway.post("/api/processes/instances", json={"definition_key": "approval"})).json()["id"]
    in_engine = (await engine.post("/process-definition/key/approval/start", json={})).json()["id"]
    await settled(gateway, in_engine, "task.created", 1)
    await settled(gateway, by_gateway, "task.created", 1)

    terminated = await gateway.delete(f"/api/processes/instances/{by_gateway}", params={"reason": "duplicate order"})
    assert terminated.status_code == 204, terminated.text
    await engine.delete(f"/process-instance/{in_engine}")

    assert types(await settled(gateway, by_gateway, "instance.terminated", 1)) == [
        "instance.started",
        "task.created",
        "instance.terminated",
    ]
    ended = await settled(gateway, in_engine, "instance.terminated", 1)
    assert types(ended) == ["task.created", "instance.terminated"]
