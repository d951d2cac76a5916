"""Analytics through the HTTP API on PostgreSQL (issue 14).

Seeds the analytics projection with 100,000 instances (three processes over the last 30 days, most of them
finished) and 1,000,000 activity runs (ten per instance), plus 100,000 user tasks, and prints:
- the cached answer latency of /statistics, /bottlenecks, /tasks/statistics, /performance (target p50 ≤ 5 ms);
- the cold (cache-miss) latency of /statistics and /bottlenecks (target p95 ≤ 300 ms): every call asks for a
  period that starts one second later, so none is served from the cache;
- POST /tasks/claim-next with 100,000 open embedded tasks and 20 concurrent callers (target p95 ≤ 20 ms).
Uses PM_BENCH_DATABASE_URL's server (default: local PostgreSQL, user postgres), in a database of its own that
it drops at the end (PM_BENCH_DATABASE_NAME, default pm_bench_analytics: runs side by side need different names).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from analytics import repository
from bench.common import free_port, server, summary, timed

SERVER_URL = os.environ.get("PM_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
DATABASE = os.environ.get("PM_BENCH_DATABASE_NAME", "pm_bench_analytics")
INSTANCES = 100_000
RUNS_PER_INSTANCE = 10
OPEN_TASKS = 100_000
ENGINE = "default"


def database_url() -> str:
    return sa.make_url(SERVER_URL).set(database=DATABASE).render_as_string(hide_password=False)


async def admin(sql: str) -> None:
    engine = create_async_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(sql))
    await engine.dispose()


async def seed_projection() -> None:
    """Instances start every ~26 s over 30 days; 85% completed after 1-4 h, 5% terminated, 10% running. Each has
    a start event, eight tasks (two user tasks, the rest automated; 'approve' waits longest) and an end event."""
    engine = create_async_engine(database_url())
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"""
            INSERT INTO analytics_instances (engine, instance_id, definition_key, definition_name, status, start_time,
                end_time, duration_ms, start_slot, end_slot)
            SELECT '{ENGINE}', 'i-' || g, k, initcap(k),
                CASE WHEN g % 20 = 0 THEN 'terminated' WHEN g % 10 = 1 THEN 'active' ELSE 'completed' END,
                s, CASE WHEN g % 10 = 1 THEN NULL ELSE s + d END, CASE WHEN g % 10 = 1 THEN NULL ELSE d_ms END,
                floor(extract(epoch FROM s) / 900)::int,
                CASE WHEN g % 10 = 1 THEN NULL ELSE floor(extract(epoch FROM s + d) / 900)::int END
            FROM (SELECT g, (ARRAY['order', 'refund', 'onboarding'])[1 + g % 3] AS k,
                         now() - interval '30 days' + g * interval '25.9 seconds' AS s,
                         (3600 + (g % 4) * 3600) * interval '1 second' AS d, (3600 + (g % 4) * 3600) * 1000 AS d_ms
                  FROM generate_series(1, {INSTANCES}) AS g) AS seeded""")
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO analytics_activities (engine, instance_id, definition_key, activity_id, activity_name,
                activity_type, start_time, end_time, duration_ms, start_slot, canceled, first_run)
            SELECT i.engine, i.instance_id, i.definition_key, a.id, initcap(a.id), a.kind,
                i.start_time + a.n * interval '6 minutes',
                CASE WHEN i.end_time IS NULL AND a.n >= 8 THEN NULL
                     ELSE i.start_time + a.n * interval '6 minutes' + a.wait * interval '1 second' END,
                CASE WHEN i.end_time IS NULL AND a.n >= 8 THEN NULL ELSE a.wait * 1000 END,
                floor(extract(epoch FROM i.start_time + a.n * interval '6 minutes') / 900)::int, false, true
            FROM analytics_instances i CROSS JOIN (VALUES
                (0, 'start', 'startEvent', 0), (1, 'validate', 'serviceTask', 2), (2, 'score', 'businessRuleTask', 1),
                (3, 'review', 'userTask', 300), (4, 'enrich', 'serviceTask', 5), (5, 'notify', 'sendTask', 1),
                (6, 'archive', 'scriptTask', 1), (7, 'book', 'serviceTask', 3), (8, 'approve', 'userTask', 3000),
                (9, 'end', 'endEvent', 0)) AS a(n, id, kind, wait)
            WHERE i.engine = '{ENGINE}'""")
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO analytics_tasks (engine, task_id, instance_id, definition_key, task_definition_key, name,
                assignee, priority, status, created, due, claimed_at, completed_at, completed_by, claim_wait_ms,
                completion_ms, created_slot, completed_slot)
            SELECT i.engine, 't-' || i.instance_id, i.instance_id, i.definition_key, 'approve', 'Approve',
                'user-' || (length(i.instance_id) + ascii(right(i.instance_id, 1))) % 40, 50,
                CASE WHEN i.end_time IS NULL THEN 'open' ELSE 'completed' END, i.start_time,
                i.start_time + interval '2 hours', i.start_time + interval '10 minutes', i.end_time, NULL, 600000,
                i.duration_ms, i.start_slot, i.end_slot
            FROM analytics_instances i WHERE i.engine = '{ENGINE}'""")
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO analytics_task_groups (engine, task_id, group_id)
            SELECT engine, task_id, CASE WHEN ascii(right(task_id, 1)) % 2 = 0 THEN 'sales' ELSE 'ops' END
            FROM analytics_tasks WHERE engine = '{ENGINE}'""")
        )
    async with AsyncSession(engine) as session, session.begin():
        await repository.rebuild_rollups(session, ENGINE, None)
        await repository.rebuild_task_rollups(session, ENGINE)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE"))
    await engine.dispose()


async def seed_open_tasks(count: int, url: str | None = None) -> None:
    """Open embedded tasks (unassigned, in group sales or ops, priorities 0-99) with the instances they belong to and
    their task inbox rows, in the database at `url` (default: this bench's)."""
    engine = create_async_engine(url or database_url())
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_instances (id, definition_id, definition_key, status, start_time, variables, state, version)
            SELECT 'queue-instance-' || g, 'queue-definition', 'approval', 'active', now() - g * interval '1 second',
                '{{}}'::jsonb, '', 1
            FROM generate_series(1, {count}) AS g""")
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_tasks (id, instance_id, definition_id, definition_key, task_definition_key, name,
                candidate_users, candidate_groups, priority, status, created)
            SELECT 'queue-' || g, 'queue-instance-' || g, 'queue-definition', 'approval', 'review', 'Review ' || g,
                '[]'::jsonb, CASE WHEN g % 2 = 0 THEN '["sales"]'::jsonb ELSE '["ops"]'::jsonb END, g % 100,
                'created', now() - g * interval '1 second'
            FROM generate_series(1, {count}) AS g""")
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_task_candidates (task_id, kind, value, open, assigned)
            SELECT 'queue-' || g, 'group', CASE WHEN g % 2 = 0 THEN 'sales' ELSE 'ops' END, true, false
            FROM generate_series(1, {count}) AS g""")
        )
        # the task inbox rows the gateway writes with every open task (`repository.inbox_rows`)
        await conn.execute(
            sa.text("""
            INSERT INTO embedded_task_inbox (task_id, key, instance_id, definition_key, status, name, priority, created)
            SELECT t.id, k.key, t.instance_id, t.definition_key, t.status, t.name, t.priority, t.created
            FROM embedded_tasks t CROSS JOIN LATERAL (VALUES ('*'), ('instance:' || t.instance_id),
                ('definition:' || t.definition_key), ('status:' || t.status),
                ('group:' || (t.candidate_groups ->> 0))) AS k(key)
            WHERE t.id LIKE 'queue-%'""")
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE"))
    await engine.dispose()


async def answers(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def health() -> None:
            (await client.get("/health")).raise_for_status()

        latencies, _ = await timed(health, 200)
        print(f"  baseline GET /health     : {summary(latencies)} (the machine's floor for one request)")
        for path in ("/statistics", "/bottlenecks", "/tasks/statistics", "/performance"):

            async def cached(path: str = path) -> None:
                (await client.get(f"/api/processes{path}", params={"timezone": "Europe/Berlin"})).raise_for_status()

            await timed(cached, 5)
            latencies, _ = await timed(cached, 200)
            print(f"  cached {path:18}: {summary(latencies)}")
        start = datetime.now(UTC) - timedelta(days=30)
        for path in ("/statistics", "/bottlenecks"):
            offsets = itertools.count()

            async def cold(path: str = path, offsets: Iterator[int] = offsets) -> None:
                since = (start + timedelta(seconds=next(offsets))).isoformat()
                response = await client.get(
                    f"/api/processes{path}", params={"from": since, "timezone": "Europe/Berlin"}
                )
                response.raise_for_status()

            await timed(cold, 3)
            latencies, _ = await timed(cold, 30)
            print(f"  cold   {path:18}: {summary(latencies)}")
        body = (await client.get("/api/processes/statistics")).json()
        print(f"  (summary: {body['summary']['total_instances']:,} instances, {len(body['by_day'])} days)")


async def claim_next(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=40)) as client:
        users = itertools.count()

        async def claim() -> None:
            response = await client.post(
                "/api/processes/tasks/claim-next",
                json={"candidate_groups": ["sales"]},
                headers={"X-User-Id": f"user-{next(users)}"},
            )
            assert response.status_code == 200, response.text

        await timed(claim, 40, concurrency=20)
        latencies, rate = await timed(claim, 600, concurrency=20)
        print(f"  claim-next, 20 concurrent callers: {summary(latencies)} ({rate:.0f}/s)")


def main(parts: tuple[str, ...] = ("answers", "queue")) -> None:
    """Both parts by default; `python -m bench.analytics queue` runs only the task-queue part."""
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    env = {
        "PM_DATABASE_URL": database_url(),
        "PM_ENGINE_TYPE": "embedded",
        "PM_ENGINE_NAME": ENGINE,
        "PM_LOG_LEVEL": "warning",
        # The projection's rounds would read the (empty) embedded history and replace the seeded rows: after the
        # first round at start, none runs during the bench.
        "PM_ANALYTICS_EVENT_INTERVAL": "86400",
        "PM_ANALYTICS_SYNC_INTERVAL": "86400",
        "PM_ANALYTICS_OVERDUE_INTERVAL": "86400",
    }
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env={**os.environ, **env}, check=True)
        port = free_port()
        with server(["-m", "gateway.cli"], port, env={**env, "PM_PORT": str(port)}) as base:
            if "answers" in parts:
                asyncio.run(seed_projection())
                print(
                    f"analytics on PostgreSQL: {INSTANCES:,} instances, {INSTANCES * RUNS_PER_INSTANCE:,} activity "
                    f"runs, {INSTANCES:,} tasks in the projection"
                )
                asyncio.run(answers(base))
            if "queue" in parts:
                asyncio.run(seed_open_tasks(OPEN_TASKS))
                print(f"task queue with {OPEN_TASKS:,} open embedded tasks:")
                asyncio.run(claim_next(base))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("answers", "queue"))
