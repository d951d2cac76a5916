"""Camunda Platform 7: the conformance scenarios as a real Camunda 7.23 engine runs them, against the simulator."""

from __future__ import annotations

from gateway.engines.testing import Harness
from tests.camunda.simulator import CamundaSimulator

_DEFINITIONS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="{key}-definitions" targetNamespace="http://pm-gateway.dev/conformance">
{process}
</bpmn:definitions>
"""

APPROVAL = _DEFINITIONS.format(
    key="approval",
    process="""  <bpmn:process id="approval" name="Approval" isExecutable="true" camunda:historyTimeToLive="P30D">
    <bpmn:startEvent id="requested" name="Requested">
      <bpmn:outgoing>to-review</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-review" sourceRef="requested" targetRef="review" />
    <bpmn:userTask id="review" name="Review request" camunda:candidateGroups="sales">
      <bpmn:incoming>to-review</bpmn:incoming>
      <bpmn:outgoing>to-decided</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to-decided" sourceRef="review" targetRef="decided" />
    <bpmn:endEvent id="decided" name="Decided">
      <bpmn:incoming>to-decided</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>""",
)

# The charge runs as a job (asyncBefore). While `fail` is true it calls the bean `cardGateway`, which does not
# exist, so the job fails; the retry cycle R1 leaves no retry after that first failure, so the failedJob incident
# appears at once. Setting the job's retries again runs it after the cycle's one-second interval.
CHARGING = _DEFINITIONS.format(
    key="charging",
    process="""  <bpmn:process id="charging" name="Charging" isExecutable="true" camunda:historyTimeToLive="P30D">
    <bpmn:startEvent id="ordered" name="Ordered">
      <bpmn:outgoing>to-charge</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-charge" sourceRef="ordered" targetRef="charge" />
    <bpmn:serviceTask id="charge" name="Charge card" camunda:asyncBefore="true"
                      camunda:expression="${execution.getVariable('fail') == true ? cardGateway.charge() : true}">
      <bpmn:extensionElements>
        <camunda:failedJobRetryTimeCycle>R1/PT1S</camunda:failedJobRetryTimeCycle>
      </bpmn:extensionElements>
      <bpmn:incoming>to-charge</bpmn:incoming>
      <bpmn:outgoing>to-confirm</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="to-confirm" sourceRef="charge" targetRef="confirm" />
    <bpmn:userTask id="confirm" name="Confirm">
      <bpmn:incoming>to-confirm</bpmn:incoming>
      <bpmn:outgoing>to-charged</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to-charged" sourceRef="confirm" targetRef="charged" />
    <bpmn:endEvent id="charged" name="Charged">
      <bpmn:incoming>to-charged</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>""",
)

CREDENTIALS = ("demo", "demo")

HARNESS = Harness(
    id="camunda7",
    engine={
        "type": "camunda7",
        "url": "http://camunda7.test/engine-rest",
        "auth": {"type": "basic", "username": CREDENTIALS[0], "password": CREDENTIALS[1]},
    },
    bpmn={"approval": APPROVAL.encode(), "charging": CHARGING.encode()},
    make_transport=lambda: CamundaSimulator(credentials=CREDENTIALS).transport,
)
