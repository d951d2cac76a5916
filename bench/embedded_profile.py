"""Where one embedded start and one complete spend their time on PostgreSQL (issue 18: p50 ≤ 4 ms each).

Runs the gateway in this process (embedded engine, PostgreSQL, the HTTP API through httpx's ASGI transport: no
socket or HTTP server in between), deploys the `approval` process of bench/embedded.py and warms up. Then, for
`POST /instances` and `POST /tasks/{id}/complete`:

- times `--requests` of each (p50, one client) and the CPU this process spent per request, and the same for
  `--idle` seconds of doing nothing (what the background loops cost on their own);
- samples `--profiled` more of each with pyinstrument (wall clock, every 1 ms, the request's task only: time
  spent awaiting the database, a worker thread or other tasks shows as awaiting) and prints a table of where
  the request's wall time goes, by area: HTTP and validation, auth, idempotency, SpiffWorkflow (restore, run,
  serialise), SQL (the driver's CPU and the wait for the server's answer), the journal, the rest of the gateway.

With `--quiet-loops` the event relays (webhook fan-out and dispatch, Redis relay, outbox watch, change feeds) do
not run and the incident and analytics loops wait an hour between rounds: what a request costs without them. Uses PM_BENCH_DATABASE_URL's server.

    python -m bench.embedded_profile [--requests N] [--profiled N] [--quiet-loops] [--tree]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pyinstrument import Profiler

from bench.common import percentile
from bench.embedded import APPROVAL, admin, database_url

DATABASE = "pm_bench_embedded_profile"

QUIET_LOOPS = {
    "PM_EVENTS_POLL_INTERVAL": "3600",
    "PM_EVENTS_CHANGE_FEED_INTERVAL": "3600",
    "PM_INCIDENTS_POLL_INTERVAL": "3600",
    "PM_ANALYTICS_EVENT_INTERVAL": "3600",
    "PM_ANALYTICS_SYNC_INTERVAL": "3600",
    "PM_ANALYTICS_TASK_RECONCILE_INTERVAL": "3600",
    "PM_ANALYTICS_OVERDUE_INTERVAL": "3600",
}

# (area, test on a frame's file path and function name): a sample's time goes to the first area that matches the
# deepest frame of its stack that any matches.
AREAS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("SQL: asyncpg driver", lambda f, n: "/asyncpg/" in f),
    ("SQL: SQLAlchemy compile/execute/ORM", lambda f, n: "/sqlalchemy/" in f),
    ("SpiffWorkflow (restore, run, serialise)", lambda f, n: "/SpiffWorkflow/" in f),
    ("JSON / pickle encoding", lambda f, n: "/json/" in f or "pickle" in f or "orjson" in f),
    ("journal / outbox / audit", lambda f, n: "gateway/journal" in f or "/events/" in f),
    ("idempotency", lambda f, n: "gateway/idempotency" in f),
    ("auth / caller", lambda f, n: "gateway/auth" in f or "gateway/guard" in f),
    ("embedded adapter (gateway code)", lambda f, n: "adapters/embedded" in f),
    ("gateway services / API", lambda f, n: "/gateway/" in f),
    (
        "HTTP, routing, validation (Starlette, FastAPI, pydantic)",
        lambda f, n: any(part in f for part in ("/starlette/", "/fastapi/", "/pydantic", "/httpx/", "/anyio/")),
    ),
]


def area_of(stack: list[tuple[str, str]]) -> str:
    """A sample's area. pyinstrument names time the task spent suspended `[await]`; what it awaited is told by the
    frames it awaited in: a worker thread (`asyncio.to_thread`) or the database (SQLAlchemy, asyncpg)."""
    if stack and stack[-1][1] == "[await]":
        if any(name == "to_thread" for _, name in stack):
            return "await: worker thread (asyncio.to_thread)"
        if any("/sqlalchemy/" in file or "/asyncpg/" in file for file, _ in stack):
            return "await: SQL server answer (a round trip each)"
        return "await: other (the loop runs other tasks, sleeps)"
    for file, name in reversed(stack):
        for area, test in AREAS:
            if test(file, name):
                return area
    return "other (asyncio, stdlib)"


def attribute(profiler: Profiler) -> dict[str, float]:
    """Seconds of the profiled wall time by area."""
    totals: dict[str, float] = defaultdict(float)
    root = profiler.last_session.root_frame() if profiler.last_session else None

    def walk(frame: Any, stack: list[tuple[str, str]]) -> None:
        stack = [*stack, (frame.file_path or "", frame.function or "")]
        own = frame.time - sum(child.time for child in frame.children)
        if own > 0:
            totals[area_of(stack)] += own
        for child in frame.children:
            walk(child, stack)

    if root is not None:
        walk(root, [])
    return totals


async def cpu_and_wall(call: Callable[[], Awaitable[None]], count: int) -> tuple[float, float, float]:
    latencies = []
    cpu = time.process_time()
    for _ in range(count):
        begun = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - begun) * 1000)
    return percentile(latencies, 0.5), percentile(latencies, 0.95), (time.process_time() - cpu) * 1000 / count


async def run(args: argparse.Namespace) -> None:
    from gateway.bootstrap import create_app
    from gateway.settings import Settings

    settings = Settings(database_url=database_url(DATABASE), engine_type="embedded", log_level="warning")
    if args.quiet_loops:
        from events.service import EventService

        async def no_relays(self: EventService) -> None:
            """The event relays and their outbox watch do not run (no setting turns them off)."""

        EventService.start = no_relays  # type: ignore[method-assign]
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw") as client,
    ):
        (
            await client.post("/api/processes/definitions", files={"file": ("approval.bpmn", APPROVAL)})
        ).raise_for_status()
        started: list[str] = []
        tasks: list[str] = []

        async def start() -> None:
            response = await client.post(
                "/api/processes/instances", json={"definition_key": "approval", "variables": {"amount": 30}}
            )
            response.raise_for_status()
            started.append(response.json()["id"])

        async def complete() -> None:
            response = await client.post(
                f"/api/processes/tasks/{tasks.pop()}/complete", json={"variables": {"approved": True}}
            )
            assert response.status_code == 204, response.text

        async def open_tasks(count: int) -> None:
            started.clear()
            for _ in range(count):
                await start()
            for instance_id in started:
                page = await client.get("/api/processes/tasks", params={"instance_id": instance_id})
                tasks.append(page.json()["items"][0]["id"])

        await open_tasks(50)
        for _ in range(20):
            await complete()
        cpu = time.process_time()
        await asyncio.sleep(args.idle)
        idle_cpu = (time.process_time() - cpu) * 1000 / args.idle
        print(f"idle: {idle_cpu:.1f} ms CPU per second with no request (the background loops)")

        tables: dict[str, dict[str, float]] = {}
        for label, call in (("start", start), ("complete", complete)):
            if call is complete:
                await open_tasks(args.requests + args.profiled * (2 if args.cprofile else 1))
            p50, p95, cpu_ms = await cpu_and_wall(call, args.requests)
            print(f"{label:8}: n={args.requests} p50={p50:.2f} ms p95={p95:.2f} ms, CPU {cpu_ms:.2f} ms per request")
            profiler = Profiler(interval=0.001, async_mode="enabled")
            with profiler:
                for _ in range(args.profiled):
                    await call()
            if args.cprofile:
                cpu_profile = cProfile.Profile()
                cpu_profile.enable()
                for _ in range(args.profiled):
                    await call()
                cpu_profile.disable()
                stats = pstats.Stats(cpu_profile)
                stats.sort_stats("tottime").print_stats(args.cprofile)
                stats.sort_stats("cumulative").print_stats(args.cprofile)
            totals = attribute(profiler)
            tables[label] = {area: seconds * 1000 / args.profiled for area, seconds in totals.items()}
            if args.tree:
                print(profiler.output_text(unicode=True, show_all=False, color=False))

    areas = sorted({a for t in tables.values() for a in t}, key=lambda a: -sum(t.get(a, 0) for t in tables.values()))
    print(f"\nwall time per request by area, ms (pyinstrument, {args.profiled} requests each, 1 ms samples):")
    print(f"  {'area':58} {'start':>8} {'complete':>8}")
    for area in areas:
        print(f"  {area:58} {tables['start'].get(area, 0):8.2f} {tables['complete'].get(area, 0):8.2f}")
    print(f"  {'total':58} {sum(tables['start'].values()):8.2f} {sum(tables['complete'].values()):8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per operation")
    parser.add_argument("--profiled", type=int, default=100, help="profiled requests per operation")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measurement")
    parser.add_argument("--quiet-loops", action="store_true", help="background loops wait an hour between rounds")
    parser.add_argument("--tree", action="store_true", help="print pyinstrument's call tree of each operation")
    parser.add_argument("--cprofile", type=int, default=0, help="also print cProfile's N costliest functions")
    args = parser.parse_args()
    if args.quiet_loops:
        os.environ.update(QUIET_LOOPS)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    try:
        print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        asyncio.run(run(args))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
