"""The change feed's assignments on Flowable and Camunda 8 (events/feeds.py): their history keeps none, so the feed
compares the open tasks' assignees round by round. Rounds are run here one at a time, at the moments that matter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from events.feeds import ChangeFeed
from events.settings import EventSettings
from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.engines.testing import Harness
from gateway.journal import AuditDraft
from gateway.settings import Settings
from tests.conformance.harnesses.flowable import HARNESS as FLOWABLE
from tests.conformance.harnesses.zeebe import HARNESS as ZEEBE


@pytest.fixture(params=[FLOWABLE, ZEEBE], ids=["flowable", "zeebe"])
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.param


@pytest.fixture
async def gateway_app(
    harness: Harness, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    # The gateway's own feed loop runs once at start and then sleeps: the test runs the rounds.
    monkeypatch.setenv("PM_EVENTS_CHANGE_FEED_INTERVAL", "3600")
    monkeypatch.setenv("PM_EVENTS_CHANGE_FEED_SETTLE", "0")
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
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw") as client:
            yield app, client


async def assignments(client: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    items = (await client.get("/api/processes/events", params={"limit": 1000})).json()["items"]
    return [e["data"] for e in items if e["instance_id"] == instance_id and e["type"].endswith("task.assigned")]


async def waiting_task(app: Any, client: httpx.AsyncClient, harness: Harness, feed: ChangeFeed) -> tuple[str, str]:
    """Deploy and start the approval process through the gateway; (instance id, task id) once the feed saw the task."""
    deployed = await client.post(
        "/api/processes/definitions", files={"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    instance_id = (await client.post("/api/processes/instances", json={"definition_key": "approval"})).json()["id"]
    tasks = (await client.get("/api/processes/tasks", params={"instance_id": instance_id})).json()["items"]
    await feed.run_once()
    await feed.run_once()
    items = (await client.get("/api/processes/events", params={"limit": 1000})).json()["items"]
    assert [e["type"] for e in items if e["instance_id"] == instance_id][-1] == "process_manager.task.created"
    return instance_id, tasks[0]["id"]


async def test_an_assignment_made_on_the_engine_is_emitted_once_with_the_new_assignee(
    harness: Harness, gateway_app: tuple[Any, httpx.AsyncClient]
) -> None:
    app, client = gateway_app
    adapter = app.state.registry.get().adapter
    feed = ChangeFeed(app.state.db, app.state.registry.get(), EventSettings())
    instance_id, task_id = await waiting_task(app, client, harness, feed)

    await adapter.assign_task(task_id, "bob")  # the engine's own API, as its task list would
    assert await feed.run_once() == 1
    assert await feed.run_once() == 0
    await adapter.unclaim_task(task_id)
    await feed.run_once()

    assert await assignments(client, instance_id) == [
        {"task_id": task_id, "task_name": "Review request", "action": "assign", "assignee": "bob"},
        {"task_id": task_id, "task_name": "Review request", "action": "unclaim", "assignee": None},
    ]


async def test_an_assignment_the_gateway_is_making_while_the_feed_reads_is_emitted_once(
    harness: Harness, gateway_app: tuple[Any, httpx.AsyncClient]
) -> None:
    """The feed reads the engine after the gateway assigned the task there but before it wrote its own event: the
    task waits for the next round, which finds the gateway's event and adds none."""
    app, client = gateway_app
    adapter = app.state.registry.get().adapter
    feed = ChangeFeed(app.state.db, app.state.registry.get(), EventSettings())
    instance_id, task_id = await waiting_task(app, client, harness, feed)

    audit = AuditDraft("assign", "task", task_id, "under-test", {"user_id": "bob"}, 200)
    async for attempt in app.state.changes.attempts("alice", audit, transactional=False):
        async with attempt as uow:
            task = await adapter.assign_task(task_id, "bob")
            assert await feed.run_once() == 0
            data = {"task_id": task_id, "task_name": task.name, "action": "assign", "assignee": "bob"}
            uow.emit("task.assigned", engine="under-test", instance_id=instance_id, data=data)
    assert await feed.run_once() == 0

    assert [a["assignee"] for a in await assignments(client, instance_id)] == ["bob"]
