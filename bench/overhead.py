"""What the gateway adds to a proxied read (issue 18): `GET /api/processes/definitions` on a Camunda 7 engine.

Side by side in one run, against bench/stub_engine.py (answers from memory):
- direct     : the stub's own `GET /process-definition` (one engine call),
- floor      : bench/floor.py, a minimal FastAPI + aiohttp app making the same two engine calls (list, count)
               in one uvicorn process: the floor for this stack,
- gateway    : the gateway on SQLite (one process, as `make run`),
- gateway pg : the gateway's production start on PostgreSQL with PM_WORKERS unset (one process per core),
at concurrency 1 and 16. Targets: ≥ 1,000 requests/s at concurrency 16; ≤ 1 ms added p50 over the direct call
at concurrency 1.

`python -m bench.overhead --profile` also runs the single-process gateway under cProfile and prints the
functions that cost the most CPU per request. PostgreSQL: PM_BENCH_DATABASE_URL's server (a database of its
own, dropped at the end); skipped with a note when it does not answer.
"""

from __future__ import annotations

import asyncio
import os
import pstats
import sys
import tempfile
import time

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import free_port, percentile, server, summary

SERVER_URL = os.environ.get("PM_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres:pm-ci@127.0.0.1:5432/postgres")
DATABASE = "pm_bench_overhead"
WARMUP = 300
COUNTS = {1: 1500, 16: 6000}
PROFILE_REQUESTS = 2000


async def measure(url: str, concurrency: int, count: int | None = None) -> tuple[list[float], float]:
    """Latencies (ms) and throughput (/s) of `count` GETs by `concurrency` clients over kept-alive connections.
    The client is aiohttp: cheaper per request than httpx, so it limits the figures less on two cores."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        latencies: list[float] = []

        async def run(total: int) -> float:
            queue = iter(range(total))

            async def worker() -> None:
                for _ in queue:
                    started = time.perf_counter()
                    async with session.get(url) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
                    latencies.append((time.perf_counter() - started) * 1000)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return total / (time.perf_counter() - began)

        await run(WARMUP)
        latencies.clear()
        rate = await run(count or COUNTS[concurrency])
        return latencies, rate


async def admin(sql: str) -> bool:
    try:
        engine = create_async_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
        await engine.dispose()
        return True
    except (OSError, sa.exc.SQLAlchemyError) as exc:
        print(f"  (PostgreSQL at {sa.make_url(SERVER_URL).render_as_string()} unusable: {exc.__class__.__name__})")
        return False


def gateway_env(stub_port: int, port: int, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "PM_ENGINE_TYPE": "camunda7",
        "PM_ENGINE_NAME": "stub",
        "PM_ENGINE_URL": f"http://127.0.0.1:{stub_port}/engine-rest",
        "PM_DATABASE_URL": database_url,
        "PM_PORT": str(port),
        **extra,  # the default log level (info): the access line is part of the cost
    }


def report(label: str, concurrency: int, samples: list[float], rate: float, direct: list[float] | None) -> None:
    added = f" added p50 {percentile(samples, 0.5) - percentile(direct, 0.5):+.2f} ms" if direct else ""
    print(f"  c={concurrency:<2} {label:<11}: {summary(samples)} throughput={rate:,.0f}/s{added}")


def profile(stub_port: int, tmp: str) -> None:
    """The single-process gateway under cProfile: CPU per request and the functions that cost most."""
    port = free_port()
    out = os.path.join(tmp, "gateway.prof")
    env = gateway_env(stub_port, port, f"sqlite+aiosqlite:///{tmp}/profile.db")
    with server(["-m", "bench.profiled_gateway", out], port, env=env) as gateway:
        asyncio.run(measure(f"{gateway}/api/processes/definitions", 16, PROFILE_REQUESTS))
    stats = pstats.Stats(out)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    requests = WARMUP + PROFILE_REQUESTS
    print(
        f"profile: {total / requests * 1e6:,.0f} µs CPU per request (process time under the profiler, incl. start-up), top by own time:"
    )
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    stub_port, floor_port, sqlite_port, pg_port = (free_port() for _ in range(4))
    stub_url = f"http://127.0.0.1:{stub_port}/engine-rest"
    print(f"proxied read GET /definitions against a stub Camunda 7, {os.cpu_count()} cores; client: aiohttp")
    with (
        tempfile.TemporaryDirectory() as tmp,
        server(["-m", "bench.stub_engine", str(stub_port)], stub_port, ready_path="/engine-rest/version") as stub,
        server(["-m", "bench.floor", str(floor_port), stub_url], floor_port) as floor,
        server(
            ["-m", "gateway.cli"],
            sqlite_port,
            env=gateway_env(stub_port, sqlite_port, f"sqlite+aiosqlite:///{tmp}/bench.db"),
        ) as gateway,
    ):
        targets = {
            "direct": f"{stub}/engine-rest/process-definition",
            "floor": f"{floor}/definitions",
            "gateway": f"{gateway}/api/processes/definitions",
        }
        pg_ready = asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')) and asyncio.run(
            admin(f'CREATE DATABASE "{DATABASE}"')
        )
        pg_server = None
        if pg_ready:
            database_url = sa.make_url(SERVER_URL).set(database=DATABASE).render_as_string(hide_password=False)
            pg_server = server(["-m", "gateway.cli"], pg_port, env=gateway_env(stub_port, pg_port, database_url))
            targets["gateway pg"] = f"{pg_server.__enter__()}/api/processes/definitions"
        try:
            for concurrency in (1, 16):
                direct: list[float] | None = None
                for label, url in targets.items():
                    samples, rate = asyncio.run(measure(url, concurrency))
                    report(label, concurrency, samples, rate, direct)
                    direct = direct or samples
        finally:
            if pg_server is not None:
                pg_server.__exit__(None, None, None)
            if pg_ready:
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        if "--profile" in sys.argv:
            profile(stub_port, tmp)


if __name__ == "__main__":
    main()
