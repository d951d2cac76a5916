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

ORDERING = _DEFINITIONS.format(
    key="ordering",
    process="""  <bpmn:process id="ordering" name="Ordering" isExecutable="true" camunda:historyTimeToLive="P30D">
    <bpmn:startEvent id="order-placed" name="Order placed">
      <bpmn:outgoing>to-payment</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="placed" />
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-payment" sourceRef="order-placed" targetRef="payment-received" />
    <bpmn:intermediateCatchEvent id="payment-received" name="Payment received">
      <bpmn:incoming>to-payment</bpmn:incoming>
      <bpmn:outgoing>to-ship</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="paid" />
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="to-ship" sourceRef="payment-received" targetRef="ship" />
    <bpmn:userTask id="ship" name="Ship order">
      <bpmn:incoming>to-ship</bpmn:incoming>
      <bpmn:outgoing>to-shipped</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="cancelled" name="Order cancelled" attachedToRef="ship">
      <bpmn:outgoing>to-withdrawn</bpmn:outgoing>
      <bpmn:signalEventDefinition signalRef="cancel" />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="to-shipped" sourceRef="ship" targetRef="shipped" />
    <bpmn:endEvent id="shipped" name="Shipped">
      <bpmn:incoming>to-shipped</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="to-withdrawn" sourceRef="cancelled" targetRef="withdrawn" />
    <bpmn:endEvent id="withdrawn" name="Withdrawn">
      <bpmn:incoming>to-withdrawn</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>
  <bpmn:message id="placed" name="order-placed" />
  <bpmn:message id="paid" name="payment-received" />
  <bpmn:signal id="cancel" name="order-cancelled" />""",
)

CREDENTIALS = ("demo", "demo")

HARNESS = Harness(
    id="camunda7",
    engine={
        "type": "camunda7",
        "url": "http://camunda7.test/engine-rest",
        "auth": {"type": "basic", "username": CREDENTIALS[0], "password": CREDENTIALS[1]},
    },
    bpmn={"approval": APPROVAL.encode(), "charging": CHARGING.encode(), "ordering": ORDERING.encode()},
    make_transport=lambda: CamundaSimulator(credentials=CREDENTIALS).transport,
)
