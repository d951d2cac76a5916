"""Valid-looking input that used to be a 500: each is a 4xx problem naming the field and the limit, and audited."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import APPROVAL, deploy, open_tasks, start
from tests.api.test_api import assert_problem

TOO_BIG = 2**70
LONG = "x" * 300


async def last_audit(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/api/processes/audit", params={"size": 1})).json()["items"][0]


async def raw_post(client: httpx.AsyncClient, path: str, text: str, **headers: str) -> httpx.Response:
    return await client.post(path, content=text.encode(), headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"definition_key": "approval", "business_key": LONG}, ("business_key", "255")),
        ({"definition_key": "approval", "tenant_id": LONG}, ("tenant_id", "100")),
        ({"definition_key": LONG}, ("definition_key", "255")),
        ({"definition_key": "approval", "business_key": "a\x00b"}, ("business_key", "NUL")),
        ({"definition_key": "approval", "variables": {"note": "a\x00b"}}, ("variables.note", "NUL")),
        ({"definition_key": "approval", "variables": {"n\x00ame": 1}}, ("variables", "NUL")),
        ({"definition_key": "approval", "variables": {"big": TOO_BIG}}, ("variables.big", "64-bit")),
        (
            {"definition_key": "approval", "variables": {"d": {"value": "0001-01-01T00:30:00+01:00", "type": "Date"}}},
            ("d",),
        ),
    ],
    ids=[
        "long-business-key",
        "long-tenant",
        "long-definition-key",
        "nul-business-key",
        "nul-variable",
        "nul-name",
        "int-beyond-64-bits",
        "year-1-with-offset",
    ],
)
async def test_start_refuses_with_a_problem_naming_the_field_and_audits_it(
    client: httpx.AsyncClient, body: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    await deploy(client)
    response = await client.post("/api/processes/instances", json=body)
    assert_problem(response, 422, *fragments)
    audit = await last_audit(client)
    assert (audit["status"], audit["outcome"]) == (422, "failure")
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_nan_and_infinity_are_refused_not_stored_as_null(client: httpx.AsyncClient, constant: str) -> None:
    await deploy(client)
    text = '{"definition_key": "approval", "variables": {"x": %s, "j": {"value": {"a": [%s]}, "type": "Json"}}}'
    response = await raw_post(client, "/api/processes/instances", text % (constant, constant))
    assert_problem(response, 422, "variables.x", "finite")
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


@pytest.mark.parametrize(
    ("leaf", "fragments"),
    [("a\x00b", ("variables.j.value.rows.1999.text", "NUL")), (TOO_BIG, ("variables.j.value.rows.1999.n", "64-bit"))],
    ids=["nul", "int-beyond-64-bits"],
)
async def test_a_large_body_is_checked_as_closely_as_a_small_one(
    client: httpx.AsyncClient, leaf: Any, fragments: tuple[str, ...]
) -> None:
    """Bodies over 16 KiB are checked in a worker thread (the loop keeps serving): the same problem, the same path."""
    await deploy(client)
    rows: list[dict[str, Any]] = [{"n": n, "text": "x" * 40} for n in range(2_000)]
    rows[-1]["text" if isinstance(leaf, str) else "n"] = leaf
    body = {"definition_key": "approval", "variables": {"j": {"value": {"rows": rows}, "type": "Json"}}}
    assert len(json.dumps(body)) > 64 * 1024
    assert_problem(await client.post("/api/processes/instances", json=body), 422, *fragments)
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


async def test_deeply_nested_json_is_refused_naming_the_limit(client: httpx.AsyncClient) -> None:
    await deploy(client)
    deep = "[" * 300 + "]" * 300
    response = await raw_post(
        client, "/api/processes/instances", '{"definition_key": "approval", "variables": {"j": ' + deep + "}}"
    )
    assert_problem(response, 422, "nested", "64")
    audit = await last_audit(client)
    assert (audit["status"], audit["outcome"]) == (422, "failure")


async def test_nesting_within_the_limit_round_trips(client: httpx.AsyncClient) -> None:
    await deploy(client)
    value: Any = "leaf"
    for _ in range(25):  # 50 levels inside the body's own four
        value = {"k": [value]}
    instance = await start(client, variables={"j": {"value": value, "type": "Json"}})
    stored = (await client.get(f"/api/processes/instances/{instance['id']}/variables")).json()
    assert stored["j"] == {"value": value, "type": "Json"}


@pytest.mark.parametrize(
    ("path", "params", "fragments"),
    [
        ("/api/processes/instances", {"page": str(TOO_BIG)}, ("page",)),
        ("/api/processes/tasks", {"page": str(TOO_BIG)}, ("page",)),
        ("/api/processes/events", {"after": str(TOO_BIG)}, ("after",)),
        ("/api/processes/instances", {"business_key": "a\x00"}, ("business_key", "NUL")),
        ("/api/processes/instances", {"started_after": "0001-01-01T00:00:00+05:00"}, ("started_after",)),
        ("/api/processes/tasks", {"due_before": "0001-01-01T00:00:00+05:00"}, ("due_before",)),
        ("/api/processes/audit", {"from": "0001-01-01T00:00:00+05:00"}, ("from",)),
        ("/api/processes/incidents", {"created_after": "0001-01-01T00:00:00+05:00"}, ("created_after",)),
        ("/api/processes/subscriptions", {"page": "3164007327005412352", "size": "73"}, ("page",)),
    ],
)
async def test_query_parameters_beyond_their_range_are_422(
    client: httpx.AsyncClient, path: str, params: dict[str, str], fragments: tuple[str, ...]
) -> None:
    assert_problem(await client.get(path, params=params), 422, *fragments)


async def test_nul_in_a_path_id_is_refused(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/processes/instances/a%00b"), 422, "NUL")
    assert_problem(await client.post("/api/processes/tasks/a%00b/complete", json={}), 422, "NUL")
    assert (await last_audit(client))["status"] == 422


async def test_retries_beyond_64_bits_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/processes/incidents/x/retry", json={"retries": TOO_BIG})
    assert_problem(response, 422, "retries", "64-bit")


async def test_an_over_long_or_nul_x_user_id_is_422_and_still_audited(client: httpx.AsyncClient) -> None:
    await deploy(client)
    for user in ("u" * 256, "a\x00b"):
        headers = [("x-user-id", user), ("content-type", "application/json")]
        response = await client.post(
            "/api/processes/instances", content=b'{"definition_key": "approval"}', headers=headers
        )
        assert_problem(response, 422, "X-User-Id")
        audit = await last_audit(client)
        assert (audit["status"], audit["outcome"], audit["actor"]) == (422, "failure", "(invalid X-User-Id)")
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


@pytest.mark.parametrize("field", ["name", "tenant_id"])
async def test_deployment_fields_longer_than_their_column_are_422(client: httpx.AsyncClient, field: str) -> None:
    limit = {"name": "255", "tenant_id": "100"}[field]
    response = await client.post("/api/processes/definitions", json={"bpmn_xml": APPROVAL.decode(), field: LONG})
    assert_problem(response, 422, field, limit)
    multipart = await client.post(
        "/api/processes/definitions", files={"file": ("p.bpmn", APPROVAL, "application/xml")}, data={field: LONG}
    )
    assert_problem(multipart, 422, field, limit)
    assert (await last_audit(client))["outcome"] == "failure"


async def test_a_process_id_longer_than_the_column_is_a_400_naming_the_limit(client: httpx.AsyncClient) -> None:
    xml = APPROVAL.replace(b'id="approval"', b'id="' + b"p" * 300 + b'"')
    response = await client.post("/api/processes/definitions", files={"file": ("p.bpmn", xml, "application/xml")})
    assert_problem(response, 400, "255")


async def test_complete_with_hostile_variables_is_refused_and_the_task_stays_open(client: httpx.AsyncClient) -> None:
    await deploy(client)
    instance = await start(client)
    (task,) = await open_tasks(client, instance["id"])
    response = await raw_post(client, f"/api/processes/tasks/{task['id']}/complete", '{"variables": {"x": NaN}}')
    assert_problem(response, 422, "finite")
    assert len(await open_tasks(client, instance["id"])) == 1
    assert (await last_audit(client))["outcome"] == "failure"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/processes/instances", '{"definition_key": "approval", "variables": {"a": "\\ud800"}}'),
        ("/api/processes/instances", '{"definition_key": "approval", "variables": {"\\udfff": 1}}'),
        ("/api/processes/signals", '{"signal_name": "nobody", "variables": {"a": "x\\ud800y"}}'),
        ("/api/processes/messages", '{"message_name": "m", "correlation_keys": {"\\ud800": "x"}}'),
    ],
)
async def test_a_lone_surrogate_in_any_string_is_422_and_the_logs_stay_readable(
    client: httpx.AsyncClient, path: str, body: str
) -> None:
    """JSON may escape half a UTF-16 pair (`\\ud800`), which no UTF-8 text holds: refused before it reaches the
    engine, the audit log or the event log (once stored, it made every later page of them a 500)."""
    await deploy(client)
    assert_problem(await raw_post(client, path, body), 422, "lone UTF-16 surrogate")
    assert (await client.get("/api/processes/audit", params={"size": 200})).status_code == 200
    assert (await client.get("/api/processes/events", params={"size": 500})).status_code == 200
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


def chain_of_tasks(count: int) -> bytes:
    flows, previous = [], "start"
    for n in range(count):
        flows.append(
            f'<bpmn:userTask id="t{n}"/><bpmn:sequenceFlow id="f{n}" sourceRef="{previous}" targetRef="t{n}"/>'
        )
        previous = f"t{n}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
        ' id="d" targetNamespace="http://example.com"><bpmn:process id="chain" isExecutable="true"><bpmn:startEvent id="start"/>'
        + "".join(flows)
        + f'<bpmn:endEvent id="end"/><bpmn:sequenceFlow id="fe" sourceRef="{previous}" targetRef="end"/></bpmn:process></bpmn:definitions>'
    ).encode()


async def test_a_chain_of_1000_tasks_is_a_400_without_a_python_error_in_it(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/processes/definitions", files={"file": ("c.bpmn", chain_of_tasks(1000), "application/xml")}
    )
    body = assert_problem(response, 400, "chain", "450")
    assert "RecursionError" not in json.dumps(body) and "Error(" not in body["detail"]
    assert (await last_audit(client))["outcome"] == "failure"


async def test_a_call_that_fails_unexpectedly_is_audited_as_a_500(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README promises every failed mutating call an audit row; an unexpected error (a bug) is no exception."""
    from gateway.processes.service import ProcessService

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    await deploy(client)
    monkeypatch.setattr(ProcessService, "start_instance", broken)
    # The test transport re-raises the app's error after the 500 went out; a real client just sees the 500.
    with pytest.raises(RuntimeError, match="a bug"):
        await client.post(
            "/api/processes/instances", json={"definition_key": "approval"}, headers={"X-User-Id": "ünï".encode()}
        )
    audit = await last_audit(client)
    assert (audit["status"], audit["outcome"], audit["resource_type"]) == (500, "failure", "request")
    assert audit["actor"] == "ünï"  # sent as UTF-8, as clients send it; not read as Latin-1 ("Ã¼nÃ¯")
