"""BPMN beyond the straight lines the simulators run: parallel branches, a boundary timer and a service task
whose expression fails (`${1 % divisor}` with divisor 0), in Camunda 7 / Operaton and in Flowable dialect.

Element ids are shared: `parallel` forks to user tasks `left` and `right`, joins, then opens `after`;
`timer` opens `wait` with an interrupting one-second boundary timer `late` leading to user task `escalated`;
`dividing` runs the asynchronous service task `divide` (expression `${1 % divisor}`, no retries left after the
first failure) and then opens user task `done`.
"""

from __future__ import annotations

CAMUNDA = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="{key}-definitions" targetNamespace="http://pm-gateway.dev/flows">
  <bpmn:process id="{key}" name="{key}" isExecutable="true" camunda:historyTimeToLive="P30D">
{body}
  </bpmn:process>
</bpmn:definitions>
"""

FLOWABLE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:flowable="http://flowable.org/bpmn" targetNamespace="http://pm-gateway.dev/flows">
  <bpmn:process id="{key}" name="{key}" isExecutable="true">
{body}
  </bpmn:process>
</bpmn:definitions>
"""

PARALLEL = """
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork" />
    <bpmn:parallelGateway id="fork" />
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="left" />
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="right" />
    <bpmn:userTask id="left" name="Left" />
    <bpmn:userTask id="right" name="Right" />
    <bpmn:sequenceFlow id="f4" sourceRef="left" targetRef="join" />
    <bpmn:sequenceFlow id="f5" sourceRef="right" targetRef="join" />
    <bpmn:parallelGateway id="join" />
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="after" />
    <bpmn:userTask id="after" name="After" />
    <bpmn:sequenceFlow id="f7" sourceRef="after" targetRef="end" />
    <bpmn:endEvent id="end" />"""

TIMER = """
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:userTask id="wait" name="Wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
    <bpmn:endEvent id="end" />
    <bpmn:boundaryEvent id="late" attachedToRef="wait" cancelActivity="true">
      <bpmn:timerEventDefinition id="late-timer"><bpmn:timeDuration>PT1S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="late" targetRef="escalated" />
    <bpmn:userTask id="escalated" name="Escalated" />
    <bpmn:sequenceFlow id="f4" sourceRef="escalated" targetRef="end-late" />
    <bpmn:endEvent id="end-late" />"""

DIVIDE = """
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="divide" />
    <bpmn:serviceTask id="divide" name="Divide" {dialect}:{async_attribute}="true" {dialect}:expression="${{1 % divisor}}">
      <bpmn:extensionElements>
        <{dialect}:failedJobRetryTimeCycle>R1/PT1S</{dialect}:failedJobRetryTimeCycle>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="divide" targetRef="done" />
    <bpmn:userTask id="done" name="Done" />
    <bpmn:sequenceFlow id="f3" sourceRef="done" targetRef="end" />
    <bpmn:endEvent id="end" />"""


def bpmn(engine_type: str, key: str) -> bytes:
    """The flow `key` (parallel, timer, dividing) in the dialect of `engine_type` (camunda7 or flowable)."""
    template, dialect, is_async = (
        (FLOWABLE, "flowable", "async") if engine_type == "flowable" else (CAMUNDA, "camunda", "asyncBefore")
    )
    body = {"parallel": PARALLEL, "timer": TIMER, "dividing": DIVIDE.format(dialect=dialect, async_attribute=is_async)}[
        key
    ]
    return template.format(key=key, body=body).encode()
