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
from gateway.variables import parse_request_variables
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import on_real_engine

# The embedded engine (it emits its own events), the HTTP engines' simulators and the real engines of
# tests/real_engines (their change feeds).
APPROVAL_RUN = [
    "process_manager.instance.started",
    "process_manager.task.created",
    "process_manager.task.assigned",
    "process_manager.task.completed",
    "process_manager.instance.completed",
]


@pytest.fixture(params=[pytest.param(h, id=h.id, marks=h.marks) for h in HARNESSES])
def harness(request: pytest.FixtureRequest) -> Harness:
    return on_real_engine(request.param, request)


@pytest.fixture
async def gateway_app(
    harness: Harness, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    for name, value in {"CHANGE_FEED_INTERVAL": "0.1", "CHANGE_FEED_SETTLE": "0.2", "POLL_INTERVAL": "0.05"}.items():
        monkeypatch.setenv(f"PM_EVENTS_{name}", value)
    settings = Settings(
        engines=[{"name": "under-test", "default": True, **harness.engine}],
        database_url=database.url,
        auto_migrate=False,
    )
    transports = {"under-test": harness.make_transport()} if harness.make_transport else None
    app = create_app(settings, engine_transports=transports)
    async with LifespanManager(app) as manager:
        if harness.prepare is not None:
            await harness.prepare(app.state.registry.get().adapter)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield app, client


@pytest.fixture
def gateway(gateway_app: tuple[Any, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway_app[1]


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
        harness.incident_timeout,
    )
    task_id = next(e for e in created if e["type"] == "process_manager.task.created")["data"]["task_id"]
    claimed = await gateway.post(f"/api/processes/tasks/{task_id}/claim", json={"user_id": "alice"})
    assert claimed.status_code == 200, claimed.text
    completed = await gateway.post(f"/api/processes/tasks/{task_id}/complete", json={"variables": {"approved": True}})
    assert completed.status_code == 204, completed.text

    events = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda found: any(e["type"] == "process_manager.instance.completed" for e in found),
        harness.incident_timeout,
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
        harness.incident_timeout,
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


async def test_changes_made_on_the_engine_itself_reach_subscribers_once_each(
    harness: Harness, gateway_app: tuple[Any, httpx.AsyncClient]
) -> None:
    """A task assigned and completed outside the gateway (in Cockpit, the Flowable UI, a worker of its own) gives
    the same events as through the gateway: the change feed observes them."""
    app, gateway = gateway_app
    adapter = app.state.registry.get().adapter
    if not adapter.observes_changes:
        pytest.skip("the embedded engine runs inside the gateway: nothing changes it from outside")
    deployed = await gateway.post(
        "/api/processes/definitions", files={"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    instance_id = (await gateway.post("/api/processes/instances", json={"definition_key": "approval"})).json()["id"]
    created = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda events: any(e["type"] == "process_manager.task.created" for e in events),
        harness.incident_timeout,
    )
    task_id = next(e for e in created if e["type"] == "process_manager.task.created")["data"]["task_id"]

    # Straight to the engine's own API, not through the gateway's. Flowable and Camunda 8 keep no history of
    # assignments: their feeds see an assignee that lasts at least one round, so wait for it before completing.
    await adapter.assign_task(task_id, "bob")
    await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda found: any(e["type"] == "process_manager.task.assigned" for e in found),
        harness.incident_timeout,
    )
    await adapter.complete_task(task_id, parse_request_variables({"approved": True}), user_id="bob")

    events = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda found: any(e["type"] == "process_manager.instance.completed" for e in found),
        harness.incident_timeout,
    )
    await eventually(lambda: instance_events(gateway, instance_id), lambda found: len(found) > len(events), timeout=1.0)
    events = await instance_events(gateway, instance_id)

    assert [e["type"] for e in events] == APPROVAL_RUN
    assert events[2]["data"]["assignee"] == "bob"
    assert events[3]["data"]["completed_by"] == "bob"
    assert {e["data"]["task_id"] for e in events[1:-1]} == {task_id}
    assert events[-1]["data"]["definition_key"] == "approval"


async def test_a_reassignment_on_the_engine_after_one_through_the_gateway_is_seen_once(
    harness: Harness, gateway_app: tuple[Any, httpx.AsyncClient]
) -> None:
    """A task claimed through the gateway and then given to someone else in the engine's own UI: the subscriber
    sees both assignments, once each, the gateway's not repeated by the change feed."""
    app, gateway = gateway_app
    adapter = app.state.registry.get().adapter
    if not adapter.observes_changes:
        pytest.skip("the embedded engine runs inside the gateway: nothing changes it from outside")
    deployed = await gateway.post(
        "/api/processes/definitions", files={"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    instance_id = (await gateway.post("/api/processes/instances", json={"definition_key": "approval"})).json()["id"]
    created = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda events: any(e["type"] == "process_manager.task.created" for e in events),
        harness.incident_timeout,
    )
    task_id = next(e for e in created if e["type"] == "process_manager.task.created")["data"]["task_id"]
    claimed = await gateway.post(f"/api/processes/tasks/{task_id}/claim", json={"user_id": "alice"})
    assert claimed.status_code == 200, claimed.text

    await adapter.assign_task(task_id, "carol")

    def assignees(events: list[dict[str, Any]]) -> list[str | None]:
        return [e["data"]["assignee"] for e in events if e["type"] == "process_manager.task.assigned"]

    events = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda found: "carol" in assignees(found),
        harness.incident_timeout,
    )
    await eventually(lambda: instance_events(gateway, instance_id), lambda found: len(found) > len(events), timeout=1.0)
    events = await instance_events(gateway, instance_id)  # later rounds add nothing

    assert [e["type"] for e in events] == [*APPROVAL_RUN[:3], "process_manager.task.assigned"]
    assert assignees(events) == ["alice", "carol"]
    assert events[-1]["data"]["task_id"] == task_id


async def test_an_unassignment_on_the_engine_is_seen_as_task_assigned_without_assignee(
    harness: Harness, gateway_app: tuple[Any, httpx.AsyncClient]
) -> None:
    """A task assigned and then given back in the engine's own UI (assignee set to null there): the subscriber
    sees `task.assigned` twice, the second with no assignee and action `unclaim`, as the gateway's own unclaim
    reports it. On Camunda 7 the unassignment is the identity-link log's `delete` row with no `add` after it."""
    app, gateway = gateway_app
    adapter = app.state.registry.get().adapter
    if not adapter.observes_changes:
        pytest.skip("the embedded engine runs inside the gateway: nothing changes it from outside")
    deployed = await gateway.post(
        "/api/processes/definitions", files={"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    instance_id = (await gateway.post("/api/processes/instances", json={"definition_key": "approval"})).json()["id"]
    created = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda events: any(e["type"] == "process_manager.task.created" for e in events),
        harness.incident_timeout,
    )
    task_id = next(e for e in created if e["type"] == "process_manager.task.created")["data"]["task_id"]

    def assignments(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        return [
            (e["data"]["action"], e["data"]["assignee"]) for e in events if e["type"] == "process_manager.task.assigned"
        ]

    # Flowable and Camunda 8 keep no history of assignments: their feeds see an assignee that lasts a round.
    await adapter.assign_task(task_id, "bob")
    await eventually(lambda: instance_events(gateway, instance_id), assignments, harness.incident_timeout)
    await adapter.unclaim_task(task_id)

    events = await eventually(
        lambda: instance_events(gateway, instance_id),
        lambda found: ("unclaim", None) in assignments(found),
        harness.incident_timeout,
    )
    await eventually(lambda: instance_events(gateway, instance_id), lambda found: len(found) > len(events), timeout=1.0)
    events = await instance_events(gateway, instance_id)  # later rounds add nothing

    assert [e["type"] for e in events] == [*APPROVAL_RUN[:3], "process_manager.task.assigned"]
    assert assignments(events) == [("assign", "bob"), ("unclaim", None)]
    assert {e["data"]["task_id"] for e in events[1:]} == {task_id}
