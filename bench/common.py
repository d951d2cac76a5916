"""Shared bench helpers: percentiles, timing loops, and running a server in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_ms: list[float]) -> str:
    return (
        f"n={len(samples_ms)} p50={percentile(samples_ms, 0.5):.2f} ms p95={percentile(samples_ms, 0.95):.2f} ms "
        f"p99={percentile(samples_ms, 0.99):.2f} ms mean={statistics.fmean(samples_ms):.2f} ms"
    )


async def timed(call: Callable[[], Awaitable[object]], count: int, concurrency: int = 1) -> tuple[list[float], float]:
    """Run `call` `count` times with `concurrency` workers; latencies in ms and throughput per second."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, count / (time.perf_counter() - started)


@contextlib.contextmanager
def server(
    args: list[str], port: int, env: dict[str, str] | None = None, ready_path: str = "/health", startup: float = 60
) -> Iterator[str]:
    """Start a server process and wait up to `startup` seconds until it answers on `ready_path`. Its output goes to
    a temporary file (a pipe nobody reads would block a server that logs every request)."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **(env or {})}, stdout=output, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup
            while True:
                try:
                    if httpx.get(base + ready_path, timeout=1).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise RuntimeError(f"server {args} did not start: {output.read().decode()[-2000:]}")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)
