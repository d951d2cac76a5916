"""The unified API on the embedded engine, as a frontend sees it: shapes, statuses, problems, audit, events."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import Database
from gateway.journal import verify_chain
from gateway.tables import audit_log
from tests.api.conftest import APPROVAL, PARALLEL, deploy, open_tasks, start

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


async def event_types(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/api/processes/events", params={"limit": 1000})
    return [e["type"].removeprefix("process_manager.") for e in response.json()["items"]]


# ------------------------------------------------------------------ the walkthrough
async def test_deploy_start_work_and_complete_through_the_api(client: httpx.AsyncClient) -> None:
    deployment = await deploy(client)
    (definition,) = deployment["definitions"]
    assert (definition["key"], definition["version"], definition["engine"]) == ("approval", 1, "local")

    details = (await client.get(f"/api/processes/definitions/{definition['id']}")).json()
    assert [(t["id"], t["type"], t["candidate_groups"], t["documentation"]) for t in details["tasks"]] == [
        ("review", "userTask", ["sales"], "Check the request")
    ]
    xml = await client.get(f"/api/processes/definitions/{definition['id']}/xml")
    assert xml.headers["content-type"].startswith("application/xml") and xml.content == APPROVAL

    response = await client.post(
        "/api/processes/instances",
        json={"definition_key": "approval", "business_key": "order-7", "variables": {"amount": 30}},
        headers={"X-User-Id": "alice"},
    )
    assert response.status_code == 201
    instance = response.json()
    assert response.headers["location"] == f"/api/processes/instances/{instance['id']}"
    assert (instance["status"], instance["business_key"], instance["started_by"]) == ("active", "order-7", "alice")

    (task,) = await open_tasks(client, instance["id"])
    claimed = await client.post(f"/api/processes/tasks/{task['id']}/claim", json={"user_id": "bob"})
    assert claimed.json()["assignee"] == "bob"
    completed = await client.post(
        f"/api/processes/tasks/{task['id']}/complete", json={"variables": {"approved": {"value": True}}}
    )
    assert completed.status_code == 204

    finished = (await client.get(f"/api/processes/instances/{instance['id']}")).json()
    assert finished["status"] == "completed"
    assert "review" in [step["activity_id"] for step in finished["execution_path"]]
    assert [entry["operation"] for entry in finished["audit_trail"]] == ["start"]
    assert await event_types(client) == [
        "definition.deployed",
        "instance.started",
        "task.created",
        "task.assigned",
        "task.completed",
        "instance.completed",
    ]


async def test_events_page_by_cursor_and_filter_by_type(client: httpx.AsyncClient) -> None:
    await deploy(client)
    for _ in range(3):
        await start(client)
    first = (await client.get("/api/processes/events", params={"limit": 2})).json()
    assert len(first["items"]) == 2
    rest = (await client.get("/api/processes/events", params={"after": first["next_cursor"]})).json()
    seen = [e["id"] for e in first["items"] + rest["items"]]
    assert len(seen) == len(set(seen)) == 7  # deployed + 3 × (started, task.created)
    started = (await client.get("/api/processes/events", params={"types": "instance.started"})).json()
    assert [e["type"] for e in started["items"]] == ["process_manager.instance.started"] * 3
    envelope = started["items"][0]
    assert {"id", "type", "occurred_at", "engine", "tenant_id", "actor", "instance_id", "data"} <= set(envelope)
    assert envelope["engine"] == "local" and envelope["data"]["definition_key"] == "approval"


# ------------------------------------------------------------------ bad input and faults
async def test_malformed_xml_is_400_with_the_line_and_stores_nothing(client: httpx.AsyncClient) -> None:
    broken = APPROVAL.replace(b"</bpmn:process>", b"</bpmn:proces>")
    body = assert_problem(
        await client.post("/api/processes/definitions", files={"file": ("x.bpmn", broken)}), 400, "line"
    )
    assert body["title"] == "Invalid BPMN"
    assert (await client.get("/api/processes/definitions")).json()["total"] == 0
    assert await event_types(client) == []


async def test_bpmn_without_an_executable_process_is_400(client: httpx.AsyncClient) -> None:
    lazy = APPROVAL.replace(b'isExecutable="true"', b'isExecutable="false"')
    assert_problem(await client.post("/api/processes/definitions", json={"bpmn_xml": lazy.decode()}), 400, "executable")
    assert (await client.get("/api/processes/definitions")).json()["total"] == 0


async def test_upload_over_the_limit_is_413(make_client: Any) -> None:
    async with make_client(max_upload_bytes=2048) as client:
        padded = APPROVAL.replace(b"<bpmn:startEvent", b"<!--" + b"x" * 100_000 + b"--><bpmn:startEvent")
        response = await client.post("/api/processes/definitions", files={"file": ("big.bpmn", padded)})
        assert_problem(response, 413, "limit")
        assert (await client.get("/api/processes/definitions")).json()["total"] == 0


async def test_unknown_ids_are_404_problems(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/processes/definitions/nope",
        "/api/processes/definitions/nope/xml",
        "/api/processes/instances/nope",
        "/api/processes/instances/nope/variables",
        "/api/processes/tasks/nope",
    ):
        assert_problem(await client.get(path), 404)
    assert_problem(await client.post("/api/processes/instances", json={"definition_key": "nope"}), 404)
    assert_problem(await client.post("/api/processes/tasks/nope/claim", json={"user_id": "a"}), 404)


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/processes/nothing-here"), 404, "No route")
    assert_problem(await client.patch("/api/processes/definitions"), 405)


async def test_variables_of_the_wrong_type_are_422_and_start_nothing(client: httpx.AsyncClient) -> None:
    await deploy(client)
    response = await client.post(
        "/api/processes/instances",
        json={
            "definition_key": "approval",
            "variables": {
                "count": {"value": "seven", "type": "Integer"},
                "when": {"value": "yesterday", "type": "Date"},
            },
        },
    )
    body = assert_problem(response, 422, "count", "when")
    assert [e["loc"] for e in body["errors"]] == [["body", "variables", "count"], ["body", "variables", "when"]]
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


async def test_integers_inside_json_values_beyond_the_long_range_are_422_and_start_nothing(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client)
    for variables, where in [
        ({"order": {"items": [{"amount": 1}, {"amount": 2**64}]}}, "variables.order.items.1.amount"),
        ({"typed": {"value": {"ids": [-(2**63) - 1]}, "type": "Json"}}, "variables.typed.value.ids.0"),
    ]:
        response = await client.post(
            "/api/processes/instances", json={"definition_key": "approval", "variables": variables}
        )
        assert_problem(response, 422, f"{where}: the integer is outside the signed 64-bit range")
    fine = {"typed": {"value": {"ids": [2**63 - 1, -(2**63)]}, "type": "Json"}}
    started = await client.post("/api/processes/instances", json={"definition_key": "approval", "variables": fine})
    assert started.status_code == 201, started.text
    assert (await client.get("/api/processes/instances")).json()["total"] == 1


async def test_malformed_request_bodies(client: httpx.AsyncClient) -> None:
    assert_problem(
        await client.post(
            "/api/processes/instances", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
    )
    body = assert_problem(await client.post("/api/processes/instances", json={"business_key": "x"}), 422)
    assert body["errors"]
    assert_problem(await client.get("/api/processes/tasks", params={"sort": "secret_column"}), 422, "cannot sort")
    assert_problem(await client.get("/api/processes/tasks", params={"size": 501}), 422)


async def test_claiming_a_task_another_user_holds_is_409(client: httpx.AsyncClient) -> None:
    await deploy(client)
    (task,) = await open_tasks(client, (await start(client))["id"])
    assert (await client.post(f"/api/processes/tasks/{task['id']}/claim", json={"user_id": "alice"})).status_code == 200
    assert_problem(await client.post(f"/api/processes/tasks/{task['id']}/claim", json={"user_id": "bob"}), 409)
    assert (await client.get(f"/api/processes/tasks/{task['id']}")).json()["assignee"] == "alice"


async def test_completing_a_completed_task_is_an_error_and_changes_nothing(client: httpx.AsyncClient) -> None:
    await deploy(client)
    instance = await start(client)
    (task,) = await open_tasks(client, instance["id"])
    assert (await client.post(f"/api/processes/tasks/{task['id']}/complete")).status_code == 204
    events_before = await event_types(client)
    assert_problem(await client.post(f"/api/processes/tasks/{task['id']}/complete"), 404)
    assert await event_types(client) == events_before


async def test_concurrent_completes_on_one_instance_lose_no_update(client: httpx.AsyncClient) -> None:
    await deploy(client, PARALLEL)
    instance = await start(client, "parallel")
    tasks = await open_tasks(client, instance["id"])
    assert sorted(t["task_definition_key"] for t in tasks) == ["left", "right"]
    results = await asyncio.gather(
        *(
            client.post(
                f"/api/processes/tasks/{t['id']}/complete", json={"variables": {t["task_definition_key"]: "done"}}
            )
            for t in tasks
        )
    )
    assert [r.status_code for r in results] == [204, 204]
    final = (await client.get(f"/api/processes/instances/{instance['id']}")).json()
    assert final["status"] == "completed"
    variables = (await client.get(f"/api/processes/instances/{instance['id']}/variables")).json()
    assert variables["left"]["value"] == variables["right"]["value"] == "done"


async def test_the_same_task_completed_twice_at_once_completes_once(client: httpx.AsyncClient) -> None:
    await deploy(client)
    instance = await start(client)
    (task,) = await open_tasks(client, instance["id"])
    results = await asyncio.gather(*(client.post(f"/api/processes/tasks/{task['id']}/complete") for _ in range(2)))
    assert sorted(r.status_code for r in results) == [204, 404]
    assert (await event_types(client)).count("task.completed") == 1


# ------------------------------------------------------------------ definitions lifecycle
async def test_new_version_suspend_and_delete(client: httpx.AsyncClient) -> None:
    first = (await deploy(client))["definitions"][0]
    second = (
        await client.put(f"/api/processes/definitions/{first['id']}", json={"bpmn_xml": APPROVAL.decode()})
    ).json()["definitions"][0]
    assert (second["key"], second["version"]) == ("approval", 2)
    latest = (await client.get("/api/processes/definitions")).json()
    assert [d["version"] for d in latest["items"]] == [2]
    every = (await client.get("/api/processes/definitions", params={"latest_only": False})).json()
    assert every["total"] == 2

    suspended = await client.put(f"/api/processes/definitions/{second['id']}/suspended", json={"suspended": True})
    assert suspended.json()["suspended"] is True
    assert_problem(await client.post("/api/processes/instances", json={"definition_id": second["id"]}), 409)
    await client.put(f"/api/processes/definitions/{second['id']}/suspended", json={"suspended": False})

    running = await start(client)
    counted = (await client.get(f"/api/processes/definitions/{second['id']}", params={"with_counts": True})).json()
    assert counted["instances"] == 1
    assert_problem(await client.delete(f"/api/processes/definitions/{second['id']}"), 409)
    assert (
        await client.delete(f"/api/processes/definitions/{second['id']}", params={"cascade": True})
    ).status_code == 204
    assert_problem(await client.get(f"/api/processes/instances/{running['id']}"), 404)


async def test_suspend_terminate_and_variables(client: httpx.AsyncClient) -> None:
    await deploy(client)
    instance = await start(client, variables={"keep": 1, "drop": "x"})
    suspended = await client.put(f"/api/processes/instances/{instance['id']}/suspended", json={"suspended": True})
    assert suspended.json()["status"] == "suspended"
    (task,) = await open_tasks(client, instance["id"])
    assert_problem(await client.post(f"/api/processes/tasks/{task['id']}/complete"), 409)
    await client.put(f"/api/processes/instances/{instance['id']}/suspended", json={"suspended": False})

    changed = await client.put(
        f"/api/processes/instances/{instance['id']}/variables",
        json={"variables": {"added": {"value": "2026-11-22T10:00:00Z", "type": "Date"}}, "deletions": ["drop"]},
    )
    assert changed.json() == {
        "keep": {"value": 1, "type": "Integer"},
        "added": {"value": "2026-11-22T10:00:00Z", "type": "Date"},
    }
    assert (
        await client.delete(f"/api/processes/instances/{instance['id']}", params={"reason": "test"})
    ).status_code == 204
    assert (await client.get(f"/api/processes/instances/{instance['id']}")).json()["status"] == "terminated"
    assert (await event_types(client))[-4:] == [
        "instance.suspended",
        "instance.activated",
        "instance.variables_updated",
        "instance.terminated",
    ]


# ------------------------------------------------------------------ audit
async def test_every_mutating_call_is_audited_and_the_chain_detects_tampering(
    client: httpx.AsyncClient, database: Database
) -> None:
    await deploy(client)
    instance = await start(client, variables={"secret_pin": "1234"})
    assert_problem(
        await client.post("/api/processes/tasks/nope/claim", json={"user_id": "a"}, headers={"X-User-Id": "eve"}), 404
    )

    audit = (await client.get("/api/processes/audit")).json()
    assert [(e["operation"], e["status"], e["outcome"]) for e in audit["items"]] == [
        ("claim", 404, "failure"),
        ("start", 201, "success"),
        ("deploy", 201, "success"),
    ]
    assert audit["items"][0]["actor"] == "eve"
    assert audit["items"][1]["resource_id"] == instance["id"]
    assert "1234" not in str(audit)  # variable values never reach the audit log
    by_actor = (await client.get("/api/processes/audit", params={"actor": "eve"})).json()
    assert by_actor["total"] == 1

    assert (await verify_chain(database)).ok
    async with database.engine.begin() as conn:
        await conn.execute(sa.update(audit_log).where(audit_log.c.operation == "start").values(actor="mallory"))
    check = await verify_chain(database)
    assert not check.ok and check.first_bad_id == 2


# ------------------------------------------------------------------ idempotency
async def test_idempotency_key_replays_and_rejects_another_body(client: httpx.AsyncClient) -> None:
    await deploy(client)
    headers = {"Idempotency-Key": "order-7-start"}
    first = await client.post("/api/processes/instances", json={"definition_key": "approval"}, headers=headers)
    again = await client.post("/api/processes/instances", json={"definition_key": "approval"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert (await client.get("/api/processes/instances")).json()["total"] == 1

    other = await client.post(
        "/api/processes/instances", json={"definition_key": "approval", "business_key": "x"}, headers=headers
    )
    assert assert_problem(other, 422, "different request")["instance"] == "/api/processes/instances"


async def test_concurrent_duplicate_with_the_same_key_is_409(client: httpx.AsyncClient) -> None:
    await deploy(client)
    body = {"definition_key": "approval"}
    results = await asyncio.gather(
        *(client.post("/api/processes/instances", json=body, headers={"Idempotency-Key": "k1"}) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert len({r.json()["id"] for r in results if r.status_code == 201}) == 1
    assert (await client.get("/api/processes/instances")).json()["total"] == 1


async def test_a_failed_request_does_not_burn_the_key(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k2"}
    assert_problem(
        await client.post("/api/processes/instances", json={"definition_key": "approval"}, headers=headers), 404
    )
    await deploy(client)
    replay = await client.post("/api/processes/instances", json={"definition_key": "approval"}, headers=headers)
    assert replay.status_code == 404  # 4xx answers are kept and replayed like any other
    assert (await client.get("/api/processes/instances")).json()["total"] == 0


# ------------------------------------------------------------------ operations
async def test_engines_health_ready_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    (engine,) = (await client.get("/api/processes/engines")).json()
    assert (engine["name"], engine["type"], engine["default"], engine["status"]) == ("local", "embedded", True, "up")
    assert "suspend_instance" in engine["capabilities"]
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"]["status"] == "up"
    assert_problem(await client.get("/api/processes/tasks", params={"engine": "camunda"}), 404, "Known engines: local")
    await client.get("/api/processes/tasks")
    metrics = (await client.get("/metrics")).text
    assert 'pm_http_request_seconds_count{method="GET",route="/api/processes/tasks",status="200"}' in metrics
    heartbeats = [line for line in metrics.splitlines() if line.startswith("pm_event_loop_lag_seconds_count")]
    assert heartbeats and float(heartbeats[0].split()[-1]) > 0  # the event loop's heartbeat runs
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/api/processes/definitions",
        "/api/processes/instances/{instance_id}/variables",
        "/api/processes/tasks/{task_id}/claim",
    ):
        assert path in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("path", "operation"),
    [("/api/processes/instances/1/suspended", "suspending"), ("/api/processes/definitions/1/suspended", "suspending")],
)
async def test_unsupported_operations_are_501_naming_engine_and_operation(
    make_client: Any, path: str, operation: str
) -> None:
    engines = [
        {"name": "local", "type": "embedded", "default": True},
        {"name": "c8", "type": "zeebe", "url": "http://127.0.0.1:9/v2"},
    ]
    async with make_client(engines=engines) as client:
        response = await client.put(path, params={"engine": "c8"}, json={"suspended": True})
        assert_problem(response, 501, "'c8'", operation)


async def test_two_gateways_sharing_redis_report_the_same_open_circuit(
    make_client: Any, redis_url: str, closed_port: int
) -> None:
    """Replica one cannot reach the engine; replica two can, yet follows the circuit replica one opened."""
    import respx
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    await redis.delete("pm:breaker:c7")

    def settings(url: str) -> dict[str, Any]:
        engine = {"name": "c7", "type": "camunda7", "url": url, "breaker_fail_max": 2, "breaker_reset_timeout": 60}
        return {"redis_url": redis_url, "engines": [{"name": "local", "type": "embedded", "default": True}, engine]}

    with respx.mock(assert_all_called=False) as engine_two:
        engine_two.route(host="127.0.0.1").pass_through()
        engine_two.route(host="gateway.test").pass_through()
        engine_two.route(host="replica-two-engine.test", path__regex=r".*/count$").respond(200, json={"count": 0})
        engine_two.route(host="replica-two-engine.test", path__regex=r".*/version$").respond(
            200, json={"version": "7.23.0"}
        )
        engine_two.route(host="replica-two-engine.test").respond(200, json=[])
        async with (
            make_client(**settings(f"http://127.0.0.1:{closed_port}/engine-rest")) as first,
            make_client(**settings("http://replica-two-engine.test/engine-rest")) as second,
        ):
            assert_problem(await first.get("/api/processes/tasks", params={"engine": "c7"}), 503)
            for _ in range(40):
                engines = {e["name"]: e for e in (await second.get("/api/processes/engines")).json()}
                if engines["c7"]["circuit"]["state"] == "open":
                    break
                await asyncio.sleep(0.05)
            assert engines["c7"]["circuit"]["state"] == "open"
            assert engines["c7"]["circuit"]["failure_count"] == 0  # none of replica two's own calls failed
            rejected = await second.get("/api/processes/tasks", params={"engine": "c7"})
            assert_problem(rejected, 503, "circuit is open")
            assert int(rejected.headers["retry-after"]) > 0
    await redis.delete("pm:breaker:c7")
    await redis.aclose()


async def test_the_gateway_starts_and_serves_while_redis_is_down(make_client: Any, closed_port: int) -> None:
    engines = [
        {"name": "local", "type": "embedded", "default": True},
        {"name": "c7", "type": "camunda7", "url": "http://127.0.0.1:9/engine-rest"},
    ]
    async with make_client(redis_url=f"redis://127.0.0.1:{closed_port}/0", engines=engines) as client:
        await deploy(client)
        assert (await start(client))["status"] == "active"
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["status"] == "down"
        assert ready.json()["checks"]["database"]["status"] == "up"


async def test_open_circuit_names_engine_url_last_error_and_since_everywhere(
    make_client: Any, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}/engine-rest"
    engine = {"name": "c7", "type": "camunda7", "url": url, "breaker_fail_max": 1, "breaker_reset_timeout": 60}
    async with make_client(engines=[{"name": "local", "type": "embedded", "default": True}, engine]) as client:
        first = await client.get("/api/processes/tasks", params={"engine": "c7"})
        assert_problem(first, 503, url, "connection refused")
        rejected = await client.get("/api/processes/tasks", params={"engine": "c7"})
        assert_problem(rejected, 503, "'c7'", url, "circuit is open since", "last error:", "connection refused")
        assert int(rejected.headers["retry-after"]) > 0

        engines = {e["name"]: e for e in (await client.get("/api/processes/engines")).json()}
        circuit = engines["c7"]["circuit"]
        assert circuit["state"] == "open" and circuit["opened_at"] is not None
        assert "connection refused" in circuit["last_error"]
        assert "circuit is open since" in engines["c7"]["detail"] and engines["c7"]["url"] == url

        ready = await client.get("/ready")
        assert ready.status_code == 503
        check = ready.json()["checks"]["engine:c7"]
        assert check["status"] == "down" and "circuit is open since" in check["detail"]
        assert "connection refused" in check["detail"] and check["circuit"]["state"] == "open"
