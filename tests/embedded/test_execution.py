"""How the embedded engine runs processes: external work, failures and retries, BPMN errors, timers, scripts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.embedded import BpmnError, EmbeddedAdapter, runtime
from adapters.embedded.parsing import parse_bpmn
from adapters.embedded.runtime import Runtime
from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.errors import Conflict, NotFound
from gateway.schemas import HistoryQuery, TaskQuery
from gateway.tables import outbox
from gateway.variables import TypedValue, VariableType, parse_request_variables
from tests.embedded.conftest import bpmn, deploy, flow, incidents_of, start, tasks_of

START = '<bpmn:startEvent id="start"/>'
END = '<bpmn:endEvent id="end"/>'

PAYMENT = bpmn(
    "payment",
    START + flow("start", "charge")
    + '<bpmn:serviceTask id="charge" name="Charge card" camunda:type="external" camunda:topic="payments"/>'
    + '<bpmn:boundaryEvent id="declined" attachedToRef="charge"><bpmn:errorEventDefinition errorRef="card-declined"/>'
    "</bpmn:boundaryEvent>"
    + flow("charge", "ship") + '<bpmn:userTask id="ship" name="Ship"/>' + flow("ship", "end")
    + flow("declined", "fix") + '<bpmn:userTask id="fix" name="Fix payment"/>' + flow("fix", "end") + END,
    head='<bpmn:error id="card-declined" name="Card declined" errorCode="DECLINED"/>',
)  # fmt: skip


async def charge_card(variables: dict[str, Any]) -> dict[str, Any]:
    match variables.get("card"):
        case "declined":
            raise BpmnError("DECLINED", "insufficient funds", variables={"reason": "insufficient funds"})
        case "stolen":
            raise BpmnError("FRAUD")
        case "broken":
            raise ConnectionError("the payment provider is down") from TimeoutError("no answer within 5 s")
    return {"receipt": "r-1"}


# ------------------------------------------------------------------ external work
async def test_a_handler_completes_its_service_task_and_its_variables_flow_on(adapter: EmbeddedAdapter) -> None:
    adapter.register_handler("payments", charge_card)
    await deploy(adapter, PAYMENT)
    instance_id = await start(adapter, "payment", {"card": "ok"})
    assert list(await tasks_of(adapter, instance_id)) == ["ship"]
    assert (await adapter.get_variables(instance_id))["receipt"] == TypedValue(value="r-1", type=VariableType.STRING)
    activities = {(a.id, a.status) for a in (await adapter.get_instance(instance_id)).activities}
    assert {("start", "completed"), ("charge", "completed"), ("ship", "active")} <= activities


async def test_a_service_task_without_a_handler_waits_until_one_is_registered(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=0.05) as adapter:
        await deploy(adapter, PAYMENT)
        instance_id = await start(adapter, "payment", {"card": "ok"})
        waiting = (await adapter.get_instance(instance_id)).current_activities
        assert [(a.id, a.type, a.status) for a in waiting] == [("charge", "serviceTask", "waiting")]

        adapter.register_handler("payments", charge_card)  # the poller picks the waiting task up
        assert "ship" in await eventually(lambda: tasks_of(adapter, instance_id), lambda tasks: "ship" in tasks)


async def test_a_bpmn_error_takes_the_matching_boundary_event(adapter: EmbeddedAdapter) -> None:
    adapter.register_handler("payments", charge_card)
    await deploy(adapter, PAYMENT)
    instance_id = await start(adapter, "payment", {"card": "declined"})
    assert list(await tasks_of(adapter, instance_id)) == ["fix"]
    assert await incidents_of(adapter, instance_id) == []
    assert (await adapter.get_variables(instance_id))["reason"].value == "insufficient funds"
    statuses = {a.id: a.status for a in (await adapter.get_instance(instance_id)).activities}
    assert (statuses["charge"], statuses["declined"], statuses["fix"]) == ("cancelled", "completed", "active")


async def test_a_bpmn_error_nobody_catches_is_an_incident(adapter: EmbeddedAdapter) -> None:
    adapter.register_handler("payments", charge_card)
    await deploy(adapter, PAYMENT)
    instance_id = await start(adapter, "payment", {"card": "stolen"})
    (incident,) = await incidents_of(adapter, instance_id)
    assert (incident.incident_type, incident.activity_id) == ("unhandledBpmnError", "charge")
    assert "'FRAUD' was not caught" in incident.message


async def test_a_failing_handler_is_an_incident_a_failing_retry_a_new_one_and_a_fixed_retry_continues(
    adapter: EmbeddedAdapter,
) -> None:
    adapter.register_handler("payments", charge_card)
    await deploy(adapter, PAYMENT)
    instance_id = await start(adapter, "payment", {"card": "broken"})
    (first,) = await incidents_of(adapter, instance_id)
    assert (first.incident_type, first.activity_id, first.activity_name) == (
        "failedExternalTask",
        "charge",
        "Charge card",
    )
    assert first.message == "ConnectionError: the payment provider is down"
    assert first.detail == "TimeoutError: no answer within 5 s"  # the cause, never a Python traceback
    current = (await adapter.get_instance(instance_id)).current_activities
    assert [(a.id, a.status) for a in current] == [("charge", "failed")]

    await adapter.retry_engine_incident(first.id)
    (second,) = await incidents_of(adapter, instance_id)
    assert second.id != first.id and second.activity_id == "charge"

    await adapter.update_variables(instance_id, parse_request_variables({"card": "ok"}), [])
    await adapter.retry_engine_incident(second.id)
    assert list(await tasks_of(adapter, instance_id)) == ["ship"]
    assert await incidents_of(adapter, instance_id) == []
    assert (await adapter.get_engine_incident(first.id)).id == first.id  # resolved incidents can still be read
    with pytest.raises(Conflict):
        await adapter.retry_engine_incident(second.id)  # nothing failed any more


async def test_resolving_an_incident_closes_it_without_running_anything(adapter: EmbeddedAdapter) -> None:
    adapter.register_handler("payments", charge_card)
    await deploy(adapter, PAYMENT)
    instance_id = await start(adapter, "payment", {"card": "broken"})
    (incident,) = await incidents_of(adapter, instance_id)
    await adapter.annotate_engine_incident(incident.id, "provider outage, see ticket 42")
    assert (await adapter.get_engine_incident(incident.id)).annotation == "provider outage, see ticket 42"
    await adapter.resolve_engine_incident(incident.id)
    assert await incidents_of(adapter, instance_id) == []
    assert (await tasks_of(adapter, instance_id)) == {}


# ------------------------------------------------------------------ conditions and scripts
GATED = bpmn(
    "gated",
    START + flow("start", "check") + '<bpmn:exclusiveGateway id="check" name="Amount valid?"/>'
    + flow("check", "approve", "${amount &gt; 0}") + flow("check", "end", "${amount &lt;= 0}")
    + '<bpmn:userTask id="approve" name="Approve"/>' + flow("approve", "end") + END,
)  # fmt: skip


async def test_a_condition_that_cannot_be_evaluated_is_an_incident_until_the_data_is_fixed(
    adapter: EmbeddedAdapter,
) -> None:
    await deploy(adapter, GATED)
    instance_id = await start(adapter, "gated", {"amount": "lots"})
    (incident,) = await incidents_of(adapter, instance_id)
    assert (incident.incident_type, incident.activity_id, incident.activity_name) == (
        "conditionError",
        "check",
        "Amount valid?",
    )
    assert "'>' not supported between instances of 'str' and 'int'" in incident.message

    await adapter.update_variables(instance_id, parse_request_variables({"amount": 5}), [])
    await adapter.retry_engine_incident(incident.id)
    assert list(await tasks_of(adapter, instance_id)) == ["approve"]


SCRIPTED = bpmn(
    "scripted",
    START + flow("start", "compute")
    + '<bpmn:scriptTask id="compute" name="Compute total" scriptFormat="python">'
    "<bpmn:script>total = amount * 2</bpmn:script></bpmn:scriptTask>"
    + flow("compute", "check") + '<bpmn:userTask id="check" name="Check"/>' + flow("check", "end") + END,
)  # fmt: skip


async def test_script_tasks_are_an_incident_unless_an_operator_allows_scripts(make_adapter: Any) -> None:
    async with make_adapter() as adapter:
        await deploy(adapter, SCRIPTED)
        instance_id = await start(adapter, "scripted", {"amount": 21})
        (incident,) = await incidents_of(adapter, instance_id)
        assert (incident.incident_type, incident.activity_id) == ("failedJob", "compute")
        assert "Script tasks are disabled" in incident.message and "PM_EMBEDDED_ALLOW_SCRIPTS" in incident.message

    async with make_adapter(allow_scripts=True) as adapter:
        instance_id = await start(adapter, "scripted", {"amount": 21})
        assert (await adapter.get_variables(instance_id))["total"] == TypedValue(value=42, type=VariableType.INTEGER)
        assert list(await tasks_of(adapter, instance_id)) == ["check"]


async def test_an_endless_loop_becomes_an_incident_instead_of_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "MAX_ENGINE_STEPS", 50)
    looping = bpmn(
        "looping",
        START + flow("start", "count")
        + '<bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>'
        + flow("count", "again") + '<bpmn:exclusiveGateway id="again"/>' + flow("again", "count", "n &gt;= 0")
        + flow("again", "end", "n &lt; 0") + END,
    )  # fmt: skip
    execution = Runtime(allow_scripts=True, handler_timeout=1).start(parse_bpmn(looping)[0], {"n": 0})
    await execution.advance()
    (failure,) = execution.finish().failures
    assert (failure.activity_id, failure.message) == (
        "count",
        "The process ran 50 steps without waiting: is there an endless loop?",
    )


# ------------------------------------------------------------------ timers
DELAYED = bpmn(
    "delayed",
    START + flow("start", "pause")
    + '<bpmn:intermediateCatchEvent id="pause" name="Cool off"><bpmn:timerEventDefinition>'
    "<bpmn:timeDuration>PT0.2S</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    + flow("pause", "follow-up") + '<bpmn:userTask id="follow-up" name="Follow up"/>' + flow("follow-up", "end") + END,
)  # fmt: skip

ESCALATING = bpmn(
    "escalating",
    START + flow("start", "approve") + '<bpmn:userTask id="approve" name="Approve"/>'
    + '<bpmn:boundaryEvent id="too-slow" attachedToRef="approve"><bpmn:timerEventDefinition>'
    "<bpmn:timeDuration>PT0.2S</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
    + flow("approve", "end") + flow("too-slow", "escalate") + '<bpmn:userTask id="escalate" name="Escalate"/>'
    + flow("escalate", "end") + END,
)  # fmt: skip


async def test_the_poller_fires_timers(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=0.05) as adapter:
        await deploy(adapter, DELAYED)
        instance_id = await start(adapter, "delayed")
        waiting = (await adapter.get_instance(instance_id)).current_activities
        assert [(a.id, a.type, a.status) for a in waiting] == [("pause", "intermediateCatchEvent", "waiting")]
        assert "follow-up" in await eventually(
            lambda: tasks_of(adapter, instance_id), lambda tasks: "follow-up" in tasks
        )


async def test_a_boundary_timer_interrupts_its_user_task(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=0.05) as adapter:
        await deploy(adapter, ESCALATING)
        instance_id = await start(adapter, "escalating")
        approve = (await tasks_of(adapter, instance_id))["approve"]
        assert "escalate" in await eventually(lambda: tasks_of(adapter, instance_id), lambda tasks: "escalate" in tasks)
        assert list(await tasks_of(adapter, instance_id)) == ["escalate"]
        assert (await adapter.get_task(approve.id)).status == "cancelled"
        with pytest.raises(NotFound):
            await adapter.complete_task(approve.id, {}, user_id="alice")


async def test_timers_of_a_suspended_instance_wait(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=0.05) as adapter:
        await deploy(adapter, DELAYED)
        instance_id = await start(adapter, "delayed")
        await adapter.set_instance_suspended(instance_id, True)
        await asyncio.sleep(0.4)
        assert await tasks_of(adapter, instance_id) == {}
        await adapter.set_instance_suspended(instance_id, False)
        assert "follow-up" in await eventually(
            lambda: tasks_of(adapter, instance_id), lambda tasks: "follow-up" in tasks
        )


# ------------------------------------------------------------------ user tasks
ASSIGNED = bpmn(
    "assigned",
    START + flow("start", "review")
    + '<bpmn:userTask id="review" name="Review" camunda:assignee="${owner}" camunda:candidateUsers="ann, ben"'
    ' camunda:candidateGroups="sales,ops" camunda:formKey="forms/review" camunda:priority="80" camunda:dueDate="P2D"'
    ' camunda:followUpDate="2026-12-01T09:00:00Z"><bpmn:documentation>Look at it</bpmn:documentation></bpmn:userTask>'
    + flow("review", "end") + END,
)  # fmt: skip


async def test_user_tasks_keep_their_camunda_assignment(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, ASSIGNED)
    instance_id = await start(adapter, "assigned", {"owner": "carol"})
    task = await adapter.get_task((await tasks_of(adapter, instance_id))["review"].id)
    assert (task.assignee, task.status, task.candidate_users, task.candidate_groups) == (
        "carol", "assigned", ["ann", "ben"], ["sales", "ops"],
    )  # fmt: skip
    assert (task.form_key, task.priority, task.description) == ("forms/review", 80, "Look at it")
    assert task.follow_up == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert timedelta(days=1, hours=23) < task.due - datetime.now(UTC) <= timedelta(days=2)

    def ids(page: Any) -> list[str]:
        return [t.id for t in page.items]

    assert ids(await adapter.list_tasks(TaskQuery(candidate_user="ben"))) == [task.id]
    assert ids(await adapter.list_tasks(TaskQuery(candidate_group="ops", assignee="carol"))) == [task.id]
    assert ids(await adapter.list_tasks(TaskQuery(candidate_group="hr"))) == []
    assert ids(await adapter.list_tasks(TaskQuery(unassigned=True))) == []
    assert ids(await adapter.list_tasks(TaskQuery(due_before=datetime.now(UTC) + timedelta(days=3)))) == [task.id]


async def test_an_assignment_that_cannot_be_resolved_is_an_incident(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, ASSIGNED)
    instance_id = await start(adapter, "assigned")
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id == "review" and "Cannot assign the task" in incident.message
    assert await tasks_of(adapter, instance_id) == {}

    await adapter.update_variables(instance_id, parse_request_variables({"owner": "dan"}), [])
    await adapter.retry_engine_incident(incident.id)
    assert (await tasks_of(adapter, instance_id))["review"].assignee == "dan"


async def test_a_delegated_task_is_completed_by_its_delegate(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, GATED)
    instance_id = await start(adapter, "gated", {"amount": 3})
    task_id = (await tasks_of(adapter, instance_id))["approve"].id
    await adapter.claim_task(task_id, "bob")
    delegated = await adapter.delegate_task(task_id, "dave")
    assert (delegated.owner, delegated.assignee, delegated.status) == ("bob", "dave", "delegated")
    with pytest.raises(Conflict):
        await adapter.claim_task(task_id, "erin")

    await adapter.complete_task(task_id, {}, user_id="dave")
    done = await adapter.get_task(task_id)
    assert (done.status, done.delegation_state) == ("completed", "resolved")
    completed = await adapter.list_tasks(TaskQuery(status="completed"))
    assert [t.id for t in completed.items] == [task_id]
    activities = (await adapter.history_activities(HistoryQuery(definition_key="gated"))).items
    assert [(a.activity_id, a.assignee) for a in activities if a.activity_id == "approve"] == [("approve", "dave")]


async def test_a_suspended_instance_refuses_work_on_its_tasks(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, GATED)
    instance_id = await start(adapter, "gated", {"amount": 3})
    task_id = (await tasks_of(adapter, instance_id))["approve"].id
    await adapter.set_instance_suspended(instance_id, True)
    for call in (
        adapter.claim_task(task_id, "bob"),
        adapter.assign_task(task_id, "bob"),
        adapter.delegate_task(task_id, "bob"),
        adapter.complete_task(task_id, {}, user_id="bob"),
    ):
        with pytest.raises(Conflict):
            await call


# ------------------------------------------------------------------ variables, parallel paths, termination
PARALLEL = bpmn(
    "parallel",
    START + flow("start", "fork") + '<bpmn:parallelGateway id="fork"/>' + flow("fork", "left") + flow("fork", "right")
    + '<bpmn:userTask id="left"/><bpmn:userTask id="right"/>' + flow("left", "join") + flow("right", "join")
    + '<bpmn:parallelGateway id="join"/>' + flow("join", "end") + END,
)  # fmt: skip


async def test_variables_keep_their_types_through_the_engine(adapter: EmbeddedAdapter) -> None:
    async def bump(variables: dict[str, Any]) -> dict[str, Any]:
        return {"big": variables["big"] + 1, "when": "2027-01-01T00:00:00Z", "fresh": 5}

    adapter.register_handler("payments", bump)
    await deploy(adapter, PAYMENT)
    big = {"value": 9_007_199_254_740_993, "type": "Long"}
    instance_id = await start(
        adapter, "payment", {"big": big, "when": {"value": "2026-01-01T00:00:00Z", "type": "Date"}}
    )
    variables = await adapter.get_variables(instance_id)
    assert variables["big"] == TypedValue(value=9_007_199_254_740_994, type=VariableType.LONG)
    assert variables["when"] == TypedValue(value="2027-01-01T00:00:00Z", type=VariableType.DATE)
    assert variables["fresh"] == TypedValue(value=5, type=VariableType.INTEGER)


async def test_variables_of_one_branch_are_visible_before_the_branches_join(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, PARALLEL)
    instance_id = await start(adapter, "parallel")
    tasks = await tasks_of(adapter, instance_id)
    await adapter.complete_task(tasks["left"].id, parse_request_variables({"left": "done"}), user_id="alice")
    assert (await adapter.get_variables(instance_id))["left"].value == "done"
    await adapter.update_variables(instance_id, parse_request_variables({"note": "hi"}), [])
    await adapter.complete_task(tasks["right"].id, parse_request_variables({"right": "done"}), user_id="bob")
    instance = await adapter.get_instance(instance_id)
    assert instance.status == "completed"
    assert {name: v.value for name, v in instance.variables.items()} == {"left": "done", "right": "done", "note": "hi"}


async def test_terminating_cancels_tasks_waits_and_incidents(adapter: EmbeddedAdapter) -> None:
    adapter.register_handler("payments", charge_card)
    await deploy(adapter, PARALLEL)
    await deploy(adapter, PAYMENT)
    parallel_id = await start(adapter, "parallel")
    failed_id = await start(adapter, "payment", {"card": "broken"})
    for instance_id in (parallel_id, failed_id):
        await adapter.terminate_instance(instance_id, "test")
        instance = await adapter.get_instance(instance_id)
        assert (instance.status, instance.current_activities, instance.incidents) == ("terminated", [], [])
        assert instance.end_time is not None and instance.duration_ms is not None
    assert len((await adapter.list_tasks(TaskQuery(status="cancelled"))).items) == 2
    with pytest.raises(Conflict):
        await adapter.terminate_instance(parallel_id, None)
    with pytest.raises(Conflict):
        await adapter.update_variables(parallel_id, {}, ["x"])


async def test_the_engine_emits_task_created_and_instance_completed(
    adapter: EmbeddedAdapter, database: Database
) -> None:
    await deploy(adapter, GATED)
    instance_id = await start(adapter, "gated", {"amount": 3})
    await adapter.complete_task((await tasks_of(adapter, instance_id))["approve"].id, {}, user_id="alice")
    async with database.engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(outbox.c.type, outbox.c.instance_id, outbox.c.data).order_by(outbox.c.id))
        ).all()
    assert [(r.type, r.instance_id) for r in rows] == [
        ("process_manager.task.created", instance_id),
        ("process_manager.instance.completed", instance_id),
    ]
    created, completed = rows[0].data, rows[1].data
    assert (created["task_definition_key"], created["task_name"], created["definition_key"]) == (
        "approve",
        "Approve",
        "gated",
    )
    assert completed["definition_key"] == "gated" and completed["duration_ms"] >= 0


async def test_inbox_totals_follow_claims_and_completions(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, ASSIGNED.replace(b'camunda:assignee="${owner}" ', b""))
    instance_ids = [await start(adapter, "assigned") for _ in range(4)]
    task_ids = [(await tasks_of(adapter, i))["review"].id for i in instance_ids]
    await adapter.claim_task(task_ids[0], "ann")
    await adapter.complete_task(task_ids[1], {}, user_id="ben")
    await adapter.terminate_instance(instance_ids[2], None)

    for query, expected in (
        (TaskQuery(candidate_group="sales"), {task_ids[0], task_ids[3]}),
        (TaskQuery(candidate_group="sales", unassigned=True), {task_ids[3]}),
        (TaskQuery(candidate_user="ann", unassigned=False), {task_ids[0]}),
        (TaskQuery(candidate_user="ben", status="completed"), {task_ids[1]}),
    ):
        page = await adapter.list_tasks(query)
        assert ({t.id for t in page.items}, page.total) == (expected, len(expected)), query
