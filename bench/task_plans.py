"""The plans PostgreSQL picks for the task-list queries right after a bulk load (stale statistics).

Seeds 100,000 open tasks as bench/embedded.py does (autovacuum off, no ANALYZE), runs each documented
task-list query through the embedded engine's repository, and prints for each SQL statement its plan's
node types and the server-side execution time (EXPLAIN ANALYZE), then the same after ANALYZE. The plan
shapes are what to read on a busy machine: a query is index-driven when it has no Seq Scan over the task
tables and no Nested Loop fed by one.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import sqlalchemy as sa

from adapters.embedded import repository
from bench.embedded import OPEN_TASKS, admin, analyze as run_analyze, database_url, seed_open_tasks
from gateway.db import Database
from gateway.schemas import TaskQuery

DATABASE = "pm_bench_task_plans"
QUERIES: dict[str, dict[str, Any]] = {
    "all open": {},
    "candidate_group + unassigned": {"candidate_group": "sales", "unassigned": True},
    "candidate_group + due_before": {"candidate_group": "ops", "due_before": "2030-01-01T00:00:00Z"},
    "candidate_group, sort by due": {"candidate_group": "sales", "sort": "due", "order": "asc"},
    "candidate_group, sort by priority": {"candidate_group": "sales", "sort": "priority"},
    "assignee": {"assignee": "user-8"},
    "definition_key": {"definition_key": "invoice"},
    "sort by priority": {"sort": "priority"},
    "sort by due, ascending": {"sort": "due", "order": "asc"},
    "unassigned, sort by name": {"unassigned": True, "sort": "name"},
    "page 100": {"page": 100},
}


def _nodes(plan: dict[str, Any]) -> list[str]:
    name = plan["Node Type"] + (f" on {plan['Relation Name']}" if "Relation Name" in plan else "")
    if "Index Name" in plan:
        name += f" ({plan['Index Name']})"
    return [name] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


async def explain_all(label: str) -> None:
    db = Database(database_url(DATABASE))
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        captured.append((statement, parameters))

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    print(label)
    for name, params in QUERIES.items():
        captured.clear()
        async with db.sessionmaker() as session:
            await repository.list_tasks(session, TaskQuery.model_validate(params))
        statements = list(captured)
        async with db.engine.connect() as conn:
            for statement, parameters in statements:
                if not re.match(r"\s*SELECT", statement):
                    continue
                raw = await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
                value = raw.scalar()
                (plan,) = json.loads(value) if isinstance(value, str) else value
                kind = "count" if "count(" in statement.lower() else "page "
                print(f"  {name:34} {kind} {plan['Execution Time']:8.1f} ms  {' > '.join(_nodes(plan['Plan']))}")
    sa.event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    await db.dispose()


def main() -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    try:

        async def migrate() -> None:
            db = Database(database_url(DATABASE))
            await db.migrate()
            await db.dispose()

        asyncio.run(migrate())
        asyncio.run(seed_open_tasks(OPEN_TASKS, DATABASE))
        asyncio.run(explain_all(f"{OPEN_TASKS:,} open tasks right after the bulk load (stale statistics):"))
        asyncio.run(run_analyze(DATABASE))
        asyncio.run(explain_all(f"{OPEN_TASKS:,} open tasks after ANALYZE:"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
