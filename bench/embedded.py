"""The embedded engine through the HTTP API on PostgreSQL (issue: gateway core).

Prints start and complete latency (target p50 ≤ 4 ms each) and task-list latency with 100,000 open tasks
(target p95 ≤ 30 ms for every documented filter and sort), twice: right after the bulk load with the planner's
statistics stale (autovacuum off for the task tables, no ANALYZE: what a fresh deployment sees), then after
ANALYZE. Uses PM_BENCH_DATABASE_URL's server (default: local PostgreSQL, user postgres), in a database of its
own that it drops at the end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bench.common import free_port, server, summary, timed

SERVER_URL = os.environ.get("PM_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres:pm-ci@127.0.0.1:5432/postgres")
DATABASE = "pm_bench_embedded"
OPEN_TASKS = 100_000
APPROVAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://example.com">
  <bpmn:process id="approval" name="Approval" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" name="Review request" camunda:candidateGroups="sales"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def database_url(database: str = DATABASE) -> str:
    return sa.make_url(SERVER_URL).set(database=database).render_as_string(hide_password=False)


async def admin(sql: str) -> None:
    engine = create_async_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(sql))
    await engine.dispose()


async def seed_open_tasks(count: int, database: str = DATABASE) -> None:
    """Copy rows shaped like the engine's own: half in group sales, a quarter assigned, due dates spread.
    Autovacuum is off for the task tables and nothing runs ANALYZE: the planner's statistics stay stale."""
    engine = create_async_engine(database_url(database))
    async with engine.begin() as conn:
        for table in ("embedded_tasks", "embedded_task_candidates", "embedded_task_inbox"):
            await conn.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_tasks (id, instance_id, definition_id, definition_key, task_definition_key, name,
                assignee, candidate_users, candidate_groups, priority, due, status, created, tenant_id)
            SELECT 'seed-' || g, 'seed-instance-' || g, 'seed-definition',
                CASE WHEN g % 3 = 0 THEN 'invoice' ELSE 'approval' END, 'review', 'Review request ' || g,
                CASE WHEN g % 4 = 0 THEN 'user-' || (g % 50) END, '[]'::jsonb,
                CASE WHEN g % 2 = 0 THEN '["sales"]'::jsonb ELSE '["ops"]'::jsonb END, g % 100,
                now() + (g % 30) * interval '1 day', CASE WHEN g % 4 = 0 THEN 'assigned' ELSE 'created' END,
                now() - g * interval '1 second', NULL
            FROM generate_series(1, {count}) AS g""")
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_task_candidates (task_id, kind, value, open, assigned)
            SELECT 'seed-' || g, 'group', CASE WHEN g % 2 = 0 THEN 'sales' ELSE 'ops' END, true, g % 4 = 0
            FROM generate_series(1, {count}) AS g""")
        )
        await fill_inbox(conn)
    await engine.dispose()


async def fill_inbox(conn: AsyncConnection) -> None:
    """The task inbox rows of every open task, in SQL (what `repository.inbox_rows` writes, in bulk; chr(31) is
    `repository.QUALIFIER`)."""
    await conn.execute(
        sa.text("""
        INSERT INTO embedded_task_inbox (task_id, key, instance_id, definition_key, tenant_id, status, assignee, name,
            priority, due, follow_up, created)
        SELECT t.id, k.key, t.instance_id, t.definition_key, t.tenant_id, t.status, t.assignee, t.name, t.priority,
            t.due, t.follow_up, t.created
        FROM embedded_tasks t,
        LATERAL (SELECT CASE WHEN t.assignee IS NULL THEN 'unassigned' ELSE 'assigned' END) AS a(assignment),
        LATERAL (
            SELECT '*' UNION ALL SELECT 'instance:' || t.instance_id
            UNION ALL SELECT 'definition:' || t.definition_key UNION ALL SELECT 'status:' || t.status
            UNION ALL SELECT 'assignee:' || t.assignee WHERE t.assignee IS NOT NULL
            UNION ALL SELECT 'tenant:' || t.tenant_id WHERE t.tenant_id IS NOT NULL
            UNION ALL SELECT '*' || chr(31) || a.assignment
            UNION ALL SELECT c.key || q.qualifier FROM (
                SELECT DISTINCT 'user:' || u FROM jsonb_array_elements_text(t.candidate_users) AS u
                UNION ALL SELECT DISTINCT 'group:' || g FROM jsonb_array_elements_text(t.candidate_groups) AS g
            ) AS c(key), (
                SELECT '' UNION ALL SELECT chr(31) || a.assignment
                UNION ALL SELECT chr(31) || 'definition:' || t.definition_key
                UNION ALL SELECT chr(31) || 'tenant:' || t.tenant_id WHERE t.tenant_id IS NOT NULL
            ) AS q(qualifier)
        ) AS k(key)
        WHERE t.ended_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM embedded_task_inbox i WHERE i.task_id = t.id)""")
    )


async def analyze(database: str = DATABASE) -> None:
    engine = create_async_engine(database_url(database))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE"))
    await engine.dispose()


async def start_and_complete(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
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

        await timed(start, 50)
        started.clear()
        latencies, rate = await timed(start, 400)
        print(f"  start instance : {summary(latencies)} ({rate:.0f}/s)")
        tasks = iter(
            [
                (await client.get("/api/processes/tasks", params={"instance_id": i})).json()["items"][0]["id"]
                for i in started
            ]
        )

        async def complete() -> None:
            response = await client.post(
                f"/api/processes/tasks/{next(tasks)}/complete", json={"variables": {"approved": True}}
            )
            assert response.status_code == 204, response.text

        latencies, rate = await timed(complete, 400)
        print(f"  complete task  : {summary(latencies)} ({rate:.0f}/s)")


async def task_lists(base: str) -> None:
    queries = {
        "all open": {},
        "candidate_group + unassigned": {"candidate_group": "sales", "unassigned": "true"},
        "assignee": {"assignee": "user-8"},
        "definition_key": {"definition_key": "invoice"},
        "sort by priority": {"sort": "priority"},
        "sort by due, ascending": {"sort": "due", "order": "asc"},
        "page 100": {"page": 100},
        "candidate_group + due_before": {"candidate_group": "ops", "due_before": "2030-01-01T00:00:00Z"},
        "candidate_group, sort by due": {"candidate_group": "sales", "sort": "due", "order": "asc"},
        "candidate_group, sort by priority": {"candidate_group": "sales", "sort": "priority"},
        "candidate_user": {"candidate_user": "user-3"},
        "status assigned": {"status": "assigned"},
        "unassigned, sort by name": {"unassigned": "true", "sort": "name"},
        "due_before": {"due_before": "2026-12-03T00:00:00Z"},
    }
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for label, params in queries.items():

            async def call(params: dict[str, str] = params) -> None:
                (await client.get("/api/processes/tasks", params=params)).raise_for_status()

            await timed(call, 30)
            latencies, _ = await timed(call, 200)
            total = (await client.get("/api/processes/tasks", params=params)).json()["total"]
            print(f"  list tasks, {label:30} total={total:>6}: {summary(latencies)}")


def main() -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    env = {"PM_DATABASE_URL": database_url(), "PM_ENGINE_TYPE": "embedded", "PM_LOG_LEVEL": "warning"}
    try:
        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env={**os.environ, **env}, check=True)
        port = free_port()
        with server(["-m", "gateway.cli"], port, env={**env, "PM_PORT": str(port)}) as base:
            print("embedded engine through the HTTP API on PostgreSQL, one client")
            asyncio.run(start_and_complete(base))
            asyncio.run(seed_open_tasks(OPEN_TASKS))
            print(f"with {OPEN_TASKS:,} more open tasks, right after the bulk load (stale statistics, no ANALYZE):")
            asyncio.run(task_lists(base))
            asyncio.run(analyze())
            print(f"with {OPEN_TASKS:,} more open tasks, after ANALYZE:")
            asyncio.run(task_lists(base))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
