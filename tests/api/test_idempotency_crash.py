"""`kill -9` of a real gateway process during a burst of starts: no key stays stuck, no start is lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.journal import verify_chain
from tests.api.conftest import APPROVAL
from tests.gateway_process import GatewayProcess

STARTS = 200
LEASE_SECONDS = 2


@pytest.fixture
def gateway(database: Database) -> Iterator[GatewayProcess]:
    process = GatewayProcess(database.url, idempotency_lease_seconds=LEASE_SECONDS)
    yield process
    process.stop()


async def test_kill_9_during_a_burst_of_starts_leaves_every_key_released_or_replayed(
    gateway: GatewayProcess, database: Database
) -> None:
    gateway.start()
    limits = httpx.Limits(max_connections=16)  # below the gateway's pool of 20: the burst queues at the client
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30) as client:
        files = {"file": ("approval.bpmn", APPROVAL, "application/xml")}
        assert (await client.post("/api/processes/definitions", files=files)).status_code == 201

        answered: dict[str, Any] = {}
        enough = asyncio.Event()

        async def start(n: int) -> None:
            key = f"burst-{n}"
            response = await client.post(
                "/api/processes/instances",
                json={"definition_key": "approval", "business_key": key},
                headers={"Idempotency-Key": key},
            )
            assert response.status_code == 201, response.text
            answered[key] = response.json()["id"]
            if len(answered) >= 40:
                enough.set()

        burst = [asyncio.create_task(start(n)) for n in range(STARTS)]
        await enough.wait()
        gateway.kill()
        outcomes = await asyncio.gather(*burst, return_exceptions=True)
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, httpx.TransportError) for o in lost), lost
    assert 40 <= len(answered) < STARTS, "the kill must land in the middle of the burst"

    gateway.start()
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=120) as client:

        async def again(n: int) -> httpx.Response:
            key = f"burst-{n}"
            return await client.post(
                "/api/processes/instances",
                json={"definition_key": "approval", "business_key": key},
                headers={"Idempotency-Key": key},
            )

        # A key held by a request that died answers 409 until its lease (2 s) lapses, then it is released.
        retried = await asyncio.gather(
            *(eventually(lambda n=n: again(n), lambda r: r.status_code != 409, timeout=20) for n in range(STARTS))
        )
        assert [r.status_code for r in retried] == [201] * STARTS, [r.text for r in retried if r.status_code != 201]
        ids = {f"burst-{n}": r.json()["id"] for n, r in enumerate(retried)}
        assert {key: ids[key] for key in answered} == answered  # acknowledged starts replay as they were
        replayed = [r for r in retried if r.headers.get("idempotent-replayed") == "true"]
        assert len(replayed) >= len(answered)
        assert len(set(ids.values())) == STARTS  # one instance per key
        total = (await client.get("/api/processes/instances", params={"size": 1})).json()["total"]
        assert total == STARTS  # no start committed without its key knowing it, none doubled
    gateway.stop()
    check = await verify_chain(database)
    assert check.ok, check
