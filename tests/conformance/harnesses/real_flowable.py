"""A real Flowable 7.2.0 (engines/flowable, built from Maven Central) under the conformance suite."""

from __future__ import annotations

from httpx_aiohttp import AiohttpTransport

from tests.conformance.harnesses.flowable import HARNESS as SIMULATED
from tests.real_engines.harness import real_engine_harness

HARNESS = real_engine_harness(
    SIMULATED,
    "flowable",
    id="real-flowable",
    # A freshly started JVM on a busy machine takes more than the default 10 s over its first deployments.
    engine={**SIMULATED.engine, "url": "http://flowable.invalid/process-api", "read_timeout": 30.0},
    make_transport=AiohttpTransport,
)
