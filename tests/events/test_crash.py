"""kill -9 of a real gateway process during a burst of 1,000 events loses none (Redis stream and webhook)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from tests.events.conftest import QUICK, unique_stream, write_events
from tests.events.receiver import Receiver

BURST = 1000
PER_COMMIT = 5


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


async def start_gateway(environment: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from gateway.cli import main; sys.exit(main(['serve']))",
        # one process: on PostgreSQL the gateway otherwise starts a worker per core, and kill -9 of the parent
        # would leave the workers running (holding the leader locks every later test needs)
        env={**os.environ, **environment, "PM_PORT": str(port), "PM_WORKERS": "1"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def ready() -> bool:
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        assert await eventually(ready, bool, timeout=30), "the gateway process did not start"
    return process


async def test_kill_9_during_a_burst_loses_no_event(database: Database, receiver: Receiver, redis_url: str) -> None:
    if database.is_sqlite:
        pytest.skip("runs against PostgreSQL, the database a multi-process deployment uses")
    stream_name = unique_stream()
    environment = {
        "PM_DATABASE_URL": database.url,
        "PM_REDIS_URL": redis_url,
        "PM_AUTO_MIGRATE": "false",
        "PM_LOG_LEVEL": "error",
        **{f"PM_EVENTS_{name}": value for name, value in QUICK.items()},
        "PM_EVENTS_REDIS_STREAM": stream_name,
        "PM_EVENTS_BATCH_SIZE": "50",  # small rounds, so the kill lands between two of them
    }
    port = free_port()
    redis = Redis.from_url(redis_url, decode_responses=True)
    process = await start_gateway(environment, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            created = await client.post("/api/processes/subscriptions", json={"url": receiver.url})
            assert created.status_code == 201, created.text
            receiver.secrets.append(created.json()["secret"])

        async def burst() -> None:
            for start in range(0, BURST, PER_COMMIT):
                await write_events(
                    database,
                    [
                        ("task.created", f"i-{n % 50}", {"task_id": f"t-{n}", "n": n})
                        for n in range(start, start + PER_COMMIT)
                    ],
                )

        writing = asyncio.create_task(burst())
        await eventually(lambda: redis.xlen(stream_name), lambda n: n >= 100, timeout=30)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        assert not writing.done()  # the kill landed during the burst
        relayed_before_kill, delivered_before_kill = await redis.xlen(stream_name), len(receiver.delivered())
        await writing
        assert relayed_before_kill < BURST and delivered_before_kill < BURST

        process = await start_gateway(environment, port)
        wanted = {f"t-{n}" for n in range(BURST)}

        def delivered_tasks() -> set[str]:
            return {r.event["data"]["task_id"] for r in receiver.delivered()}

        await eventually(lambda: asyncio.sleep(0, delivered_tasks()), lambda got: got >= wanted, timeout=60)

        async def streamed_tasks() -> set[str]:
            return {json.loads(fields["event"])["data"]["task_id"] for _, fields in await redis.xrange(stream_name)}

        await eventually(streamed_tasks, lambda got: got >= wanted, timeout=60)
        assert delivered_tasks() == wanted and await streamed_tasks() == wanted
        assert all(r.standard_valid and r.legacy_valid for r in receiver.received)
        # Per instance, the first delivery of each event follows commit order, across the restart too.
        firsts: dict[str, int] = {}
        order: dict[str, list[int]] = {}
        for request in receiver.delivered():
            event: dict[str, Any] = request.event
            if event["id"] in firsts:
                continue
            firsts[event["id"]] = 1
            order.setdefault(event["instance_id"], []).append(event["data"]["n"])
        assert all(numbers == sorted(numbers) for numbers in order.values())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()
        await redis.delete(stream_name)
        await redis.aclose()
