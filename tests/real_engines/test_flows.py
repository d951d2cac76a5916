"""Flows on the real engines: parallel branches, a boundary timer, a failing expression's incident and its
retry, claim conflicts, paging over several pages. The simulators run straight lines only and refuse the
branching and waiting flows at deployment (NotImplementedError); the failing expression is a straight line,
so they run it too and must fail as the engines do."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.engines.port import EngineAdapter
from gateway.engines.testing import Harness
from gateway.engines.testing.polling import eventually
from gateway.errors import Conflict
from gateway.registry import EngineRegistry
from gateway.schemas import EngineIncidentQuery, InstanceQuery, StartInstance, TaskQuery
from gateway.settings import Settings
from gateway.variables import parse_request_variables
from tests.conformance.harnesses.camunda7 import HARNESS as SIMULATED_CAMUNDA7
from tests.conformance.harnesses.flowable import HARNESS as SIMULATED_FLOWABLE
from tests.conformance.harnesses.real_camunda7 import HARNESS as CAMUNDA7
from tests.conformance.harnesses.real_flowable import HARNESS as FLOWABLE
from tests.conformance.harnesses.real_operaton import HARNESS as OPERATON
from tests.real_engines.flows import bpmn
from tests.real_engines.harness import on_real_engine

WAIT = 30.0  # seconds: the bound on the engine's job executor running a job or a due timer


REAL = [CAMUNDA7, OPERATON, FLOWABLE]


@pytest.fixture(params=REAL, ids=lambda h: h.id)
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.param


@pytest.fixture
async def adapter(
    harness: Harness, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[EngineAdapter]:
    engine = on_real_engine(harness, request).engine
    shutil.copy(sqlite_template, tmp_path / "gateway.db")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    settings = Settings(engines=[{"name": "real", "default": True, **engine}], database_url=database.url)
    transports = {"real": harness.make_transport()} if harness.make_transport else None
    registry = EngineRegistry(settings, database, transports=transports)
    await registry.start()
    try:
        yield registry.get().adapter
    finally:
        await registry.close()
        await database.dispose()


async def deploy_and_start(adapter: EngineAdapter, harness: Harness, key: str, variables: dict | None = None) -> str:
    await adapter.deploy(
        bpmn(harness.engine["type"], key), filename=f"{key}.bpmn", name=key, tenant_id=None, deployed_by="t"
    )
    started = await adapter.start_instance(
        StartInstance(definition_key=key, variables=parse_request_variables(variables or {})), started_by="tester"
    )
    return started.id


async def open_tasks(adapter: EngineAdapter, instance_id: str) -> dict[str, str]:
    """task definition key -> task id of the instance's open tasks."""
    page = await adapter.list_tasks(TaskQuery(instance_id=instance_id))
    return {t.task_definition_key: t.id for t in page.items}


async def wait_for_tasks(adapter: EngineAdapter, instance_id: str, keys: set[str]) -> dict[str, str]:
    async def probe() -> dict[str, str]:
        return await open_tasks(adapter, instance_id)

    return await eventually(probe, lambda tasks: set(tasks) == keys, WAIT)


async def test_parallel_branches_run_both_and_join(adapter: EngineAdapter, harness: Harness) -> None:
    instance_id = await deploy_and_start(adapter, harness, "parallel")
    tasks = await open_tasks(adapter, instance_id)
    assert set(tasks) == {"left", "right"}
    activities = {a.id for a in (await adapter.get_instance(instance_id)).current_activities}
    assert {"left", "right"} <= activities

    await adapter.complete_task(tasks["left"], {}, user_id="alice")
    assert set(await open_tasks(adapter, instance_id)) == {"right"}  # the join waits for the other branch
    await adapter.complete_task(tasks["right"], {}, user_id="bob")
    after = await wait_for_tasks(adapter, instance_id, {"after"})
    assert set(after) == {"after"}
    await adapter.complete_task(after["after"], {}, user_id="carol")
    done = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed", WAIT)
    assert done.status == "completed"
    path = [step.activity_id for step in done.execution_path]
    assert {"fork", "left", "right", "join", "after"} <= set(path)


async def test_boundary_timer_interrupts_the_task(adapter: EngineAdapter, harness: Harness) -> None:
    instance_id = await deploy_and_start(adapter, harness, "timer")
    assert set(await open_tasks(adapter, instance_id)) == {"wait"}
    escalated = await wait_for_tasks(adapter, instance_id, {"escalated"})
    assert set(escalated) == {"escalated"}, "the one-second boundary timer did not fire"
    await adapter.complete_task(escalated["escalated"], {}, user_id="alice")
    done = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed", WAIT)
    assert done.status == "completed"
    path = [step.activity_id for step in done.execution_path]
    assert "late" in path and "end-late" in path and "end" not in path


@pytest.mark.parametrize(
    "harness", [*REAL, SIMULATED_CAMUNDA7, SIMULATED_FLOWABLE], ids=lambda h: h.id, indirect=True
)  # a straight line, so the simulators run it too: they must fail as the engines do
async def test_failing_expression_is_an_incident_until_the_variable_is_fixed(
    adapter: EngineAdapter, harness: Harness
) -> None:
    instance_id = await deploy_and_start(adapter, harness, "dividing", {"divisor": 0})
    incidents = await eventually(
        lambda: adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id)),
        lambda p: len(p.items) > 0,
        WAIT,
    )
    assert incidents.total == 1
    incident = incidents.items[0]
    assert incident.activity_id == "divide"
    # Camunda: "... ${1 % divisor}. Cause: / by zero"; Flowable: "... ${1 % divisor} with Execution[...]"
    assert (incident.message or "").startswith("Error while evaluating expression: ${1 % divisor}"), incident.message

    await adapter.update_variables(instance_id, parse_request_variables({"divisor": 1}), [])
    await adapter.retry_engine_incident(incident.id)
    assert set(await wait_for_tasks(adapter, instance_id, {"done"})) == {"done"}
    assert (await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))).total == 0


async def test_claim_conflicts_and_paging_over_several_pages(adapter: EngineAdapter, harness: Harness) -> None:
    ids = [await deploy_and_start(adapter, harness, "parallel") for _ in range(3)]
    pages = [await adapter.list_tasks(TaskQuery(definition_key="parallel", size=4, page=n)) for n in (1, 2)]
    assert [len(p.items) for p in pages] == [4, 2] and pages[0].total == pages[1].total == 6
    assert {t.instance_id for p in pages for t in p.items} == set(ids)
    assert len({t.id for p in pages for t in p.items}) == 6

    instances = [await adapter.list_instances(InstanceQuery(definition_key="parallel", size=2, page=n)) for n in (1, 2)]
    assert [len(p.items) for p in instances] == [2, 1] and {i.id for p in instances for i in p.items} == set(ids)

    task_id = pages[0].items[0].id
    await adapter.claim_task(task_id, "alice")
    with pytest.raises(Conflict):
        await adapter.claim_task(task_id, "bob")
    assert (await adapter.get_task(task_id)).assignee == "alice"
