"""The adapter conformance suite: the behaviour every engine adapter must show (run once per harness)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

import pytest

from gateway.engines.port import Capability, EngineAdapter
from gateway.errors import Conflict, NotFound
from gateway.schemas import (
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceQuery,
    StartInstance,
    TaskQuery,
)
from gateway.variables import TypedValue, VariableType, parse_request_variables
from tests.conformance.harness import Harness
from tests.polling import eventually

T = TypeVar("T")



async def deploy(adapter: EngineAdapter, harness: Harness, scenario: str, revision: int = 1) -> str:
    """Deploy a scenario; a later `revision` differs in content (an XML comment), as a real new version does."""
    xml = harness.bpmn[scenario] + (f"\n<!-- revision {revision} -->\n".encode() if revision > 1 else b"")
    deployment = await adapter.deploy(xml, filename=f"{scenario}.bpmn", name=scenario, tenant_id=None, deployed_by="tester")
    (definition,) = [d for d in deployment.definitions if d.key == scenario]
    return definition.id


async def start(adapter: EngineAdapter, key: str, variables: dict[str, Any] | None = None, business_key: str | None = None) -> str:
    request = StartInstance(
        definition_key=key, business_key=business_key, variables=parse_request_variables(variables or {})
    )
    return (await adapter.start_instance(request, started_by="tester")).id


async def open_task(adapter: EngineAdapter, instance_id: str, task_key: str, timeout: float = 5.0) -> str:
    page = await eventually(
        lambda: adapter.list_tasks(TaskQuery(instance_id=instance_id)),
        lambda p: any(t.task_definition_key == task_key for t in p.items),
        timeout,
    )
    matches = [t for t in page.items if t.task_definition_key == task_key]
    assert matches, f"no open task {task_key!r} on instance {instance_id}: {page.items}"
    return matches[0].id


# ------------------------------------------------------------------ definitions
async def test_deploy_lists_and_versions_definitions(adapter: EngineAdapter, harness: Harness) -> None:
    first = await deploy(adapter, harness, "approval")
    second = await deploy(adapter, harness, "approval", revision=2)
    assert first != second

    definition = await adapter.get_definition(second)
    assert (definition.key, definition.name, definition.version) == ("approval", "Approval", 2)
    assert definition.engine == "under-test"
    assert not definition.suspended

    latest = await adapter.list_definitions(DefinitionQuery(key="approval"))
    assert [(d.id, d.version) for d in latest.items] == [(second, 2)]
    assert latest.total == 1
    every = await adapter.list_definitions(DefinitionQuery(key="approval", latest_only=False, sort="version", order="asc"))
    assert [d.version for d in every.items] == [1, 2]

    xml = await adapter.get_definition_xml(first)
    assert b'id="approval"' in xml and b"review" in xml


async def test_unknown_ids_are_not_found(adapter: EngineAdapter) -> None:
    missing = "9999999999999"
    calls = [
        adapter.get_definition(missing),
        adapter.get_definition_xml(missing),
        adapter.get_instance(missing),
        adapter.get_variables(missing),
        adapter.terminate_instance(missing, None),
        adapter.get_task(missing),
        adapter.claim_task(missing, "alice"),
        adapter.complete_task(missing, {}, user_id="alice"),
        adapter.get_engine_incident(missing),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call


async def test_start_with_unknown_definition_key_is_not_found(adapter: EngineAdapter) -> None:
    with pytest.raises(NotFound):
        await start(adapter, "no-such-process")


# ------------------------------------------------------------------ the happy path
async def test_task_lifecycle_from_start_to_completion(adapter: EngineAdapter, harness: Harness) -> None:
    definition_id = await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval", {"amount": 30}, business_key="order-1")

    instance = await adapter.get_instance(instance_id)
    assert instance.status == "active"
    assert (instance.definition_id, instance.definition_key, instance.business_key) == (definition_id, "approval", "order-1")
    assert "review" in [a.id for a in instance.current_activities]

    task_id = await open_task(adapter, instance_id, "review")
    task = await adapter.get_task(task_id)
    assert (task.name, task.instance_id, task.definition_key) == ("Review request", instance_id, "approval")
    assert task.candidate_groups == ["sales"]
    assert task.assignee is None and task.status == "created"
    assert task.variables["amount"] == TypedValue(value=30, type=VariableType.INTEGER)

    by_group = await adapter.list_tasks(TaskQuery(candidate_group="sales", unassigned=True))
    assert task_id in [t.id for t in by_group.items]

    claimed = await adapter.claim_task(task_id, "alice")
    assert (claimed.assignee, claimed.status) == ("alice", "assigned")
    await adapter.claim_task(task_id, "alice")  # claiming one's own task again is fine
    with pytest.raises(Conflict):
        await adapter.claim_task(task_id, "bob")
    assert [t.id for t in (await adapter.list_tasks(TaskQuery(assignee="alice"))).items] == [task_id]

    completed = await adapter.complete_task(task_id, parse_request_variables({"approved": True}), user_id="alice")
    assert (completed.id, completed.name, completed.instance_id, completed.task_definition_key) == (
        task_id,
        "Review request",
        instance_id,
        "review",
    )
    done = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed")
    assert done.status == "completed"
    assert done.end_time is not None and done.duration_ms is not None and done.duration_ms >= 0
    assert "review" in [step.activity_id for step in done.execution_path]
    assert (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).items == []
    with pytest.raises(NotFound):
        await adapter.complete_task(task_id, {}, user_id="alice")


async def test_unclaim_assign_and_delegate(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")

    assert (await adapter.assign_task(task_id, "carol")).assignee == "carol"
    unclaimed = await adapter.unclaim_task(task_id)
    assert unclaimed.assignee is None and unclaimed.status == "created"
    assert (await adapter.claim_task(task_id, "bob")).assignee == "bob"  # free again, anyone may claim

    if Capability.DELEGATE_TASK in adapter.capabilities:
        delegated = await adapter.delegate_task(task_id, "dave")
        assert (delegated.assignee, delegated.owner, delegated.status) == ("dave", "bob", "delegated")
        details = await adapter.get_task(task_id)
        assert details.delegation_state == "pending"
        # completing a delegated task finishes it in one step on every engine
        await adapter.complete_task(task_id, parse_request_variables({"checked_by": "dave"}), user_id="dave")
        done = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed")
        assert done.status == "completed"
        assert (await adapter.get_variables(instance_id))["checked_by"].value == "dave"


# ------------------------------------------------------------------ variables
EVERY_TYPE = {
    "nothing": {"value": None, "type": "Null"},
    "flag": {"value": True, "type": "Boolean"},
    "text": {"value": "héllo \"quoted\"", "type": "String"},
    "small": {"value": -42, "type": "Integer"},
    "big": {"value": 9_007_199_254_740_993, "type": "Long"},
    "ratio": {"value": 0.125, "type": "Double"},
    "when": {"value": "2026-11-22T10:00:00.250Z", "type": "Date"},
    "doc": {"value": {"items": [1, 2], "nested": {"ok": True}}, "type": "Json"},
}


async def test_variables_round_trip_with_every_type(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval", EVERY_TYPE)
    variables = await adapter.get_variables(instance_id)
    for name, expected in parse_request_variables(EVERY_TYPE).items():
        assert variables[name] == expected, name


async def test_update_variables_modifies_and_deletes(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval", {"keep": "a", "change": 1, "drop": True})
    after = await adapter.update_variables(
        instance_id, parse_request_variables({"change": 2, "added": {"value": "2026-01-02T03:04:05Z", "type": "Date"}}), ["drop"]
    )
    assert after == await adapter.get_variables(instance_id)
    assert after["keep"].value == "a"
    assert after["change"] == TypedValue(value=2, type=VariableType.INTEGER)
    assert after["added"] == TypedValue(value="2026-01-02T03:04:05Z", type=VariableType.DATE)
    assert "drop" not in after


# ------------------------------------------------------------------ suspension and termination
async def test_suspended_instance_blocks_completion(adapter: EngineAdapter, harness: Harness) -> None:
    if Capability.SUSPEND_INSTANCE not in adapter.capabilities:
        pytest.skip(f"{harness.id} declares no instance suspension (the gateway answers 501)")
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")

    assert (await adapter.set_instance_suspended(instance_id, True)).status == "suspended"
    assert (await adapter.get_task(task_id)).suspension_state == "suspended"
    with pytest.raises(Conflict):
        await adapter.complete_task(task_id, {}, user_id="alice")
    assert (await adapter.set_instance_suspended(instance_id, False)).status == "active"
    await adapter.complete_task(task_id, {}, user_id="alice")
    assert (await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed")).status == "completed"


async def test_suspended_definition_rejects_new_instances(adapter: EngineAdapter, harness: Harness) -> None:
    if Capability.SUSPEND_DEFINITION not in adapter.capabilities:
        pytest.skip(f"{harness.id} declares no definition suspension (the gateway answers 501)")
    definition_id = await deploy(adapter, harness, "approval")
    assert (await adapter.set_definition_suspended(definition_id, True, include_instances=False)).suspended
    with pytest.raises(Conflict):
        await start(adapter, "approval")
    assert not (await adapter.set_definition_suspended(definition_id, False, include_instances=False)).suspended
    await start(adapter, "approval")


async def test_terminate_instance(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    await adapter.terminate_instance(instance_id, "customer withdrew")
    instance = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status != "active")
    assert instance.status in ("terminated", "externally_terminated")
    assert (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).items == []
    active = await adapter.list_instances(InstanceQuery(definition_key="approval", status="active"))
    assert instance_id not in [i.id for i in active.items]


async def test_delete_definition_needs_cascade_while_instances_run(adapter: EngineAdapter, harness: Harness) -> None:
    definition_id = await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    with pytest.raises(Conflict):
        await adapter.delete_definition(definition_id, cascade=False)
    await adapter.get_definition(definition_id)  # still there
    await adapter.delete_definition(definition_id, cascade=True)
    with pytest.raises(NotFound):
        await adapter.get_definition(definition_id)
    active = await adapter.list_instances(InstanceQuery(status="active"))
    assert instance_id not in [i.id for i in active.items]


# ------------------------------------------------------------------ listing
async def test_instance_list_filters_and_pages(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    ids = [await start(adapter, "approval", business_key=f"order-{n}") for n in range(3)]

    first = await adapter.list_instances(InstanceQuery(definition_key="approval", size=2, page=1))
    second = await adapter.list_instances(InstanceQuery(definition_key="approval", size=2, page=2))
    assert first.total == second.total == 3
    assert len(first.items) == 2 and len(second.items) == 1
    assert {i.id for i in first.items + second.items} == set(ids)

    by_key = await adapter.list_instances(InstanceQuery(business_key="order-1"))
    assert [i.id for i in by_key.items] == [ids[1]]
    assert by_key.items[0].business_key == "order-1"


# ------------------------------------------------------------------ failures
async def test_failing_task_becomes_incident_and_retry_continues(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "charging")
    instance_id = await start(adapter, "charging", {"fail": True})

    incidents = await eventually(
        lambda: adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id)),
        lambda page: page.total > 0,
        harness.incident_timeout,
    )
    assert incidents.total == 1
    incident = incidents.items[0]
    assert (incident.instance_id, incident.activity_id) == (instance_id, "charge")
    assert incident.message
    assert (await adapter.get_engine_incident(incident.id)).id == incident.id
    details = await adapter.get_instance(instance_id)
    assert [i.id for i in details.incidents] == [incident.id]
    assert details.status == "active"

    await adapter.update_variables(instance_id, parse_request_variables({"fail": False}), [])
    await adapter.retry_engine_incident(incident.id)
    await open_task(adapter, instance_id, "confirm", harness.incident_timeout)
    remaining = await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))
    assert remaining.total == 0


# ------------------------------------------------------------------ history and health
async def test_history_has_finished_instances_and_activity_durations(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    await adapter.complete_task(await open_task(adapter, instance_id, "review"), {}, user_id="alice")
    await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed")

    finished = await adapter.history_instances(HistoryQuery(definition_key="approval", finished=True))
    assert instance_id in [i.id for i in finished.items]
    activities = await adapter.history_activities(HistoryQuery(definition_key="approval"))
    review = [a for a in activities.items if a.activity_id == "review" and a.instance_id == instance_id]
    assert review and review[0].end_time is not None and review[0].duration_ms is not None
    assert review[0].end_time - review[0].start_time >= timedelta(0)


async def test_health_reports_up_with_version(adapter: EngineAdapter) -> None:
    health = await adapter.health()
    assert health.status == "up"
    assert health.version
