"""Where one `POST /tasks/claim-next` spends its CPU, and how many claims per second one gateway process makes
(issue 14).

Runs the gateway in this process (embedded engine, PostgreSQL, the HTTP API through httpx's ASGI transport: no
HTTP server or socket in between), seeds `--tasks` open tasks as `bench.analytics` does, then:
- prints the SQL statements, transactions and round trips of one claim (`--echo`: each statement);
- profiles `--profiled` claims one after another with cProfile (CPU time) and prints the functions with the
  most cumulative time in the gateway and the libraries under it (`--profile`);
- times `--requests` claims by one caller, then by 20 concurrent callers: p50, p95, claims per second and the
  CPU time of this process per claim (client and gateway: a figure that a busy machine inflates far less than
  latency). The machine's load average is printed before and after.
Uses PM_BENCH_DATABASE_URL's server.

    python -m bench.claim_next_profile [--echo] [--profile] [--tasks N] [--requests N] [--profiled N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import pstats
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
from asgi_lifespan import LifespanManager

from bench.analytics import admin, seed_open_tasks
from bench.common import percentile
from bench.embedded import database_url
from bench.embedded_statements import Statements
from gateway.bootstrap import create_app
from gateway.settings import Settings

DATABASE = "pm_bench_claim_next"
CONCURRENT_CALLERS = 20


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


async def idle_cpu(seconds: float = 3.0) -> float:
    """CPU seconds per second this process spends while no request runs (the gateway's background loops)."""
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


# Where a function's own time is counted: the first pattern its file name contains; the project's own files first,
# then the libraries' (site-packages), then the standard library's.
OWN_LAYERS = (
    ("gateway/app.py", "gateway: ASGI middleware (app.py, slow_clients)"),
    ("gateway/slow_clients.py", "gateway: ASGI middleware (app.py, slow_clients)"),
    ("gateway/journal", "gateway: journal, idempotency, unit of work"),
    ("gateway/idempotency", "gateway: journal, idempotency, unit of work"),
    ("gateway/uow", "gateway: journal, idempotency, unit of work"),
    ("gateway/changes", "gateway: journal, idempotency, unit of work"),
    ("gateway/auth", "gateway: auth (caller)"),
    ("adapters/embedded/repository", "embedded adapter: repository (builds the SQL)"),
    ("", "gateway, adapters, analytics: other own code"),
)
LIBRARY_LAYERS = (
    ("sqlalchemy/sql/", "SQLAlchemy: statement building, cache keys, compiling"),
    ("sqlalchemy/engine/", "SQLAlchemy: execution, results"),
    ("sqlalchemy/orm/", "SQLAlchemy: ORM session"),
    ("sqlalchemy/dialects/", "SQLAlchemy: asyncpg dialect"),
    ("sqlalchemy", "SQLAlchemy: pool, events, greenlet bridge"),
    ("asyncpg", "asyncpg"),
    ("fastapi", "FastAPI: routing, dependencies, serialisation"),
    ("starlette", "Starlette: routing, requests, responses"),
    ("pydantic", "pydantic: validation, serialisation"),
    ("httpx", "bench client (httpx)"),
    ("httpcore", "bench client (httpx)"),
    ("asgi_lifespan", "bench client (httpx)"),
    ("prometheus", "Prometheus metrics"),
    ("opentelemetry", "OpenTelemetry"),
    ("", "other libraries"),
)
STANDARD_LAYERS = (
    ("asyncio", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
    ("json", "json"),
    ("logging", "logging"),
    ("~", "builtins (C functions: sockets, isinstance, ...)"),
    ("", "other standard library"),
)


def layer_of(filename: str) -> str:
    if "site-packages" in filename:
        layers = LIBRARY_LAYERS
    elif filename.startswith(os.getcwd()):
        layers = OWN_LAYERS
    else:
        layers = STANDARD_LAYERS
    return next(name for pattern, name in layers if pattern in filename)


def by_layer(stats: pstats.Stats) -> dict[str, float]:
    """Own CPU seconds per layer (`layer_of`)."""
    layers: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        layer = layer_of(filename)
        layers[layer] = layers.get(layer, 0.0) + own
    return layers


async def profiled(call: Callable[[], Awaitable[object]]) -> tuple[pstats.Stats, float]:
    """cProfile (CPU time) of `call`, and the wall-clock seconds it took."""
    profiler = cProfile.Profile(time.process_time)
    wall = time.perf_counter()
    profiler.enable()
    await call()
    profiler.disable()
    return pstats.Stats(profiler), time.perf_counter() - wall


def print_profile(claims: pstats.Stats, claims_wall: float, count: int, idle: pstats.Stats, idle_wall: float) -> None:
    """Own CPU time per claim by layer, the background loops' share (`idle`, scaled to the claims' wall-clock time)
    subtracted; then the 40 functions with the most own time."""
    scale = claims_wall / idle_wall
    background = by_layer(idle)
    layers = {layer: own - background.get(layer, 0.0) * scale for layer, own in by_layer(claims).items()}
    total = sum(layers.values())
    print(
        f"cProfile of {count} claims, background loops subtracted (profiler overhead included): "
        f"{total * 1000 / count:.2f} ms CPU per claim"
    )
    print(f"  {'layer':55} {'ms/claim':>9} {'share':>6}")
    for layer, own in sorted(layers.items(), key=lambda item: -item[1]):
        print(f"  {layer:55} {own * 1000 / count:9.2f} {own / total:6.1%}")
    claims.sort_stats("tottime").print_stats(40)


async def run(args: argparse.Namespace) -> None:
    # no projection round during the run (as in bench.analytics): it would read every open task
    for name in ("EVENT_INTERVAL", "SYNC_INTERVAL", "OVERDUE_INTERVAL"):
        os.environ[f"PM_ANALYTICS_{name}"] = "86400"
    url = database_url(DATABASE)
    settings = Settings(database_url=url, engine_type="embedded", log_level="warning")
    statements = Statements()
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw") as client,
    ):
        await seed_open_tasks(args.tasks, url)
        users = itertools.count()

        async def claim() -> None:
            response = await client.post(
                "/api/processes/tasks/claim-next",
                json={"candidate_groups": ["sales"]},
                headers={"X-User-Id": f"user-{next(users)}"},
            )
            assert response.status_code == 200, response.text

        for _ in range(50):
            await claim()
        statements.recording = asyncio.current_task()
        await claim()
        statements.recording = None
        sent = statements.sent
        queries = [s for s in sent if s not in ("BEGIN", "COMMIT", "ROLLBACK") and not s.startswith("PING")]
        print(
            f"one claim: {len(queries)} statements in {sent.count('BEGIN')} transactions, {len(sent)} round trips "
            "(a statement, BEGIN, COMMIT, ROLLBACK or pool ping each)"
        )
        if args.echo:
            for line in sent:
                print(f"    {line}")

        idle = await idle_cpu()
        print(f"idle: the gateway's background loops take {idle * 1000:.1f} ms CPU per second")
        if args.profile:

            async def claims() -> None:
                for _ in range(args.profiled):
                    await claim()

            claims_stats, claims_wall = await profiled(claims)
            idle_stats, idle_wall = await profiled(lambda: asyncio.sleep(10))
            print_profile(claims_stats, claims_wall, args.profiled, idle_stats, idle_wall)
            if args.profile_file:
                claims_stats.dump_stats(args.profile_file)

        print(load())
        for callers in (1, CONCURRENT_CALLERS):
            latencies: list[float] = []
            remaining = iter(range(args.requests))

            async def caller(remaining: Iterator[int] = remaining, latencies: list[float] = latencies) -> None:
                for _ in remaining:
                    begun = time.perf_counter()
                    await claim()
                    latencies.append((time.perf_counter() - begun) * 1000)

            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(callers)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            cpu_ms = (cpu - idle * wall) * 1000 / args.requests
            print(
                f"{callers:2} caller(s): n={len(latencies)} p50={percentile(latencies, 0.5):.2f} ms "
                f"p95={percentile(latencies, 0.95):.2f} ms, {args.requests / wall:.0f} claims/s, CPU {cpu_ms:.2f} ms "
                "per claim (idle CPU subtracted)"
            )
        print(load())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo", action="store_true", help="print every statement of one claim")
    parser.add_argument("--profile", action="store_true", help="print the cProfile of the profiled claims")
    parser.add_argument("--profile-file", help="also write the claims' cProfile to this file (pstats format)")
    parser.add_argument("--tasks", type=int, default=100_000, help="open tasks in the queue")
    parser.add_argument("--requests", type=int, default=600, help="timed claims per run (one caller, then 20)")
    parser.add_argument("--profiled", type=int, default=200, help="claims under cProfile")
    args = parser.parse_args()
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    try:
        print(load())
        asyncio.run(run(args))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
