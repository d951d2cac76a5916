"""One list over every engine (`engine=*`): the embedded engine and the three simulated HTTP engines behind one
gateway, paged by cursor, and still answering when one engine is down."""

from __future__ import annotations

import contextvars
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


# Set by a test while its own requests run: only their identity-link reads are counted, not those of the
# background loops (the analytics projection reads every open task with its candidates).
COUNTING = contextvars.ContextVar("COUNTING", default=False)


class IdentityLinks(httpx.AsyncBaseTransport):
    """An engine simulator's transport that counts the requests for a task's identity links (its candidates) made
    while `COUNTING`, or refuses all of them (`refuse`) while answering everything else."""

    def __init__(self, engine: httpx.AsyncBaseTransport, *, refuse: bool = False) -> None:
        self.engine, self.refuse, self.reads = engine, refuse, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(("/identity-links", "/identitylinks")):  # Camunda 7, Flowable
            if COUNTING.get():
                self.reads += 1
            if self.refuse:
                refuse(request)
        return await self.engine.handle_async_request(request)

    async def aclose(self) -> None:
        await self.engine.aclose()


async def gateway_over(
    database: Database, *, down: bool, links: dict[str, IdentityLinks] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    engines: list[dict[str, Any]] = [{"name": "local", "type": "embedded", "default": True}]
    engines += [{"name": name, **harness.engine} for name, harness in HARNESSES.items()]
    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: harness.make_transport() for name, harness in HARNESSES.items() if harness.make_transport
    }
    transports.update(links or {})
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


async def test_the_inbox_reads_candidates_only_of_the_tasks_on_its_page(database: Database) -> None:
    # Camunda 7 and Flowable return no candidates with their tasks: one identity-link read per task
    links = {name: IdentityLinks(HARNESSES[name].make_transport()) for name in ("c7", "flowable")}  # type: ignore[misc]
    async for gateway in gateway_over(database, down=False, links=links):
        await fill(gateway)
        COUNTING.set(True)
        first = (await gateway.get(TASKS, params={"engine": "*", "size": 3, "sort": "created", "order": "asc"})).json()
        assert [t["engine"] for t in first["items"]] == ["local", "local", "c7"]
        assert (links["c7"].reads, links["flowable"].reads) == (1, 0)  # though both engines' lists were read
        tasks, _ = await all_pages(gateway, TASKS, size=3, sort="created", order="asc")
        assert len(tasks) == 8 and all(t["candidate_groups"] == ["sales"] for t in tasks)
        assert (links["c7"].reads, links["flowable"].reads) == (1 + 2, 0 + 2)
        # one engine's list shows every task it reads: their candidates with them
        alone = (await gateway.get(TASKS, params={"engine": "flowable"})).json()
        assert [t["candidate_groups"] for t in alone["items"]] == [["sales"], ["sales"]]


async def test_an_engine_failing_to_give_candidates_is_left_out_like_one_that_is_down(database: Database) -> None:
    links = {"c7": IdentityLinks(HARNESSES["c7"].make_transport(), refuse=True)}  # type: ignore[misc]
    async for gateway in gateway_over(database, down=False, links=links):
        await fill(gateway)
        tasks, bodies = await all_pages(gateway, TASKS, size=5, sort="created", order="asc")
        assert [t["engine"] for t in tasks] == ["local", "local", "flowable", "flowable", "c8", "c8"]
        assert all(t["candidate_groups"] == ["sales"] for t in tasks)
        for body in bodies:  # the c7 tasks were on both pages before their candidates were asked for
            (outage,) = body["unavailable_engines"]
            assert body["partial"] is True and outage["engine"] == "c7" and outage["status"] in (502, 503, 504)
        assert bodies[-1]["total"] == 6 and bodies[-1]["next_cursor"] is None


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
