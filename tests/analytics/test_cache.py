"""The analytics cache: in this process or in Redis; invalidated by the changes the projection sees, not only by
time; a cold key requested by many at once is computed once; hits and misses counted for Prometheus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from analytics.cache import StatisticsCache
from gateway.db import Database
from gateway.uow import transaction
from tests.analytics.history_engine import History


@pytest.fixture(params=["memory", "redis"])
async def caches(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], StatisticsCache]]:
    """Build caches that share one store: two of them act as two gateway replicas (Redis) or one process."""
    if request.param == "memory":
        shared = StatisticsCache(None, ttl=60)
        yield lambda: shared
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = f"pm:test:{uuid.uuid4().hex}:"
    yield lambda: StatisticsCache(redis, ttl=60, prefix=prefix)
    await redis.delete(*[key async for key in redis.scan_iter(prefix + "*")] or [prefix])
    await redis.aclose()


def counter(endpoint: str, result: str) -> float:
    return (
        REGISTRY.get_sample_value("pm_analytics_cache_requests_total", {"endpoint": endpoint, "result": result}) or 0.0
    )


async def test_a_cold_key_requested_by_many_is_computed_once(caches: Callable[[], StatisticsCache]) -> None:
    replicas = [caches(), caches()]
    computed = 0

    async def compute() -> bytes:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.1)
        return b'{"answer": 42}'

    endpoint = f"stampede-{uuid.uuid4().hex[:8]}"
    answers = await asyncio.gather(
        *(replicas[n % 2].get_or_compute(endpoint, "engine", None, {"p": 1}, compute) for n in range(20))
    )
    assert answers == [b'{"answer": 42}'] * 20
    assert computed == 1
    assert (counter(endpoint, "miss"), counter(endpoint, "hit")) == (1, 19)


async def test_changes_invalidate_the_entries_that_depend_on_them(caches: Callable[[], StatisticsCache]) -> None:
    cache = caches()
    computed: list[str] = []

    def compute(name: str) -> Callable[[], Any]:
        async def run() -> bytes:
            computed.append(name)
            return f'"{name} {len(computed)}"'.encode()

        return run

    async def read(key: str | None) -> bytes:
        return await cache.get_or_compute("statistics", "engine", key, {}, compute(key or "all"))

    first_all, first_order = await read(None), await read("order")
    assert (await read(None), await read("order")) == (first_all, first_order)
    assert computed == ["all", "order"]

    await cache.invalidate("engine", {"refund"})  # another process changed: the order answer stays valid
    assert await read("order") == first_order
    assert await read(None) != first_all
    assert computed == ["all", "order", "all"]

    await cache.invalidate("engine", {"order"})  # the order answer and the answer about every process
    assert await read("order") != first_order
    await read(None)
    assert computed == ["all", "order", "all", "order", "all"]
    await cache.invalidate("other-engine", None)  # another engine: nothing of this one
    await read(None), await read("order")
    assert len(computed) == 5

    await cache.invalidate("engine", None)  # every process (an incident changed)
    await read("order")
    assert computed[-1] == "order" and len(computed) == 6


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_new_instance_invalidates_the_cached_statistics_through_its_event(
    backend: str, make_gateway: Callable[..., Any], history: History, database: Database, request: pytest.FixtureRequest
) -> None:
    settings = {"redis_url": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    now = datetime.now(UTC).replace(microsecond=0)
    history.instance(f"first-{backend}", "order", now - timedelta(hours=2), now - timedelta(hours=1))
    async with make_gateway(**settings) as gateway:
        projector = gateway.app.state.analytics.projector
        await projector.run_once(full=True)

        async def statistics() -> dict[str, Any]:
            response = await gateway.client.get("/api/processes/statistics", params={"definition_key": "order"})
            assert response.status_code == 200, response.text
            return response.json()

        before = await statistics()
        assert before["summary"]["total_instances"] == 1
        await projector.run_once(full=True)  # nothing changed: the entry stays
        assert await statistics() == before

        history.instance(f"second-{backend}", "order", now - timedelta(seconds=20))
        async with transaction(database) as uow:  # what the API writes when it starts an instance
            uow.emit(
                "instance.started", engine="history", instance_id=f"second-{backend}", data={"definition_key": "order"}
            )
        await projector.run_once()  # the event names the engine: read again at once, not at the next interval
        after = await statistics()
        assert after["summary"]["total_instances"] == 2
        assert after["generated_at"] > before["generated_at"]
