"""A strict, self-describing API: unknown body fields, trailing slashes, list paging, problem answers."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import deploy, open_tasks, start
from tests.api.test_api import assert_problem


async def test_an_unknown_field_in_a_completion_is_422_naming_it_and_completes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client)
    instance = await start(client)
    (task,) = await open_tasks(client, instance["id"])
    response = await client.post(f"/api/processes/tasks/{task['id']}/complete", json={"approved": True})
    body = assert_problem(response, 422, "unknown field 'approved'")
    assert body["errors"] == [{"loc": ["body", "approved"], "msg": "unknown field 'approved'"}]
    assert [t["id"] for t in await open_tasks(client, instance["id"])] == [task["id"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/processes/instances", {"definition_key": "approval", "variabels": {}}, "variabels"),
        ("PUT", "/api/processes/instances/x/variables", {"variables": {}, "delete": ["a"]}, "delete"),
        ("PUT", "/api/processes/instances/x/suspended", {"suspended": True, "cascade": True}, "cascade"),
        ("PUT", "/api/processes/definitions/x/suspended", {"suspended": True, "instances": True}, "instances"),
        ("POST", "/api/processes/tasks/x/claim", {"user_id": "alice", "user": "bob"}, "user"),
        ("POST", "/api/processes/definitions", {"bpmn_xml": "<x/>", "filename": "a.bpmn"}, "filename"),
        ("POST", "/api/processes/incidents/x/comments", {"message": "hi", "author": "me"}, "author"),
        ("POST", "/api/processes/incidents/retry", {"filter": {"definition": "a"}}, "definition"),
    ],
)
async def test_unknown_body_fields_are_422_everywhere(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, object], field: str
) -> None:
    response = await client.request(method, path, json=body)
    assert_problem(response, 422, f"unknown field '{field}'")


async def test_a_trailing_slash_reaches_the_same_route(client: httpx.AsyncClient) -> None:
    await deploy(client)
    plain = await client.get("/api/processes/definitions")
    slashed = await client.get("/api/processes/definitions/")
    assert slashed.status_code == 200 and slashed.json() == plain.json()
    assert_problem(await client.get("/api/processes/nothing/"), 404, "No route")
    response = await client.post("/api/processes/instances/", json={"definition_key": "approval"})
    assert response.status_code == 201


async def test_events_honour_size_like_other_lists_and_limit_still_works(client: httpx.AsyncClient) -> None:
    await deploy(client)
    for _ in range(3):
        await start(client)
    assert len((await client.get("/api/processes/events", params={"size": 2})).json()["items"]) == 2
    assert len((await client.get("/api/processes/events", params={"limit": 3})).json()["items"]) == 3
    assert_problem(await client.get("/api/processes/events", params={"size": 0}), 422, "size")


async def test_claim_next_refuses_unknown_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/processes/tasks/claim-next", json={"candidate_group": "sales"})
    assert_problem(response, 422, "unknown field 'candidate_group'")
