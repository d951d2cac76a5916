"""One small model per row of README's table of BPMN on the embedded engine ("The embedded engine").

Each row deploys its model and either runs it (start, then the open tasks or the end state a user sees) or
expects the refusal, in words, naming the element.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.embedded import EmbeddedAdapter
from gateway.errors import Conflict, InvalidBpmn
from gateway.schemas import TaskQuery
from tests.embedded.conftest import bpmn, deploy, flow, start

S, E = '<bpmn:startEvent id="start"/>', '<bpmn:endEvent id="end"/>'


def path(*elements: str) -> str:
    """start -> each element (by id, written as given) -> end."""
    ids = ["start", *(element.split('id="', 1)[1].split('"', 1)[0] for element in elements), "end"]
    return S + "".join(elements) + "".join(flow(a, b) for a, b in itertools.pairwise(ids)) + E


def timer(kind: str, text: str) -> str:
    return f"<bpmn:timerEventDefinition><bpmn:{kind}>{text}</bpmn:{kind}></bpmn:timerEventDefinition>"


@dataclass(frozen=True)
class Row:
    body: str
    open_tasks: list[str] | None = None  # runs: the open user tasks after start
    status: str | None = None  # runs: the instance status after start
    refused: str | None = None  # refused at deploy: a phrase of the message
    conflict: str | None = None  # refused at start
    incident: str | None = None  # runs into an incident saying this
    variables: dict[str, Any] = field(default_factory=dict)
    head: str = ""


ROWS: dict[str, Row] = {
    # supported
    "none start and end event": Row(path(), status="completed"),
    "task, manualTask (pass through)": Row(path('<bpmn:task id="t"/>', '<bpmn:manualTask id="m"/>'), status="completed"),
    "userTask with camunda assignment": Row(
        path('<bpmn:userTask id="u" camunda:assignee="${who}" camunda:candidateGroups="sales"/>'),
        open_tasks=["u"], variables={"who": "ann"},
    ),
    "serviceTask / businessRuleTask (external work)": Row(
        path('<bpmn:serviceTask id="s" camunda:topic="work"/>'), status="active"
    ),
    "scriptTask (off unless an operator allows scripts)": Row(
        path('<bpmn:scriptTask id="s"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'),
        incident="Script tasks are disabled",
    ),
    "event subprocess with a message start": Row(
        path('<bpmn:userTask id="u"/>') + '<bpmn:subProcess id="on-cancel" triggeredByEvent="true">'
        '<bpmn:startEvent id="cancel"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>'
        + flow("cancel", "cancelled") + '<bpmn:endEvent id="cancelled"/></bpmn:subProcess>',
        open_tasks=["u"], head='<bpmn:message id="m" name="cancel"/>',
    ),
    "sendTask (pass through)": Row(path('<bpmn:sendTask id="send"/>', '<bpmn:userTask id="u"/>'), open_tasks=["u"]),
    "exclusiveGateway with conditions and default": Row(
        S + flow("start", "g") + '<bpmn:exclusiveGateway id="g" default="g-b"/>' + flow("g", "a", "${n &gt; 1}")
        + '<bpmn:sequenceFlow id="g-b" sourceRef="g" targetRef="b"/><bpmn:userTask id="a"/><bpmn:userTask id="b"/>'
        + flow("a", "end") + flow("b", "end") + E,
        open_tasks=["a"], variables={"n": 2},
    ),
    "inclusiveGateway": Row(
        S + flow("start", "g") + '<bpmn:inclusiveGateway id="g"/>' + flow("g", "a", "${n &gt; 1}")
        + flow("g", "b", "${n &gt; 0}") + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>'
        + flow("a", "end") + flow("b", "end") + E,
        open_tasks=["a", "b"], variables={"n": 2},
    ),
    "parallelGateway (also joins in loops)": Row(
        S + flow("start", "f") + '<bpmn:parallelGateway id="f"/>' + flow("f", "a") + flow("f", "b")
        + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>' + flow("a", "j") + flow("b", "j")
        + '<bpmn:parallelGateway id="j"/>' + flow("j", "end") + E,
        open_tasks=["a", "b"],
    ),
    "implicit split (several flows out of an activity)": Row(
        S + flow("start", "a") + flow("start", "b") + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>'
        + flow("a", "end") + flow("b", "end") + E,
        open_tasks=["a", "b"],
    ),
    "eventBasedGateway with timers": Row(
        S + flow("start", "g") + '<bpmn:eventBasedGateway id="g"/>' + flow("g", "t1") + flow("g", "t2")
        + f'<bpmn:intermediateCatchEvent id="t1">{timer("timeDuration", "PT0S")}</bpmn:intermediateCatchEvent>'
        + f'<bpmn:intermediateCatchEvent id="t2">{timer("timeDuration", "PT1H")}</bpmn:intermediateCatchEvent>'
        + flow("t1", "a") + flow("t2", "b") + '<bpmn:userTask id="a"/><bpmn:userTask id="b"/>'
        + flow("a", "end") + flow("b", "end") + E,
        open_tasks=["a"],
    ),
    "timer catch event (timeDate, timeDuration, timeCycle)": Row(
        path(f'<bpmn:intermediateCatchEvent id="w">{timer("timeDate", "2020-01-01T00:00:00Z")}'
             "</bpmn:intermediateCatchEvent>", '<bpmn:userTask id="u"/>'),
        open_tasks=["u"],
    ),
    "timer start event": Row(
        f'<bpmn:startEvent id="start">{timer("timeDate", "2020-01-01T00:00:00+01:00")}</bpmn:startEvent>'
        + flow("start", "u") + '<bpmn:userTask id="u"/>' + flow("u", "end") + E,
        open_tasks=["u"],
    ),
    "timer boundary event": Row(
        S + flow("start", "u") + '<bpmn:userTask id="u"/>' + flow("u", "end")
        + f'<bpmn:boundaryEvent id="late" attachedToRef="u">{timer("timeDuration", "PT0S")}</bpmn:boundaryEvent>'
        + flow("late", "esc") + '<bpmn:userTask id="esc"/>' + flow("esc", "end") + E,
        open_tasks=["esc"],
    ),
    "error end event and error boundary event": Row(
        S + flow("start", "sub") + '<bpmn:subProcess id="sub"><bpmn:startEvent id="in"/>' + flow("in", "fail")
        + '<bpmn:endEvent id="fail"><bpmn:errorEventDefinition errorRef="E1"/></bpmn:endEvent></bpmn:subProcess>'
        + '<bpmn:boundaryEvent id="caught" attachedToRef="sub"><bpmn:errorEventDefinition errorRef="E1"/>'
        "</bpmn:boundaryEvent>" + flow("sub", "end") + flow("caught", "fix") + '<bpmn:userTask id="fix"/>'
        + flow("fix", "end") + E,
        open_tasks=["fix"], head='<bpmn:error id="E1" errorCode="E1"/>',
    ),
    "terminate end event": Row(
        S + flow("start", "f") + '<bpmn:parallelGateway id="f"/>' + flow("f", "u") + flow("f", "stop")
        + '<bpmn:userTask id="u"/>' + flow("u", "end")
        + '<bpmn:endEvent id="stop"><bpmn:terminateEventDefinition/></bpmn:endEvent>' + E,
        status="completed",
    ),
    "embedded subProcess (also without end event)": Row(
        path('<bpmn:subProcess id="sub"><bpmn:startEvent id="in"/>' + flow("in", "u") + '<bpmn:userTask id="u"/>'
             "</bpmn:subProcess>"),
        open_tasks=["u"],
    ),
    "callActivity (same file or deployed)": Row(
        path('<bpmn:callActivity id="call" calledElement="callee"/>').replace("</bpmn:process>", "")
        + '</bpmn:process><bpmn:process id="callee" isExecutable="true"><bpmn:startEvent id="cs"/>'
        + flow("cs", "cu") + '<bpmn:userTask id="cu"/>' + flow("cu", "ce") + '<bpmn:endEvent id="ce"/>',
        open_tasks=["cu"],
    ),
    "multi-instance (collection, camunda:collection, cardinality)": Row(
        path('<bpmn:userTask id="u"><bpmn:multiInstanceLoopCharacteristics camunda:collection="${items}" '
             'camunda:elementVariable="item"/></bpmn:userTask>'),
        open_tasks=["u", "u"], variables={"items": [1, 2]},
    ),
    "message start event (the only start event)": Row(
        '<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>'
        + flow("start", "u") + '<bpmn:userTask id="u"/>' + flow("u", "end") + E,
        open_tasks=["u"], head='<bpmn:message id="m" name="go"/>',
    ),
    "data objects and data stores (documentation)": Row(
        path('<bpmn:userTask id="u"/>') + '<bpmn:dataObjectReference id="r" dataObjectRef="o"/>'
        '<bpmn:dataObject id="o"/><bpmn:dataStoreReference id="ds"/>',
        open_tasks=["u"],
    ),
    # partially supported
    "signal start event only": Row(
        '<bpmn:startEvent id="start"><bpmn:signalEventDefinition signalRef="s"/></bpmn:startEvent>'
        + flow("start", "end") + E,
        conflict="it starts by signal", head='<bpmn:signal id="s" name="go"/>',
    ),
    "receiveTask / message catch event (waits for POST /messages)": Row(
        path('<bpmn:receiveTask id="r" messageRef="m"/>'), status="active", head='<bpmn:message id="m" name="m"/>'
    ),
    # refused
    "complexGateway": Row(
        S + flow("start", "c") + '<bpmn:complexGateway id="c"/>' + flow("c", "end") + E,
        refused="Complex gateway 'c' is an element the embedded engine does not run",
    ),
    "compensation": Row(
        S + flow("start", "u") + '<bpmn:userTask id="u"/>' + flow("u", "end")
        + '<bpmn:boundaryEvent id="undo" attachedToRef="u"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>'
        + E,
        refused="uses compensation, which the embedded engine does not support",
    ),
    "cron timeCycle": Row(
        path(f'<bpmn:intermediateCatchEvent id="w">{timer("timeCycle", "0 0 * * * ?")}'
             "</bpmn:intermediateCatchEvent>"),
        refused="is a cron expression",
    ),
    "boundary event on an event subprocess": Row(
        path('<bpmn:userTask id="u"/>') + '<bpmn:subProcess id="on-cancel" triggeredByEvent="true">'
        '<bpmn:startEvent id="cancel"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>'
        + flow("cancel", "cancelled") + '<bpmn:endEvent id="cancelled"/></bpmn:subProcess>'
        + f'<bpmn:boundaryEvent id="b" attachedToRef="on-cancel">{timer("timeDuration", "PT1H")}</bpmn:boundaryEvent>'
        + flow("b", "end"),
        refused="attached to event subprocess 'on-cancel'", head='<bpmn:message id="m" name="cancel"/>',
    ),
    "calledElement by expression": Row(
        path('<bpmn:callActivity id="call" calledElement="${which}"/>'), refused="by an expression"
    ),
}  # fmt: skip


async def open_task_keys(adapter: EmbeddedAdapter, instance_id: str) -> list[str]:
    page = await adapter.list_tasks(TaskQuery(instance_id=instance_id, size=100))
    return sorted(task.task_definition_key for task in page.items)


@pytest.mark.parametrize("name", list(ROWS))
async def test_each_row_of_the_coverage_table(adapter: EmbeddedAdapter, name: str) -> None:
    row = ROWS[name]
    model = bpmn("row", row.body, head=row.head)
    if row.refused is not None:
        with pytest.raises(InvalidBpmn) as refused:
            await deploy(adapter, model)
        assert row.refused in refused.value.detail
        return
    await deploy(adapter, model)
    if row.conflict is not None:
        with pytest.raises(Conflict) as conflict:
            await start(adapter, "row")
        assert row.conflict in conflict.value.detail
        return
    instance_id = await start(adapter, "row", row.variables)
    details = await adapter.get_instance(instance_id)
    if row.incident is not None:
        assert any(row.incident in incident.message for incident in details.incidents)
        return
    assert details.incidents == []
    if row.open_tasks is not None:
        assert await open_task_keys(adapter, instance_id) == sorted(row.open_tasks)
    if row.status is not None:
        assert details.status == row.status
