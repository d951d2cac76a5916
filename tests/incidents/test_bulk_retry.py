"""Bulk retry: an operation with progress that survives a restart and never retries an incident twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.uow import reading
from incidents import repository
from incidents.models import (
    BulkRetryRequest,
    IncidentSelection,
    incidents,
    operation_items,
)
from incidents.operations import start_bulk_retry
from tests.incidents.fake_engine import FakeWorld
from tests.incidents.helpers import rows


def failing_instances(world: FakeWorld, count: int) -> None:
    """Incidents whose work succeeds when retried."""
    for n in range(count):
        world.fail(f"pi-{n}")
        world.variables[f"pi-{n}"] = {}


@pytest.mark.parametrize("stopped", ["before_retry", "after_retry"])
async def test_a_restart_in_the_middle_of_a_bulk_retry_retries_no_incident_twice(
    make_center: Callable[..., Any], database: Database, world: FakeWorld, stopped: str
) -> None:
    failing_instances(world, 5)
    async with make_center() as first:
        await first.syncs["fake"].run_once()
        accepted = await start_bulk_retry(first.db, "alice", BulkRetryRequest())
        assert accepted.total == 5

        calls, stuck = 0, asyncio.Event()

        async def stop_at_the_third_retry() -> None:
            nonlocal calls
            calls += 1
            if calls == 3:
                stuck.set()
                await asyncio.Event().wait()  # the gateway stops while this retry is in flight

        setattr(world, stopped, stop_at_the_third_retry)
        running = asyncio.create_task(first.bulk_retries.run_pending())
        await asyncio.wait_for(stuck.wait(), 5)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    setattr(world, stopped, None)

    items = await rows(database, sa.select(operation_items.c.state).order_by(operation_items.c.position))
    assert [item["state"] for item in items] == ["done", "done", "retrying", "pending", "pending"]

    restarted = Database(database.url)
    try:
        async with make_center(db=restarted) as second:
            await second.bulk_retries.run_pending()
            async with reading(restarted) as session:
                progress = await repository.operation(session, accepted.operation_id)
            await second.syncs["fake"].run_once()
    finally:
        await restarted.dispose()

    assert (progress.status, progress.done, progress.failed, progress.pending, progress.retrying) == (
        "completed",
        5,
        0,
        0,
        0,
    )
    assert progress.finished is not None
    assert sorted(world.retries.values()) == [1] * 5  # every engine incident retried exactly once
    statuses = await rows(database, sa.select(incidents.c.status, incidents.c.retry_count))
    assert statuses == [{"status": "resolved", "retry_count": 1}] * 5


async def test_bulk_retry_through_the_api_reports_progress_and_failures(
    make_gateway: Callable[..., Any], world: FakeWorld, basic_world: FakeWorld
) -> None:
    failing_instances(world, 3)
    basic_world.fail("pi-9")
    async with make_gateway() as api:
        every = await eventually(api.incidents, lambda items: len(items) == 4)
        resolved_first = next(i for i in every if i["instance_id"] == "pi-0")
        response = await api.client.post(
            f"/api/processes/incidents/{resolved_first['id']}/resolve",
            json={"resolution_type": "manual", "message": "done by hand"},
        )
        assert response.status_code == 200
        basic_world.down = True

        response = await api.client.post(
            "/api/processes/incidents/retry", json={"filter": {}}, headers={"X-User-Id": "bob"}
        )
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["total"] == 3  # the resolved one is not retried

        async def progress() -> dict[str, Any]:
            return (await api.client.get(f"/api/processes/operations/{accepted['operation_id']}")).json()

        finished = await eventually(progress, lambda p: p["status"] == "completed")
        assert (finished["total"], finished["done"], finished["failed"]) == (3, 2, 1)
        assert finished["requested_by"] == "bob" and finished["type"] == "incident_retry"
        (failure,) = finished["failures"]
        assert "unreachable" in failure["detail"]
        assert (await api.incident(failure["incident_id"]))["engine"] == "basic"

        resolved = await eventually(
            lambda: api.incidents(engine="fake", status="resolved"), lambda items: len(items) == 3
        )
        assert len(resolved) == 3
        retried = await api.incident(next(i["id"] for i in resolved if i["instance_id"] == "pi-1"))
        assert [(h["action"], h["user"]) for h in retried["history"]][1] == ("retried", "bob")
        assert retried["history"][1]["details"]["operation_id"] == accepted["operation_id"]

        by_filter = await api.client.post(
            "/api/processes/incidents/retry", json={"filter": {"engine": "fake", "status": "resolved"}}
        )
        assert by_filter.json()["total"] == 0
        missing = await api.client.get("/api/processes/operations/nope")
        assert missing.status_code == 404


async def test_bulk_retry_selects_by_the_list_filters(center: Any, world: FakeWorld) -> None:
    world.fail("pi-1", definition_key="charging")
    world.fail("pi-2", definition_key="shipping")
    await center.syncs["fake"].run_once()
    accepted = await start_bulk_retry(
        center.db, "alice", BulkRetryRequest(filter=IncidentSelection(definition_key="shipping"))
    )
    assert accepted.total == 1
