"""Prometheus metrics, served at GET /metrics."""

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

http_requests = Histogram(
    "pm_http_request_seconds", "API request latency", ["method", "route", "status"], buckets=LATENCY_BUCKETS
)
engine_calls = Histogram(
    "pm_engine_call_seconds", "Engine call latency", ["engine", "operation", "outcome"], buckets=LATENCY_BUCKETS
)
engine_retries = Counter("pm_engine_retries_total", "Engine call retries", ["engine", "operation"])
circuit_state = Gauge("pm_engine_circuit_state", "Circuit state: 0 closed, 1 half-open, 2 open", ["engine"])
circuit_rejections = Counter("pm_engine_circuit_rejections_total", "Calls rejected by an open circuit", ["engine"])

EVENT_LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
event_loop_lag = Histogram(
    "pm_event_loop_lag_seconds",
    "How late the event loop ran a heartbeat due every 20 ms: how long work that did not yield held it (every "
    "request waiting meanwhile waited as long)",
    buckets=EVENT_LOOP_LAG_BUCKETS,
)

EVENT_LOOP_HEARTBEAT = 0.02  # seconds
EVENT_LOOP_HELD_WARNING = 1.0  # seconds


async def watch_event_loop_lag() -> None:
    """Observe `pm_event_loop_lag_seconds` every EVENT_LOOP_HEARTBEAT seconds, forever; a lag over
    EVENT_LOOP_HELD_WARNING seconds is also logged. Runs as a task of each worker process."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + EVENT_LOOP_HEARTBEAT
        await asyncio.sleep(EVENT_LOOP_HEARTBEAT)
        lag = max(0.0, loop.time() - due)
        event_loop_lag.observe(lag)
        if lag > EVENT_LOOP_HELD_WARNING:
            logging.getLogger("gateway").warning("the event loop was held for %.1f s", lag)
