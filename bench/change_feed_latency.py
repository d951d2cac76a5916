"""Change feed latency (issue 13: from an engine change to its event in the outbox, p95 ≤ 2 s).

For each HTTP engine of the conformance suite (its simulator), a gateway runs in this process with the production
feed settings (PM_EVENTS_CHANGE_FEED_INTERVAL 0.5 s, PM_EVENTS_CHANGE_FEED_SETTLE 0.5 s). Instances of the
`approval` scenario are started at random moments, so the samples spread over the feed's cycle; the engine
creates the user task while it answers the start, and the latency is the time from that answer to the
`task.created` event showing in `GET /events` (polled every 10 ms).

    python -m bench.change_feed_latency [samples per engine, default 20]
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from bench.common import percentile
from gateway.bootstrap import create_app
from gateway.engines.testing import Harness
from gateway.settings import Settings
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import RealEngineHarness

TARGET_SECONDS = 2.0
WAIT_SECONDS = 30.0


async def wait_for_task_created(client: httpx.AsyncClient, instance_id: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        page = await client.get("/api/processes/events", params={"types": "task.created", "limit": 1000})
        if any(event["instance_id"] == instance_id for event in page.json()["items"]):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no task.created for instance {instance_id} after {WAIT_SECONDS} s")


async def measure(harness: Harness, samples: int, workdir: Path) -> list[float]:
    """Engine change → outbox latencies in milliseconds on one engine."""
    settings = Settings(
        engines=[{"name": harness.id, "default": True, **harness.engine}],
        database_url=f"sqlite+aiosqlite:///{workdir / harness.id}.db",
    )
    transports = {harness.id: harness.make_transport()} if harness.make_transport else None
    app = create_app(settings, engine_transports=transports)
    async with LifespanManager(app) as manager:
        if harness.prepare is not None:
            await harness.prepare(app.state.registry.get(harness.id).adapter)
        interval = app.state.events.settings.change_feed_interval
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            files = {"file": ("approval.bpmn", harness.bpmn["approval"], "application/xml")}
            (await client.post("/api/processes/definitions", files=files)).raise_for_status()
            latencies = []
            for _ in range(samples):
                await asyncio.sleep(random.uniform(0, interval))
                started = await client.post("/api/processes/instances", json={"definition_key": "approval"})
                started.raise_for_status()
                changed = time.perf_counter()
                await wait_for_task_created(client, started.json()["id"])
                latencies.append((time.perf_counter() - changed) * 1000)
            return latencies


async def measure_all(samples: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    print(
        f"change feed latency, engine change → outbox, {samples} samples per engine (target: p95 ≤ {TARGET_SECONDS:.0f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for harness in HARNESSES:
            if harness.engine["type"] == "embedded" or isinstance(harness, RealEngineHarness):
                continue  # the embedded engine writes its events with the change; real engines are not measured here
            latencies = await measure(harness, samples, Path(tmp))
            p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            verdict = "ok" if p95 <= TARGET_SECONDS * 1000 else "OVER TARGET"
            print(f"  {harness.id:<10} p50={p50:7.1f} ms  p95={p95:7.1f} ms  max={max(latencies):7.1f} ms  {verdict}")


def main(samples: int = 20) -> None:
    asyncio.run(measure_all(samples))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
