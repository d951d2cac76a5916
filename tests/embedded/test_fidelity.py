"""Real-world BPMN on the embedded engine: each fault kind of issue 12 as a small model of our own.

Runaways (never block the loop), event-based gateways and timers, parallel joins in loops, multi-instance,
errors in multi-instance subprocesses, internal names, background failures, valid models, message starts,
values and plain refusals.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.embedded import BpmnError, EmbeddedAdapter, repository, runtime, tables
from gateway.db import Database, utcnow
from gateway.engines.testing.polling import eventually
from gateway.errors import Conflict, InvalidBpmn, ValidationFailed
from gateway.schemas import TaskQuery
from gateway.tables import outbox
from gateway.uow import reading
from gateway.variables import VariableType, parse_request_variables
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


async def test_an_endless_loop_is_an_incident(adapter: EmbeddedAdapter) -> None:
    """The loop-round budget ends a loop that never waits; whether engine work holds the event loop meanwhile is
    measured by bench/event_loop_stalls.py (a timing, not a test)."""
    await deploy(adapter, SPINNING)
    instance_id = await start(adapter, "spinning")
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id in ("spin", "again")
    assert f"ran {runtime.MAX_LOOP_ROUNDS} rounds of a loop without waiting: is there an endless loop?" in (
        incident.message
    )
    assert (await adapter.get_instance(instance_id)).status == "active"


async def test_an_unconditional_self_call_is_refused_at_deployment(adapter: EmbeddedAdapter) -> None:
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, RECURSIVE)
    assert "Call activity 'myself' calls its own process 'recursive'" in refused.value.detail


def calling(process_id: str, called: str) -> bytes:
    return bpmn(
        process_id,
        START + flow("start", f"call-{called}") + f'<bpmn:callActivity id="call-{called}" calledElement="{called}"/>'
        + flow(f"call-{called}", "end") + END,
    )  # fmt: skip


async def test_processes_calling_each_other_on_every_run_are_refused_at_deployment(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, bpmn("ping", START + flow("start", "end") + END))
    await deploy(adapter, calling("pong", "ping"))  # pong calls the first ping, which ends
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, calling("ping", "pong"))  # a new ping calling pong, which calls ping again
    assert refused.value.detail == (
        "Process 'ping' calls itself through other processes on every run (call activity 'call-pong' of process "
        "'ping' calls 'pong', whose call activity 'call-ping' of process 'pong' calls 'ping'): they would call each "
        "other without end (put one of the calls behind a condition)"
    )
    both = calling("ping", "pong").replace(b"</bpmn:definitions>", b"") + (
        b'<bpmn:process id="pong" isExecutable="true"><bpmn:startEvent id="pong-start"/>'
        b'<bpmn:sequenceFlow id="f1" sourceRef="pong-start" targetRef="back"/>'
        b'<bpmn:callActivity id="back" calledElement="ping"/></bpmn:process></bpmn:definitions>'
    )
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, both)
    assert "call activity 'back' of process 'pong' calls 'ping'" in refused.value.detail


async def test_a_self_call_that_never_ends_is_an_incident_on_the_call_activity(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, RECURSIVE_BEHIND_A_CONDITION)
    instance_id = await start(adapter, "countdown", {"depth": 1})
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id == "myself"
    assert f"nest deeper than {runtime.MAX_CALL_DEPTH} levels" in incident.message


# ------------------------------------------------------------------ 1: event-based gateways and timers
def timer(kind: str, text: str) -> str:
    return f"<bpmn:timerEventDefinition><bpmn:{kind}>{text}</bpmn:{kind}></bpmn:timerEventDefinition>"


FIRST_DEADLINE = bpmn(
    "first-deadline",
    START + flow("start", "which") + '<bpmn:eventBasedGateway id="which"/>'
    + flow("which", "soon") + flow("which", "later")
    + f'<bpmn:intermediateCatchEvent id="soon" name="Wait">{timer("timeDuration", "PT0.3S")}'
    "</bpmn:intermediateCatchEvent>"
    + f'<bpmn:intermediateCatchEvent id="later" name="Wait">{timer("timeDuration", "PT2S")}'
    "</bpmn:intermediateCatchEvent>"
    + flow("soon", "remind") + '<bpmn:userTask id="remind"/>' + flow("remind", "end")
    + flow("later", "give-up") + '<bpmn:userTask id="give-up"/>' + flow("give-up", "end") + END,
)  # fmt: skip


async def test_the_first_timer_of_an_event_based_gateway_wins_and_the_other_is_withdrawn(make_adapter: Any) -> None:
    async with make_adapter(timer_interval=0.05) as adapter:
        await deploy(adapter, FIRST_DEADLINE)
        instance_id = await start(adapter, "first-deadline")
        assert await tasks_of(adapter, instance_id) == {}
        opened = await eventually(lambda: tasks_of(adapter, instance_id), bool)
        assert list(opened) == ["remind"]
        details = await adapter.get_instance(instance_id)
        assert {a.id: a.status for a in details.activities}["which"] == "completed"
        assert "later" not in {a.id for a in details.current_activities}
        async with reading(adapter.db) as session:
            assert await repository.instances_with_work(session, utcnow() + timedelta(hours=1), [], 10) == []


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("timeDate", "2020-01-01T10:00:00Z"),
        ("timeDate", "2020-01-01T10:00:00+01:00"),
        ("timeDate", "2020-01-01T10:00:00+0100"),
        ("timeDate", "2020-01-01T10:00:00-05"),
        ("timeDate", "2020-01-01T10:00:00.250Z"),
        ("timeDate", "20200101T100000Z"),
        ("timeDate", "2020-01-01"),
        ("timeDuration", "PT0.1S"),
        ("timeDuration", "pt0,1s"),
        ("timeCycle", "R1/PT0.1S"),
        ("timeCycle", "R/PT0.1S"),
        ("timeCycle", "R2/2020-01-01T10:00:00Z/PT1H"),
        ("timeCycle", "R1/PT1H/2020-01-01T10:00:00Z"),
        ("timeCycle", "R1/2020-01-01T10:00:00Z/2020-01-01T11:00:00Z"),
    ],
)
@pytest.mark.parametrize("place", ["catch", "boundary", "start"])
async def test_every_iso_8601_timer_form_fires_on_start_catch_and_boundary_events(
    make_adapter: Any, kind: str, text: str, place: str
) -> None:
    if place == "start":
        body = f'<bpmn:startEvent id="start">{timer(kind, text)}</bpmn:startEvent>' + flow("start", "next")
    elif place == "catch":
        body = START + flow("start", "wait") + f'<bpmn:intermediateCatchEvent id="wait">{timer(kind, text)}'
        body += "</bpmn:intermediateCatchEvent>" + flow("wait", "next")
    else:
        body = START + flow("start", "work") + '<bpmn:userTask id="work"/>' + flow("work", "end")
        body += f'<bpmn:boundaryEvent id="late" attachedToRef="work">{timer(kind, text)}</bpmn:boundaryEvent>'
        body += flow("late", "next")
    model = bpmn("timed", body + '<bpmn:userTask id="next"/>' + flow("next", "end") + END)
    async with make_adapter(timer_interval=0.05) as adapter:
        await deploy(adapter, model)
        instance_id = await start(adapter, "timed")
        opened = await eventually(lambda: tasks_of(adapter, instance_id), lambda tasks: "next" in tasks)
        assert "next" in opened
        assert await incidents_of(adapter, instance_id) == []


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        ("timeDuration", "P1X", "The timeDuration 'P1X' of timer event 'wait' is not an ISO 8601"),
        ("timeDate", "2020-13-01T00:00:00Z", "The timeDate '2020-13-01T00:00:00Z' of timer event 'wait'"),
        ("timeCycle", "R/soon/later", "The timeCycle 'R/soon/later' of timer event 'wait' is not a repeating"),
        ("timeCycle", "0 0/5 * * * ?", "is a cron expression, which the embedded engine does not support"),
        ("timeDuration", " ", "The timeDuration of timer event 'wait' is empty"),
    ],
)
async def test_a_malformed_timer_is_refused_at_deployment_naming_the_element_and_the_text(
    adapter: EmbeddedAdapter, kind: str, text: str, says: str
) -> None:
    body = START + flow("start", "wait") + f'<bpmn:intermediateCatchEvent id="wait">{timer(kind, text)}'
    body += "</bpmn:intermediateCatchEvent>" + flow("wait", "end") + END
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, bpmn("timed", body))
    assert says in refused.value.detail


async def test_a_timer_whose_expression_cannot_be_evaluated_is_one_incident_not_an_error_answer(
    adapter: EmbeddedAdapter,
) -> None:
    model = bpmn(
        "escalating",
        START + flow("start", "work") + '<bpmn:userTask id="work"/>' + flow("work", "end")
        + f'<bpmn:boundaryEvent id="remind" attachedToRef="work" cancelActivity="false">'
        f'{timer("timeCycle", "${reminderCycle}")}</bpmn:boundaryEvent>' + flow("remind", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "escalating")
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id == "remind"
    assert "the variable 'reminderCycle' is not set" in incident.message
    assert await open_keys(adapter, instance_id) == ["work"]


# ------------------------------------------------------------------ 2: a parallel join inside a loop
ROUNDS = bpmn(
    "rounds",
    START + flow("start", "split") + '<bpmn:parallelGateway id="split"/>' + flow("split", "a") + flow("split", "b")
    + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>' + flow("a", "join") + flow("b", "join")
    + '<bpmn:parallelGateway id="join"/>' + flow("join", "review") + '<bpmn:userTask id="review"/>'
    + flow("review", "again") + '<bpmn:exclusiveGateway id="again" default="again-end"/>'
    + flow("again", "split", "${redo}") + '<bpmn:sequenceFlow id="again-end" sourceRef="again" targetRef="end"/>' + END,
)  # fmt: skip


async def complete(
    adapter: EmbeddedAdapter, instance_id: str, key: str, variables: dict[str, Any] | None = None
) -> None:
    task = (await tasks_of(adapter, instance_id))[key]
    await adapter.complete_task(task.id, parse_request_variables(variables or {}), user_id="tester")


async def open_keys(adapter: EmbeddedAdapter, instance_id: str) -> list[str]:
    page = await adapter.list_tasks(TaskQuery(instance_id=instance_id, size=100))
    return sorted(task.task_definition_key for task in page.items if task.status in ("created", "assigned"))


async def test_a_parallel_join_in_a_loop_waits_for_both_branches_every_round(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, ROUNDS)
    instance_id = await start(adapter, "rounds")
    await complete(adapter, instance_id, "a")
    assert await open_keys(adapter, instance_id) == ["b"]
    await complete(adapter, instance_id, "b")
    await complete(adapter, instance_id, "review", {"redo": True})
    assert await open_keys(adapter, instance_id) == ["a", "b"]
    await complete(adapter, instance_id, "b")  # the other order this round
    assert await open_keys(adapter, instance_id) == ["a"]
    await complete(adapter, instance_id, "a")
    assert await open_keys(adapter, instance_id) == ["review"]
    await complete(adapter, instance_id, "review", {"redo": False})
    assert (await adapter.get_instance(instance_id)).status == "completed"


async def test_a_parallel_join_of_branches_that_pass_straight_through_fires_once_all_arrive(
    adapter: EmbeddedAdapter,
) -> None:
    branches = ("a", "b", "c")
    model = bpmn(
        "straight",
        START + flow("start", "split") + '<bpmn:parallelGateway id="split"/>'
        + "".join(flow("split", b) + f'<bpmn:task id="{b}"/>' + flow(b, "join") for b in branches)
        + '<bpmn:parallelGateway id="join"/>' + flow("join", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    assert (await adapter.get_instance(await start(adapter, "straight"))).status == "completed"


# ------------------------------------------------------------------ 3: multi-instance
def inspections(characteristics: str, head: str = "") -> bytes:
    return bpmn(
        "inspections",
        START + flow("start", "inspect")
        + f'<bpmn:userTask id="inspect" camunda:assignee="${{room}}">{characteristics}</bpmn:userTask>'
        + flow("inspect", "end") + END,
        head=head,
    )  # fmt: skip


STANDARD_MI = inspections(
    "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopDataInputRef>rooms</bpmn:loopDataInputRef>"
    "<bpmn:loopDataOutputRef>findings</bpmn:loopDataOutputRef>"
    '<bpmn:inputDataItem id="room" name="room"/><bpmn:outputDataItem id="finding" name="finding"/>'
    "</bpmn:multiInstanceLoopCharacteristics>"
)


async def test_each_multi_instance_task_shows_its_own_element_and_the_output_keeps_input_order(
    adapter: EmbeddedAdapter,
) -> None:
    await deploy(adapter, STANDARD_MI)
    instance_id = await start(adapter, "inspections", {"rooms": ["attic", "cellar", "kitchen"]})
    page = await adapter.list_tasks(TaskQuery(instance_id=instance_id, size=10))
    by_room = {task.assignee: task.id for task in page.items}
    for room, task_id in by_room.items():
        assert (await adapter.get_task(task_id)).variables["room"].value == room
    for room in ("kitchen", "attic", "cellar"):  # completion order differs from input order
        await adapter.complete_task(by_room[room], parse_request_variables({"finding": f"seen-{room}"}), user_id="t")
    assert (await adapter.get_variables(instance_id))["findings"].value == ["seen-attic", "seen-cellar", "seen-kitchen"]
    assert (await adapter.get_instance(instance_id)).status == "completed"


async def test_a_multi_instance_begun_before_a_restart_of_the_gateway_still_collects_its_output(
    make_adapter: Any,
) -> None:
    async with make_adapter() as adapter:
        await deploy(adapter, STANDARD_MI)
        instance_id = await start(adapter, "inspections", {"rooms": ["attic", "cellar"]})
    async with make_adapter() as restarted:  # parses the definition afresh: no instance has run on its spec
        for task in (await restarted.list_tasks(TaskQuery(instance_id=instance_id, size=10))).items:
            finding = {"finding": f"seen-{task.assignee}"}
            await restarted.complete_task(task.id, parse_request_variables(finding), user_id="t")
        assert (await restarted.get_variables(instance_id))["findings"].value == ["seen-attic", "seen-cellar"]
        assert (await restarted.get_instance(instance_id)).status == "completed"


@pytest.mark.parametrize(
    ("namespace", "uri"), [("camunda", "http://camunda.org/schema/1.0/bpmn"), ("flowable", "http://flowable.org/bpmn")]
)
async def test_modeler_collection_and_element_variable_attributes_are_accepted(
    adapter: EmbeddedAdapter, namespace: str, uri: str
) -> None:
    model = inspections(
        f'<bpmn:multiInstanceLoopCharacteristics xmlns:{namespace}="{uri}" isSequential="false" '
        f'{namespace}:collection="${{rooms}}" {namespace}:elementVariable="room"/>'
    )
    await deploy(adapter, model)
    instance_id = await start(adapter, "inspections", {"rooms": ["attic", "cellar"]})
    page = await adapter.list_tasks(TaskQuery(instance_id=instance_id, size=10))
    assert sorted(task.assignee for task in page.items) == ["attic", "cellar"]
    for task in page.items:
        assert (await adapter.get_task(task.id)).variables["room"].value == task.assignee


async def test_a_collection_that_is_not_a_variable_name_is_refused_with_the_reason(adapter: EmbeddedAdapter) -> None:
    model = inspections(
        '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${order.rooms()}" camunda:elementVariable="room"/>'
    )
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, model)
    assert "collection '${order.rooms()}' of activity 'inspect' is not a variable name" in refused.value.detail


@pytest.mark.parametrize("sequential", ["true", "false"])
async def test_a_missing_collection_is_an_incident_on_the_multi_instance_activity(
    adapter: EmbeddedAdapter, sequential: str
) -> None:
    model = inspections(
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="{sequential}" camunda:collection="rooms" '
        'camunda:elementVariable="room"/>'
    )
    await deploy(adapter, model)
    instance_id = await start(adapter, "inspections")
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id == "inspect"
    assert incident.message == "The collection variable 'rooms' of multi-instance activity 'inspect' is not set"


# ------------------------------------------------------------------ 4: an error inside a multi-instance subprocess
CRATES = bpmn(
    "crates",
    START + flow("start", "each")
    + '<bpmn:subProcess id="each"><bpmn:multiInstanceLoopCharacteristics>'
    '<bpmn:loopDataInputRef>crates</bpmn:loopDataInputRef><bpmn:inputDataItem id="crate" name="crate"/>'
    "</bpmn:multiInstanceLoopCharacteristics>"
    + '<bpmn:startEvent id="inner-start"/>' + flow("inner-start", "look") + '<bpmn:userTask id="look"/>'
    + flow("look", "broken") + '<bpmn:exclusiveGateway id="broken" default="broken-fine"/>'
    + '<bpmn:sequenceFlow id="broken-fine" sourceRef="broken" targetRef="fine"/>' + '<bpmn:endEvent id="fine"/>'
    + flow("broken", "damaged", "${broken}")
    + '<bpmn:endEvent id="damaged"><bpmn:errorEventDefinition errorRef="crate-damaged"/></bpmn:endEvent>'
    + "</bpmn:subProcess>"
    + '<bpmn:boundaryEvent id="on-damage" attachedToRef="each">'
    '<bpmn:errorEventDefinition errorRef="crate-damaged"/></bpmn:boundaryEvent>'
    + flow("on-damage", "refuse") + '<bpmn:userTask id="refuse"/>' + flow("refuse", "end")
    + flow("each", "end") + END,
    head='<bpmn:error id="crate-damaged" errorCode="DAMAGED"/>',
)  # fmt: skip


async def test_an_error_end_event_in_a_multi_instance_subprocess_takes_the_boundary_and_cancels_the_rest(
    adapter: EmbeddedAdapter,
) -> None:
    await deploy(adapter, CRATES)
    instance_id = await start(adapter, "crates", {"crates": ["c1", "c2", "c3"]})
    page = await adapter.list_tasks(TaskQuery(instance_id=instance_id, size=10))
    assert len(page.items) == 3
    await adapter.complete_task(page.items[1].id, parse_request_variables({"broken": True}), user_id="tester")
    assert await open_keys(adapter, instance_id) == ["refuse"]
    statuses = sorted([(await adapter.get_task(task.id)).status for task in page.items])
    assert statuses == ["cancelled", "cancelled", "completed"]
    assert await incidents_of(adapter, instance_id) == []
    await complete(adapter, instance_id, "refuse")
    assert (await adapter.get_instance(instance_id)).status == "completed"


# ------------------------------------------------------------------ 6: author ids never collide with internal names
async def test_ids_named_like_the_engines_internal_tasks_run_and_are_reported_as_written(
    adapter: EmbeddedAdapter,
) -> None:
    model = bpmn(
        "internal-names",
        '<bpmn:startEvent id="Start"/>' + flow("Start", "Root") + '<bpmn:userTask id="Root"/>'
        + flow("Root", "x.EndJoin") + '<bpmn:userTask id="x.EndJoin"/>' + flow("x.EndJoin", "End")
        + '<bpmn:endEvent id="End"/>',
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "internal-names")
    await complete(adapter, instance_id, "Root")
    await complete(adapter, instance_id, "x.EndJoin")
    details = await adapter.get_instance(instance_id)
    assert details.status == "completed"
    assert {a.id for a in details.activities} == {"Start", "Root", "x.EndJoin", "End"}


async def test_a_user_task_flowing_back_to_itself_opens_again(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "again",
        START + flow("start", "edit") + '<bpmn:userTask id="edit"/>' + flow("edit", "edit", "${more}")
        + '<bpmn:sequenceFlow id="edit-done" sourceRef="edit" targetRef="end">'
        "<bpmn:conditionExpression>${not more}</bpmn:conditionExpression></bpmn:sequenceFlow>" + END,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "again")
    await complete(adapter, instance_id, "edit", {"more": True})
    assert await open_keys(adapter, instance_id) == ["edit"]
    await complete(adapter, instance_id, "edit", {"more": False})
    details = await adapter.get_instance(instance_id)
    assert details.status == "completed"
    assert all(a.id in ("start", "edit", "end") for a in details.activities)  # no implicit gateway shows


async def test_a_boundary_event_on_an_event_subprocess_is_refused_naming_both(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "watched",
        START + flow("start", "work") + '<bpmn:userTask id="work"/>' + flow("work", "end") + END
        + '<bpmn:subProcess id="on-cancel" triggeredByEvent="true"><bpmn:startEvent id="cancel-start">'
        '<bpmn:messageEventDefinition messageRef="cancel"/></bpmn:startEvent>' + flow("cancel-start", "cancel-end")
        + '<bpmn:endEvent id="cancel-end"/></bpmn:subProcess>'
        + f'<bpmn:boundaryEvent id="too-late" attachedToRef="on-cancel">{timer("timeDuration", "PT1H")}'
        "</bpmn:boundaryEvent>" + flow("too-late", "end"),
        head='<bpmn:message id="cancel" name="cancel"/>',
    )  # fmt: skip
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, model)
    assert "Boundary event 'too-late' is attached to event subprocess 'on-cancel'" in refused.value.detail


# ------------------------------------------------------------------ 8: valid models that were refused
async def test_several_unconditioned_flows_out_of_a_task_split_in_parallel(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "fan-out",
        START + flow("start", "prepare") + '<bpmn:userTask id="prepare"/>' + flow("prepare", "a") + flow("prepare", "b")
        + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>' + flow("a", "end") + flow("b", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "fan-out")
    await complete(adapter, instance_id, "prepare")
    assert await open_keys(adapter, instance_id) == ["a", "b"]


CHILD = bpmn(
    "child", START + flow("start", "child-work") + '<bpmn:userTask id="child-work"/>' + flow("child-work", "end") + END
)
PARENT = bpmn(
    "parent",
    START + flow("start", "call") + '<bpmn:callActivity id="call" calledElement="child"/>' + flow("call", "after")
    + '<bpmn:userTask id="after"/>' + flow("after", "end") + END,
)  # fmt: skip


async def test_a_call_activity_calls_the_latest_process_deployed_in_another_file(adapter: EmbeddedAdapter) -> None:
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, PARENT)
    assert "Call activity 'call' calls process 'child', which is neither in this file nor deployed" in (
        refused.value.detail
    )
    await deploy(adapter, CHILD)
    await deploy(adapter, PARENT)
    instance_id = await start(adapter, "parent")
    assert await open_keys(adapter, instance_id) == ["child-work"]
    await complete(adapter, instance_id, "child-work")
    assert await open_keys(adapter, instance_id) == ["after"]


async def test_a_newly_deployed_version_of_a_called_process_is_called_by_the_next_instance(
    adapter: EmbeddedAdapter,
) -> None:
    await deploy(adapter, CHILD)
    await deploy(adapter, PARENT)
    running = await start(adapter, "parent")  # parsed and cached with child version 1
    assert await open_keys(adapter, running) == ["child-work"]
    await deploy(adapter, CHILD.replace(b'"child-work"', b'"child-work-v2"'))  # version 2, no restart
    following = await start(adapter, "parent")
    assert await open_keys(adapter, following) == ["child-work-v2"]
    await complete(adapter, running, "child-work")  # the running instance goes on in the version it called
    assert await open_keys(adapter, running) == ["after"]
    await complete(adapter, following, "child-work-v2")
    assert await open_keys(adapter, following) == ["after"]


async def test_a_call_activity_bound_to_a_version_calls_that_version(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, CHILD)
    await deploy(adapter, CHILD.replace(b'"child-work"', b'"child-work-v2"'))  # version 2, the latest
    binding = b' camunda:calledElementBinding="version" camunda:calledElementVersion="1"'
    bound = PARENT.replace(b'calledElement="child"', b'calledElement="child"' + binding)
    await deploy(adapter, bound)
    assert await open_keys(adapter, await start(adapter, "parent")) == ["child-work"]


async def test_data_stores_and_objects_used_as_documentation_deploy(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "documented",
        START + flow("start", "record")
        + '<bpmn:userTask id="record"><bpmn:dataOutputAssociation id="to-store"><bpmn:targetRef>store</bpmn:targetRef>'
        "</bpmn:dataOutputAssociation></bpmn:userTask>"
        + '<bpmn:dataStoreReference id="store" dataStoreRef="ledger"/>'
        + '<bpmn:dataObjectReference id="note-ref" dataObjectRef="note"/><bpmn:dataObject id="note"/>'
        + flow("record", "end") + END,
        head='<bpmn:dataStore id="ledger" name="Ledger"/>',
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "documented")
    assert await open_keys(adapter, instance_id) == ["record"]


async def test_a_subprocess_without_an_end_event_ends_where_its_path_ends(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "open-ended",
        START + flow("start", "inner") + '<bpmn:subProcess id="inner"><bpmn:startEvent id="inner-start"/>'
        + flow("inner-start", "check") + '<bpmn:userTask id="check"/></bpmn:subProcess>'
        + flow("inner", "after") + '<bpmn:userTask id="after"/>' + flow("after", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "open-ended")
    await complete(adapter, instance_id, "check")
    assert await open_keys(adapter, instance_id) == ["after"]


async def test_a_subprocess_whose_paths_end_at_a_parallel_join_completes_when_both_branches_did(
    adapter: EmbeddedAdapter,
) -> None:
    model = bpmn(
        "join-ended",
        START + flow("start", "inner") + '<bpmn:subProcess id="inner"><bpmn:startEvent id="inner-start"/>'
        + flow("inner-start", "fork") + '<bpmn:parallelGateway id="fork"/>' + flow("fork", "a") + flow("fork", "b")
        + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>' + flow("a", "join") + flow("b", "join")
        + '<bpmn:parallelGateway id="join"/></bpmn:subProcess>'
        + flow("inner", "after") + '<bpmn:userTask id="after"/>' + flow("after", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "join-ended")
    assert await open_keys(adapter, instance_id) == ["a", "b"]
    await complete(adapter, instance_id, "a")
    assert await open_keys(adapter, instance_id) == ["b"]  # the join waits for the other branch
    await complete(adapter, instance_id, "b")
    assert await open_keys(adapter, instance_id) == ["after"]


async def test_a_process_without_is_executable_deploys_and_only_false_is_refused(adapter: EmbeddedAdapter) -> None:
    plain_process = bpmn("plain", START + flow("start", "end") + END).replace(b' isExecutable="true"', b"")
    await deploy(adapter, plain_process)
    assert (await adapter.get_instance(await start(adapter, "plain"))).status == "completed"
    with pytest.raises(InvalidBpmn):
        await deploy(adapter, plain_process.replace(b'id="plain"', b'id="plain" isExecutable="false"'))


async def test_an_exclusive_gateway_flow_without_a_condition_is_taken_when_it_is_the_only_one(
    adapter: EmbeddedAdapter,
) -> None:
    model = bpmn(
        "merging",
        START + flow("start", "merge") + '<bpmn:exclusiveGateway id="merge"/>' + flow("merge", "work")
        + '<bpmn:userTask id="work"/>' + flow("work", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    assert await open_keys(adapter, await start(adapter, "merging")) == ["work"]


# ------------------------------------------------------------------ 9: message and signal starts
async def test_a_process_with_a_single_message_start_event_starts_through_it(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "by-message",
        '<bpmn:startEvent id="order-received"><bpmn:messageEventDefinition messageRef="order"/></bpmn:startEvent>'
        + flow("order-received", "handle") + '<bpmn:userTask id="handle"/>' + flow("handle", "end") + END,
        head='<bpmn:message id="order" name="order"/>',
    )  # fmt: skip
    await deploy(adapter, model)
    assert await open_keys(adapter, await start(adapter, "by-message", {"n": 1})) == ["handle"]


async def test_a_process_that_starts_only_by_signal_is_a_conflict_that_says_how_it_starts(
    adapter: EmbeddedAdapter,
) -> None:
    model = bpmn(
        "by-signal",
        '<bpmn:startEvent id="alarm"><bpmn:signalEventDefinition signalRef="fire"/></bpmn:startEvent>'
        + flow("alarm", "end") + END,
        head='<bpmn:signal id="fire" name="fire"/>',
    )  # fmt: skip
    await deploy(adapter, model)
    with pytest.raises(Conflict) as refused:
        await start(adapter, "by-signal")
    assert "it starts by signal 'fire' (start event 'alarm')" in refused.value.detail


# ------------------------------------------------------------------ 11: plain refusals
async def test_an_event_reference_to_nothing_is_refused_in_words(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "dangling",
        START + flow("start", "wait") + '<bpmn:intermediateCatchEvent id="M1">'
        '<bpmn:messageEventDefinition messageRef="myMessage"/></bpmn:intermediateCatchEvent>' + flow("M1", "end") + END,
    ).replace(b'targetRef="wait"', b'targetRef="M1"')  # fmt: skip
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, model)
    assert refused.value.detail.startswith(
        "messageRef 'myMessage' of intermediate catch event 'M1' names no <message> in this file"
    )


async def test_a_message_event_without_message_ref_is_refused_and_a_nameless_message_is_known_by_id(
    adapter: EmbeddedAdapter,
) -> None:
    def waiting_for(definition: str, head: str) -> bytes:
        return bpmn(
            "mail",
            START + flow("start", "M1") + f'<bpmn:intermediateCatchEvent id="M1">{definition}'
            "</bpmn:intermediateCatchEvent>" + flow("M1", "end") + END,
            head=head,
        )

    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, waiting_for("<bpmn:messageEventDefinition/>", ""))
    assert "The message event of intermediate catch event 'M1' names no <message>" in refused.value.detail
    nameless = waiting_for('<bpmn:messageEventDefinition messageRef="letter"/>', '<bpmn:message id="letter"/>')
    await deploy(adapter, nameless)
    assert (await adapter.get_instance(await start(adapter, "mail"))).status == "active"


async def test_an_error_ref_that_names_no_error_is_the_error_code_as_in_camunda(adapter: EmbeddedAdapter) -> None:
    async def decline(variables: dict[str, Any]) -> None:
        raise BpmnError("DECLINED")

    adapter.register_handler("payments", decline)
    model = bpmn(
        "coded",
        START + flow("start", "charge") + '<bpmn:serviceTask id="charge" camunda:topic="payments"/>'
        + '<bpmn:boundaryEvent id="declined" attachedToRef="charge"><bpmn:errorEventDefinition errorRef="DECLINED"/>'
        "</bpmn:boundaryEvent>" + flow("charge", "end") + flow("declined", "fix") + '<bpmn:userTask id="fix"/>'
        + flow("fix", "end") + END,
    )  # fmt: skip
    await deploy(adapter, model)
    assert await open_keys(adapter, await start(adapter, "coded")) == ["fix"]


SPIFF_PHRASES = (
    "SubWorkflow", "task type", "Time Specification", "task spec", "Call Activity.", "Invalid Script", "Invalid BPMN",
)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "head", "says"),
    [
        (START + flow("start", "c") + '<bpmn:complexGateway id="c"/>' + flow("c", "end") + END, "",
         "Complex gateway 'c' is an element the embedded engine does not run (line 5)"),
        (START + flow("start", "sub") + '<bpmn:subProcess id="sub"><bpmn:startEvent id="a"/><bpmn:startEvent id="b"/>'
         + flow("a", "x") + flow("b", "x") + '<bpmn:endEvent id="x"/></bpmn:subProcess>' + flow("sub", "end") + END, "",
         "Subprocess 'sub' has 2 start events; a subprocess needs exactly one, without an event definition (line 5)"),
        (START + flow("start", "t") + '<bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition/>'
         "</bpmn:intermediateCatchEvent>" + flow("t", "end") + END, "",
         "Intermediate catch event 't' has a timer event definition without a timeDate, timeDuration or timeCycle"),
        ('<bpmn:userTask id="u"/>' + flow("u", "end") + END, "", "Process 'worded' has no start event (line 5)"),
        (START + flow("start", "c") + '<bpmn:callActivity id="c"/>' + flow("c", "end") + END, "",
         "Call activity 'c' names no process to call: give it a calledElement (line 5)"),
        (START + flow("start", "s") + '<bpmn:scriptTask id="s"/>' + flow("s", "end") + END, "",
         "Script task 's' has no inline script (the embedded engine runs no script loaded from a resource) (line 5)"),
        ('<bpmn:ioSpecification><bpmn:dataInput id="badge"/><bpmn:inputSet><bpmn:dataInputRefs>badge'
         "</bpmn:dataInputRefs></bpmn:inputSet><bpmn:outputSet/></bpmn:ioSpecification>" + START + flow("start", "t")
         + '<bpmn:task id="t"><bpmn:ioSpecification><bpmn:dataInput id="in"/><bpmn:inputSet><bpmn:dataInputRefs>in'
         "</bpmn:dataInputRefs></bpmn:inputSet><bpmn:outputSet/></bpmn:ioSpecification>"
         '<bpmn:dataInputAssociation id="a"><bpmn:sourceRef>badge</bpmn:sourceRef><bpmn:targetRef>in</bpmn:targetRef>'
         "</bpmn:dataInputAssociation></bpmn:task>" + flow("t", "end") + END,
         "", "Task 't' has a dataInputAssociation whose sourceRef is no data object or property of its scope"),
        (START + flow("start", "g") + '<bpmn:exclusiveGateway id="g" default="no"/>'
         + flow("g", "end", "bpmn:getDataObject('approved')") + '<bpmn:sequenceFlow id="no" sourceRef="g" targetRef="end"/>'
         + END, "", "Sequence flow 'g-end' has the expression \"bpmn:getDataObject('approved')\", which the embedded "
         "engine cannot evaluate: invalid syntax"),
        (START + flow("start", "nowhere") + END, "",
         "A sequence flow from start event 'start' leads to 'nowhere', which is no element of the same process"),
        (START + flow("start", "end") + '<bpmn:endEvent id="end"><bpmn:errorEventDefinition errorRef="e"/>'
         "</bpmn:endEvent>", '<bpmn:error name="unnamed"/>', "This file has an element <error> without an id"),
    ],
)  # fmt: skip
async def test_what_spiffworkflow_refuses_is_said_in_bpmn_terms_naming_the_element(
    adapter: EmbeddedAdapter, body: str, head: str, says: str
) -> None:
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, bpmn("worded", body, head=head))
    assert says in refused.value.detail
    assert not any(phrase in refused.value.detail for phrase in SPIFF_PHRASES)


async def test_a_boundary_event_without_an_event_definition_is_refused_in_words(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "listening",
        START + flow("start", "work") + '<bpmn:userTask id="work"/>' + flow("work", "end")
        + '<bpmn:boundaryEvent id="listener" attachedToRef="work"/>' + flow("listener", "end") + END,
    )  # fmt: skip
    with pytest.raises(InvalidBpmn) as refused:
        await deploy(adapter, model)
    assert refused.value.detail.startswith("Boundary event 'listener' has no event definition the embedded engine")


# ------------------------------------------------------------------ 10: values and cascade deletes
def test_an_untyped_integer_beyond_the_long_range_is_refused_and_within_it_is_a_long() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_request_variables({"big": 2**63})
    assert "big: 9223372036854775808 is outside the Long range" in refused.value.detail
    assert parse_request_variables({"big": 2**63 - 1})["big"].type is VariableType.LONG


async def test_a_cascade_delete_emits_instance_terminated_for_each_running_instance(
    adapter: EmbeddedAdapter, database: Database
) -> None:
    model = bpmn("retired", START + flow("start", "work") + '<bpmn:userTask id="work"/>' + flow("work", "end") + END)
    definition_id = await deploy(adapter, model)
    first, second = await start(adapter, "retired"), await start(adapter, "retired")
    await adapter.delete_definition(definition_id, cascade=True)
    async with database.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(outbox.c.instance_id).where(outbox.c.type == "process_manager.instance.terminated")
            )
        ).all()
    assert sorted(row.instance_id for row in rows) == sorted([first, second])


# ------------------------------------------------------------------ 7: failures in the background
async def test_a_failing_background_resume_is_one_incident_backs_off_and_logs_one_line_per_failure(
    adapter: EmbeddedAdapter, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    model = bpmn(
        "cooling",
        START + flow("start", "pause") + f'<bpmn:intermediateCatchEvent id="pause">{timer("timeDuration", "PT0.1S")}'
        "</bpmn:intermediateCatchEvent>" + flow("pause", "next") + '<bpmn:userTask id="next"/>' + flow("next", "end")
        + END,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "cooling")
    async with database.engine.begin() as conn:  # a run state the engine cannot read
        await conn.execute(sa.update(tables.instances).where(tables.instances.c.id == instance_id).values(state="{}"))

    caplog.set_level(logging.WARNING, logger="adapters.embedded.adapter")
    await asyncio.sleep(0.2)  # the timer is due
    await adapter.run_waiting_work()
    await adapter.run_waiting_work()  # backing off: not tried again yet
    (incident,) = await incidents_of(adapter, instance_id)
    assert (incident.activity_id, incident.incident_type) == ("pause", "failedJob")
    assert incident.message.startswith("Resuming the instance in the background failed")
    assert "Error" not in incident.message
    report = (await adapter.get_engine_incident(incident.id)).detail
    assert report and "Traceback" not in report and 'File "' not in report and " at 0x" not in report
    lines = [record for record in caplog.records if instance_id in record.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert (await adapter.get_instance(instance_id)).status == "active"

    await adapter.retry_engine_incident(incident.id)  # try now; it fails again: a new incident
    await adapter.run_waiting_work()
    (again,) = await incidents_of(adapter, instance_id)
    assert again.id != incident.id
