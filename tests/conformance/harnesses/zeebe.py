"""Camunda 8 (Zeebe) through the Orchestration Cluster REST API, against the simulator of tests/zeebe.

The BPMN is what a real Camunda 8.8 deploys and runs: Camunda user tasks (`zeebe:userTask`) and a service
task of job type `charge`, which a job worker fails while the variable `fail` is true.
"""

from __future__ import annotations

from gateway.engines.testing import Harness
from tests.zeebe.simulator import Simulator

DEFINITIONS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"'
    ' xmlns:modeler="http://camunda.org/schema/modeler/1.0"'
    ' id="{id}-definitions" targetNamespace="http://pm-gateway.dev/bpmn"'
    ' modeler:executionPlatform="Camunda Cloud" modeler:executionPlatformVersion="8.8.0">\n'
    "{process}"
    "</bpmn:definitions>\n"
)

APPROVAL = """  <bpmn:process id="approval" name="Approval" isExecutable="true">
    <bpmn:startEvent id="start">
      <bpmn:outgoing>to-review</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-review" sourceRef="start" targetRef="review" />
    <bpmn:userTask id="review" name="Review request">
      <bpmn:extensionElements>
        <zeebe:userTask />
        <zeebe:assignmentDefinition candidateGroups="sales" />
      </bpmn:extensionElements>
      <bpmn:incoming>to-review</bpmn:incoming>
      <bpmn:outgoing>to-end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to-end" sourceRef="review" targetRef="end" />
    <bpmn:endEvent id="end">
      <bpmn:incoming>to-end</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>
"""

CHARGING = """  <bpmn:process id="charging" name="Charging" isExecutable="true">
    <bpmn:startEvent id="start">
      <bpmn:outgoing>to-charge</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-charge" sourceRef="start" targetRef="charge" />
    <bpmn:serviceTask id="charge" name="Charge card">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="charge" retries="1" />
      </bpmn:extensionElements>
      <bpmn:incoming>to-charge</bpmn:incoming>
      <bpmn:outgoing>to-confirm</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="to-confirm" sourceRef="charge" targetRef="confirm" />
    <bpmn:userTask id="confirm" name="Confirm">
      <bpmn:extensionElements>
        <zeebe:userTask />
        <zeebe:assignmentDefinition candidateGroups="sales" />
      </bpmn:extensionElements>
      <bpmn:incoming>to-confirm</bpmn:incoming>
      <bpmn:outgoing>to-end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to-end" sourceRef="confirm" targetRef="end" />
    <bpmn:endEvent id="end">
      <bpmn:incoming>to-end</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>
"""

# The payment message is correlated by the variable `orderId` (the suite sets it to the business key).
ORDERING = """  <bpmn:process id="ordering" name="Ordering" isExecutable="true">
    <bpmn:startEvent id="order-placed">
      <bpmn:outgoing>to-payment</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="placed" />
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-payment" sourceRef="order-placed" targetRef="payment-received" />
    <bpmn:intermediateCatchEvent id="payment-received">
      <bpmn:incoming>to-payment</bpmn:incoming>
      <bpmn:outgoing>to-ship</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="paid" />
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="to-ship" sourceRef="payment-received" targetRef="ship" />
    <bpmn:userTask id="ship" name="Ship order">
      <bpmn:extensionElements>
        <zeebe:userTask />
      </bpmn:extensionElements>
      <bpmn:incoming>to-ship</bpmn:incoming>
      <bpmn:outgoing>to-shipped</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="cancelled" attachedToRef="ship">
      <bpmn:outgoing>to-withdrawn</bpmn:outgoing>
      <bpmn:signalEventDefinition signalRef="cancel" />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="to-shipped" sourceRef="ship" targetRef="shipped" />
    <bpmn:endEvent id="shipped">
      <bpmn:incoming>to-shipped</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="to-withdrawn" sourceRef="cancelled" targetRef="withdrawn" />
    <bpmn:endEvent id="withdrawn">
      <bpmn:incoming>to-withdrawn</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>
  <bpmn:message id="placed" name="order-placed" />
  <bpmn:message id="paid" name="payment-received">
    <bpmn:extensionElements>
      <zeebe:subscription correlationKey="=orderId" />
    </bpmn:extensionElements>
  </bpmn:message>
  <bpmn:signal id="cancel" name="order-cancelled" />
"""

BPMN = {
    "approval": DEFINITIONS.format(id="approval", process=APPROVAL).encode(),
    "charging": DEFINITIONS.format(id="charging", process=CHARGING).encode(),
    "ordering": DEFINITIONS.format(id="ordering", process=ORDERING).encode(),
}

HARNESS = Harness(
    id="zeebe",
    engine={"type": "zeebe", "url": "http://zeebe.test/v2"},
    bpmn=BPMN,
    make_transport=lambda: Simulator().transport,
)
