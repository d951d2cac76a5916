"""End to end on the embedded engine, through the API: a task fails, the incident appears, the variable is
fixed, the retry runs and the instance finishes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.engines.testing.polling import eventually
from tests.conformance.harnesses.embedded import CHARGING, register_charging
from tests.incidents.helpers import Gateway

LOCAL = [{"name": "local", "type": "embedded", "default": True}]
ORDER_PROCESS = Path(__file__).parents[2] / "examples" / "order-process.bpmn"
USER = {"X-User-Id": "alice"}


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any]) -> AsyncIterator[Gateway]:
    async with make_gateway(engines=LOCAL) as gateway:
        await register_charging(gateway.app.state.registry.get("local").adapter)
        response = await gateway.client.post(
            "/api/processes/definitions", files={"file": ("charging.bpmn", CHARGING, "application/xml")}
        )
        assert response.status_code == 201, response.text
        yield gateway


async def start_failing(gateway: Gateway) -> tuple[str, dict[str, Any]]:
    response = await gateway.client.post(
        "/api/processes/instances", json={"definition_key": "charging", "variables": {"fail": True}}, headers=USER
    )
    assert response.status_code == 201, response.text
    instance_id = response.json()["id"]
    found = await eventually(lambda: gateway.incidents(instance_id=instance_id), lambda items: len(items) == 1, 2.0)
    assert len(found) == 1, "the incident must appear within 2 s"
    return instance_id, found[0]


async def action(
    gateway: Gateway, incident_id: str, name: str, body: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    response = await gateway.client.post(f"/api/processes/incidents/{incident_id}/{name}", json=body, headers=USER)
    assert response.status_code == status, response.text
    return response.json()


async def open_tasks(gateway: Gateway, instance_id: str) -> list[dict[str, Any]]:
    return (await gateway.client.get("/api/processes/tasks", params={"instance_id": instance_id})).json()["items"]


async def test_the_readme_walkthrough(gateway: Gateway) -> None:
    """A bad amount stops the example order process at its gateway; fixing it and retrying lets it finish."""
    client = gateway.client
    files = {"file": ("order-process.bpmn", ORDER_PROCESS.read_bytes(), "application/xml")}
    assert (await client.post("/api/processes/definitions", files=files)).status_code == 201
    started = await client.post(
        "/api/processes/instances", json={"definition_key": "order-process", "variables": {"amount": "abc"}}
    )
    instance_id = started.json()["id"]

    (incident,) = await eventually(lambda: gateway.incidents(instance_id=instance_id), lambda items: len(items) == 1)
    assert (incident["incident_type"], incident["activity_id"], incident["severity"]) == (
        "conditionError", "check-amount", "high"
    )  # fmt: skip
    assert "not supported between instances of 'str' and 'int'" in incident["incident_message"]

    await action(gateway, incident["id"], "assign", {"user_id": "alice"})
    retrying = await action(gateway, incident["id"], "retry", {"variables": {"amount": 120}}, status=202)
    assert retrying["status"] == "retrying"
    resolved = await eventually(lambda: gateway.incident(incident["id"]), lambda i: i["status"] == "resolved", 2.0)
    assert resolved["resolution"]["type"] == "retry"
    assert [h["action"] for h in resolved["history"]] == ["created", "assigned", "retried", "resolved"]

    (task,) = await open_tasks(gateway, instance_id)
    assert task["task_definition_key"] == "approve-order"
    completed = await client.post(f"/api/processes/tasks/{task['id']}/complete", json={"variables": {"approved": True}})
    assert completed.status_code == 204
    instance = (await client.get(f"/api/processes/instances/{instance_id}")).json()
    assert instance["status"] == "completed"

    events = (await client.get("/api/processes/events", params={"types": "incident.created,incident.resolved"})).json()
    assert [e["type"] for e in events["items"]] == [
        "process_manager.incident.created",
        "process_manager.incident.resolved",
    ]


async def test_the_embedded_engines_stack_trace_is_the_chain_of_causes_never_a_python_traceback(
    gateway: Gateway,
) -> None:
    async def charge_through_a_dead_provider(variables: dict[str, Any]) -> None:
        try:
            raise ConnectionRefusedError("psp.example:443 refused the connection")
        except ConnectionRefusedError as refused:
            raise RuntimeError(f"The card of order {variables.get('order', '?')} was not charged") from refused

    gateway.app.state.registry.get("local").adapter.register_handler("charge", charge_through_a_dead_provider)
    _, incident = await start_failing(gateway)
    assert incident["incident_message"] == "RuntimeError: The card of order ? was not charged"
    (linked,) = (await gateway.incident(incident["id"]))["engine_incidents"]
    read = await gateway.client.get(f"/api/processes/incidents/{incident['id']}/engine-incidents/{linked['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["detail"] == "ConnectionRefusedError: psp.example:443 refused the connection"

    # The README's failure: the message says it all ("Cannot evaluate ..."), the engine keeps nothing more.
    files = {"file": ("order-process.bpmn", ORDER_PROCESS.read_bytes(), "application/xml")}
    assert (await gateway.client.post("/api/processes/definitions", files=files)).status_code == 201
    started = await gateway.client.post(
        "/api/processes/instances", json={"definition_key": "order-process", "variables": {"amount": "abc"}}
    )
    instance_id = started.json()["id"]
    (incident,) = await eventually(lambda: gateway.incidents(instance_id=instance_id), lambda items: len(items) == 1)
    (linked,) = (await gateway.incident(incident["id"]))["engine_incidents"]
    read = await gateway.client.get(f"/api/processes/incidents/{incident['id']}/engine-incidents/{linked['id']}")
    assert read.status_code == 200 and read.json()["detail"] is None
    assert "not supported between instances of 'str' and 'int'" in read.json()["message"]


async def test_a_retry_without_the_fix_fails_again_and_reopens_the_incident(gateway: Gateway) -> None:
    instance_id, incident = await start_failing(gateway)
    await action(gateway, incident["id"], "retry", {}, status=202)
    reopened = await eventually(lambda: gateway.incident(incident["id"]), lambda i: i["status"] == "open", 2.0)
    assert [h["action"] for h in reopened["history"]] == ["created", "retried", "recurred"]
    assert len(reopened["engine_incident_ids"]) == 2
    assert len(await gateway.incidents(instance_id=instance_id)) == 1


async def test_abort_terminates_the_instance(gateway: Gateway) -> None:
    instance_id, incident = await start_failing(gateway)
    resolved = await action(
        gateway, incident["id"], "resolve", {"resolution_type": "abort", "message": "Order cancelled"}
    )
    assert resolved["resolution"]["type"] == "abort"
    instance = (await gateway.client.get(f"/api/processes/instances/{instance_id}")).json()
    assert instance["status"] == "terminated"
    assert instance["incidents"] == []


async def test_skip_drops_the_engine_incident_and_comments_annotate_it(gateway: Gateway) -> None:
    _, incident = await start_failing(gateway)
    await action(gateway, incident["id"], "comments", {"message": "Known PSP outage"}, status=201)
    adapter = gateway.app.state.registry.get("local").adapter
    engine_incident = await adapter.get_engine_incident(incident["engine_incident_ids"][0])
    assert engine_incident.annotation == "Known PSP outage"

    skipped = await action(
        gateway, incident["id"], "resolve", {"resolution_type": "skip", "message": "Charged by hand"}
    )
    assert skipped["status"] == "resolved"
    assert (await gateway.client.get("/api/processes/instances", params={"has_incident": True})).json()["total"] == 0
