"""Event delivery throughput and latency: a gateway process on PostgreSQL relaying the outbox to a Redis stream
and to one webhook receiver on loopback.

Prints events/s to the Redis stream and to the webhook receiver for a burst committed into the outbox in one unit
of work (so the figure is the relays' rate on a backlog, not the rate at which this one writer commits), then
commit→receipt p50/p95 at a paced 200 events/s, one unit of work per event as API calls write them.
Targets (issue 13): ≥ 2,000 events/s to Redis Streams; p95 ≤ 500 ms commit→webhook at 200 events/s.
Uses PM_BENCH_DATABASE_URL's server (default: bench/embedded.py's, the local PostgreSQL) and PM_BENCH_REDIS_URL
(default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import sqlalchemy as sa
from aiohttp import web
from redis.asyncio import Redis

from bench.common import free_port, percentile, server
from bench.embedded import SERVER_URL, admin
from gateway.db import Database
from gateway.uow import transaction

REDIS_URL = os.environ.get("PM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
DATABASE = "pm_bench_events"
STREAM = "pm:bench:events"
BURST = 5000
INSTANCES = 100
PACED_RATE = 200
PACED_SECONDS = 10


def database_url() -> str:
    return sa.make_url(SERVER_URL).set(database=DATABASE).render_as_string(hide_password=False)


class Receiver:
    """Records when each event (by its `data.n`) first arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.url = ""

    async def start(self) -> web.AppRunner:
        async def handle(request: web.Request) -> web.Response:
            event = json.loads(await request.read())
            self.arrived.setdefault(event["data"]["n"], time.perf_counter())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return runner


async def stream_reader(redis: Redis, arrived: dict[int, float], stop: asyncio.Event) -> None:
    last = "0-0"
    while not stop.is_set():
        entries = await redis.xread({STREAM: last}, block=200, count=1000)
        for _, messages in entries:
            for message_id, fields in messages:
                last = message_id
                arrived.setdefault(json.loads(fields["event"])["data"]["n"], time.perf_counter())


async def write(db: Database, numbers: range) -> float:
    async with transaction(db, actor="bench") as uow:
        for n in numbers:
            uow.emit("task.created", engine="default", instance_id=f"bench-{n % INSTANCES}", data={"n": n})
    return time.perf_counter()


async def run(base: str) -> None:
    db = Database(database_url())
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    receiver = Receiver()
    runner = await receiver.start()
    async with httpx.AsyncClient(base_url=base) as client:
        created = await client.post("/api/processes/subscriptions", json={"url": receiver.url})
        created.raise_for_status()
    streamed: dict[int, float] = {}
    stop = asyncio.Event()
    reader = asyncio.create_task(stream_reader(redis, streamed, stop))
    await asyncio.sleep(0.5)
    try:
        # 1. Burst: throughput from the commit of the backlog to the last receipt.
        started = time.perf_counter()
        committed_at = await write(db, range(BURST))
        while len(streamed) < BURST or len(receiver.arrived) < BURST:
            await asyncio.sleep(0.05)
            if time.perf_counter() - started > 300:
                break
        print(f"burst of {BURST} events ({INSTANCES} instances) committed at once in {committed_at - started:.2f} s:")
        for label, arrived in (("Redis stream", streamed), ("webhook receiver", receiver.arrived)):
            got = [arrived[n] for n in range(BURST) if n in arrived]
            elapsed = max(got) - committed_at if got else float("nan")
            print(f"  to {label:17}: {len(got)}/{BURST} in {elapsed:.2f} s = {len(got) / elapsed:,.0f} events/s")

        # 2. Paced: latency from commit to receipt.
        committed: dict[int, float] = {}
        offset = BURST
        interval = 1 / PACED_RATE
        next_at = time.perf_counter()
        for n in range(offset, offset + PACED_RATE * PACED_SECONDS):
            committed[n] = await write(db, range(n, n + 1))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        deadline = time.perf_counter() + 60
        expected = offset + len(committed)
        while min(len(receiver.arrived), len(streamed)) < expected and time.perf_counter() < deadline:  # noqa: ASYNC110 - times are taken on arrival; this polls for the last one
            await asyncio.sleep(0.05)
        print(f"paced {PACED_RATE} events/s for {PACED_SECONDS} s, one event per commit, commit→receipt:")
        for label, arrived in (("Redis stream", streamed), ("webhook receiver", receiver.arrived)):
            latencies = [(arrived[n] - t) * 1000 for n, t in committed.items() if n in arrived]
            print(
                f"  {label:17}: {len(latencies)}/{len(committed)} received, p50={percentile(latencies, 0.5):.0f} ms "
                f"p95={percentile(latencies, 0.95):.0f} ms max={max(latencies):.0f} ms"
            )
    finally:
        stop.set()
        await reader
        await redis.delete(STREAM)
        await redis.aclose()
        await runner.cleanup()
        await db.dispose()


def main() -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    env = {
        "PM_DATABASE_URL": database_url(),
        "PM_ENGINE_TYPE": "embedded",
        "PM_LOG_LEVEL": "warning",
        "PM_REDIS_URL": REDIS_URL,
        "PM_EVENTS_REDIS_STREAM": STREAM,
        "PM_EVENTS_ALLOW_PRIVATE_TARGETS": "true",
    }
    try:
        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env={**os.environ, **env}, check=True)
        port = free_port()
        # Several workers start slowly on a busy machine (each imports the whole gateway).
        with server(["-m", "gateway.cli"], port, env={**env, "PM_PORT": str(port)}, startup=300) as base:
            asyncio.run(run(base))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
