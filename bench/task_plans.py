"""The plans PostgreSQL picks for the task-list queries right after a bulk load (stale statistics).

Seeds 100,000 open tasks as bench/task_inbox.py does (autovacuum off, no ANALYZE), runs every filter x sort x
order of bench/task_inbox.py through the embedded engine's repository, and prints for each its statements'
server-side execution time (EXPLAIN ANALYZE, in the same transaction, so the list's planner settings apply) and
plan nodes, then the same after ANALYZE (`--analyze`). The plan shapes and server times are what to read on a
busy machine, where the HTTP figures mostly measure the wait for a CPU: a list is index-driven when its page is
an Index Scan under a Limit with no Sort, Bitmap or Seq Scan node.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

import sqlalchemy as sa

from adapters.embedded import repository
from bench.embedded import admin, analyze as run_analyze, database_url
from bench.task_inbox import FILTERS, OPEN_TASKS, ORDERS, SORTS, seed
from gateway.db import Database
from gateway.schemas import TaskQuery

DATABASE = "pm_bench_task_plans"
QUERIES: dict[str, dict[str, Any]] = {
    f"{name}, sort {sort} {order}": {**filters, "sort": sort, "order": order}
    for name, filters in FILTERS.items()
    for sort in SORTS
    for order in ORDERS
}
UNWANTED = ("Sort", "Bitmap", "Seq Scan")


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
    worst = 0.0
    for name, params in QUERIES.items():
        captured.clear()
        async with db.sessionmaker() as session:
            await repository.list_tasks(session, TaskQuery.model_validate(params))
        statements = list(captured)
        timings, shapes = [], []
        async with db.engine.connect() as conn:
            for statement, parameters in statements:
                if not re.match(r"\s*SELECT", statement) or "set_config" in statement or "current_setting" in statement:
                    await conn.exec_driver_sql(statement, parameters)
                    continue
                raw = await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
                value = raw.scalar_one()
                (plan,) = json.loads(value) if isinstance(value, str) else value
                timings.append(plan["Execution Time"])
                shapes.append(" > ".join(_nodes(plan["Plan"])))
        # the page's tasks read by id (at most a page of primary-key lookups) are not what can go wrong
        flagged = [s for s in shapes if any(word in s for word in UNWANTED) and not s.endswith("(embedded_tasks_pkey)")]
        worst = max(worst, sum(timings))
        times = " + ".join(f"{t:.2f}" for t in timings)
        print(f"  {name:55} SQL {sum(timings):7.2f} ms ({times}){'  ' + ' | '.join(flagged) if flagged else ''}")
    print(f"  slowest SQL total: {worst:.2f} ms")
    sa.event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    await db.dispose()


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.task_plans [--analyze]`."""
    argv = sys.argv[1:] if argv is None else argv
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DATABASE}"'))
    try:

        async def migrate() -> None:
            db = Database(database_url(DATABASE))
            await db.migrate()
            await db.dispose()

        asyncio.run(migrate())
        asyncio.run(seed(DATABASE))
        asyncio.run(explain_all(f"{OPEN_TASKS:,} open tasks right after the bulk load (stale statistics):"))
        if "--analyze" in argv:
            asyncio.run(run_analyze(DATABASE))
            asyncio.run(explain_all(f"{OPEN_TASKS:,} open tasks after ANALYZE:"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
