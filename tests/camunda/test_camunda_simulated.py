"""Camunda 7 behaviour beyond the conformance suite, end to end against the simulated engine-rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.camunda import Camunda7Adapter
from gateway.db import Database
from gateway.errors import Conflict, InvalidBpmn
from gateway.registry import EngineRegistry
from gateway.schemas import HistoryQuery, InstanceQuery, StartInstance, TaskQuery
from gateway.settings import Settings
from gateway.variables import TypedValue, VariableType, parse_request_variables
from tests.camunda.simulator import CamundaSimulator
from tests.conformance.harnesses.camunda7 import APPROVAL, CHARGING, CREDENTIALS, HARNESS


async def build(database: Database, url: str) -> tuple[EngineRegistry, Camunda7Adapter]:
    settings = Settings(engines=[{"name": "c7", **HARNESS.engine, "url": url}], database_url=database.url)
    simulator = CamundaSimulator(credentials=CREDENTIALS)
    registry = EngineRegistry(settings, database, transports={"c7": simulator.transport})
    adapter = registry.get("c7").adapter
    assert isinstance(adapter, Camunda7Adapter)
    return registry, adapter


@pytest.fixture
async def adapter(database: Database) -> AsyncIterator[Camunda7Adapter]:
    registry, built = await build(database, HARNESS.engine["url"])
    yield built
    await registry.close()


async def deploy(adapter: Camunda7Adapter, xml: str = APPROVAL, filename: str = "approval.bpmn") -> str:
    deployment = await adapter.deploy(xml.encode(), filename=filename, name=None, tenant_id=None, deployed_by="tess")
    return deployment.definitions[0].id


async def start(adapter: Camunda7Adapter, key: str = "approval", **variables: object) -> str:
    request = StartInstance(definition_key=key, variables=parse_request_variables(variables))
    return (await adapter.start_instance(request, started_by="tess")).id


async def test_camunda_refuses_a_process_without_history_time_to_live(adapter: Camunda7Adapter) -> None:
    without_ttl = APPROVAL.replace(' camunda:historyTimeToLive="P30D"', "")
    with pytest.raises(InvalidBpmn) as caught:
        await deploy(adapter, without_ttl)
    assert "History Time To Live (TTL) cannot be null" in (caught.value.engine_message or "")


async def test_malformed_bpmn_names_the_line(adapter: Camunda7Adapter) -> None:
    with pytest.raises(InvalidBpmn) as caught:
        await deploy(adapter, APPROVAL.replace("</bpmn:process>", ""))
    assert "| line " in caught.value.detail


async def test_a_bpmn_uploaded_under_another_name_is_still_deployed(adapter: Camunda7Adapter) -> None:
    definition_id = await deploy(adapter, filename="approval-v2.xml")
    assert (await adapter.get_definition(definition_id)).deployed_by == "tess"


async def test_finished_instances_keep_their_variables_and_tasks(adapter: Camunda7Adapter) -> None:
    await deploy(adapter)
    instance_id = await start(adapter, amount=30)
    (task,) = (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).items
    await adapter.claim_task(task.id, "alice")
    await adapter.complete_task(task.id, parse_request_variables({"approved": True}), user_id="alice")

    assert await adapter.get_variables(instance_id) == {
        "amount": TypedValue(value=30, type=VariableType.INTEGER),
        "approved": TypedValue(value=True, type=VariableType.BOOLEAN),
    }
    finished = await adapter.get_task(task.id)
    assert (finished.status, finished.assignee) == ("completed", "alice")
    completed = await adapter.list_tasks(TaskQuery(status="completed", instance_id=instance_id))
    assert [t.id for t in completed.items] == [task.id]
    with pytest.raises(Conflict, match="already ended"):
        await adapter.terminate_instance(instance_id, None)
    with pytest.raises(Conflict, match="already ended"):
        await adapter.set_instance_suspended(instance_id, True)


async def test_a_cancelled_instance_cancels_its_tasks(adapter: Camunda7Adapter) -> None:
    await deploy(adapter)
    instance_id = await start(adapter)
    await adapter.terminate_instance(instance_id, "withdrawn")

    assert (await adapter.get_instance(instance_id)).status == "externally_terminated"
    cancelled = await adapter.list_tasks(TaskQuery(status="cancelled", instance_id=instance_id))
    assert [t.task_definition_key for t in cancelled.items] == ["review"]
    terminated = await adapter.list_instances(InstanceQuery(status="externally_terminated"))
    assert [i.id for i in terminated.items] == [instance_id]


async def test_suspending_a_definition_with_its_instances(adapter: Camunda7Adapter) -> None:
    definition_id = await deploy(adapter)
    instance_id = await start(adapter)
    await adapter.set_definition_suspended(definition_id, True, include_instances=True)

    assert (await adapter.get_instance(instance_id)).status == "suspended"
    (task,) = (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).items
    with pytest.raises(Conflict):
        await adapter.claim_task(task.id, "alice")


async def test_a_failed_job_shows_in_the_instance_and_its_incident(adapter: Camunda7Adapter) -> None:
    await deploy(adapter, CHARGING, "charging.bpmn")
    instance_id = await start(adapter, "charging", fail=True)

    details = await adapter.get_instance(instance_id)
    assert [(a.id, a.status) for a in details.current_activities] == [("charge", "failed")]
    (incident,) = details.incidents
    assert (incident.activity_name, incident.definition_key) == ("Charge card", "charging")
    assert "Cannot resolve identifier 'cardGateway'" in (incident.message or "")
    detailed = await adapter.get_engine_incident(incident.id)
    assert (detailed.detail or "").startswith("org.camunda.bpm.engine.ProcessEngineException")

    await adapter.annotate_engine_incident(incident.id, "card expired")
    assert (await adapter.get_engine_incident(incident.id)).annotation == "card expired"


async def test_historic_activities_of_every_version(adapter: Camunda7Adapter) -> None:
    for _ in range(2):
        await deploy(adapter)
        await start(adapter)
    everything = await adapter.history_activities(HistoryQuery(definition_key="approval", size=10))
    assert everything.total == 4  # per instance: the start event and the open review
    second_page = await adapter.history_activities(HistoryQuery(definition_key="approval", page=2, size=3))
    assert (second_page.total, len(second_page.items)) == (4, 1)
    finished = await adapter.history_activities(HistoryQuery(definition_key="approval", finished=True))
    assert {record.activity_id for record in finished.items} == {"requested"}


async def test_a_named_engine_is_served_under_its_path(database: Database) -> None:
    registry, named = await build(database, "http://camunda7.test/engine-rest/engine/default")
    try:
        await deploy(named)
        assert (await named.get_instance(await start(named))).status == "active"
        assert (await named.health()).status == "up"
    finally:
        await registry.close()
