"""First render of the console's incident list with 10,000 incidents (issue 16: target <= 1 s).

A gateway (embedded engine, SQLite) is served on loopback with 10,000 incidents written straight into its
Incident Center tables; headless Debian chromium (playwright-core, from `make console`) opens /console#/incidents
in a new browser context per sample (an empty HTTP cache: the first load in a new browser) and the time from
navigation start to the first page of the list in the table is measured in the browser (performance.now()). The
machine's load average is printed with the figures (they mean little on a busy machine). Needs node, chromium and
`make console`.

    python -m bench.console [samples, default 10]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import percentile
from gateway.db import Database
from gateway.settings import Settings
from incidents.models import error_hash, incidents
from tests.events.conftest import serve

INCIDENTS = 10_000
TARGET_MS = 1000.0
ROOT = Path(__file__).resolve().parents[1]


async def seed(db: Database) -> None:
    """10,000 open incidents over 50 definitions, 20 activities and 5 error messages, created over 30 days."""
    now = datetime.now(UTC)
    rows = []
    for n in range(INCIDENTS):
        message = f"Cannot evaluate '${{amount > {n % 5}}}': '>' not supported between instances of 'str' and 'int'"
        created = now - timedelta(minutes=n * 4)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "engine": "default",
                "incident_type": "conditionError",
                "message": message,
                "error_hash": error_hash(message),
                "status": "open",
                "severity": "high",
                "instance_id": str(uuid.uuid4()),
                "definition_id": f"process-{n % 50}:1",
                "definition_key": f"process-{n % 50}",
                "activity_id": f"activity-{n % 20}",
                "activity_name": f"Activity {n % 20}",
                "retry_count": 0,
                "auto_retries": 0,
                "escalation_level": 0,
                "created": created,
                "detected_at": created,
                "updated": created,
                "status_changed_at": created,
            }
        )
    async with db.engine.begin() as connection:
        await connection.execute(incidents.insert(), rows)


async def run(samples: int) -> list[float]:
    # Steady state: seeded incidents older than the escalation timeout would otherwise all be escalated (and aged)
    # in one burst at start-up, which is the Incident Center's cost, not the console's.
    os.environ["PM_INCIDENTS_ESCALATION_TIMEOUT"] = "0"
    os.environ["PM_INCIDENTS_SEVERITY_AGE_STEP"] = "0"
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite+aiosqlite:///{workdir}/console.db"
        db = Database(url)
        await db.migrate()
        await seed(db)
        await db.dispose()
        async with serve(Settings(database_url=url, auto_migrate=False, engine_type="embedded")) as gateway:
            total = (await gateway.client.get("/api/processes/incidents")).json()["total"]
            assert total == INCIDENTS, f"seeded {total} incidents"
            node = await asyncio.create_subprocess_exec(
                "node",
                str(ROOT / "bench" / "console_first_render.mjs"),
                gateway.url,
                str(samples),
                stdout=asyncio.subprocess.PIPE,
            )
            output, _ = await node.communicate()
            if node.returncode != 0:
                raise RuntimeError("the browser run failed")
            return json.loads(output.decode().strip().splitlines()[-1])["samples_ms"]


def main(samples: int = 10) -> None:
    logging.disable(logging.WARNING)
    times = asyncio.run(run(samples))
    print(
        f"console incident list, {INCIDENTS} incidents, first render (navigation start to first page shown), "
        f"{len(times)} samples: first {times[0]:.0f} ms, p50 {percentile(times, 0.5):.0f} ms, "
        f"p95 {percentile(times, 0.95):.0f} ms, max {max(times):.0f} ms (target <= {TARGET_MS:.0f} ms); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
