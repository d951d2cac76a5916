"""Real-world BPMN on the embedded engine: each fault kind of issue 12 as a small model of our own.

Runaways (never block the loop), event-based gateways and timers, parallel joins in loops, multi-instance,
errors in multi-instance subprocesses, internal names, background failures, valid models, message starts,
values and plain refusals.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.embedded import EmbeddedAdapter, runtime
from gateway.errors import InvalidBpmn
from tests.embedded.conftest import bpmn, deploy, flow, incidents_of, start, tasks_of

START = '<bpmn:startEvent id="start"/>'
END = '<bpmn:endEvent id="end"/>'


# ------------------------------------------------------------------ 5: runaway processes
SPINNING = bpmn(
    "spinning",
    START + flow("start", "spin") + '<bpmn:task id="spin" name="Spin"/>' + flow("spin", "again")
    + '<bpmn:exclusiveGateway id="again" default="again-spin"/>'
    + '<bpmn:sequenceFlow id="again-spin" sourceRef="again" targetRef="spin"/>'
    + flow("again", "end", "${false}") + END,
)  # fmt: skip

RECURSIVE = bpmn(
    "recursive",
    START + flow("start", "myself") + '<bpmn:callActivity id="myself" calledElement="recursive"/>'
    + flow("myself", "end") + END,
)  # fmt: skip

RECURSIVE_BEHIND_A_CONDITION = bpmn(
    "countdown",
    START + flow("start", "more") + '<bpmn:exclusiveGateway id="more" default="more-end"/>'
    + flow("more", "myself", "${depth &gt;= 0}") + '<bpmn:callActivity id="myself" calledElement="countdown"/>'
    + flow("myself", "end") + '<bpmn:sequenceFlow id="more-end" sourceRef="more" targetRef="end"/>' + END,
)  # fmt: skip


async def test_an_endless_loop_is_an_incident_and_other_work_goes_on_meanwhile(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, SPINNING)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        instance_id = await start(adapter, "spinning")
        during = ticks
    finally:
        ticking.cancel()
    assert during > 10, "the event loop was held while the engine ran"
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id in ("spin", "again")
    assert "without waiting: is there an endless loop?" in incident.message
    assert (await adapter.get_instance(instance_id)).status == "active"


async def test_an_unconditional_self_call_is_refused_at_deployment(adapter: EmbeddedAdapter) -> None:
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, RECURSIVE)
    assert "Call activity 'myself' calls its own process 'recursive'" in refused.value.detail


async def test_a_self_call_that_never_ends_is_an_incident_on_the_call_activity(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, RECURSIVE_BEHIND_A_CONDITION)
    instance_id = await start(adapter, "countdown", {"depth": 1})
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id == "myself"
    assert f"nest deeper than {runtime.MAX_CALL_DEPTH} levels" in incident.message
