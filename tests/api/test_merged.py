"""One list over every engine (`engine=*`): the embedded engine and the three simulated HTTP engines behind one
gateway, paged by cursor, and still answering when one engine is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.settings import Settings
from tests.api.test_api import assert_problem
from tests.conformance.harnesses import camunda7, flowable, zeebe

HARNESSES = {"c7": camunda7.HARNESS, "flowable": flowable.HARNESS, "c8": zeebe.HARNESS}
TASKS = "/api/processes/tasks"
INSTANCES = "/api/processes/instances"


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def gateway_over(database: Database, *, down: bool) -> AsyncIterator[httpx.AsyncClient]:
    engines: list[dict[str, Any]] = [{"name": "local", "type": "embedded", "default": True}]
    engines += [{"name": name, **harness.engine} for name, harness in HARNESSES.items()]
    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: harness.make_transport() for name, harness in HARNESSES.items() if harness.make_transport
    }
    if down:
        engines.append({**engines[1], "name": "gone", "url": "http://gone.test/engine-rest", "retry_attempts": 1})
        transports["gone"] = httpx.MockTransport(refuse)
    app = create_app(Settings(engines=engines, database_url=database.url), engine_transports=transports)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw.test") as client,
    ):
        yield client


@pytest.fixture
async def gateway(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async for client in gateway_over(database, down=False):
        yield client


@pytest.fixture
async def gateway_with_one_down(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async for client in gateway_over(database, down=True):
        yield client


async def fill(client: httpx.AsyncClient) -> None:
    """Two approval instances on each engine, with an amount that tells them apart."""
    from tests.api.conftest import APPROVAL

    bpmn = {"local": APPROVAL, **{name: harness.bpmn["approval"] for name, harness in HARNESSES.items()}}
    for index, (engine, xml) in enumerate(bpmn.items()):
        deployed = await client.post(
            "/api/processes/definitions", params={"engine": engine}, files={"file": ("a.bpmn", xml, "application/xml")}
        )
        assert deployed.status_code == 201, deployed.text
        for n in range(2):
            body = {"definition_key": "approval", "variables": {"amount": 1000 * (2 * index + n + 1)}}
            started = await client.post(INSTANCES, params={"engine": engine}, json=body)
            assert started.status_code == 201, started.text


async def all_pages(
    client: httpx.AsyncClient, path: str, **params: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    items, bodies, cursor = [], [], None
    while True:
        response = await client.get(path, params={"engine": "*", **params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        bodies.append(body)
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, bodies


async def test_one_inbox_over_every_engine_pages_by_cursor_in_order(gateway: httpx.AsyncClient) -> None:
    await fill(gateway)
    tasks, bodies = await all_pages(gateway, TASKS, size=3, sort="created", order="asc")
    assert len(tasks) == 8 and len({(t["engine"], t["id"]) for t in tasks}) == 8
    assert sorted({t["engine"] for t in tasks}) == ["c7", "c8", "flowable", "local"]
    created = [datetime.fromisoformat(t["created"]) for t in tasks]
    assert created == sorted(created)
    assert [len(b["items"]) for b in bodies] == [3, 3, 2]
    assert all(b["total"] == 8 and b["partial"] is False and b["unavailable_engines"] == [] for b in bodies)


async def test_merged_instances_filter_by_variables_on_every_engine(gateway: httpx.AsyncClient) -> None:
    await fill(gateway)
    # amounts: local 1000/2000, c7 3000/4000, flowable 5000/6000, c8 7000/8000; `in` works on local and c8 only
    found, _ = await all_pages(gateway, INSTANCES, variable=["amount:eq:4000"], size=2)
    assert [i["engine"] for i in found] == ["c7"]
    refused = await gateway.get(INSTANCES, params={"engine": "*", "variable": "amount:in:[1000,8000]"})
    assert_problem(refused, 501, "Engine 'c7' (camunda7)", "operator 'in'")


async def test_a_cursor_of_another_query_is_refused(gateway: httpx.AsyncClient) -> None:
    await fill(gateway)
    first = (await gateway.get(TASKS, params={"engine": "*", "size": 2})).json()
    other = await gateway.get(TASKS, params={"engine": "*", "size": 2, "sort": "name", "cursor": first["next_cursor"]})
    assert_problem(other, 400, "another order")
    assert_problem(await gateway.get(TASKS, params={"engine": "*", "cursor": "bm9wZQ"}), 400, "not a next_cursor")
    assert_problem(await gateway.get(TASKS, params={"engine": "*", "page": 2}), 400, "cursor=next_cursor")


async def test_an_engine_that_is_down_leaves_a_partial_list_not_an_error(
    gateway_with_one_down: httpx.AsyncClient,
) -> None:
    await fill(gateway_with_one_down)
    for path in (TASKS, INSTANCES):
        items, bodies = await all_pages(gateway_with_one_down, path, size=5)
        assert len(items) == 8
        assert all(b["partial"] is True for b in bodies)
        (outage,) = bodies[0]["unavailable_engines"]
        assert outage["engine"] == "gone" and outage["status"] in (502, 503, 504) and outage["detail"]
    # one engine alone still answers its own 503
    assert (await gateway_with_one_down.get(TASKS, params={"engine": "gone"})).status_code == 503
