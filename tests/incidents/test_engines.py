"""The Incident Center on every engine of the conformance suite (the embedded engine, each HTTP engine's
simulator and the real engines under engines/): a charge fails, the incident appears, the variable is fixed,
the retry runs, the instance goes on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.engines.testing import Harness
from gateway.engines.testing.polling import eventually
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import on_real_engine


@contextlib.asynccontextmanager
async def failed_charge(make_gateway: Callable[..., Any], harness: Harness) -> AsyncIterator[tuple[Any, str]]:
    """A gateway on the harness's engine (named "engine") with the charging process deployed and an instance started
    whose charge fails: yields the gateway and the instance's id."""
    engines = [{"name": "engine", "default": True, **harness.engine}]
    transports = {"engine": harness.make_transport()} if harness.make_transport else None
    async with make_gateway(engines=engines, transports=transports) as gateway:
        if harness.prepare is not None:
            await harness.prepare(gateway.app.state.registry.get("engine").adapter)
        files = {"file": ("charging.bpmn", harness.bpmn["charging"], "application/xml")}
        deployed = await gateway.client.post("/api/processes/definitions", files=files)
        assert deployed.status_code == 201, deployed.text
        started = await gateway.client.post(
            "/api/processes/instances", json={"definition_key": "charging", "variables": {"fail": True}}
        )
        assert started.status_code == 201, started.text
        yield gateway, started.json()["id"]


@pytest.mark.parametrize("harness", [pytest.param(h, id=h.id, marks=h.marks) for h in HARNESSES])
async def test_a_failed_charge_is_fixed_and_retried_through_the_incident_center(
    make_gateway: Callable[..., Any], harness: Harness, request: pytest.FixtureRequest
) -> None:
    harness = on_real_engine(harness, request)
    async with failed_charge(make_gateway, harness) as (gateway, instance_id):
        client = gateway.client
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
    async with failed_charge(make_gateway, harness) as (gateway, instance_id):
        client = gateway.client
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
