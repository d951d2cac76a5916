"""Task lists of the embedded engine on PostgreSQL with 100,000 open tasks, every documented filter x sort (issue 18).

Bulk-loads 100,000 open tasks (and 20,000 ended ones) straight into the engine's tables with SQL, with autovacuum
off on those tables and no ANALYZE (the planner's statistics stay stale, as right after a bulk load on a fresh
deployment), then times `GET /tasks` through the gateway's HTTP API (one worker, one client) for every filter of
API.md alone and in the inbox combinations, each in every sort field and both orders, and prints p50/p95 per
combination (target p95 <= 30 ms) with its statements' server time and whether its plans are index-driven (EXPLAIN
ANALYZE of the statements the repository sends, `explain`), the slowest combinations, and the same after ANALYZE
with `--analyze`.

Usage: `python -m bench.task_inbox [--analyze] [--requests N]`. Uses PM_BENCH_DATABASE_URL's server (default:
local PostgreSQL, user postgres), in a database of its own that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.embedded import repository
from bench.common import free_port, percentile, server, timed
from bench.embedded import admin, analyze, database_url, fill_inbox
from gateway.db import Database
from gateway.schemas import TaskQuery

DATABASE = "pm_bench_task_inbox"
OPEN_TASKS = 100_000
ENDED_TASKS = 20_000
TASK_TABLES = ("embedded_tasks", "embedded_task_candidates", "embedded_task_inbox")

FILTERS: dict[str, dict[str, str]] = {
    "(none)": {},
    "assignee": {"assignee": "user-8"},
    "candidate_group (50%)": {"candidate_group": "sales"},
    "candidate_group (2%)": {"candidate_group": "legal"},
    "candidate_user": {"candidate_user": "user-3"},
    "unassigned": {"unassigned": "true"},
    "unassigned=false": {"unassigned": "false"},
    "instance_id": {"instance_id": "seed-instance-4711"},
    "definition_key": {"definition_key": "invoice"},
    "status assigned": {"status": "assigned"},
    "status completed": {"status": "completed"},
    "due_before (10%)": {"due_before": "2030-01-04T00:00:00Z"},
    "tenant_id": {"tenant_id": "tenant-b"},
    "candidate_group + unassigned": {"candidate_group": "sales", "unassigned": "true"},
    "candidate_group + due_before": {"candidate_group": "ops", "due_before": "2030-01-04T00:00:00Z"},
    "candidate_group + definition_key": {"candidate_group": "sales", "definition_key": "invoice"},
    "candidate_user + unassigned": {"candidate_user": "user-3", "unassigned": "true"},
    "candidate_group + tenant_id": {"candidate_group": "ops", "tenant_id": "tenant-b"},
}
SORTS = ("created", "due", "follow_up", "priority", "name", "assignee")
ORDERS = ("desc", "asc")
# Plan nodes of a list that is not index-driven: it reads every match (or every row) before LIMIT applies.
UNWANTED = ("Sort", "Bitmap", "Seq Scan")


async def seed(database: str) -> None:
    """Tasks shaped like the engine's own rows: groups sales 50%, ops 30%, finance 18%, legal 2%; one candidate
    user on every tenth task; a quarter assigned; due dates on 70% (spread over 30 days from 2030-01-01),
    follow-up dates on 30%; priorities 0..99; two tenants; three process keys. The candidate and inbox rows are
    written from the task rows."""
    engine = create_async_engine(database_url(database))
    async with engine.begin() as conn:
        for table in TASK_TABLES:
            await conn.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        group = "CASE WHEN g % 50 = 0 THEN 'legal' WHEN g % 100 < 50 THEN 'sales' WHEN g % 100 < 80 THEN 'ops' ELSE 'finance' END"
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_tasks (id, instance_id, definition_id, definition_key, task_definition_key, name,
                assignee, candidate_users, candidate_groups, priority, due, follow_up, status, created, ended_at,
                tenant_id)
            SELECT 'seed-' || g, 'seed-instance-' || g, 'seed-definition',
                (ARRAY['approval', 'invoice', 'onboarding'])[g % 3 + 1], 'review',
                (ARRAY['Review request', 'Approve invoice', 'Check documents', 'Call customer'])[g % 4 + 1] || ' ' || g,
                CASE WHEN g % 4 = 0 THEN 'user-' || (g % 50) END,
                CASE WHEN g % 10 = 3 THEN jsonb_build_array('user-' || (g % 7)) ELSE '[]'::jsonb END,
                jsonb_build_array({group}), g % 100,
                CASE WHEN g % 10 < 7 THEN timestamptz '2030-01-01' + (g % 30) * interval '1 day' END,
                CASE WHEN g % 10 < 3 THEN timestamptz '2030-02-01' + (g % 20) * interval '1 day' END,
                CASE WHEN g > {OPEN_TASKS} THEN 'completed' WHEN g % 4 = 0 THEN 'assigned' ELSE 'created' END,
                timestamptz '2029-01-01' + g * interval '1 minute',
                CASE WHEN g > {OPEN_TASKS} THEN timestamptz '2029-12-31' END,
                CASE WHEN g % 5 = 0 THEN 'tenant-b' ELSE 'tenant-a' END
            FROM generate_series(1, {OPEN_TASKS + ENDED_TASKS}) AS g""")
        )
        await conn.execute(
            sa.text("""
            INSERT INTO embedded_task_candidates (task_id, kind, value, open, assigned)
            SELECT t.id, c.kind, c.value, t.ended_at IS NULL, t.assignee IS NOT NULL FROM embedded_tasks t,
            LATERAL (SELECT 'group', jsonb_array_elements_text(t.candidate_groups)
                UNION ALL SELECT 'user', jsonb_array_elements_text(t.candidate_users)) AS c(kind, value)""")
        )
        await fill_inbox(conn)
    await engine.dispose()


def _nodes(plan: dict[str, Any]) -> list[str]:
    name = plan["Node Type"] + (f" on {plan['Relation Name']}" if "Relation Name" in plan else "")
    if "Index Name" in plan:
        name += f" ({plan['Index Name']})"
    return [name] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


async def explain(db: Database, params: dict[str, Any]) -> tuple[list[float], list[str]]:
    """Run one task list through the embedded engine's repository, then EXPLAIN ANALYZE each of its SELECTs in one
    transaction with the planner settings the list used (its set_config statements run as they are). Returns the
    statements' server-side execution times in ms and the plans that are not index-driven (an UNWANTED node;
    the page's tasks read by primary key are not flagged)."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        captured.append((statement, parameters))

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.sessionmaker() as session:
            await repository.list_tasks(session, TaskQuery.model_validate(params))
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    timings, shapes = [], []
    async with db.engine.connect() as conn:
        for statement, parameters in captured:
            if not re.match(r"\s*SELECT", statement) or "set_config" in statement or "current_setting" in statement:
                await conn.exec_driver_sql(statement, parameters)
                continue
            raw = await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            value = raw.scalar_one()
            (plan,) = json.loads(value) if isinstance(value, str) else value
            timings.append(plan["Execution Time"])
            shapes.append(" > ".join(_nodes(plan["Plan"])))
    flagged = [s for s in shapes if any(word in s for word in UNWANTED) and not s.endswith("(embedded_tasks_pkey)")]
    return timings, flagged


async def task_lists(base: str, database: str, requests: int, label: str) -> list[tuple[float, str]]:
    """Time every filter x sort x order; print one line per combination with its p95 and whether its plans are
    index-driven (`explain`); return (p95, name) per combination."""
    results: list[tuple[float, str]] = []
    not_indexed: list[str] = []
    db = Database(database_url(database))
    print(label)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        # the floor on this machine now: a request that reads nothing, and a list of one tiny table (page + count)
        for path in ("/health", "/api/processes/definitions"):

            async def floor(path: str = path) -> None:
                (await client.get(path)).raise_for_status()

            await timed(floor, 3)
            latencies, _ = await timed(floor, requests)
            p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            print(f"  floor: GET {path:50} p50={p50:7.2f} ms  p95={p95:7.2f} ms", flush=True)
        for filter_name, filters in FILTERS.items():
            for sort in SORTS:
                for order in ORDERS:
                    params = {**filters, "sort": sort, "order": order}

                    async def call(params: dict[str, str] = params) -> None:
                        (await client.get("/api/processes/tasks", params=params)).raise_for_status()

                    warm, _ = await timed(call, 3)
                    # a combination slower than 200 ms is measured with fewer requests: its verdict is clear
                    latencies, _ = await timed(call, requests if max(warm) < 200 else 5)
                    total = (await client.get("/api/processes/tasks", params=params)).json()["total"]
                    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
                    name = f"{filter_name}, sort {sort} {order}"
                    results.append((p95, name))
                    timings, flagged = await explain(db, params)
                    plan = "index" if not flagged else "NOT INDEX: " + " | ".join(flagged)
                    if flagged:
                        not_indexed.append(name)
                    flag = "" if p95 <= 30 else "  > 30 ms"
                    print(
                        f"  {name:55} total={total:>6}  p50={p50:7.2f} ms  p95={p95:7.2f} ms  "
                        f"SQL {sum(timings):6.2f} ms  plan: {plan}{flag}",
                        flush=True,
                    )
    await db.dispose()
    over = sorted((r for r in results if r[0] > 30), reverse=True)
    print(
        f"  {len(results)} combinations, {len(over)} over 30 ms p95, {len(not_indexed)} not index-driven; "
        f"worst p95: {max(results)[0]:.2f} ms ({max(results)[1]}); median p95: {percentile([r[0] for r in results], 0.5):.2f} ms"
    )
    for p95, name in over[:10]:
        print(f"    over: {p95:7.2f} ms  {name}")
    return results


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyze", action="store_true", help="also measure after VACUUM ANALYZE")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per combination")
    parser.add_argument(
        "--without-analytics-sync",
        action="store_true",
        help="seed after the server started and defer the analytics projection's next read of the engine by a day: "
        "its full read of the open tasks (every PM_ANALYTICS_TASK_RECONCILE_INTERVAL, 300 s; 100,000 tasks: 200 pages "
        "of 500, seconds of database and CPU time) would otherwise run beside the lists timed here",
    )
    args = parser.parse_args(argv)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    env = {
        "PM_DATABASE_URL": database_url(DATABASE),
        "PM_ENGINE_TYPE": "embedded",
        "PM_LOG_LEVEL": "warning",
        "PM_WORKERS": "1",
        **({"PM_ANALYTICS_SYNC_INTERVAL": "86400"} if args.without_analytics_sync else {}),
    }
    try:
        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env={**os.environ, **env}, check=True)
        if not args.without_analytics_sync:
            asyncio.run(seed(DATABASE))
        port = free_port()
        with server(["-m", "gateway.cli"], port, env={**env, "PM_PORT": str(port)}) as base:
            if args.without_analytics_sync:
                time.sleep(5)  # the projection's first read of the engine, while it is empty
                asyncio.run(seed(DATABASE))
                print("analytics projection: no full read of the engine during the run (--without-analytics-sync)")
            print(f"load before: {uptime()}")
            asyncio.run(
                task_lists(
                    base,
                    DATABASE,
                    args.requests,
                    f"GET /tasks, embedded on PostgreSQL, {OPEN_TASKS:,} open + {ENDED_TASKS:,} ended tasks, "
                    "right after the bulk load (autovacuum off, no ANALYZE):",
                )
            )
            print(f"load after: {uptime()}")
            if args.analyze:
                asyncio.run(analyze(DATABASE))
                asyncio.run(task_lists(base, DATABASE, args.requests, "the same after VACUUM ANALYZE:"))
                print(f"load after: {uptime()}")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main(sys.argv[1:])
