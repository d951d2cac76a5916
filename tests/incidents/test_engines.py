"""The Incident Center on every engine of the conformance suite (the embedded engine, each HTTP engine's
simulator and the real engines under engines/): a charge fails, the incident appears, the variable is fixed,
the retry runs, the instance goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.engines.testing import Harness
from gateway.engines.testing.polling import eventually
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import on_real_engine


@pytest.mark.parametrize("harness", [pytest.param(h, id=h.id, marks=h.marks) for h in HARNESSES])
async def test_a_failed_charge_is_fixed_and_retried_through_the_incident_center(
    make_gateway: Callable[..., Any], harness: Harness, request: pytest.FixtureRequest
) -> None:
    harness = on_real_engine(harness, request)
    engines = [{"name": "engine", "default": True, **harness.engine}]
    transports = {"engine": harness.make_transport()} if harness.make_transport else None
    async with make_gateway(engines=engines, transports=transports) as gateway:
        if harness.prepare is not None:
            await harness.prepare(gateway.app.state.registry.get("engine").adapter)
        client = gateway.client
        deployed = await client.post(
            "/api/processes/definitions", files={"file": ("charging.bpmn", harness.bpmn["charging"], "application/xml")}
        )
        assert deployed.status_code == 201, deployed.text
        started = await client.post(
            "/api/processes/instances", json={"definition_key": "charging", "variables": {"fail": True}}
        )
        assert started.status_code == 201, started.text
        instance_id = started.json()["id"]

        found = await eventually(
            lambda: gateway.incidents(instance_id=instance_id), lambda items: len(items) == 1, harness.incident_timeout
        )
        assert len(found) == 1, f"no incident for instance {instance_id}"
        incident = found[0]
        assert (incident["engine"], incident["activity_id"], incident["status"]) == ("engine", "charge", "open")

        retried = await client.post(
            f"/api/processes/incidents/{incident['id']}/retry", json={"variables": {"fail": False}}
        )
        assert retried.status_code == 202, retried.text
        resolved = await eventually(
            lambda: gateway.incident(incident["id"]), lambda i: i["status"] == "resolved", harness.incident_timeout
        )
        assert resolved["status"] == "resolved" and resolved["resolution"]["type"] == "retry"

        tasks = await eventually(
            lambda: client.get("/api/processes/tasks", params={"instance_id": instance_id}),
            lambda response: len(response.json()["items"]) == 1,
            harness.incident_timeout,
        )
        assert [t["task_definition_key"] for t in tasks.json()["items"]] == ["confirm"]


def _camunda7_stack_trace(detail: str | None) -> bool:
    """The failed job's stack trace as the Camunda 7 simulator gives it (GET /job/{id}/stacktrace)."""
    return bool(detail) and detail.startswith("org.camunda.bpm.engine.ProcessEngineException") and "\tat " in detail


# What each engine keeps beyond the message: Camunda 7 the job's stack trace; the embedded engine nothing, as the
# charging handler raised without a cause (tests/incidents/test_embedded.py reads one with a cause).
STACK_TRACES: dict[str, Callable[[str | None], bool]] = {
    "camunda7": _camunda7_stack_trace,
    "embedded": lambda detail: detail is None,
}


@pytest.mark.parametrize("harness", [pytest.param(h, id=h.id) for h in HARNESSES if h.id in STACK_TRACES])
async def test_an_incidents_stack_trace_is_read_from_its_engine(
    make_gateway: Callable[..., Any], harness: Harness
) -> None:
    engines = [{"name": "engine", "default": True, **harness.engine}]
    transports = {"engine": harness.make_transport()} if harness.make_transport else None
    async with make_gateway(engines=engines, transports=transports) as gateway:
        if harness.prepare is not None:
            await harness.prepare(gateway.app.state.registry.get("engine").adapter)
        client = gateway.client
        files = {"file": ("charging.bpmn", harness.bpmn["charging"], "application/xml")}
        assert (await client.post("/api/processes/definitions", files=files)).status_code == 201
        started = await client.post(
            "/api/processes/instances", json={"definition_key": "charging", "variables": {"fail": True}}
        )
        instance_id = started.json()["id"]
        (incident,) = await eventually(
            lambda: gateway.incidents(instance_id=instance_id), lambda items: len(items) == 1, harness.incident_timeout
        )
        (linked,) = (await gateway.incident(incident["id"]))["engine_incidents"]

        read = await client.get(f"/api/processes/incidents/{incident['id']}/engine-incidents/{linked['id']}")
        assert read.status_code == 200, read.text
        found = read.json()
        assert (found["id"], found["instance_id"], found["activity_id"]) == (linked["id"], instance_id, "charge")
        assert found["message"] == incident["incident_message"]
        assert STACK_TRACES[harness.id](found["detail"]), found["detail"]
