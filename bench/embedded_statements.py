"""What one embedded start and one complete cost on PostgreSQL: their SQL statements and round trips (issue 18).

Runs the gateway in this process (embedded engine, PostgreSQL, the HTTP API through httpx's ASGI transport),
deploys the `approval` process of bench/embedded.py, warms up, then for one `POST /instances` and one
`POST /tasks/{id}/complete` prints every SQL statement it sent (`--echo`), the number of statements and
transactions and the round trips to the server they make (a statement is one; BEGIN, COMMIT and the pool's ping
one each), the hand-offs to worker threads (SpiffWorkflow runs, JSON encoding), and the
ten functions of the request's cProfile with the most own time (`--profile`). Then times `--requests` of each
(p50, one client, in-process: no HTTP server or socket in between) and the CPU time this process spent per
request. Uses PM_BENCH_DATABASE_URL's server.

    python -m bench.embedded_statements [--echo] [--profile] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from bench.common import percentile
from bench.embedded import APPROVAL, admin, database_url
from gateway.bootstrap import create_app
from gateway.settings import Settings

DATABASE = "pm_bench_embedded_statements"


class Statements:
    """Every statement, BEGIN and COMMIT sent through any SQLAlchemy engine by the asyncio task `recording` (the
    request's: httpx's ASGI transport runs the application in the caller's task; the background loops are others)."""

    def __init__(self) -> None:
        self.recording: asyncio.Task[Any] | None = None
        self.sent: list[str] = []
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._statement)
        sa.event.listen(sa.engine.Engine, "begin", lambda conn: self._note("BEGIN"))
        sa.event.listen(sa.engine.Engine, "commit", lambda conn: self._note("COMMIT"))
        sa.event.listen(sa.engine.Engine, "rollback", lambda conn: self._note("ROLLBACK"))
        # the pool pings a connection when it hands it out (pool_pre_ping): a round trip of its own
        sa.event.listen(sa.pool.Pool, "checkout", lambda *args: self._note("PING (pool pre-ping at checkout)"))

    def _note(self, what: str) -> None:
        if self.recording is not None and asyncio.current_task() is self.recording:
            self.sent.append(what)

    def _statement(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        self._note(" ".join(statement.split())[:220] + (" [executemany]" if many else ""))


async def operation(
    label: str, call: Callable[[], Awaitable[None]], statements: Statements, echo: bool, profile: bool
) -> None:
    statements.sent.clear()
    threads = [0]
    hand_off = asyncio.to_thread

    async def counted(*args: Any, **kwargs: Any) -> Any:
        threads[0] += 1
        return await hand_off(*args, **kwargs)

    asyncio.to_thread = counted  # type: ignore[assignment]
    statements.recording = asyncio.current_task()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    await call()
    if profiler is not None:
        profiler.disable()
    statements.recording = None
    asyncio.to_thread = hand_off
    sent = statements.sent
    queries = [s for s in sent if s not in ("BEGIN", "COMMIT", "ROLLBACK") and not s.startswith("PING")]
    print(
        f"{label}: {len(queries)} statements in {sent.count('BEGIN')} transactions, {len(sent)} round trips "
        f"(a statement, BEGIN, COMMIT, ROLLBACK or pool ping each), {threads[0]} hand-offs to worker threads"
    )
    if echo:
        for line in sent:
            print(f"    {line}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"/(gateway|adapters)/|SpiffWorkflow", 30)


async def run(args: argparse.Namespace) -> None:
    settings = Settings(database_url=database_url(DATABASE), engine_type="embedded", log_level="warning")
    statements = Statements()
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw") as client,
    ):
        (
            await client.post("/api/processes/definitions", files={"file": ("approval.bpmn", APPROVAL)})
        ).raise_for_status()
        started: list[str] = []

        async def start() -> None:
            response = await client.post(
                "/api/processes/instances", json={"definition_key": "approval", "variables": {"amount": 30}}
            )
            response.raise_for_status()
            started.append(response.json()["id"])

        for _ in range(30):
            await start()
        tasks: list[str] = []
        for instance_id in started:
            page = await client.get("/api/processes/tasks", params={"instance_id": instance_id})
            tasks.append(page.json()["items"][0]["id"])

        async def complete() -> None:
            response = await client.post(
                f"/api/processes/tasks/{tasks.pop()}/complete", json={"variables": {"ok": True}}
            )
            assert response.status_code == 204, response.text

        for _ in range(10):
            await complete()
        await operation("start instance", start, statements, args.echo, args.profile)
        await operation("complete task", complete, statements, args.echo, args.profile)

        for label, call in (("start instance", start), ("complete task", complete)):
            if label == "complete task":
                started.clear()
                for _ in range(args.requests):
                    await start()
                for instance_id in started:
                    page = await client.get("/api/processes/tasks", params={"instance_id": instance_id})
                    tasks.append(page.json()["items"][0]["id"])
            latencies = []
            cpu = time.process_time()
            for _ in range(args.requests):
                begun = time.perf_counter()
                await call()
                latencies.append((time.perf_counter() - begun) * 1000)
            cpu_ms = (time.process_time() - cpu) * 1000 / args.requests
            print(
                f"{label:15}: n={len(latencies)} p50={percentile(latencies, 0.5):.2f} ms "
                f"p95={percentile(latencies, 0.95):.2f} ms, CPU {cpu_ms:.2f} ms per request (in-process: client, "
                "gateway and its background loops; a figure that a busy machine inflates far less than latency)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo", action="store_true", help="print every statement")
    parser.add_argument("--profile", action="store_true", help="print each operation's cProfile")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per operation")
    args = parser.parse_args()
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    try:
        print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        asyncio.run(run(args))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
