"""Optimistic locking: changes racing on one instance never lose an update; the loser fails and can be retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.embedded import ConcurrentModification, EmbeddedAdapter, repository
from gateway.db import Database
from gateway.errors import NotFound
from gateway.tables import outbox
from gateway.uow import transaction
from gateway.variables import parse_request_variables
from tests.embedded.conftest import bpmn, deploy, flow, start, tasks_of

# Each branch records its result through a slow handler, inside the completing transaction: two completes
# of the two branches therefore both load the instance before either saves it.
RACE = bpmn(
    "race",
    '<bpmn:startEvent id="start"/>' + flow("start", "fork") + '<bpmn:parallelGateway id="fork"/>'
    + flow("fork", "left") + flow("fork", "right") + '<bpmn:userTask id="left"/><bpmn:userTask id="right"/>'
    + flow("left", "record-left") + flow("right", "record-right")
    + '<bpmn:serviceTask id="record-left" camunda:topic="record"/>'
    + '<bpmn:serviceTask id="record-right" camunda:topic="record"/>'
    + flow("record-left", "join") + flow("record-right", "join") + '<bpmn:parallelGateway id="join"/>'
    + flow("join", "end") + '<bpmn:endEvent id="end"/>',
)  # fmt: skip


async def slow_record(variables: dict[str, Any]) -> None:
    await asyncio.sleep(0.1)


async def complete_retrying(
    adapter: EmbeddedAdapter, task_id: str, variables: dict[str, Any], conflicts: list[str]
) -> None:
    """What the gateway does with ConcurrentModification: run the whole change again."""
    for _ in range(3):
        try:
            await adapter.complete_task(task_id, parse_request_variables(variables), user_id="tester")
            return
        except ConcurrentModification:
            conflicts.append(task_id)
    raise AssertionError("still conflicting after 3 attempts")


async def test_saving_over_a_newer_version_is_a_concurrent_modification(
    adapter: EmbeddedAdapter, database: Database
) -> None:
    await deploy(adapter, RACE)
    instance_id = await start(adapter, "race")
    async with transaction(database) as uow:
        stale = await repository.load_instance(uow.session, instance_id)
    async with transaction(database) as uow:
        await repository.save_instance(uow.session, stale, variables={"first": {"value": 1, "type": "Integer"}})
    with pytest.raises(ConcurrentModification):
        async with transaction(database) as uow:
            await repository.save_instance(uow.session, stale, variables={"second": {"value": 2, "type": "Integer"}})
    assert list(await adapter.get_variables(instance_id)) == ["first"]


async def test_completing_both_branches_at_once_loses_no_update(adapter: EmbeddedAdapter, database: Database) -> None:
    adapter.register_handler("record", slow_record)
    await deploy(adapter, RACE)
    instance_id = await start(adapter, "race")
    tasks = await tasks_of(adapter, instance_id)
    conflicts: list[str] = []
    await asyncio.gather(
        complete_retrying(adapter, tasks["left"].id, {"left": "done"}, conflicts),
        complete_retrying(adapter, tasks["right"].id, {"right": "done"}, conflicts),
    )
    # SQLite runs one writer at a time, so only PostgreSQL races (and the later save loses once).
    assert len(conflicts) == (0 if database.is_sqlite else 1)
    instance = await adapter.get_instance(instance_id)
    assert instance.status == "completed"
    assert {name: v.value for name, v in instance.variables.items()} == {"left": "done", "right": "done"}
    assert sorted(a.id for a in instance.activities if a.id.startswith("record")) == ["record-left", "record-right"]
    async with database.engine.connect() as conn:
        completions = await conn.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.type == "process_manager.instance.completed")
        )
    assert completions == 1  # the lost attempt's events rolled back with it


async def test_the_same_task_completed_twice_at_once_completes_once(adapter: EmbeddedAdapter) -> None:
    adapter.register_handler("record", slow_record)
    await deploy(adapter, RACE)
    task_id = (await tasks_of(adapter, await start(adapter, "race")))["left"].id
    outcomes = await asyncio.gather(
        *(complete_retrying(adapter, task_id, {}, []) for _ in range(2)), return_exceptions=True
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["NoneType", "NotFound"]
    assert isinstance(next(o for o in outcomes if o is not None), NotFound)
