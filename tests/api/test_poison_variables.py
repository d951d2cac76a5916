"""Variables that look like the engine's own serialization markers are plain data: they round-trip exactly and
never break completing or terminating an instance."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.embedded.tables import instances
from gateway.db import Database
from tests.api.conftest import PARALLEL, deploy, open_tasks, start

POISON: dict[str, Any] = {
    "typename": {"value": "BpmnWorkflow", "type": "String"},
    "uuid_like": {"value": {"typename": "UUID", "value": "5b0c1b8e-4f5e-4a8f-9f0e-0c1c2d3e4f50"}, "type": "Json"},
    "unknown": {"value": {"typename": "NoSuchThing"}, "type": "Json"},
    "nested": {
        "value": {"a": [{"typename": "datetime", "value": "2020-01-01T00:00:00"}, {"~typename": 1}]},
        "type": "Json",
    },
    "marks": {"value": {"~": "", "~~x": [1, {"typename": None}], "plain": True}, "type": "Json"},
    "~tilde": {"value": 3, "type": "Integer"},
}


async def read_variables(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/processes/instances/{instance_id}/variables")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("when", ["start", "variables", "complete"])
async def test_typename_variables_round_trip_and_the_instance_still_completes(
    client: httpx.AsyncClient, when: str
) -> None:
    await deploy(client, PARALLEL)
    instance = await start(client, "parallel", variables=POISON if when == "start" else {})
    left, right = sorted(await open_tasks(client, instance["id"]), key=lambda t: t["task_definition_key"])
    if when == "variables":
        changed = await client.put(f"/api/processes/instances/{instance['id']}/variables", json={"variables": POISON})
        assert changed.status_code == 200, changed.text
    first = await client.post(
        f"/api/processes/tasks/{left['id']}/complete", json={"variables": POISON if when == "complete" else {}}
    )
    assert first.status_code == 204, first.text
    assert await read_variables(client, instance["id"]) == POISON
    second = await client.post(f"/api/processes/tasks/{right['id']}/complete", json={})
    assert second.status_code == 204, second.text
    assert (await client.get(f"/api/processes/instances/{instance['id']}")).json()["status"] == "completed"
    assert await read_variables(client, instance["id"]) == POISON


async def test_an_instance_with_typename_variables_can_be_terminated(client: httpx.AsyncClient) -> None:
    await deploy(client, PARALLEL)
    instance = await start(client, "parallel", variables=POISON)
    left = sorted(await open_tasks(client, instance["id"]), key=lambda t: t["task_definition_key"])[0]
    assert (await client.post(f"/api/processes/tasks/{left['id']}/complete", json={})).status_code == 204
    response = await client.delete(f"/api/processes/instances/{instance['id']}")
    assert response.status_code == 204, response.text
    assert (await client.get(f"/api/processes/instances/{instance['id']}")).json()["status"] == "terminated"


async def test_an_instance_whose_stored_state_cannot_be_restored_can_still_be_terminated(
    client: httpx.AsyncClient, database: Database
) -> None:
    """A state written before user data was escaped (a raw `typename` in task data) no longer restores."""
    await deploy(client, PARALLEL)
    instance = await start(client, "parallel")
    async with database.engine.begin() as conn:
        state = json.loads(await conn.scalar(sa.select(instances.c.state).where(instances.c.id == instance["id"])))
        for task in state["tasks"].values():
            task["data"] = {"x": {"typename": "NoSuchThing"}}
        await conn.execute(sa.update(instances).where(instances.c.id == instance["id"]).values(state=json.dumps(state)))
    response = await client.delete(f"/api/processes/instances/{instance['id']}")
    assert response.status_code == 204, response.text
    assert (await client.get(f"/api/processes/instances/{instance['id']}")).json()["status"] == "terminated"
    assert await open_tasks(client, instance["id"]) == []
