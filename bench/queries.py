"""Queries of issue 20: variable conditions on the embedded engine, and the merged inbox over four engines.

1. The embedded engine on PostgreSQL with 100,000 instances (bulk-inserted, each with four variables in the
   variable index), GET /instances with variable conditions through the HTTP API (target p95 <= 30 ms), after
   ANALYZE.
2. GET /tasks?engine=* (first page, 50 tasks) over four engines: the embedded one on PostgreSQL and the three
   simulated HTTP engines (Camunda 7, Flowable, Camunda 8) of the test suite, in one process through the ASGI
   app (target p95 <= 100 ms). The simulators answer in memory but in this process: what is measured is the
   gateway's work (four engine queries in parallel, their mapping, the merge and the cursor) plus the simulators'
   own handling of each request, and that of the gateway's background loops (change feeds, incident detection,
   analytics) polling them. A Camunda 7 or Flowable window is two engine requests (the task query and its count),
   plus one identity-link read per task of that engine that makes the page (neither engine returns candidates
   with its tasks): the newest-first page holds Camunda 8 tasks only, the page sorted by name Camunda 7 ones only.

Uses PM_BENCH_DATABASE_URL's server (default: local PostgreSQL, user postgres), in databases of its own that it
drops at the end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import free_port, server, summary, timed
from bench.embedded import APPROVAL, admin, analyze, database_url

DATABASE = "pm_bench_queries"
MERGED_DATABASE = "pm_bench_merged"
INSTANCES = 100_000
TASKS_PER_ENGINE = 60


async def seed_instances(count: int) -> None:
    """Instances of one definition, each with order_no (String), amount (Integer), customer (String, 1 of 1,000)
    and region (String, 1 of 4), and their rows in the variable index: one INSERT ... SELECT per table."""
    engine = create_async_engine(database_url(DATABASE))
    async with engine.begin() as conn:
        definition = (
            await conn.execute(sa.text("SELECT id FROM embedded_definitions LIMIT 1"))
        ).scalar() or "seed-definition"
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_instances (id, definition_id, definition_key, status, start_time, variables, state,
                version, business_key)
            SELECT 'seed-' || g, :definition, 'approval', 'active', now() - g * interval '1 second',
                jsonb_build_object(
                    'order_no', jsonb_build_object('value', 'order-' || g, 'type', 'String'),
                    'amount', jsonb_build_object('value', g % 50000, 'type', 'Integer'),
                    'customer', jsonb_build_object('value', 'customer-' || (g % 1000), 'type', 'String'),
                    'region', jsonb_build_object('value', (ARRAY['EU','US','APAC','LATAM'])[g % 4 + 1], 'type', 'String')),
                '{{}}', 1, 'bk-' || g
            FROM generate_series(1, {count}) AS g"""),
            {"definition": definition},
        )
        await conn.execute(
            sa.text(f"""
            INSERT INTO embedded_variable_index (scope_id, name, instance_id, text_value, number_value)
            SELECT 'seed-' || g, v.name, 'seed-' || g, v.text_value, v.number_value
            FROM generate_series(1, {count}) AS g,
            LATERAL (VALUES
                ('order_no', 'order-' || g, NULL::float8),
                ('amount', NULL, (g % 50000)::float8),
                ('customer', 'customer-' || (g % 1000), NULL),
                ('region', (ARRAY['EU','US','APAC','LATAM'])[g % 4 + 1], NULL)) AS v(name, text_value, number_value)""")
        )
    await engine.dispose()


async def variable_queries(base: str) -> None:
    queries: dict[str, dict[str, Any]] = {
        "order_no eq (1 match)": {"variable": 'order_no:eq:"order-4711"'},
        "amount gt 49,900 (0.2%)": {"variable": "amount:gt:49900"},
        "customer eq (0.1%)": {"variable": 'customer:eq:"customer-42"'},
        'customer like "customer-42%" (1.1%)': {"variable": 'customer:like:"customer-42%"'},
        "amount in [7, 4711] (4 matches)": {"variable": "amount:in:[7,4711]"},
        "amount gte 49,000 + region eq": {"variable": ["amount:gte:49000", 'region:eq:"EU"']},
        "amount lt 100, sort business_key asc": {"variable": "amount:lt:100", "sort": "business_key", "order": "asc"},
        "region eq (25%), newest first": {"variable": 'region:eq:"EU"'},
        "region neq (75%), page 20": {"variable": 'region:neq:"EU"', "page": 20},
    }
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for label, params in queries.items():

            async def call(params: dict[str, Any] = params) -> None:
                (await client.get("/api/processes/instances", params=params)).raise_for_status()

            await timed(call, 20)
            latencies, _ = await timed(call, 200)
            total = (await client.get("/api/processes/instances", params=params)).json()["total"]
            print(f"  instances, {label:40} total={total:>6}: {summary(latencies)}")


def embedded_variable_queries() -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    # one worker: what is measured is one query's latency, not throughput
    env = {
        "PM_DATABASE_URL": database_url(DATABASE),
        "PM_ENGINE_TYPE": "embedded",
        "PM_LOG_LEVEL": "warning",
        "PM_WORKERS": "1",
    }
    try:
        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env={**os.environ, **env}, check=True)
        port = free_port()
        with server(["-m", "gateway.cli"], port, env={**env, "PM_PORT": str(port)}) as base:
            response = httpx.post(f"{base}/api/processes/definitions", files={"file": ("approval.bpmn", APPROVAL)})
            response.raise_for_status()
            asyncio.run(seed_instances(INSTANCES))
            asyncio.run(analyze(DATABASE))
            print(f"embedded engine on PostgreSQL, {INSTANCES:,} instances with 4 indexed variables, after ANALYZE:")
            asyncio.run(variable_queries(base))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


async def merged_first_page() -> None:
    from gateway.bootstrap import create_app
    from gateway.settings import Settings
    from tests.conformance.harnesses import camunda7, flowable, zeebe

    harnesses = {"c7": camunda7.HARNESS, "flowable": flowable.HARNESS, "c8": zeebe.HARNESS}
    engines: list[dict[str, Any]] = [{"name": "local", "type": "embedded", "default": True}]
    engines += [{"name": name, **harness.engine} for name, harness in harnesses.items()]
    transports = {name: harness.make_transport() for name, harness in harnesses.items() if harness.make_transport}
    settings = Settings(engines=engines, database_url=database_url(MERGED_DATABASE), log_level="warning")
    app = create_app(settings, engine_transports=transports)  # type: ignore[arg-type]
    async with (
        LifespanManager(app, startup_timeout=300) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gw") as client,
    ):
        bpmn = {"local": APPROVAL, **{name: harness.bpmn["approval"] for name, harness in harnesses.items()}}
        for engine, xml in bpmn.items():
            deployed = await client.post(
                "/api/processes/definitions", params={"engine": engine}, files={"file": ("a.bpmn", xml)}
            )
            deployed.raise_for_status()
            for n in range(TASKS_PER_ENGINE):
                started = await client.post(
                    "/api/processes/instances",
                    params={"engine": engine},
                    json={"definition_key": "approval", "variables": {"amount": n}},
                )
                started.raise_for_status()

        for label, params in {
            "first page, 50 newest tasks": {"engine": "*", "size": 50},
            "first page, sorted by name": {"engine": "*", "size": 50, "sort": "name", "order": "asc"},
            "first page, amount eq 7": {"engine": "*", "size": 50, "variable": "amount:eq:7"},
        }.items():

            async def call(params: dict[str, Any] = params) -> None:
                response = await client.get("/api/processes/tasks", params=params)
                response.raise_for_status()
                assert response.json()["partial"] is False

            await timed(call, 20)
            latencies, _ = await timed(call, 200)
            body = (await client.get("/api/processes/tasks", params=params)).json()
            print(
                f"  tasks?engine=*, {label:30} total={body['total']:>4} items={len(body['items']):>2}: {summary(latencies)}"
            )


def merged_inbox() -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{MERGED_DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{MERGED_DATABASE}"'))
    try:
        print(
            f"merged inbox over 4 engines (embedded on PostgreSQL + 3 simulators, {TASKS_PER_ENGINE} open tasks each):"
        )
        asyncio.run(merged_first_page())
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{MERGED_DATABASE}" WITH (FORCE)'))


def main(parts: list[str] | None = None) -> None:
    """Both benchmarks, or those named: `python -m bench.queries [variables] [merged]`."""
    parts = parts or ["variables", "merged"]
    if "variables" in parts:
        embedded_variable_queries()
    if "merged" in parts:
        merged_inbox()


if __name__ == "__main__":
    main(sys.argv[1:])
