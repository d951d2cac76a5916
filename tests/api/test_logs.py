"""Logs an operator can use: one access line per request, request ids end to end, quiet libraries, JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import respx

from gateway.errors import EngineUnavailable
from gateway.logs import configure_logging, log_failed_round
from tests.api.conftest import deploy, open_tasks, start


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.access"]


async def test_one_access_line_per_request_with_route_status_engine_and_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await deploy(client)
    instance = await start(client)
    (task,) = await open_tasks(client, instance["id"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        answer = await client.get(f"/api/processes/tasks/{task['id']}", headers={"X-Request-Id": "req-4711"})
    assert answer.headers["x-request-id"] == "req-4711"
    (line,) = access_lines(caplog)
    assert line.getMessage().startswith("GET /api/processes/tasks/{task_id} 200 ")
    assert "engine=local" in line.getMessage()
    assert (line.route, line.status, line.engine, line.request_id) == (  # type: ignore[attr-defined]
        "/api/processes/tasks/{task_id}",
        200,
        "local",
        "req-4711",
    )
    assert line.duration_ms > 0  # type: ignore[attr-defined]


async def test_a_problem_is_logged_once_with_its_title_and_a_generated_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        answer = await client.get("/api/processes/instances/does-not-exist")
    assert answer.status_code == 404
    generated = answer.headers["x-request-id"]
    assert len(generated) == 32
    lines = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("gateway")]
    (line,) = lines
    assert line.name == "gateway.access" and 'problem="Not found"' in line.getMessage()
    assert line.request_id == generated  # type: ignore[attr-defined]


async def test_an_unusable_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    answer = await client.get("/health", headers={"X-Request-Id": "x" * 500})
    assert len(answer.headers["x-request-id"]) == 32


async def test_the_request_id_is_sent_to_the_engine(make_client: Any) -> None:
    engines = [{"name": "c7", "type": "camunda7", "url": "http://camunda.test/engine-rest", "default": True}]
    with respx.mock(assert_all_called=False) as engine:
        engine.route(host="gateway.test").pass_through()
        route = engine.get("http://camunda.test/engine-rest/process-instance/abc/variables").respond(200, json={})
        engine.route(host="camunda.test").respond(200, json=[])
        async with make_client(engines=engines) as client:
            answer = await client.get("/api/processes/instances/abc/variables", headers={"X-Request-Id": "trace-1"})
    assert answer.status_code == 200, answer.text
    assert route.calls.last.request.headers["x-request-id"] == "trace-1"


async def test_spiffworkflow_and_driver_lines_stay_below_the_gateway_level(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("info")
    try:
        with caplog.at_level(logging.NOTSET):
            logging.getLogger().setLevel(logging.INFO)
            await deploy(client)
            await start(client)
        noisy = [r.name for r in caplog.records if r.name.startswith(("spiff", "sqlalchemy", "aiosqlite", "asyncpg"))]
        assert noisy == []
    finally:
        logging.getLogger().handlers = []


def test_json_log_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    try:
        logging.getLogger("gateway.access").info("GET /health 200 0.3 ms engine=-", extra={"status": 200})
    finally:
        logging.getLogger().handlers = []
    (line,) = capsys.readouterr().err.strip().splitlines()
    record = json.loads(line)
    assert record["message"] == "GET /health 200 0.3 ms engine=-"
    assert (record["level"], record["logger"], record["status"], record["request_id"]) == (
        "INFO",
        "gateway.access",
        200,
        "-",
    )


def test_a_background_round_that_fails_for_a_known_reason_logs_one_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.rounds")
    with caplog.at_level(logging.INFO, logger="tests.rounds"):
        down = EngineUnavailable("Engine 'c7' at http://127.0.0.1:1 is unreachable: connection refused", engine="c7")
        log_failed_round(logger, down, "Incident Center: detection on c7", 1.0)
        log_failed_round(logger, RuntimeError("a bug"), "Event relay: change feed of c7", 0.5)
    known, unexpected = caplog.records
    assert known.levelname == "WARNING" and known.exc_info is None
    assert known.getMessage() == (
        "Incident Center: detection on c7 failed: Engine 'c7' at http://127.0.0.1:1 is unreachable: connection refused; "
        "trying again every 1.0s"
    )
    assert unexpected.levelname == "ERROR" and unexpected.exc_info is not None  # a bug keeps its traceback
