"""Prometheus metrics, served at GET /metrics."""

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
