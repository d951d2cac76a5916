"""Optional OpenTelemetry tracing: a span per request, child spans per engine call and database transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import tracing
from tests.api.conftest import deploy


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(exporter)
    yield exporter
    tracing.stop_tracing()


async def test_a_request_span_with_its_database_transaction_as_child(
    make_client: Any, spans: InMemorySpanExporter
) -> None:
    async with make_client() as client:
        await deploy(client)
        spans.clear()
        response = await client.post("/api/processes/instances", json={"definition_key": "approval"})
        assert response.status_code == 201
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "POST /api/processes/instances"]
    assert request.attributes["http.response.status_code"] == 201
    # background loops (event relay, analytics projection) run their own transactions in traces of their own
    transactions = [
        s for s in finished if s.name == "db transaction" and s.context.trace_id == request.context.trace_id
    ]
    assert transactions and all(s.parent.span_id == request.context.span_id for s in transactions)


async def test_engine_calls_are_child_spans_of_the_request(make_client: Any, spans: InMemorySpanExporter) -> None:
    engines = [{"name": "c7", "type": "camunda7", "url": "http://camunda.test/engine-rest", "default": True}]
    with respx.mock(assert_all_called=False) as engine:
        engine.route(host="gateway.test").pass_through()
        engine.get("http://camunda.test/engine-rest/process-instance/abc/variables").respond(200, json={})
        engine.route(host="camunda.test").respond(200, json=[])
        async with make_client(engines=engines) as client:
            spans.clear()
            assert (await client.get("/api/processes/instances/abc/variables")).status_code == 200
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "GET /api/processes/instances/{instance_id}/variables"]
    # background loops (incident detection, change feed, analytics) call the engine in traces of their own
    calls = [s for s in finished if s.name.startswith("engine ") and s.context.trace_id == request.context.trace_id]
    assert calls and all(s.parent.span_id == request.context.span_id for s in calls)
    assert calls[0].attributes["pm.engine"] == "c7"


def test_tracing_is_off_without_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.configure_tracing() is False and not tracing.enabled()
