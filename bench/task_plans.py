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
import sys
from typing import Any

from bench.embedded import admin, analyze as run_analyze, database_url
from bench.task_inbox import FILTERS, OPEN_TASKS, ORDERS, SORTS, explain, seed
from gateway.db import Database

DATABASE = "pm_bench_task_plans"
QUERIES: dict[str, dict[str, Any]] = {
    f"{name}, sort {sort} {order}": {**filters, "sort": sort, "order": order}
    for name, filters in FILTERS.items()
    for sort in SORTS
    for order in ORDERS
}


async def explain_all(label: str) -> None:
    db = Database(database_url(DATABASE))
    print(label)
    worst = 0.0
    for name, params in QUERIES.items():
        timings, flagged = await explain(db, params)
        worst = max(worst, sum(timings))
        times = " + ".join(f"{t:.2f}" for t in timings)
        print(f"  {name:55} SQL {sum(timings):7.2f} ms ({times}){'  ' + ' | '.join(flagged) if flagged else ''}")
    print(f"  slowest SQL total: {worst:.2f} ms")
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
