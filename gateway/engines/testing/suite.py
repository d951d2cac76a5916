"""The adapter conformance suite: the behaviour every engine adapter must show, run once per registered harness.

Each test is one rule of the port (`gateway.engines.port`): its docstrings and these tests state the same
contract. Import the tests into a test module with `from gateway.engines.testing.suite import *` (see
`gateway.engines.testing`); tests of optional operations declare `requires(Capability.X)`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.conditions import VariableOperator
from gateway.db import Database
from gateway.engines.port import Capability, EngineAdapter
from gateway.engines.testing.harness import Harness
from gateway.engines.testing.plugin import ACTOR, ENGINE_NAME
from gateway.engines.testing.polling import eventually
from gateway.engines.testing.requirements import requires
from gateway.errors import BadRequest, Conflict, NotFound, NotSupported
from gateway.journal import EVENT_PREFIX
from gateway.processes.service import ProcessService
from gateway.registry import EngineHandle
from gateway.schemas import (
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceMigration,
    InstanceModification,
    InstanceQuery,
    MessageCorrelation,
    ModificationInstruction,
    SignalBroadcast,
    SortOrder,
    StartInstance,
    TaskQuery,
)
from gateway.tables import audit_log, outbox
from gateway.variables import TypedValue, VariableType, parse_request_variables


async def deploy(adapter: EngineAdapter, harness: Harness, scenario: str, revision: int = 1) -> str:
    """Deploy a scenario; a later `revision` differs in content (an XML comment), as a real new version does."""
    xml = harness.bpmn[scenario] + (f"\n<!-- revision {revision} -->\n".encode() if revision > 1 else b"")
    deployment = await adapter.deploy(
        xml, filename=f"{scenario}.bpmn", name=scenario, tenant_id=None, deployed_by="tester"
    )
    (definition,) = [d for d in deployment.definitions if d.key == scenario]
    return definition.id


async def start(
    adapter: EngineAdapter, key: str, variables: dict[str, Any] | None = None, business_key: str | None = None
) -> str:
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
    assert definition.engine == ENGINE_NAME
    assert not definition.suspended

    latest = await adapter.list_definitions(DefinitionQuery(key="approval"))
    assert [(d.id, d.version) for d in latest.items] == [(second, 2)]
    assert latest.total == 1
    every = await adapter.list_definitions(
        DefinitionQuery(key="approval", latest_only=False, sort="version", order=SortOrder.ASC)
    )
    assert [d.version for d in every.items] == [1, 2]

    xml = await adapter.get_definition_xml(first)
    assert b'id="approval"' in xml and b"review" in xml


# ------------------------------------------------------------------ the happy path
async def test_task_lifecycle_from_start_to_completion(adapter: EngineAdapter, harness: Harness) -> None:
    definition_id = await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval", {"amount": 30}, business_key="order-1")

    instance = await adapter.get_instance(instance_id)
    assert instance.status == "active"
    assert (instance.definition_id, instance.definition_key, instance.business_key) == (
        definition_id,
        "approval",
        "order-1",
    )
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


async def test_listed_tasks_get_the_same_candidates_with_their_list_or_afterwards(
    adapter: EngineAdapter, harness: Harness
) -> None:
    # the merged inbox lists without candidates and reads them for the tasks on its page only
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")
    open_tasks = TaskQuery(instance_id=instance_id)
    listed = (await adapter.list_tasks(open_tasks)).items
    assert [t.candidate_groups for t in listed] == [["sales"]]
    assert await adapter.with_candidates((await adapter.list_tasks(open_tasks, candidates=False)).items) == listed

    await adapter.complete_task(task_id, {}, user_id=ACTOR)
    finished = TaskQuery(instance_id=instance_id, status="completed")
    listed = (await eventually(lambda: adapter.list_tasks(finished), lambda page: page.total == 1)).items
    assert await adapter.with_candidates((await adapter.list_tasks(finished, candidates=False)).items) == listed
    assert await adapter.with_candidates([]) == []


async def test_unclaim_and_assign(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")

    assert (await adapter.assign_task(task_id, "carol")).assignee == "carol"
    assert (await adapter.assign_task(task_id, "dave")).assignee == "dave"  # whoever held it
    unclaimed = await adapter.unclaim_task(task_id)
    assert unclaimed.assignee is None and unclaimed.status == "created"
    assert (await adapter.claim_task(task_id, "bob")).assignee == "bob"  # free again, anyone may claim


@requires(Capability.DELEGATE_TASK)
async def test_delegate_then_complete(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")
    await adapter.claim_task(task_id, "bob")

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
    "text": {"value": 'héllo "quoted"', "type": "String"},
    "small": {"value": -42, "type": "Integer"},
    "big": {"value": 9_007_199_254_740_993, "type": "Long"},
    "ratio": {"value": 0.125, "type": "Double"},
    "when": {"value": "2026-11-22T10:00:00.250Z", "type": "Date"},
    "doc": {"value": {"items": [1, 2], "nested": {"ok": True}, "n": None}, "type": "Json"},
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
        instance_id,
        parse_request_variables({"change": 2, "added": {"value": "2026-01-02T03:04:05Z", "type": "Date"}}),
        ["drop"],
    )
    assert after == await adapter.get_variables(instance_id)
    assert after["keep"].value == "a"
    assert after["change"] == TypedValue(value=2, type=VariableType.INTEGER)
    assert after["added"] == TypedValue(value="2026-01-02T03:04:05Z", type=VariableType.DATE)
    assert "drop" not in after


# ------------------------------------------------------------------ termination and deletion
async def test_terminate_instance(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    await adapter.terminate_instance(instance_id, "customer withdrew")
    instance = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status != "active")
    assert instance.status in ("terminated", "externally_terminated")
    assert (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).items == []
    active = await adapter.list_instances(InstanceQuery(definition_key="approval", status="active"))
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


# ------------------------------------------------------------------ messages, signals and modification
def message(name: str, **fields: Any) -> MessageCorrelation:
    variables = fields.pop("variables", {})
    return MessageCorrelation(message_name=name, variables=parse_request_variables(variables), **fields)


@requires(Capability.CORRELATE_MESSAGE, Capability.BROADCAST_SIGNAL)
async def test_start_by_message_correlate_by_business_key_and_interrupt_with_a_signal(
    adapter: EngineAdapter, harness: Harness
) -> None:
    await deploy(adapter, harness, "ordering")
    placed = await adapter.correlate_message(
        message("order-placed", business_key="o-1", variables={"orderId": "o-1", "amount": 100}), started_by=ACTOR
    )
    assert [(r.type, r.definition_key) for r in placed.results] == [("started", "ordering")]
    first = placed.results[0].instance_id
    second = await adapter.start_instance(
        StartInstance(
            definition_key="ordering",
            business_key="o-2",
            start_message="order-placed",
            variables=parse_request_variables({"orderId": "o-2"}),
        ),
        started_by=ACTOR,
    )
    for instance_id in (first, second.id):
        waiting = await eventually(
            partial(adapter.get_instance, instance_id),
            lambda details: [a.id for a in details.current_activities] == ["payment-received"],
        )
        assert waiting.status == "active"
    assert (await adapter.get_instance(first)).business_key == "o-1"

    with pytest.raises(Conflict):
        await adapter.correlate_message(message("payment-received"), started_by=ACTOR)
    with pytest.raises(NotFound):
        await adapter.correlate_message(message("payment-received", business_key="o-3"), started_by=ACTOR)

    paid = await adapter.correlate_message(
        message("payment-received", business_key="o-1", variables={"paid": True}), started_by=ACTOR
    )
    assert [(r.type, r.instance_id, r.definition_key) for r in paid.results] == [("correlated", first, "ordering")]
    await open_task(adapter, first, "ship")
    assert (await adapter.get_variables(first))["paid"].value is True

    signal = await adapter.broadcast_signal(SignalBroadcast(signal_name="order-cancelled"), started_by=ACTOR)
    assert signal.executions in (None, 1)  # only the first instance waits in `ship`; some engines do not count
    ended = await eventually(lambda: adapter.get_instance(first), lambda details: details.status == "completed")
    assert "withdrawn" in [step.activity_id for step in ended.execution_path]
    assert "shipped" not in [step.activity_id for step in ended.execution_path]
    assert (await adapter.list_tasks(TaskQuery(instance_id=first))).total == 0
    still = await adapter.get_instance(second.id)
    assert (still.status, [a.id for a in still.current_activities]) == ("active", ["payment-received"])


@requires(Capability.CORRELATE_MESSAGE, Capability.BROADCAST_SIGNAL)
async def test_messages_and_signals_record_their_events(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness, database: Database
) -> None:
    await deploy(adapter, harness, "ordering")
    placed = await processes.correlate_message(
        message("order-placed", business_key="o-9", variables={"orderId": "o-9"})
    )
    (started,) = placed.results
    await processes.correlate_message(message("payment-received", business_key="o-9"))
    await open_task(adapter, started.instance_id, "ship")
    await processes.broadcast_signal(SignalBroadcast(signal_name="order-cancelled"))

    events = [(kind, instance_id) for kind, instance_id, _ in await recorded_events(database)]
    assert events[:2] == [("instance.started", started.instance_id), ("message.correlated", started.instance_id)]
    assert ("message.correlated", started.instance_id) in events[2:]
    assert ("signal.broadcast", None) in events
    assert [(operation, status, outcome) for operation, _, status, outcome in await audit_rows(database)] == [
        ("correlate", 200, "success"),
        ("correlate", 200, "success"),
        ("broadcast", 202, "success"),
    ]


@requires(Capability.MODIFY_INSTANCE)
async def test_modification_moves_an_instance_past_a_failing_activity(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness
) -> None:
    await deploy(adapter, harness, "charging")
    instance_id = await start(adapter, "charging", {"fail": True})
    await eventually(
        lambda: adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id)),
        lambda page: page.total > 0,
        harness.incident_timeout,
    )
    moved = await processes.modify_instance(
        instance_id,
        InstanceModification(
            instructions=[
                ModificationInstruction(type="cancel", activity_id="charge"),
                ModificationInstruction(type="start_after", activity_id="charge"),
            ],
            annotation="card gateway down; confirmed by hand",
        ),
    )
    assert moved.status == "active"
    await open_task(adapter, instance_id, "confirm")
    assert (await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))).total == 0

    with pytest.raises(BadRequest) as refused:
        await processes.modify_instance(
            instance_id, InstanceModification(instructions=[ModificationInstruction(type="cancel", activity_id="nope")])
        )
    assert "'nope'" in refused.value.detail


def renamed(xml: bytes, old: str, new: str) -> bytes:
    """`xml` with the flow node `old` renamed `new`: its id and every reference to it (all quoted attribute values,
    `sourceRef`, `targetRef`, `bpmnElement`, in every dialect of the harnesses)."""
    return xml.replace(f'"{old}"'.encode(), f'"{new}"'.encode())


@requires(Capability.MIGRATE_INSTANCE)
async def test_migration_moves_a_waiting_instance_to_a_new_version(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness, database: Database
) -> None:
    first = await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval", business_key="b-7")
    await open_task(adapter, instance_id, "review")
    deployment = await adapter.deploy(
        renamed(harness.bpmn["approval"], "review", "check"),
        filename="approval.bpmn",
        name="approval",
        tenant_id=None,
        deployed_by="tester",
    )
    (second,) = [d.id for d in deployment.definitions if d.key == "approval"]

    with pytest.raises(BadRequest) as unmapped:  # v2 has no `review`: the engine refuses, nothing moves
        await processes.migrate_instance(instance_id, InstanceMigration(target_definition_id=second))
    assert "'review'" in unmapped.value.detail
    with pytest.raises(BadRequest) as unknown:
        await processes.migrate_instance(
            instance_id, InstanceMigration(target_definition_id=second, mappings={"review": "nope"})
        )
    assert "'nope'" in unknown.value.detail
    unmoved = await adapter.get_instance(instance_id)
    assert (unmoved.definition_id, [a.id for a in unmoved.current_activities]) == (first, ["review"])

    migrated = await processes.migrate_instance(
        instance_id, InstanceMigration(target_definition_id=second, mappings={"review": "check"})
    )
    assert (migrated.definition_id, migrated.status, migrated.business_key) == (second, "active", "b-7")
    task_id = await open_task(adapter, instance_id, "check")
    moved = await adapter.get_instance(instance_id)
    assert (moved.definition_id, [a.id for a in moved.current_activities]) == (second, ["check"])
    await adapter.complete_task(task_id, {}, user_id="alice")
    done = await eventually(partial(adapter.get_instance, instance_id), lambda details: details.status == "completed")
    assert done.definition_id == second

    events = [(kind, event_instance, data) for kind, event_instance, data in await recorded_events(database)]
    (event,) = [data for kind, event_instance, data in events if kind == "instance.migrated"]
    assert event["definition_id"] == second
    assert event["source_definition_id"] == first
    assert event["mappings"] == {"review": "check"}
    assert [(operation, status, outcome) for operation, _, status, outcome in await audit_rows(database)] == [
        ("migrate", 400, "failure"),
        ("migrate", 400, "failure"),
        ("migrate", 200, "success"),
    ]


# ------------------------------------------------------------------ the error contract (gateway.engines.port)
UNKNOWN = "9999999999999"


async def test_unknown_ids_are_not_found(adapter: EngineAdapter) -> None:
    calls = {
        "get_definition": adapter.get_definition(UNKNOWN),
        "get_definition_xml": adapter.get_definition_xml(UNKNOWN),
        "delete_definition": adapter.delete_definition(UNKNOWN, cascade=True),
        "get_instance": adapter.get_instance(UNKNOWN),
        "terminate_instance": adapter.terminate_instance(UNKNOWN, None),
        "get_variables": adapter.get_variables(UNKNOWN),
        "update_variables": adapter.update_variables(UNKNOWN, parse_request_variables({"a": 1}), []),
        "get_task": adapter.get_task(UNKNOWN),
        "claim_task": adapter.claim_task(UNKNOWN, "alice"),
        "unclaim_task": adapter.unclaim_task(UNKNOWN),
        "assign_task": adapter.assign_task(UNKNOWN, "alice"),
        "complete_task": adapter.complete_task(UNKNOWN, {}, user_id="alice"),
        "get_engine_incident": adapter.get_engine_incident(UNKNOWN),
        "retry_engine_incident": adapter.retry_engine_incident(UNKNOWN),
    }
    answers = {}
    for operation, call in calls.items():
        try:
            await call
            answers[operation] = "no error"
        except Exception as exc:  # every answer is collected, so one run names every deviation
            answers[operation] = type(exc).__name__
    assert answers == {operation: "NotFound" for operation in calls}


async def test_start_with_unknown_definition_key_is_not_found(adapter: EngineAdapter) -> None:
    with pytest.raises(NotFound):
        await start(adapter, "no-such-process")


@requires(Capability.SUSPEND_DEFINITION)
async def test_suspending_an_unknown_definition_is_not_found(adapter: EngineAdapter) -> None:
    with pytest.raises(NotFound):
        await adapter.set_definition_suspended(UNKNOWN, True, include_instances=False)


@requires(Capability.SUSPEND_INSTANCE)
async def test_suspending_an_unknown_instance_is_not_found(adapter: EngineAdapter) -> None:
    with pytest.raises(NotFound):
        await adapter.set_instance_suspended(UNKNOWN, True)


@requires(Capability.DELEGATE_TASK)
async def test_delegating_an_unknown_task_is_not_found(adapter: EngineAdapter) -> None:
    with pytest.raises(NotFound):
        await adapter.delegate_task(UNKNOWN, "dave")


async def test_completing_a_task_twice_is_not_found(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")
    await adapter.complete_task(task_id, {}, user_id="alice")
    with pytest.raises(NotFound):
        await adapter.complete_task(task_id, {}, user_id="alice")
    assert (await adapter.get_task(task_id)).status == "completed"  # read from the engine's history


async def test_claiming_a_task_another_user_holds_is_a_conflict(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")
    await adapter.claim_task(task_id, "alice")
    with pytest.raises(Conflict):
        await adapter.claim_task(task_id, "bob")
    assert (await adapter.get_task(task_id)).assignee == "alice"


async def test_terminating_an_ended_instance_is_refused(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    await adapter.terminate_instance(instance_id, None)
    ended = await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status != "active")
    with pytest.raises(Conflict, match="already ended"):
        await adapter.terminate_instance(instance_id, None)
    assert (await adapter.get_instance(instance_id)).status == ended.status


@requires(Capability.SUSPEND_INSTANCE)
async def test_suspended_instance_blocks_completion(adapter: EngineAdapter, harness: Harness) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")

    assert (await adapter.set_instance_suspended(instance_id, True)).status == "suspended"
    assert (await adapter.get_task(task_id)).suspension_state == "suspended"
    with pytest.raises(Conflict):
        await adapter.complete_task(task_id, {}, user_id="alice")
    with pytest.raises(Conflict):
        await adapter.claim_task(task_id, "alice")
    assert (await adapter.set_instance_suspended(instance_id, False)).status == "active"
    await adapter.complete_task(task_id, {}, user_id="alice")
    assert (
        await eventually(lambda: adapter.get_instance(instance_id), lambda i: i.status == "completed")
    ).status == "completed"


@requires(Capability.SUSPEND_DEFINITION)
async def test_suspended_definition_rejects_new_instances(adapter: EngineAdapter, harness: Harness) -> None:
    definition_id = await deploy(adapter, harness, "approval")
    assert (await adapter.set_definition_suspended(definition_id, True, include_instances=False)).suspended
    with pytest.raises(Conflict):
        await start(adapter, "approval")
    assert not (await adapter.set_definition_suspended(definition_id, False, include_instances=False)).suspended
    await start(adapter, "approval")


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


# ------------------------------------------------------------------ engine incidents: annotate and resolve
async def engine_incident(adapter: EngineAdapter, harness: Harness) -> str:
    """Start a failing charge and return the id of the engine incident it raises."""
    await deploy(adapter, harness, "charging")
    instance_id = await start(adapter, "charging", {"fail": True})
    page = await eventually(
        lambda: adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id)),
        lambda found: found.total > 0,
        harness.incident_timeout,
    )
    assert page.total == 1, f"no engine incident for instance {instance_id}"
    return page.items[0].id


@requires(Capability.ANNOTATE_INCIDENT)
async def test_annotate_engine_incident_sets_and_clears_the_annotation(
    adapter: EngineAdapter, harness: Harness
) -> None:
    incident_id = await engine_incident(adapter, harness)
    await adapter.annotate_engine_incident(incident_id, "Card provider down; retry after 14:00")
    assert (await adapter.get_engine_incident(incident_id)).annotation == "Card provider down; retry after 14:00"
    await adapter.annotate_engine_incident(incident_id, None)
    assert (await adapter.get_engine_incident(incident_id)).annotation is None
    with pytest.raises(NotFound):
        await adapter.annotate_engine_incident(UNKNOWN, "nothing there")


@requires(Capability.RESOLVE_INCIDENT)
async def test_resolve_engine_incident_without_retry(adapter: EngineAdapter, harness: Harness) -> None:
    incident_id = await engine_incident(adapter, harness)
    incident = await adapter.get_engine_incident(incident_id)
    await adapter.resolve_engine_incident(incident_id)
    remaining = await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=incident.instance_id))
    assert incident_id not in [i.id for i in remaining.items]
    # the failed work did not run again: the instance still waits at the charge, no confirm task appeared
    tasks = await adapter.list_tasks(TaskQuery(instance_id=incident.instance_id))
    assert [t.task_definition_key for t in tasks.items] == []
    with pytest.raises(NotFound):
        await adapter.resolve_engine_incident(UNKNOWN)


# ------------------------------------------------------------------ what the adapter declares
async def test_emulated_behaviour_is_explained_and_declared(adapter: EngineAdapter) -> None:
    """GET /engines shows `emulated`; an emulated capability is also declared, so the gateway lets it through."""
    for behaviour, explanation in adapter.emulated.items():
        assert explanation.strip(), f"emulated {behaviour!r} has no explanation"
        if behaviour in {c.value for c in Capability}:
            assert Capability(behaviour) in adapter.capabilities, f"{behaviour} is emulated but not declared"


# ------------------------------------------------------------------ the events and audit rows of each change
# The use cases of gateway.processes over the adapter under test, as the API runs them. Only the events of the
# changes themselves are checked: the events of what the engine does on its own (task.created,
# instance.completed) only the embedded engine writes today.
ENGINE_EVENTS = ("task.created", "instance.completed")


async def recorded_events(database: Database) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(type without `process_manager.`, instance id, data) of every outbox event in order, without the engine's
    own events."""
    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.select(outbox).order_by(outbox.c.id))).mappings().all()
    events = [(row["type"].removeprefix(EVENT_PREFIX), row["instance_id"], row["data"]) for row in rows]
    return [event for event in events if event[0] not in ENGINE_EVENTS]


async def audit_rows(database: Database) -> list[tuple[str, str | None, int, str]]:
    """(operation, resource id, status, outcome) of every audit row, in order."""
    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.select(audit_log).order_by(audit_log.c.id))).mappings().all()
    return [(row["operation"], row["resource_id"], row["status"], row["outcome"]) for row in rows]


async def test_each_change_records_its_event_and_audit_row(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness, database: Database
) -> None:
    deployment = await processes.deploy(
        harness.bpmn["approval"], filename="approval.bpmn", name="approval", tenant_id=None
    )
    instance = await processes.start_instance(
        StartInstance(
            definition_key="approval", business_key="order-7", variables=parse_request_variables({"amount": 5})
        )
    )
    task_id = await open_task(adapter, instance.id, "review")
    await processes.update_variables(instance.id, parse_request_variables({"note": "rush"}), ["amount"])
    await processes.claim_task(task_id, "alice")
    await processes.unclaim_task(task_id)
    await processes.assign_task(task_id, "carol")
    await processes.complete_task(task_id, parse_request_variables({"approved": True}))
    other = await processes.start_instance(StartInstance(definition_key="approval"))
    await processes.terminate_instance(other.id, "withdrawn")

    (definition,) = [d for d in deployment.definitions if d.key == "approval"]
    events = await recorded_events(database)
    updated = events.pop(2)
    assert updated[:2] == ("instance.variables_updated", instance.id)
    assert (updated[2]["definition_key"], updated[2]["modified"], updated[2]["deleted"]) == (
        "approval",
        ["note"],
        ["amount"],
    )
    assert [(kind, instance_id) for kind, instance_id, _ in events] == [
        ("definition.deployed", None),
        ("instance.started", instance.id),
        ("task.assigned", instance.id),
        ("task.assigned", instance.id),
        ("task.assigned", instance.id),
        ("task.completed", instance.id),
        ("instance.started", other.id),
        ("instance.terminated", other.id),
    ]
    data = [d for _, _, d in events]
    assert data[0]["definitions"] == [{"id": definition.id, "key": "approval", "version": definition.version}]
    assert (data[1]["definition_key"], data[1]["business_key"], data[1]["started_by"]) == ("approval", "order-7", ACTOR)
    assert data[1]["variables"] == {"amount": {"value": 5, "type": "Integer"}}
    assert [(d["action"], d["assignee"], d["task_id"]) for d in data[2:5]] == [
        ("claim", "alice", task_id),
        ("unclaim", None, task_id),
        ("assign", "carol", task_id),
    ]
    assert (data[5]["task_id"], data[5]["task_definition_key"], data[5]["completed_by"]) == (task_id, "review", ACTOR)
    assert data[5]["variables"] == {"approved": {"value": True, "type": "Boolean"}}
    assert data[7]["reason"] == "withdrawn"

    assert await audit_rows(database) == [
        ("deploy", deployment.deployment_id, 201, "success"),
        ("start", instance.id, 201, "success"),
        ("update_variables", instance.id, 200, "success"),
        ("claim", task_id, 200, "success"),
        ("unclaim", task_id, 200, "success"),
        ("assign", task_id, 200, "success"),
        ("complete", task_id, 204, "success"),
        ("start", other.id, 201, "success"),
        ("terminate", other.id, 204, "success"),
    ]


async def test_a_refused_change_is_audited_as_a_failure_without_events(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness, database: Database
) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")
    await adapter.claim_task(task_id, "alice")

    with pytest.raises(Conflict):
        await processes.claim_task(task_id, "bob")
    with pytest.raises(NotFound):
        await processes.complete_task(UNKNOWN, {})

    assert await recorded_events(database) == []
    assert await audit_rows(database) == [("claim", task_id, 409, "failure"), ("complete", UNKNOWN, 404, "failure")]


@requires(Capability.SUSPEND_INSTANCE)
async def test_suspending_and_activating_an_instance_record_their_events(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness, database: Database
) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    await processes.set_instance_suspended(instance_id, suspended=True)
    await processes.set_instance_suspended(instance_id, suspended=False)
    events = await recorded_events(database)
    assert [(kind, subject, data["definition_key"]) for kind, subject, data in events] == [
        ("instance.suspended", instance_id, "approval"),
        ("instance.activated", instance_id, "approval"),
    ]


@requires(Capability.DELEGATE_TASK)
async def test_delegating_records_the_assignment_event(
    processes: ProcessService, adapter: EngineAdapter, harness: Harness, database: Database
) -> None:
    await deploy(adapter, harness, "approval")
    instance_id = await start(adapter, "approval")
    task_id = await open_task(adapter, instance_id, "review")
    await adapter.claim_task(task_id, "bob")
    await processes.delegate_task(task_id, "dave")
    events = await recorded_events(database)
    assert [(kind, data["action"], data["assignee"], data["owner"]) for kind, _, data in events] == [
        ("task.assigned", "delegate", "dave", "bob")
    ]


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
    assert review, f"no review activity of instance {instance_id}: {activities.items}"
    activity = review[0]
    assert activity.start_time is not None and activity.end_time is not None and activity.duration_ms is not None
    assert activity.end_time - activity.start_time >= timedelta(0)


async def test_history_reads_what_finished_after_a_moment(adapter: EngineAdapter, harness: Harness) -> None:
    """`finished_after`: an instance started before the moment but finished after it is read, with the activity
    runs that ended after it; what finished before is not (the analytics projection reads changes this way)."""
    await deploy(adapter, harness, "approval")
    earlier, later = await start(adapter, "approval"), await start(adapter, "approval")
    await adapter.complete_task(await open_task(adapter, earlier, "review"), {}, user_id="alice")
    await eventually(lambda: adapter.get_instance(earlier), lambda i: i.status == "completed")
    ended = (await adapter.history_instances(HistoryQuery(definition_key="approval", finished=True, size=500))).items
    end_of_earlier = next(i.end_time for i in ended if i.id == earlier)
    assert end_of_earlier is not None
    await asyncio.sleep(0.05)  # the engine's clock moves past the moment
    await adapter.complete_task(await open_task(adapter, later, "review"), {}, user_id="alice")
    await eventually(lambda: adapter.get_instance(later), lambda i: i.status == "completed")

    moment = end_of_earlier + timedelta(milliseconds=1)
    instances = await adapter.history_instances(HistoryQuery(definition_key="approval", finished_after=moment))
    assert [i.id for i in instances.items] == [later] and instances.total == 1
    runs = await adapter.history_activities(HistoryQuery(definition_key="approval", finished_after=moment, size=500))
    assert {run.instance_id for run in runs.items} == {later}
    assert "review" in {run.activity_id for run in runs.items}
    assert all(run.end_time is not None and run.end_time >= moment for run in runs.items)


async def test_health_reports_up_with_version(adapter: EngineAdapter) -> None:
    health = await adapter.health()
    assert health.status == "up"
    assert health.version


# ------------------------------------------------------------------ variable conditions and sorting
# Three orders: (amount, customer). Each operator's condition and the orders (by index) it must find.
ORDERS = [(500, "ACME"), (12000, "ACME Corp"), (25000, "Globex")]
CONDITIONS = {
    VariableOperator.EQ: ("amount:eq:12000", [1]),
    VariableOperator.NEQ: ('customer:neq:"ACME"', [1, 2]),
    VariableOperator.GT: ("amount:gt:10000", [1, 2]),
    VariableOperator.GTE: ("amount:gte:12000", [1, 2]),
    VariableOperator.LT: ("amount:lt:12000", [0]),
    VariableOperator.LTE: ("amount:lte:12000", [0, 1]),
    VariableOperator.LIKE: ('customer:like:"ACME%"', [0, 1]),
    VariableOperator.IN: ('customer:in:["ACME","Globex"]', [0, 2]),
}


def _handle(adapter: EngineAdapter) -> EngineHandle:
    return EngineHandle(config=adapter.context.config, adapter=adapter)


async def _orders(adapter: EngineAdapter, harness: Harness) -> list[str]:
    await deploy(adapter, harness, "approval")
    return [await start(adapter, "approval", {"amount": amount, "customer": customer}) for amount, customer in ORDERS]


@pytest.mark.parametrize("operator", list(VariableOperator))
async def test_instances_filter_by_each_variable_operator_or_refuse_it(
    adapter: EngineAdapter, harness: Harness, operator: VariableOperator
) -> None:
    """An operator the adapter declares (`variable_operators`) filters natively; any other is a 501 before the
    adapter is called, naming the engine and the operator."""
    condition, expected = CONDITIONS[operator]
    query = InstanceQuery(definition_key="approval", variable=[condition])
    if operator not in adapter.variable_operators:
        with pytest.raises(NotSupported, match=f"operator '{operator}'"):
            _handle(adapter).check_query(query)
        return
    ids = await _orders(adapter, harness)
    found = await adapter.list_instances(query)
    assert sorted(i.id for i in found.items) == sorted(ids[n] for n in expected)
    assert found.total == len(expected)


async def test_tasks_filter_by_their_instance_variables(adapter: EngineAdapter, harness: Harness) -> None:
    ids = await _orders(adapter, harness)
    for instance_id in ids:
        await open_task(adapter, instance_id, "review")
    found = await adapter.list_tasks(TaskQuery(definition_key="approval", variable=['customer:eq:"Globex"']))
    assert [t.instance_id for t in found.items] == [ids[2]] and found.total == 1


@pytest.mark.parametrize(
    ("query_class", "field"),
    [(InstanceQuery, field) for field in sorted(InstanceQuery.sortable)]
    + [(TaskQuery, field) for field in sorted(TaskQuery.sortable)],
)
async def test_lists_sort_by_each_field_or_refuse_it(
    adapter: EngineAdapter, harness: Harness, query_class: type[InstanceQuery | TaskQuery], field: str
) -> None:
    """A sortable field is sorted by the engine (values in order, missing ones together); one the adapter declares
    unsortable is a 501 naming the field."""
    ascending = query_class(definition_key="approval", sort=field, order=SortOrder.ASC)
    if field in adapter.unsortable.get(query_class, frozenset()):
        with pytest.raises(NotSupported, match=f"by {field}"):
            _handle(adapter).check_query(ascending)
        return
    ids = await _orders(adapter, harness)
    for instance_id in ids:
        await open_task(adapter, instance_id, "review")
    lister = adapter.list_instances if query_class is InstanceQuery else adapter.list_tasks
    for query in (ascending, ascending.model_copy(update={"order": SortOrder.DESC})):
        page = await lister(query)  # type: ignore[arg-type]
        assert page.total == 3 and len(page.items) == 3
        values = [getattr(item, field) for item in page.items if getattr(item, field) is not None]
        assert values == sorted(values, reverse=query.order is SortOrder.DESC)


# Every test of the suite, for `from gateway.engines.testing.suite import *`; marked for pytest-asyncio so the suite
# runs whatever asyncio mode the importing project configures.
__all__ = [name for name in list(globals()) if name.startswith("test_")]
for _name in __all__:
    globals()[_name] = pytest.mark.asyncio(globals()[_name])
