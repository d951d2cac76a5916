"""How changes are recorded: a remote engine is called outside any database transaction (a slow engine holds
up no other write), every outcome is audited, and a change whose outcome the gateway never recorded is
settled as `unknown`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.tables import audit_log, change_intents
from tests.api.conftest import APPROVAL, deploy, start

B = "/api/processes"


class GatedEngine:
    """A Camunda 7 without incidents that holds every task request until the test opens the gate, then answers
    404 (task not found)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith("/engine-rest/task/"):
            return httpx.Response(200, json={"count": 0} if request.url.path.endswith("/count") else [])
        self.waiting.set()
        await self.gate.wait()
        return httpx.Response(404, json={"type": "InvalidRequestException", "message": "Cannot find task with id t-1"})


@pytest.fixture
def engine() -> GatedEngine:
    return GatedEngine()


@pytest.fixture
async def client(database: Database, engine: GatedEngine) -> AsyncIterator[httpx.AsyncClient]:
    from gateway.settings import Settings

    settings = Settings(
        database_url=database.url,
        engines=[
            {"name": "local", "type": "embedded", "default": True},
            {"name": "slow", "type": "camunda7", "url": "http://camunda.test/engine-rest", "read_timeout": 60},
        ],
    )
    app = create_app(settings, engine_transports={"slow": httpx.MockTransport(engine.handle)})
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw") as http,
    ):
        http.app = app  # type: ignore[attr-defined]
        yield http


async def audit_rows(database: Database) -> list[dict[str, object]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(sa.select(audit_log).order_by(audit_log.c.id))
        return [dict(row._mapping) for row in rows]


async def intents(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(change_intents)) or 0)


async def test_a_slow_engine_call_does_not_hold_up_a_write_on_another_engine(
    client: httpx.AsyncClient, engine: GatedEngine, database: Database
) -> None:
    slow = asyncio.create_task(client.post(f"{B}/tasks/t-1/complete?engine=slow", json={}))
    await asyncio.wait_for(engine.waiting.wait(), 10)

    # While the remote engine holds its answer, the embedded engine deploys, starts and completes.
    await asyncio.wait_for(deploy(client, APPROVAL), 10)
    instance = await asyncio.wait_for(start(client), 10)
    assert not slow.done()
    assert await intents(database) == 1  # the pending remote change is on record

    engine.gate.set()
    answer = await slow
    assert answer.status_code == 404
    assert answer.json()["engine_message"] == "Cannot find task with id t-1"
    assert await intents(database) == 0
    rows = await audit_rows(database)
    assert [(r["operation"], r["engine"], r["outcome"], r["status"]) for r in rows] == [
        ("deploy", "local", "success", 201),
        ("start", "local", "success", 201),
        ("complete", "slow", "failure", 404),
    ]
    assert rows[1]["resource_id"] == instance["id"]


async def test_a_change_whose_outcome_was_never_recorded_is_settled_as_unknown(
    client: httpx.AsyncClient, engine: GatedEngine, database: Database
) -> None:
    slow = asyncio.create_task(client.post(f"{B}/tasks/t-1/complete?engine=slow", json={}))
    await asyncio.wait_for(engine.waiting.wait(), 10)
    slow.cancel()  # the gateway stops between sending the change and recording its answer
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await intents(database) == 1

    changes = client.app.state.changes  # type: ignore[attr-defined]
    assert await changes.settle_stale_intents() == 0  # not stale yet: it may still be under way on a replica
    assert await changes.settle_stale_intents(older_than=timedelta(0)) == 1
    assert await changes.settle_stale_intents(older_than=timedelta(0)) == 0
    assert await intents(database) == 0
    (row,) = await audit_rows(database)
    assert (row["operation"], row["resource_id"], row["engine"], row["outcome"]) == (
        "complete",
        "t-1",
        "slow",
        "unknown",
    )
    assert "check the engine for the outcome" in str(row["detail"])
