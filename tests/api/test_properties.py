"""Property-based: generated JSON values, names and strings thrown at start, variables and complete.

Never a 500; a 4xx is a problem document; and whatever is accepted reads back exactly (same JSON types,
same values, the same keys in every nested object)."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.api.conftest import deploy, open_tasks

INT64 = 2**63
PROBLEM = "application/problem+json"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-INT64 - 10, max_value=INT64 + 10)
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and ±Infinity included: they must be refused, never stored as null
    | st.text(max_size=40)
    | st.sampled_from(["typename", "~", "~typename", "\x00", "BpmnWorkflow", "UUID", "datetime"])
)
names = st.text(max_size=24) | st.sampled_from(["typename", "~x", "~", "a\x00b", "x" * 300])
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4),
    max_leaves=12,
)
typed_or_bare = st.one_of(
    json_values,
    st.builds(lambda value: {"value": value, "type": "Json"}, json_values),
)
variables = st.dictionaries(names, typed_or_bare, max_size=4)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def same(sent: Any, read: Any) -> bool:
    """Exactly the same JSON value: bool is not a number, an integer stays an integer."""
    if isinstance(sent, bool) or isinstance(read, bool):
        return type(sent) is type(read) and sent == read
    if isinstance(sent, int) and isinstance(read, int):
        return sent == read
    if isinstance(sent, float) and isinstance(read, float):
        return sent == read or (math.isnan(sent) and math.isnan(read))
    if isinstance(sent, dict) and isinstance(read, dict):
        return sent.keys() == read.keys() and all(same(sent[k], read[k]) for k in sent)
    if isinstance(sent, list) and isinstance(read, list):
        return len(sent) == len(read) and all(same(a, b) for a, b in zip(sent, read, strict=True))
    return type(sent) is type(read) and sent == read


async def send(client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """JSON as any client may write it: NaN and Infinity included (httpx itself refuses to encode them)."""
    return await client.request(
        method, path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM), response.text
        assert {"type", "title", "status", "detail"} <= set(response.json())


def bare_value(entry: Any) -> Any:
    if isinstance(entry, dict) and "value" in entry and set(entry) <= {"value", "type"}:
        return entry["value"]
    return entry


async def check_read_back(client: httpx.AsyncClient, instance_id: str, sent: dict[str, Any]) -> None:
    stored = (await client.get(f"/api/processes/instances/{instance_id}/variables")).json()
    for name, entry in sent.items():
        assert name in stored, (name, stored)
        assert same(bare_value(entry), stored[name]["value"]), (name, entry, stored[name])


@SETTINGS
@given(variables=variables, business_key=st.none() | st.text(max_size=300))
async def test_start_never_500s_and_reads_back_what_it_accepted(
    client: httpx.AsyncClient, variables: dict[str, Any], business_key: str | None
) -> None:
    if (await client.get("/api/processes/definitions")).json()["total"] == 0:
        await deploy(client)
    body = {"definition_key": "approval", "business_key": business_key, "variables": variables}
    response = await send(client, "POST", "/api/processes/instances", body)
    no_server_error(response)
    if response.status_code == 201:
        instance = response.json()
        assert instance["business_key"] == business_key
        await check_read_back(client, instance["id"], variables)


@SETTINGS
@given(change=variables, completion=variables)
async def test_variables_and_complete_never_500_and_read_back(
    client: httpx.AsyncClient, change: dict[str, Any], completion: dict[str, Any]
) -> None:
    if (await client.get("/api/processes/definitions")).json()["total"] == 0:
        await deploy(client)
    instance = (await client.post("/api/processes/instances", json={"definition_key": "approval"})).json()
    updated = await send(client, "PUT", f"/api/processes/instances/{instance['id']}/variables", {"variables": change})
    no_server_error(updated)
    expected = dict(change) if updated.status_code == 200 else {}
    await check_read_back(client, instance["id"], expected)
    (task,) = await open_tasks(client, instance["id"])
    completed = await send(client, "POST", f"/api/processes/tasks/{task['id']}/complete", {"variables": completion})
    no_server_error(completed)
    if completed.status_code == 204:
        expected.update(completion)
    else:
        assert len(await open_tasks(client, instance["id"])) == 1  # a refused completion leaves the task open
    await check_read_back(client, instance["id"], expected)
