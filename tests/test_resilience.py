"""Timeouts, circuit breaker, retries and error mapping of every engine call (gateway.resilience)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from gateway.errors import BadRequest, EngineError, EngineTimeout, EngineUnavailable, NotFound
from gateway.resilience import EngineBreaker, EngineHttp, RedisBreakerSync, mark_background
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
    breaker = EngineBreaker(config.name, config.breaker_fail_max, config.breaker_reset_timeout, url=config.public_url())
    return EngineHttp(config, breaker=breaker)


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


@pytest.fixture
def full_backlog_server() -> Iterator[int]:
    """A real TCP server whose accept queue is full: a new connection is never established (connect timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture
async def plain_http_server() -> AsyncIterator[int]:
    """A real server that speaks plain HTTP, so an https:// call to it fails in the TLS handshake."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_real_server_that_never_answers_times_out_with_504(silent_server: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{silent_server}", read_timeout=0.3, retry_attempts=1)
    started = time.monotonic()
    with pytest.raises(EngineTimeout) as caught:
        await http.json("GET", "/version", operation="health")
    assert time.monotonic() - started < 2.0
    assert "read timeout" in caught.value.detail
    assert f"http://127.0.0.1:{silent_server}" in caught.value.detail
    await http.aclose()


async def test_closed_port_is_503_at_once_and_says_connection_refused(closed_port: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{closed_port}", retry_attempts=1)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as caught:
        await http.json("GET", "/version", operation="health")
    assert time.monotonic() - started < 1.0
    assert "connection refused" in caught.value.detail
    assert "timeout" not in caught.value.detail.lower()
    await http.aclose()


async def test_connect_timeout_is_told_apart_from_a_refusal(full_backlog_server: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{full_backlog_server}", connect_timeout=0.3, retry_attempts=1)
    with pytest.raises(EngineUnavailable) as caught:
        await http.json("GET", "/version", operation="health")
    assert "connect timeout" in caught.value.detail
    assert "refused" not in caught.value.detail
    await http.aclose()


async def test_tls_failure_is_named(plain_http_server: int) -> None:
    http = make_http(url=f"https://127.0.0.1:{plain_http_server}", retry_attempts=1)
    with pytest.raises(EngineUnavailable) as caught:
        await http.json("GET", "/version", operation="health")
    assert "TLS handshake failed" in caught.value.detail
    await http.aclose()


class UnresolvableHost(httpx.AsyncBaseTransport):
    """Fails as a transport does when the resolver knows no such host (the tests reach loopback only)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise httpx.ConnectError(f"Cannot connect to host {request.url.host}", request=request) from lookup


async def test_dns_failure_is_named() -> None:
    config = EngineConfig(name="remote", type="camunda7", url="http://camunda.internal:8080", retry_attempts=1)
    http = EngineHttp(config, breaker=EngineBreaker("remote", 3, 1.0), transport=UnresolvableHost())
    with pytest.raises(EngineUnavailable) as caught:
        await http.json("GET", "/version", operation="health")
    assert "DNS lookup failed: Name or service not known" in caught.value.detail
    await http.aclose()


async def test_url_credentials_never_appear_in_errors(closed_port: int) -> None:
    http = make_http(url=f"http://demo:s3cret@127.0.0.1:{closed_port}", retry_attempts=1, breaker_fail_max=1)
    with pytest.raises(EngineUnavailable) as caught:
        await http.json("GET", "/version", operation="health")
    with pytest.raises(EngineUnavailable) as rejected:
        await http.json("GET", "/version", operation="health")
    for detail in (caught.value.detail, rejected.value.detail):
        assert "s3cret" not in detail and f"http://127.0.0.1:{closed_port}" in detail
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
    detail = rejected.value.detail
    assert "circuit is open since " in detail
    assert f"Engine 'remote' at http://127.0.0.1:{closed_port} is unavailable" in detail
    assert detail.endswith("connection refused")  # the last underlying error
    assert int(rejected.value.headers["Retry-After"]) >= 1
    assert http.breaker.snapshot()["last_error"].endswith("connection refused")

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


async def test_a_failing_poller_does_not_keep_the_circuit_open_for_users(closed_port: int) -> None:
    http = make_http(url=f"http://127.0.0.1:{closed_port}", retry_attempts=1)
    for _ in range(3):
        with pytest.raises(EngineUnavailable):
            await http.json("GET", "/version", operation="health")
    await asyncio.sleep(0.35)

    async def poll() -> None:
        mark_background()
        for _ in range(5):  # a poller hammering the dead engine right after the reset timeout
            with pytest.raises(EngineUnavailable) as failed:
                await http.json("GET", "/incident", operation="incidents")
            assert "connection refused" in failed.value.detail

    await asyncio.create_task(poll())
    with pytest.raises(EngineUnavailable) as user:
        await http.json("GET", "/version", operation="health")
    assert "circuit is open" not in user.value.detail
    assert "connection refused" in user.value.detail
    await http.aclose()


@respx.mock
async def test_a_poller_that_reaches_the_engine_closes_the_circuit(http: EngineHttp) -> None:
    respx.get(f"{BASE}/fail").respond(500)
    respx.get(f"{BASE}/incident").respond(200, json=[])
    for _ in range(3):
        with pytest.raises(EngineError):
            await http.json("GET", "/fail", operation="op", idempotent=False)
    assert http.breaker.state == "open"

    async def poll() -> None:
        mark_background()
        assert await http.json("GET", "/incident", operation="incidents") == []

    await asyncio.create_task(poll())
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

    first, second = (
        make_http(name="shared-engine", url=f"http://127.0.0.1:{closed_port}", retry_attempts=1) for _ in range(2)
    )
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    await redis_a.delete("pm:breaker:shared-engine")
    syncs = [
        RedisBreakerSync(redis_a, {"shared-engine": first.breaker}),
        RedisBreakerSync(redis_b, {"shared-engine": second.breaker}),
    ]
    for sync in syncs:
        await sync.start()
    try:
        for _ in range(3):
            with pytest.raises(EngineUnavailable):
                await first.json("GET", "/version", operation="health")
        deadline = time.monotonic() + 2
        while second.breaker.breaker.current_state != "open" and time.monotonic() < deadline:  # noqa: ASYNC110 - set by the replica's Redis listener, nothing to await
            await asyncio.sleep(0.02)
        assert second.breaker.breaker.current_state == "open"
        with pytest.raises(EngineUnavailable) as rejected:
            await second.json("GET", "/version", operation="health")
        assert "circuit is open" in rejected.value.detail
        assert rejected.value.detail.endswith("connection refused")  # the error replica one saw

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


# ------------------------------------------------------------------ requests as sent
@respx.mock
async def test_paths_and_params_reach_the_engine_under_its_base_url(http: EngineHttp) -> None:
    route = respx.get(f"{BASE}/process-definition/a%3A1").respond(200, json=[])
    await http.json("GET", "/process-definition/a%3A1", operation="list", params={"latestVersion": True, "x": "a b&c"})
    assert str(route.calls.last.request.url) == f"{BASE}/process-definition/a%3A1?latestVersion=true&x=a+b%26c"


@respx.mock
async def test_a_cookie_the_engine_sets_is_sent_back_on_later_calls(http: EngineHttp) -> None:
    route = respx.get(f"{BASE}/version")
    route.side_effect = [
        httpx.Response(200, json={}),
        httpx.Response(200, json={}, headers={"Set-Cookie": "route=node-2; Path=/"}),
        httpx.Response(200, json={}),
    ]
    for _ in range(3):
        await http.json("GET", "/version", operation="health")
    assert [call.request.headers.get("cookie") for call in route.calls] == [None, None, "route=node-2"]
