"""The embedded engine: SpiffWorkflow in the gateway, no transport; the charging handler is registered in `prepare`."""

from __future__ import annotations

from typing import Any

from gateway.engines.port import EngineAdapter
from gateway.engines.testing import Harness

APPROVAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="approval-definitions" targetNamespace="http://pm-gateway.dev/conformance">
  <bpmn:process id="approval" name="Approval" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to-review" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" name="Review request" camunda:candidateGroups="sales"/>
    <bpmn:sequenceFlow id="to-end" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

CHARGING = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="charging-definitions" targetNamespace="http://pm-gateway.dev/conformance">
  <bpmn:process id="charging" name="Charging" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to-charge" sourceRef="start" targetRef="charge"/>
    <bpmn:serviceTask id="charge" name="Charge card" camunda:type="external" camunda:topic="charge"/>
    <bpmn:sequenceFlow id="to-confirm" sourceRef="charge" targetRef="confirm"/>
    <bpmn:userTask id="confirm" name="Confirm"/>
    <bpmn:sequenceFlow id="to-end" sourceRef="confirm" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


async def charge(variables: dict[str, Any]) -> dict[str, Any]:
    if variables.get("fail"):
        raise RuntimeError("The card was declined")
    return {"charged": True}


async def register_charging(adapter: EngineAdapter) -> None:
    adapter.register_handler("charge", charge)  # type: ignore[attr-defined]


HARNESS = Harness(
    id="embedded",
    engine={"type": "embedded"},
    bpmn={"approval": APPROVAL, "charging": CHARGING},
    prepare=register_charging,
)

ORDERING = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="ordering-definitions" targetNamespace="http://pm-gateway.dev/conformance">
  <bpmn:process id="ordering" name="Ordering" isExecutable="true">
    <bpmn:startEvent id="order-placed"><bpmn:messageEventDefinition messageRef="placed"/></bpmn:startEvent>
    <bpmn:sequenceFlow id="to-payment" sourceRef="order-placed" targetRef="payment-received"/>
    <bpmn:intermediateCatchEvent id="payment-received">
      <bpmn:messageEventDefinition messageRef="paid"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="to-ship" sourceRef="payment-received" targetRef="ship"/>
    <bpmn:userTask id="ship" name="Ship order"/>
    <bpmn:boundaryEvent id="cancelled" attachedToRef="ship"><bpmn:signalEventDefinition signalRef="cancel"/></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="to-shipped" sourceRef="ship" targetRef="shipped"/>
    <bpmn:endEvent id="shipped"/>
    <bpmn:sequenceFlow id="to-withdrawn" sourceRef="cancelled" targetRef="withdrawn"/>
    <bpmn:endEvent id="withdrawn"/>
  </bpmn:process>
  <bpmn:message id="placed" name="order-placed"/>
  <bpmn:message id="paid" name="payment-received"/>
  <bpmn:signal id="cancel" name="order-cancelled"/>
</bpmn:definitions>
"""
HARNESS.bpmn["ordering"] = ORDERING
