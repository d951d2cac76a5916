"""Timeouts, circuit breaker, retries and error mapping of every engine call (gateway.resilience)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from gateway.errors import BadRequest, EngineError, EngineTimeout, EngineUnavailable, NotFound
from gateway.resilience import EngineBreaker, EngineHttp, RedisBreakerSync
from gateway.settings import EngineConfig

BASE = "http://engine.test/api"


def make_http(**overrides: object) -> EngineHttp:
    fields = {
        "name": "remote",
        "type": "camunda7",
        "url": BASE,
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "breaker_fail_max": 3,
        "breaker_reset_timeout": 0.3,
        **overrides,
    }
    config = EngineConfig(**fields)
    return EngineHttp(config, breaker=EngineBreaker(config.name, config.breaker_fail_max, config.breaker_reset_timeout))


@pytest.fixture
async def http() -> AsyncIterator[EngineHttp]:
    client = make_http()
    yield client
    await client.aclose()


# ------------------------------------------------------------------ error mapping
@respx.mock
async def test_engine_5xx_is_502_with_the_engines_status_and_message(http: EngineHttp) -> None:
    respx.post(f"{BASE}/start").respond(500, json={"type": "ProcessEngineException", "message": "boom in engine"})
    with pytest.raises(EngineError) as caught:
        await http.json("POST", "/start", operation="start")
    problem = caught.value.problem()
    assert (problem["status"], problem["engine"], problem["engine_status"]) == (502, "remote", 500)
    assert problem["engine_message"] == "boom in engine"


@respx.mock
async def test_engine_4xx_map_to_matching_problems(http: EngineHttp) -> None:
    respx.get(f"{BASE}/thing/1").respond(404, json={"message": "No thing with id 1"})
    respx.get(f"{BASE}/thing/2").respond(400, json={"message": "bad filter"})
    with pytest.raises(NotFound) as missing:
        await http.json("GET", "/thing/1", operation="get")
    assert missing.value.engine_message == "No thing with id 1"
    with pytest.raises(BadRequest) as bad:
        await http.json("GET", "/thing/2", operation="get")
    assert bad.value.engine_status == 400


@respx.mock
async def test_engine_503_and_504_are_unavailable_and_timeout(http: EngineHttp) -> None:
    respx.post(f"{BASE}/busy").respond(503, headers={"Retry-After": "7"}, json={"detail": "RESOURCE_EXHAUSTED"})
    respx.post(f"{BASE}/slow").respond(504, json={"detail": "blocking listener timed out"})
    with pytest.raises(EngineUnavailable) as busy:
        await http.json("POST", "/busy", operation="start")
    assert (busy.value.headers["Retry-After"], busy.value.engine_message) == ("7", "RESOURCE_EXHAUSTED")
    with pytest.raises(EngineTimeout) as slow:
        await http.json("POST", "/slow", operation="complete")
    assert slow.value.engine_status == 504


@respx.mock
async def test_malformed_json_answer_is_502(http: EngineHttp) -> None:
    respx.get(f"{BASE}/thing").respond(200, content=b"<html>proxy error</html>")
    with pytest.raises(EngineError) as caught:
        await http.json("GET", "/thing", operation="get")
    assert "not JSON" in caught.value.detail


@respx.mock
async def test_timeout_is_504_and_refused_connection_503(http: EngineHttp) -> None:
    respx.get(f"{BASE}/slow").mock(side_effect=httpx.ReadTimeout("slow"))
    respx.get(f"{BASE}/down").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(EngineTimeout):
        await http.json("GET", "/slow", operation="get")
    with pytest.raises(EngineUnavailable):
        await http.json("GET", "/down", operation="get")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A real TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


async def test_real_server_that_never_answers_times_out_with_504(silent_server: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{silent_server}", read_timeout=0.3, retry_attempts=1)
    started = time.monotonic()
    with pytest.raises(EngineTimeout):
        await http.json("GET", "/version", operation="health")
    assert time.monotonic() - started < 2.0
    await http.aclose()


async def test_closed_port_is_503_at_once(closed_port: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{closed_port}", retry_attempts=1)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await http.json("GET", "/version", operation="health")
    assert time.monotonic() - started < 1.0
    await http.aclose()


# ------------------------------------------------------------------ circuit breaker
async def test_breaker_trips_rejects_fast_half_opens_and_closes(closed_port: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{closed_port}", retry_attempts=1)
    for _ in range(3):
        with pytest.raises(EngineUnavailable):
            await http.json("GET", "/version", operation="health")
    assert http.breaker.state == "open"

    started = time.perf_counter()
    with pytest.raises(EngineUnavailable) as rejected:
        await http.json("GET", "/version", operation="health")
    assert time.perf_counter() - started < 0.005
    assert "circuit is open" in rejected.value.detail
    assert int(rejected.value.headers["Retry-After"]) >= 1

    await asyncio.sleep(0.35)
    assert http.breaker.state == "half-open"
    with respx.mock:
        respx.get(f"http://127.0.0.1:{closed_port}/version").respond(200, json={"version": "7.23.0"})
        assert await http.json("GET", "/version", operation="health") == {"version": "7.23.0"}
    assert http.breaker.state == "closed"
    await http.aclose()


@respx.mock
async def test_failed_probe_opens_the_circuit_again(http: EngineHttp) -> None:
    route = respx.get(f"{BASE}/version").respond(500)
    for _ in range(3):
        with pytest.raises(EngineError):
            await http.json("GET", "/version", operation="health", idempotent=False)
    await asyncio.sleep(0.35)
    with pytest.raises(EngineError):
        await http.json("GET", "/version", operation="health", idempotent=False)
    assert http.breaker.state == "open"
    calls = route.call_count
    with pytest.raises(EngineUnavailable):
        await http.json("GET", "/version", operation="health")
    assert route.call_count == calls


@respx.mock
async def test_only_one_probe_goes_through_while_half_open(http: EngineHttp) -> None:
    respx.get(f"{BASE}/fail").respond(500)
    for _ in range(3):
        with pytest.raises(EngineError):
            await http.json("GET", "/fail", operation="op", idempotent=False)
    await asyncio.sleep(0.35)

    release = asyncio.Event()

    async def slow_ok(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"ok": True})

    route = respx.get(f"{BASE}/probe").mock(side_effect=slow_ok)
    probe = asyncio.create_task(http.json("GET", "/probe", operation="op"))
    await asyncio.sleep(0.01)
    with pytest.raises(EngineUnavailable):
        await http.json("GET", "/probe", operation="op")
    release.set()
    assert await probe == {"ok": True}
    assert route.call_count == 1
    assert http.breaker.state == "closed"


@respx.mock
async def test_client_errors_do_not_trip_the_breaker(http: EngineHttp) -> None:
    respx.get(f"{BASE}/missing").respond(404, json={"message": "nope"})
    for _ in range(10):
        with pytest.raises(NotFound):
            await http.json("GET", "/missing", operation="get")
    assert http.breaker.state == "closed"


# ------------------------------------------------------------------ retries
@respx.mock
async def test_idempotent_reads_are_retried_honouring_retry_after(http: EngineHttp) -> None:
    route = respx.get(f"{BASE}/flaky")
    route.side_effect = [
        httpx.Response(503, headers={"Retry-After": "0.1"}),
        httpx.Response(502),
        httpx.Response(200, json={"ok": True}),
    ]
    started = time.monotonic()
    assert await http.json("GET", "/flaky", operation="get") == {"ok": True}
    assert route.call_count == 3
    assert time.monotonic() - started >= 0.1


@respx.mock
async def test_non_idempotent_writes_are_never_retried(http: EngineHttp) -> None:
    route = respx.post(f"{BASE}/start").respond(503)
    with pytest.raises(EngineUnavailable):
        await http.json("POST", "/start", operation="start")
    assert route.call_count == 1


@respx.mock
async def test_retry_budget_caps_retries_under_sustained_failure() -> None:
    http = make_http(breaker_fail_max=10_000, retry_attempts=3)
    route = respx.get(f"{BASE}/down").respond(500)
    calls = 100
    for _ in range(calls):
        with pytest.raises(EngineError):
            await http.json("GET", "/down", operation="get")
    retries = route.call_count - calls
    assert retries <= 0.2 * calls + http.budget.floor
    await http.aclose()


# ------------------------------------------------------------------ shared state between replicas
async def test_two_gateways_sharing_redis_see_the_same_open_circuit(redis_url: str, closed_port: int) -> None:
    from redis.asyncio import Redis

    first, second = (make_http(name="shared-engine", url=f"http://127.0.0.1:{closed_port}", retry_attempts=1) for _ in range(2))
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    await redis_a.delete("pm:breaker:shared-engine")
    syncs = [RedisBreakerSync(redis_a, {"shared-engine": first.breaker}), RedisBreakerSync(redis_b, {"shared-engine": second.breaker})]
    for sync in syncs:
        await sync.start()
    try:
        for _ in range(3):
            with pytest.raises(EngineUnavailable):
                await first.json("GET", "/version", operation="health")
        deadline = time.monotonic() + 2
        while second.breaker.breaker.current_state != "open" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert second.breaker.breaker.current_state == "open"
        with pytest.raises(EngineUnavailable) as rejected:
            await second.json("GET", "/version", operation="health")
        assert "circuit is open" in rejected.value.detail

        # a replica that starts later reads the stored state
        third = make_http(name="shared-engine", url=f"http://127.0.0.1:{closed_port}")
        late = RedisBreakerSync(Redis.from_url(redis_url), {"shared-engine": third.breaker})
        await late.start()
        assert third.breaker.breaker.current_state == "open"
        await late.close()
        await late.redis.aclose()
        await third.aclose()
    finally:
        for sync in syncs:
            await sync.close()
        await redis_a.delete("pm:breaker:shared-engine")
        await redis_a.aclose()
        await redis_b.aclose()
        await first.aclose()
        await second.aclose()
