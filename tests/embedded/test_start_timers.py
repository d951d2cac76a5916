"""Timer start events start instances on their schedule, from the engine's timer loop, across restarts."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from adapters.embedded import EmbeddedAdapter
from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.errors import InvalidBpmn
from gateway.schemas import InstanceQuery, ProcessInstance
from gateway.tables import outbox
from tests.embedded.conftest import bpmn, deploy, flow, start, tasks_of

IDLE = 3600.0  # a timer interval that never comes round in a test: the test drives the timer loop itself


def timer(kind: str, text: str) -> str:
    return f"<bpmn:timerEventDefinition><bpmn:{kind}>{text}</bpmn:{kind}></bpmn:timerEventDefinition>"


def scheduled(key: str, kind: str, text: str, *, none_start: bool = False) -> bytes:
    body = f'<bpmn:startEvent id="tick">{timer(kind, text)}</bpmn:startEvent>' + flow("tick", "report")
    body += '<bpmn:userTask id="report"/>' + flow("report", "end") + '<bpmn:endEvent id="end"/>'
    if none_start:
        body += '<bpmn:startEvent id="by-hand"/>' + flow("by-hand", "check") + '<bpmn:userTask id="check"/>'
        body += flow("check", "end")
    return bpmn(key, body)


async def instances(adapter: EmbeddedAdapter, key: str) -> list[ProcessInstance]:
    return (await adapter.list_instances(InstanceQuery(definition_key=key, size=100))).items


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("timeDate", "2020-01-01T09:00:00+01:00"),
        ("timeDuration", "PT0S"),
        ("timeCycle", "R3/2020-01-01T09:00:00Z/PT1H"),  # three occurrences missed: one instance stands for them
    ],
)
async def test_a_timer_start_event_that_fires_once_starts_one_instance(make_adapter: Any, kind: str, text: str) -> None:
    async with make_adapter(timer_interval=IDLE) as adapter:
        await deploy(adapter, scheduled("nightly", kind, text))
        assert await adapter.fire_start_timers() == 1
        assert await adapter.fire_start_timers() == 0
        (instance,) = await instances(adapter, "nightly")
        assert list(await tasks_of(adapter, instance.id)) == ["report"]
        assert instance.started_by is None


async def test_a_timer_start_event_in_the_future_starts_nothing_yet(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=IDLE) as adapter:
        await deploy(adapter, scheduled("later", "timeDate", "2999-01-01T00:00:00Z"))
        await deploy(adapter, scheduled("cycle", "timeCycle", "R/PT1H"))
        assert await adapter.fire_start_timers() == 0
        assert await instances(adapter, "later") == [] and await instances(adapter, "cycle") == []


async def test_a_repeating_cycle_starts_an_instance_every_round_from_the_timer_loop(
    make_adapter: Any, database: Database
) -> None:
    async with make_adapter(timer_interval=0.05) as adapter:
        definition_id = await deploy(adapter, scheduled("heartbeat", "timeCycle", "R/PT0.2S"))
        await eventually(lambda: instances(adapter, "heartbeat"), lambda found: len(found) >= 2)
        await adapter.set_definition_suspended(definition_id, True, False)  # no more rounds while we look
        started = await instances(adapter, "heartbeat")
        for instance in started:
            assert list(await tasks_of(adapter, instance.id)) == ["report"]
    async with database.engine.connect() as conn:
        events = (
            await conn.execute(
                sa.select(outbox.c.instance_id, outbox.c.data).where(
                    outbox.c.type == "process_manager.instance.started"
                )
            )
        ).all()
    # a round that read the schedule before the suspension may still have started one more
    assert {instance.id for instance in started} <= {row.instance_id for row in events}


async def test_a_schedule_survives_a_restart_of_the_gateway(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=IDLE) as adapter:
        await deploy(adapter, scheduled("after-restart", "timeDuration", "PT0.3S"))
        assert await instances(adapter, "after-restart") == []
    async with make_adapter(timer_interval=0.05) as restarted:
        (instance,) = await eventually(lambda: instances(restarted, "after-restart"), bool)
        assert list(await tasks_of(restarted, instance.id)) == ["report"]


async def test_a_new_version_replaces_the_schedule_of_the_older_one(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=IDLE) as adapter:
        await deploy(adapter, scheduled("replaced", "timeDate", "2020-01-01T00:00:00Z"))
        second = await deploy(adapter, scheduled("replaced", "timeDate", "2999-01-01T00:00:00Z"))
        assert await adapter.fire_start_timers() == 0
        await deploy(adapter, scheduled("replaced", "timeDuration", "PT0S"))
        assert await adapter.fire_start_timers() == 1
        (instance,) = await instances(adapter, "replaced")
        assert instance.definition_id != second
        await adapter.delete_definition(instance.definition_id, cascade=True)
        assert await adapter.fire_start_timers() == 0


async def test_the_schedule_starts_through_its_timer_and_a_manual_start_through_the_none_start_event(
    make_adapter: Any,
) -> None:
    async with make_adapter(timer_interval=IDLE) as adapter:
        await deploy(adapter, scheduled("both", "timeDate", "2020-01-01T00:00:00Z", none_start=True))
        assert await adapter.fire_start_timers() == 1
        (by_timer,) = await instances(adapter, "both")
        assert list(await tasks_of(adapter, by_timer.id)) == ["report"]
        by_hand = await start(adapter, "both")
        assert list(await tasks_of(adapter, by_hand)) == ["check"]
        assert (await adapter.get_instance(by_hand)).status == "active"
        assert await adapter.fire_start_timers() == 0  # the manual start left no timer waiting in its instance


async def test_a_suspended_definition_starts_nothing_until_activated(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=IDLE) as adapter:
        definition_id = await deploy(adapter, scheduled("paused", "timeDate", "2020-01-01T00:00:00Z"))
        await adapter.set_definition_suspended(definition_id, True, False)
        assert await adapter.fire_start_timers() == 0
        await adapter.set_definition_suspended(definition_id, False, False)
        assert await adapter.fire_start_timers() == 1


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        ("timeDate", "${tomorrow}", "The timer of timer start event 'tick' is the expression '${tomorrow}'"),
        ("timeCycle", "0 0 9 * * ?", "is a cron expression, which the embedded engine does not support"),
        ("timeCycle", "R/PT0S", "The timeCycle 'R/PT0S' of timer start event 'tick' repeats every 0 s"),
    ],
)
async def test_a_timer_start_event_the_engine_cannot_schedule_is_refused_at_deployment(
    adapter: EmbeddedAdapter, kind: str, text: str, says: str
) -> None:
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, scheduled("refused", kind, text))
    assert says in refused.value.detail
