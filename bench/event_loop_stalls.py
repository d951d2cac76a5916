"""Event-loop stalls of a running gateway (embedded engine) while it works through a corpus of BPMN.

    python -m bench.event_loop_stalls [CORPUS_DIR ...]

Starts a gateway on a fresh SQLite database (what a new user runs; PM_BENCH_DATABASE_URL picks another) and,
while a prober asks `/health` every 20 ms, runs:
- every field case (`*/run.sh BASE_URL`) under the directories given, printing each PASS / FAIL line;
- every model of the test suite (tests/embedded: one per row of the README's coverage table and the fidelity
  models, runaways included): deploy, start, complete the open tasks;
- large models: a sequence of 400 user tasks (XML parsing and a big task tree), a parallel multi-instance
  over 200 elements (serialising a big workflow at each completion), and instances whose variables are 1 MB.

Prints two measures of stalls: the gateway's own `pm_event_loop_lag_seconds` (how late its event loop ran a 20 ms
heartbeat: the time engine work held it) by bucket, and what a client saw: the probes over 100 ms and the longest one,
their p50 / p99 (a probe also waits for the operating system to schedule the gateway, so on a busy machine it
exceeds the loop's lag). Also the 5xx answers the corpus got and the load average. The gateway runs one worker and a 0.2 s timer interval.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import multiprocessing.queues
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, percentile, server

PROBE_EVERY = 0.020
STALL = 0.100
HEADERS = {"X-User-Id": "bench"}


class Corpus:
    """Runs models through the API and counts what went wrong."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.server_errors: list[str] = []
        self.calls = 0

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, "/api/processes" + path, headers=HEADERS, **kwargs)
        self.calls += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    async def run_model(self, name: str, xml: bytes, variables: dict[str, Any] | None = None, rounds: int = 3) -> None:
        """Deploy, start and complete open tasks (a few rounds); refusals are fine, 5xx are counted."""
        deployed = await self.call("POST", "/definitions", files={"file": (f"{name}.bpmn", xml, "text/xml")})
        if deployed.status_code != 201:
            return
        for definition in deployed.json()["definitions"]:
            started = await self.call(
                "POST", "/instances", json={"definition_id": definition["id"], "variables": variables or {}}
            )
            if started.status_code != 201:
                continue
            instance_id = started.json()["id"]
            for _ in range(rounds):
                tasks = await self.call("GET", "/tasks", params={"instance_id": instance_id, "size": 500})
                open_tasks = [t for t in tasks.json().get("items", []) if t["status"] in ("created", "assigned")]
                if not open_tasks:
                    break
                for task in open_tasks:
                    await self.call("POST", f"/tasks/{task['id']}/complete", json={"variables": {}})
            await self.call("GET", f"/instances/{instance_id}")


async def loop_lag(base: str) -> dict[str, float]:
    """The gateway's `pm_event_loop_lag_seconds` histogram: cumulative heartbeat count by bucket bound ("+Inf": all)."""
    async with httpx.AsyncClient(base_url=base) as client:
        text = (await client.get("/metrics")).text
    buckets = {}
    for line in text.splitlines():
        if line.startswith("pm_event_loop_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    return buckets


def test_suite_models() -> list[tuple[str, bytes, dict[str, Any]]]:
    """The embedded engine's test models: the coverage table's rows and the fidelity module's models."""
    from tests.embedded import test_coverage, test_fidelity
    from tests.embedded.conftest import bpmn

    models = [
        (f"coverage-{index}", bpmn(f"coverage-{index}", row.body, head=row.head), row.variables)
        for index, row in enumerate(test_coverage.ROWS.values())
    ]
    for name, value in sorted(vars(test_fidelity).items()):
        if isinstance(value, bytes) and value.lstrip().startswith(b"<?xml"):
            models.append((name.lower(), value, {}))
    return models


def large_models() -> list[tuple[str, bytes, dict[str, Any]]]:
    from tests.embedded.conftest import bpmn, flow

    ids = [f"step-{index}" for index in range(400)]
    chain = ["start", *ids, "end"]
    sequence = '<bpmn:startEvent id="start"/>' + "".join(f'<bpmn:userTask id="{i}"/>' for i in ids)
    sequence += "".join(flow(a, b) for a, b in itertools.pairwise(chain)) + '<bpmn:endEvent id="end"/>'
    fan_out = (
        '<bpmn:startEvent id="start"/>' + flow("start", "each")
        + '<bpmn:userTask id="each"><bpmn:multiInstanceLoopCharacteristics>'
        "<bpmn:loopCardinality>200</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"
        + flow("each", "end") + '<bpmn:endEvent id="end"/>'
    )  # fmt: skip
    holder = '<bpmn:startEvent id="start"/>' + flow("start", "hold") + '<bpmn:userTask id="hold"/>'
    holder += flow("hold", "end") + '<bpmn:endEvent id="end"/>'
    big = {"payload": {"value": {"rows": [{"n": n, "text": "x" * 40} for n in range(20_000)]}, "type": "Json"}}
    return [
        ("sequence-400", bpmn("sequence-400", sequence), {}),
        ("fan-out-200", bpmn("fan-out-200", fan_out), {}),
        ("big-variables", bpmn("big-variables", holder), big),
    ]


def field_case_scripts(directories: list[str]) -> list[Path]:
    """The `*/run.sh` scripts of the field-case directories, in name order."""
    return [script for directory in directories for script in sorted(Path(directory).glob("*/run.sh"))]


async def field_cases(directories: list[str], base: str) -> list[str]:
    lines = []
    for script in field_case_scripts(directories):
        process = await asyncio.create_subprocess_exec(
            "bash", str(script), base, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace").strip().splitlines()
        lines.append(text[-1] if text else f"FAIL {script.parent.name}: no output")
    return lines


class Prober:
    """Asks `/health` every PROBE_EVERY seconds from a process of its own: in a thread of the bench's process the
    corpus driver's own work (decoding large answers holds the interpreter) would delay the probes and be counted
    as the gateway's stalls. `stop()` returns each probe as (time.monotonic() at its start, its wait), in seconds,
    and the probes that got no answer."""

    def __init__(self, base: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results: multiprocessing.queues.Queue[tuple[list[tuple[float, float]], list[str]]] = context.Queue()
        self._process = context.Process(target=_probe, args=(base, self._stop, self._results), daemon=True)

    def start(self) -> None:
        self._process.start()

    def stop(self) -> tuple[list[tuple[float, float]], list[str]]:
        self._stop.set()
        latencies, failures = self._results.get(timeout=60)
        self._process.join()
        return latencies, failures


def _probe(base: str, stop: Any, results: Any) -> None:
    probes: list[tuple[float, float]] = []
    failures: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.get("/health")
            except httpx.TransportError as exc:
                failures.append(f"{type(exc).__name__} after {time.monotonic() - started:.3f} s")
            probes.append((started, time.monotonic() - started))
            stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - started)))
    results.put((probes, failures))


async def run(base: str, directories: list[str]) -> None:
    prober = Prober(base)
    prober.start()
    lag_before = await loop_lag(base)
    await asyncio.sleep(1)  # a quiet baseline first
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        corpus = Corpus(client)
        started = time.perf_counter()
        outcomes = await field_cases(directories, base)
        models = test_suite_models()
        windows = []
        for name, xml, variables in [*models, *large_models()]:
            begun = time.monotonic()
            await corpus.run_model(name, xml, variables, rounds=2)
            windows.append((name, begun, time.monotonic()))
        await asyncio.sleep(2)  # timers and the poller
        elapsed = time.perf_counter() - started
    probes, probe_failures = prober.stop()
    lag_after = await loop_lag(base)
    for name, begun, ended in windows:
        worst = max((wait for at, wait in probes if begun <= at <= ended), default=0.0)
        if worst > STALL:
            print(f"  {name}: a probe waited {worst * 1000:.0f} ms")
    latencies = [wait for _, wait in probes]
    stalls = [latency for latency in latencies if latency > STALL]
    ms = [latency * 1000 for latency in latencies]
    for line in outcomes:
        print(line)
    print(
        f"corpus: {len(outcomes)} field cases, {len(models)} test-suite models, 3 large models; "
        f"{corpus.calls} API calls in {elapsed:.1f} s; 5xx answers: {len(corpus.server_errors)}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    beats = lag_after["+Inf"] - lag_before["+Inf"]
    held = ", ".join(
        f"over {float(bound) * 1000:.0f} ms: {beats - (lag_after[bound] - lag_before[bound]):.0f}"
        for bound in ("0.05", "0.1", "0.25", "1.0")
    )
    print(f"event loop heartbeats (gateway's pm_event_loop_lag_seconds): {beats:.0f}; late {held}")
    for error in corpus.server_errors[:10]:
        print(f"  5xx: {error}")
    if probe_failures:
        print(f"probes that got no answer: {len(probe_failures)} ({probe_failures[0]})")
    print(
        f"/health probes every {PROBE_EVERY * 1000:.0f} ms: {len(latencies)}; over {STALL * 1000:.0f} ms: "
        f"{len(stalls)}; max {max(ms):.1f} ms; p50 {percentile(ms, 0.5):.1f} ms; p99 {percentile(ms, 0.99):.1f} ms"
    )


def main(directories: list[str] | None = None) -> None:
    directories = sys.argv[1:] if directories is None else directories
    with tempfile.TemporaryDirectory() as workdir:
        url = os.environ.get("PM_BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{workdir}/stalls.db")
        env = {
            "PM_DATABASE_URL": url,
            "PM_ENGINE_TYPE": "embedded",
            "PM_LOG_LEVEL": "warning",
            "PM_WORKERS": "1",
            "PM_EMBEDDED_TIMER_INTERVAL": "0.2",
        }
        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env={**os.environ, **env}, check=True)
        port = free_port()
        with server(["-m", "gateway.cli"], port, env={**env, "PM_PORT": str(port)}) as base:
            asyncio.run(run(base, directories))


if __name__ == "__main__":
    main()
