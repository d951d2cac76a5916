"""Projection rounds after the first read only what changed in the engine since the last one: an instance that
ran for hours and ends now, a new instance and its task, and (at the next full read of the open tasks) a task
that ended without an event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.schemas import HistoryQuery, TaskQuery
from tests.analytics.history_engine import History

HOUR = 3_600_000


async def get(gateway: Any, path: str) -> dict[str, Any]:
    response = await gateway.client.get(f"/api/processes{path}", params={"definition_key": "order"})
    assert response.status_code == 200, response.text
    return response.json()


def summary(body: dict[str, Any]) -> tuple[int, int, int]:
    figures = body["summary"]
    return figures["total_instances"], figures["completed_instances"], figures["average_duration"]


async def test_a_round_reads_the_runs_that_started_or_ended_since_the_last_one(
    make_gateway: Callable[..., Any], history: History
) -> None:
    begun = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    history.instance("long", "order", begun)
    history.activity("long", "start", "startEvent", begun, begun)
    history.activity("long", "review", "userTask", begun)
    history.open_task("t-long", "long", "review", begun, candidate_groups=["sales"])
    async with make_gateway() as gateway:
        projector = gateway.app.state.analytics.projector
        await projector.run_once(full=True)
        assert summary(await get(gateway, "/statistics")) == (1, 0, None)
        assert (await get(gateway, "/tasks/statistics"))["open"] == 1

        # The engine ends the 3-hour instance now and starts another one with a task.
        ended = datetime.now(UTC).replace(microsecond=0)
        history.instance("long", "order", begun, ended)
        history.activity("long", "review", "userTask", begun, ended)
        history.activity("long", "end", "endEvent", ended, ended)
        del history.tasks["t-long"]
        history.instance("new", "order", ended)
        history.activity("new", "start", "startEvent", ended, ended)
        history.activity("new", "review", "userTask", ended)
        history.open_task("t-new", "new", "review", ended, candidate_groups=["sales"])
        history.queries.clear()
        await projector.sync_engine("history")

        # Only the runs that started or ended since the last read, and the tasks created since, were read.
        windows = [(q.started_after, q.finished_after) for q in history.queries if isinstance(q, HistoryQuery)]
        assert len(windows) == 4 and all(window != (None, None) for window in windows)
        assert [q.order.value for q in history.queries if isinstance(q, TaskQuery)] == ["desc"]
        three_hours = (ended - begun).total_seconds() * 1000
        assert summary(await get(gateway, "/statistics")) == (2, 1, three_hours)
        tasks = await get(gateway, "/tasks/statistics")
        assert (tasks["open"], tasks["completed"], tasks["average_time_to_complete"]) == (1, 1, three_hours)
        bottlenecks = await get(gateway, "/bottlenecks")
        slowest = bottlenecks["items"][0]
        assert (slowest["activity_id"], slowest["average_wait_time"]) == ("review", three_hours)
        assert 3 * HOUR <= three_hours < 4 * HOUR


async def test_a_task_that_ends_without_an_event_closes_at_the_next_full_read(
    make_gateway: Callable[..., Any], history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PM_ANALYTICS_TASK_RECONCILE_INTERVAL", "0.2")
    begun = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    history.instance("running", "order", begun)
    history.activity("running", "review", "userTask", begun)
    history.open_task("t-1", "running", "review", begun)
    async with make_gateway() as gateway:
        projector = gateway.app.state.analytics.projector
        await projector.run_once(full=True)
        # A timer boundary event interrupts the task: the instance runs on, no task event says it.
        interrupted = datetime.now(UTC)
        history.activity("running", "review", "userTask", begun, interrupted)
        history.activity("running", "escalate", "userTask", interrupted)
        del history.tasks["t-1"]
        await projector.sync_engine("history")
        assert (await get(gateway, "/tasks/statistics"))["open"] == 1  # not known before the full read

        await asyncio.sleep(0.25)
        await projector.sync_engine("history")
        assert (await get(gateway, "/tasks/statistics"))["open"] == 0
