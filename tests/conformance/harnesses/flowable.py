"""Flowable 7.2 (flowable-rest) under the conformance suite, against the Flowable simulator.

The BPMN is what a real Flowable runs: the charging task is an async service task whose expression calls
a method that does not exist while `fail` is true, and whose retry cycle `R1` dead-letters the job on its
first failure (harnesses/real_flowable.py runs the same BPMN on a real Flowable built from engines/flowable).
"""

from __future__ import annotations

from gateway.engines.testing import Harness
from tests.flowable.simulator import FlowableSimulator

DEFINITIONS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:flowable="http://flowable.org/bpmn" targetNamespace="http://pm-gateway.dev/conformance">\n'
    "{process}\n"
    "</definitions>\n"
)

APPROVAL = DEFINITIONS.format(
    process="""  <process id="approval" name="Approval" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="toReview" sourceRef="start" targetRef="review"/>
    <userTask id="review" name="Review request" flowable:candidateGroups="sales"/>
    <sequenceFlow id="toEnd" sourceRef="review" targetRef="end"/>
    <endEvent id="end"/>
  </process>"""
).encode()

CHARGING = DEFINITIONS.format(
    process="""  <process id="charging" name="Charging" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="toCharge" sourceRef="start" targetRef="charge"/>
    <serviceTask id="charge" name="Charge card" flowable:async="true"
                 flowable:expression="${fail ? execution.chargeCardDeclined() : true}">
      <extensionElements>
        <flowable:failedJobRetryTimeCycle>R1/PT10S</flowable:failedJobRetryTimeCycle>
      </extensionElements>
    </serviceTask>
    <sequenceFlow id="toConfirm" sourceRef="charge" targetRef="confirm"/>
    <userTask id="confirm" name="Confirm"/>
    <sequenceFlow id="toEnd" sourceRef="confirm" targetRef="end"/>
    <endEvent id="end"/>
  </process>"""
).encode()

ORDERING = DEFINITIONS.format(
    process="""  <process id="ordering" name="Ordering" isExecutable="true">
    <startEvent id="order-placed"><messageEventDefinition messageRef="placed"/></startEvent>
    <sequenceFlow id="toPayment" sourceRef="order-placed" targetRef="payment-received"/>
    <intermediateCatchEvent id="payment-received"><messageEventDefinition messageRef="paid"/></intermediateCatchEvent>
    <sequenceFlow id="toShip" sourceRef="payment-received" targetRef="ship"/>
    <userTask id="ship" name="Ship order"/>
    <boundaryEvent id="cancelled" attachedToRef="ship" cancelActivity="true">
      <signalEventDefinition signalRef="cancel"/>
    </boundaryEvent>
    <sequenceFlow id="toShipped" sourceRef="ship" targetRef="shipped"/>
    <endEvent id="shipped"/>
    <sequenceFlow id="toWithdrawn" sourceRef="cancelled" targetRef="withdrawn"/>
    <endEvent id="withdrawn"/>
  </process>
  <message id="placed" name="order-placed"/>
  <message id="paid" name="payment-received"/>
  <signal id="cancel" name="order-cancelled"/>"""
).encode()

BPMN = {"approval": APPROVAL, "charging": CHARGING, "ordering": ORDERING}
AUTH = {"type": "basic", "username": "rest-admin", "password": "test"}


def harness_for(url: str, **overrides: object) -> Harness:
    """The Flowable harness with another engine URL."""
    return Harness(
        id="flowable",
        engine={"type": "flowable", "url": url, "auth": AUTH},
        bpmn=BPMN,
        # A real engine's async executor picks up jobs within seconds; the simulator runs them at once.
        incident_timeout=30.0,
        **overrides,  # type: ignore[arg-type]
    )


HARNESS = harness_for(
    "http://flowable.test/flowable-rest/service", make_transport=lambda: FlowableSimulator().transport
)
