"""Incident detection latency (issue 7: an incident appears in the gateway within 2 s of the engine recording it).

For each engine of the conformance suite — the embedded engine, each HTTP engine's simulator and the real
engines under engines/ (started here when java and mvn are on PATH; otherwise listed as not measured) — a gateway
runs in this process with the production poll interval (PM_INCIDENTS_POLL_INTERVAL, default 1 s). Instances
of the `charging` scenario are started with `fail = true` at random moments, so the samples spread over the
poll cycle; the latency of each is the incident's `detected_at` (the gateway) minus its `created` (the engine).

    python -m bench.incident_latency [samples per engine, default 20]
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from bench.common import percentile
from gateway.bootstrap import create_app
from gateway.engines.testing import Harness
from gateway.settings import Settings
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import RealEngineHarness
from tests.real_engines.runner import EngineUnavailable, RealEngines, missing_tools

TARGET_SECONDS = 2.0
WAIT_SECONDS = 30.0


async def wait_for_incident(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        items = (await client.get("/api/processes/incidents", params={"instance_id": instance_id})).json()["items"]
        if items:
            return items[0]
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no incident for instance {instance_id} after {WAIT_SECONDS} s")


async def measure(harness: Harness, samples: int, workdir: Path) -> list[float]:
    """Detection latencies in milliseconds on one engine."""
    settings = Settings(
        engines=[{"name": harness.id, "default": True, **harness.engine}],
        database_url=f"sqlite+aiosqlite:///{workdir / harness.id}.db",
    )
    transports = {harness.id: harness.make_transport()} if harness.make_transport else None
    app = create_app(settings, engine_transports=transports)
    async with LifespanManager(app) as manager:
        if harness.prepare is not None:
            await harness.prepare(app.state.registry.get(harness.id).adapter)
        poll_interval = app.state.incidents.settings.poll_interval
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            files = {"file": ("charging.bpmn", harness.bpmn["charging"], "application/xml")}
            (await client.post("/api/processes/definitions", files=files)).raise_for_status()
            latencies = []
            for _ in range(samples):
                await asyncio.sleep(random.uniform(0, poll_interval))
                started = await client.post(
                    "/api/processes/instances", json={"definition_key": "charging", "variables": {"fail": True}}
                )
                started.raise_for_status()
                incident = await wait_for_incident(client, started.json()["id"])
                detected = datetime.fromisoformat(incident["detected_at"]) - datetime.fromisoformat(incident["created"])
                latencies.append(detected.total_seconds() * 1000)
            return latencies


def pointed_at_real_engine(harness: RealEngineHarness, engines: RealEngines | None) -> Harness | str:
    """The harness pointed at its running real engine, or why it cannot be measured here."""
    if engines is None:
        return missing_tools() or "no real engines"
    try:
        running = engines.get(harness.real_engine)
    except EngineUnavailable as error:
        return str(error).splitlines()[0]
    running.reset()
    return dataclasses.replace(harness, engine={**harness.engine, "url": running.url})


async def measure_all(samples: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    print(f"incident detection latency, {samples} samples per engine (target: within {TARGET_SECONDS:.0f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        engines = RealEngines(Path(tmp)) if missing_tools() is None else None
        try:
            await measure_each(samples, Path(tmp), engines)
        finally:
            if engines is not None:
                engines.close()


async def measure_each(samples: int, workdir: Path, engines: RealEngines | None) -> None:
    for harness in HARNESSES:
        if isinstance(harness, RealEngineHarness):
            resolved = pointed_at_real_engine(harness, engines)
            if isinstance(resolved, str):
                print(f"  {harness.id:<14} not measured: {resolved}")
                continue
            harness = resolved
        latencies = await measure(harness, samples, workdir)
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        verdict = "ok" if p95 <= TARGET_SECONDS * 1000 else "OVER TARGET"
        print(f"  {harness.id:<14} p50={p50:7.1f} ms  p95={p95:7.1f} ms  max={max(latencies):7.1f} ms  {verdict}")


def main(samples: int = 20) -> None:
    asyncio.run(measure_all(samples))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
