"""Bounded resources on the embedded engine: expression budgets, multi-instance cap, definition size, spec cache."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest

from adapters.embedded.expressions import MAX_BUILT, ExpressionError, compile_expression, evaluate
from adapters.embedded.parsing import SpecCache
from tests.api.conftest import deploy, open_tasks, start
from tests.api.test_api import assert_problem

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' id="d" targetNamespace="http://example.com">'
)


def gateway_process(condition: str) -> bytes:
    return (
        HEAD + '<bpmn:process id="routing" isExecutable="true"><bpmn:startEvent id="start"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="choose"/>'
        '<bpmn:exclusiveGateway id="choose" default="other"/>'
        f'<bpmn:sequenceFlow id="big" sourceRef="choose" targetRef="yes"><bpmn:conditionExpression>{condition}'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="other" sourceRef="choose" targetRef="no"/>'
        '<bpmn:userTask id="yes"/><bpmn:userTask id="no"/></bpmn:process></bpmn:definitions>'
    ).encode()


def multi_instance(cardinality: str) -> bytes:
    return (
        HEAD + '<bpmn:process id="fanout" isExecutable="true"><bpmn:startEvent id="start"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="each"/>'
        '<bpmn:userTask id="each"><bpmn:multiInstanceLoopCharacteristics>'
        f"<bpmn:loopCardinality>{cardinality}</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>"
        '</bpmn:userTask><bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="end"/><bpmn:endEvent id="end"/>'
        "</bpmn:process></bpmn:definitions>"
    ).encode()


async def incidents_of(client: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/api/processes/instances/{instance_id}")).json()["incidents"]


def test_joining_beyond_the_budget_stops_the_evaluation() -> None:
    big = "x" * (1 << 20)
    with pytest.raises(ExpressionError, match="evaluation budget"):
        evaluate("s + s + s + s > ''", {"s": big})
    assert evaluate("s + t", {"s": "a" * (MAX_BUILT // 2), "t": "b"}) == "a" * (MAX_BUILT // 2) + "b"
    with pytest.raises(ExpressionError, match="evaluation budget"):
        evaluate(" + ".join(["l"] * 40), {"l": list(range(50_000))})
    with pytest.raises(ExpressionError, match="bits"):
        evaluate(" * ".join(["n"] * 80), {"n": 2**62})


def test_an_expression_larger_than_the_step_budget_is_refused_when_compiled() -> None:
    with pytest.raises(ExpressionError, match="more than 10000 parts"):
        compile_expression(" + ".join(f"({n} if x else 0)" for n in range(2_000)))
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression(" + ".join(["1"] * 60_000))


async def test_a_condition_over_a_1_mib_variable_becomes_an_incident_not_a_memory_spike(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client, gateway_process("${" + " + ".join(["s"] * 300) + " != ''}"))
    response = await client.post(
        "/api/processes/instances", json={"definition_key": "routing", "variables": {"s": "x" * (1 << 20)}}
    )
    assert response.status_code == 201, response.text
    (incident,) = await incidents_of(client, response.json()["id"])
    assert "evaluation budget" in incident["message"]
    assert (await client.get("/health")).status_code == 200


async def test_multi_instance_cardinality_above_the_cap_is_an_incident(make_client: Any) -> None:
    async with make_client(
        engines=[{"name": "local", "type": "embedded", "default": True, "options": {"max_cardinality": 50}}]
    ) as client:
        await deploy(client, multi_instance("${n}"))
        small = await start(client, "fanout", variables={"n": 3})
        assert len(await open_tasks(client, small["id"])) == 3
        big = await start(client, "fanout", variables={"n": 20_000})
        assert await open_tasks(client, big["id"]) == []
        (incident,) = await incidents_of(client, big["id"])
        assert "loopCardinality 20000 is above the limit of 50" in incident["message"]
        assert "PM_EMBEDDED_MAX_CARDINALITY" in incident["message"]


async def test_a_definition_with_more_elements_than_the_limit_is_a_400_naming_it(make_client: Any) -> None:
    tasks = "".join(f'<bpmn:manualTask id="t{n}"/>' for n in range(60))
    xml = (
        HEAD
        + f'<bpmn:process id="wide" isExecutable="true"><bpmn:startEvent id="s"/>{tasks}</bpmn:process></bpmn:definitions>'
    ).encode()
    async with make_client(max_bpmn_elements=50) as client:
        response = await client.post("/api/processes/definitions", files={"file": ("w.bpmn", xml, "application/xml")})
        assert_problem(response, 400, "50", "PM_MAX_BPMN_ELEMENTS")
        assert (await client.get("/api/processes/definitions")).json()["total"] == 0


async def test_the_spec_cache_is_bounded_by_bytes_and_hands_out_copies() -> None:
    definition = ["x" * 300]  # any picklable value stands in for a parsed definition
    entry = len(pickle.dumps(definition, pickle.HIGHEST_PROTOCOL))
    cache = SpecCache(capacity_bytes=3 * entry + 1)
    for n in range(5):
        await cache.put(f"d{n}", definition)  # type: ignore[arg-type]
    assert cache.size == 3 * entry
    assert [await cache.get(f"d{n}") is not None for n in range(5)] == [False, False, True, True, True]
    first, second = await cache.get("d2"), await cache.get("d2")
    assert first == second == definition and first is not second  # each change works on a copy of its own
    await cache.put("huge", ["x" * 4 * entry])  # type: ignore[arg-type]
    assert await cache.get("huge") is None and cache.size == 3 * entry
    cache.discard("d4")
    assert cache.size == 2 * entry
