"""Slow clients on a real gateway process: trickled headers or bodies are cut off, real requests still served."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess

TRICKLERS = 500
GIVE_UP = 20.0  # seconds a trickler keeps going before concluding the server never closed it


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    path: Path = tmp_path_factory.mktemp("slow") / "gateway.db"
    process = GatewayProcess(f"sqlite+aiosqlite:///{path}", client_header_timeout=1, client_body_timeout=1)
    process.start()
    yield process
    process.stop()


async def trickle(port: int, head: bytes, drip: bytes) -> tuple[bool, bytes]:
    """Send `head`, then `drip` every 0.2 s; (whether the server closed the connection, what it answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    answer = b""
    give_up = time.monotonic() + GIVE_UP
    try:
        while time.monotonic() < give_up:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.2)
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
                continue
            if not chunk:
                return True, answer
            answer += chunk
        return False, answer
    except (ConnectionResetError, BrokenPipeError):
        return True, answer
    finally:
        writer.close()


async def test_500_trickling_connections_are_closed_and_never_starve_real_requests(gateway: GatewayProcess) -> None:
    head = b"POST /api/processes/instances HTTP/1.1\r\nHost: gateway\r\n"
    tricklers = [asyncio.create_task(trickle(gateway.port, head, b"X-Slow: 1\r\n")) for _ in range(TRICKLERS)]
    await asyncio.sleep(0.5)  # every trickler is connected and dripping
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        served = [await client.get("/health") for _ in range(20)]
        listed = await client.get("/api/processes/instances")
    assert [r.status_code for r in served] == [200] * 20
    assert listed.status_code == 200
    outcomes = await asyncio.gather(*tricklers)
    assert sum(closed for closed, _ in outcomes) == TRICKLERS
    assert not any(answer for _, answer in outcomes)  # cut off before a request existed: nothing to answer


async def test_a_trickled_body_is_answered_408_and_the_connection_closed(gateway: GatewayProcess) -> None:
    head = (
        b"POST /api/processes/instances HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    closed, answer = await trickle(gateway.port, head, b" ")
    assert closed
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"PM_CLIENT_BODY_TIMEOUT" in answer


async def test_a_kept_alive_connection_trickling_its_next_request_is_closed(gateway: GatewayProcess) -> None:
    first = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"
    closed, answer = await trickle(gateway.port, first + b"GET /health HTTP/1.1\r\n", b"X-Slow: 1\r\n")
    assert closed
    assert answer.count(b"HTTP/1.1 200") == 1


async def test_a_request_too_long_to_parse_is_a_problem_400(gateway: GatewayProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    long_query = "business_key=" + "x" * 200_000  # httpx refuses to send it: a raw connection does
    writer.write(f"GET /api/processes/instances?{long_query} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after answering
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert (problem["title"], problem["status"]) == ("Bad request", 400)
    assert "16 KiB" in problem["detail"]
