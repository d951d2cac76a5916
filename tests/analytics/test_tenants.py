"""Statistics per tenant: the history of `test_numbers` with i0..i2 in tenant `a` and i3, i4 in tenant `b`,
answered for callers of `a`, of `b`, of both and of every tenant (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from analytics import service
from gateway.auth import Caller
from tests.analytics.history_engine import History
from tests.analytics.test_numbers import PERIOD, finished, running

TENANT_OF = {"i0": "a", "i1": "a", "i2": "a", "i3": "b", "i4": "b"}


def in_tenants(history: History) -> None:
    """Give each instance and open task its tenant, as an engine reports them."""
    for instance_id, instance in history.instances.items():
        history.instances[instance_id] = instance.model_copy(update={"tenant_id": TENANT_OF[instance_id]})
    for task_id, task in history.tasks.items():
        history.tasks[task_id] = task.model_copy(update={"tenant_id": TENANT_OF[task.instance_id or ""]})


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any], history: History) -> Any:
    async with make_gateway() as gateway:
        projector = gateway.app.state.analytics.projector
        running(history)
        in_tenants(history)
        await projector.run_once(full=True)
        finished(history)
        in_tenants(history)
        await projector.run_once(full=True)
        yield gateway


async def answer(gateway: Any, endpoint: str, tenants: frozenset[str] | None, key: str | None = None) -> Any:
    """`endpoint` of AnalyticsService for a caller of `tenants` (None: every tenant), over PERIOD."""
    center = gateway.app.state.analytics
    period = service.resolve_period(PERIOD["from"], PERIOD["to"], PERIOD["timezone"], "UTC")
    scope = service.readable_scope(Caller(actor="reader", tenants=tenants), "history", period, key)
    return json.loads(await getattr(center.service, endpoint)(scope, period))


A, B, BOTH = frozenset({"a"}), frozenset({"b"}), frozenset({"a", "b"})


async def test_statistics_count_only_the_callers_tenants(gateway: Any) -> None:
    summaries = {name: (await answer(gateway, "statistics", tenants))["summary"] for name, tenants in
                 (("a", A), ("b", B), ("both", BOTH), ("all", None))}  # fmt: skip
    counts = {
        name: (s["total_instances"], s["completed_instances"], s["terminated_instances"], s["total_tasks"])
        for name, s in summaries.items()
    }
    # in the period: i1, i2 completed (a); i3 terminated, i4 running (b); each with its review task
    assert counts == {"a": (2, 2, 0, 2), "b": (2, 0, 1, 2), "both": (4, 2, 1, 4), "all": (4, 2, 1, 4)}
    assert (await answer(gateway, "statistics", frozenset()))["summary"]["total_instances"] == 0  # no tenant


async def test_bottlenecks_and_elements_of_a_tenant(gateway: Any) -> None:
    def runs(body: dict[str, Any]) -> dict[str, int]:
        return {item["activity_id"]: item["instances_affected"] for item in body["items"]}

    # a caller of tenants sums the runs themselves, one of every tenant the per-slot sums: the same figures.
    # In the period: i0's end (23:30Z on 11-01) and every run of i1, i2 (a); i3's, i4's start events (b).
    both, everyone = await answer(gateway, "bottlenecks", BOTH), await answer(gateway, "bottlenecks", None)
    assert both["items"] == everyone["items"] and both["items"]
    assert runs(await answer(gateway, "bottlenecks", A)) == {"start": 2, "review": 2, "notify": 1, "end": 3}
    assert runs(await answer(gateway, "bottlenecks", B)) == {"start": 2}
    active = {
        name: {e["activity_id"]: e["active"] for e in (await answer(gateway, "elements", tenants, "order"))["elements"]}
        for name, tenants in (("a", A), ("b", B))
    }
    assert active["a"]["review"] == 0 and active["b"]["review"] == 1  # i4's review runs


async def test_task_statistics_of_a_tenant(gateway: Any) -> None:
    open_now = {
        name: (body["open"], body["claimed"], body["completed"])
        for name, tenants in (("a", A), ("b", B), ("all", None))
        for body in [await answer(gateway, "task_statistics", tenants)]
    }
    # t4 (b) is open; t0, t1, t2 (a) completed in the period, t3 (b) cancelled with its terminated instance
    assert open_now == {"a": (0, 0, 3), "b": (1, 0, 0), "all": (1, 0, 3)}
