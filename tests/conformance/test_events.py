"""Events every engine must produce for the same process run (API.md "Events"): what the gateway did itself and,
on the HTTP engines, what their change feed observed, exactly once each, in order per instance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.engines.testing import Harness
from gateway.engines.testing.polling import eventually
from gateway.settings import Settings
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import RealEngineHarness

# The embedded engine (it emits its own events) and the HTTP engines' simulators (their change feeds). The change
# feeds have not been run against the real engines of tests/real_engines yet.
OBSERVED = [h for h in HARNESSES if not isinstance(h, RealEngineHarness)]
APPROVAL_RUN = [
    "process_manager.instance.started",
    "process_manager.task.created",
    "process_manager.task.assigned",
    "process_manager.task.completed",
    "process_manager.instance.completed",
]


@pytest.fixture(params=[pytest.param(h, id=h.id, marks=h.marks) for h in OBSERVED])
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.param


@pytest.fixture
async def gateway(harness: Harness, database: Database, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    for name, value in {"CHANGE_FEED_INTERVAL": "0.1", "CHANGE_FEED_SETTLE": "0.2", "POLL_INTERVAL": "0.05"}.items():
        monkeypatch.setenv(f"PM_EVENTS_{name}", value)
    settings = Settings(
        engines=[{"name": "under-test", "default": True, **harness.engine}], database_url=database.url, auto_migrate=False
    )
    transports = {"under-test": harness.make_transport()} if harness.make_transport else None
    app = create_app(settings, engine_transports=transports)
    async with LifespanManager(app) as manager:
        if harness.prepare is not None:
            await harness.prepare(app.state.registry.get().adapter)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


async def instance_events(client: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    items = (await client.get("/api/processes/events", params={"limit": 1000})).json()["items"]
    return [event for event in items if event["instance_id"] == instance_id]


async def test_an_approval_run_produces_the_same_events_on_every_engine(
    harness: Harness, gateway: httpx.AsyncClient
) -> None:
    deployed = await gateway.post(
        "/api/processes/definitions", files={"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    started = await gateway.post("/api/processes/instances", json={"definition_key": "approval"})
    assert started.status_code == 201, started.text
    instance_id = started.json()["id"]
    created = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda events: any(e["type"] == "process_manager.task.created" for e in events),
    )
    task_id = next(e for e in created if e["type"] == "process_manager.task.created")["data"]["task_id"]
    claimed = await gateway.post(f"/api/processes/tasks/{task_id}/claim", json={"user_id": "alice"})
    assert claimed.status_code == 200, claimed.text
    completed = await gateway.post(f"/api/processes/tasks/{task_id}/complete", json={"variables": {"approved": True}})
    assert completed.status_code == 204, completed.text

    events = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda found: any(e["type"] == "process_manager.instance.completed" for e in found),
    )
    await eventually(lambda: instance_events(gateway, instance_id), lambda found: len(found) > len(events), timeout=1.0)
    events = await instance_events(gateway, instance_id)  # a second change-feed round adds nothing

    assert [e["type"] for e in events] == APPROVAL_RUN
    assert [e["data"]["task_id"] for e in events[1:4]] == [task_id] * 3
    assert events[2]["data"]["assignee"] == "alice"
    assert events[4]["data"]["definition_key"] == "approval"


async def test_a_terminated_run_produces_the_same_events_on_every_engine(
    harness: Harness, gateway: httpx.AsyncClient
) -> None:
    deployed = await gateway.post(
        "/api/processes/definitions", files={"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    instance_id = (await gateway.post("/api/processes/instances", json={"definition_key": "approval"})).json()["id"]
    await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda events: any(e["type"] == "process_manager.task.created" for e in events),
    )
    terminated = await gateway.delete(f"/api/processes/instances/{instance_id}", params={"reason": "cancelled order"})
    assert terminated.status_code == 204, terminated.text

    events = await instance_events(gateway, instance_id)
    await eventually(lambda: instance_events(gateway, instance_id), lambda found: len(found) > len(events), timeout=1.0)
    events = await instance_events(gateway, instance_id)  # the feed saw the end too, and added nothing

    assert [e["type"] for e in events] == [
        "process_manager.instance.started",
        "process_manager.task.created",
        "process_manager.instance.terminated",
    ]
