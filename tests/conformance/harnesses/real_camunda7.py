"""A real Camunda Platform 7.24.0 (engines/camunda7, built from Maven Central) under the conformance suite."""

from __future__ import annotations

from httpx_aiohttp import AiohttpTransport

from tests.conformance.harnesses.camunda7 import HARNESS as SIMULATED
from tests.real_engines.harness import RealEngineHarness, real_engine_harness


def real_camunda7_harness(name: str) -> RealEngineHarness:
    """The Camunda 7 harness (same BPMN) on the real engine `name` (camunda7 or operaton), production transport."""
    return real_engine_harness(
        SIMULATED,
        name,
        id=f"real-{name}",
        engine={**SIMULATED.engine, "url": f"http://{name}.invalid/engine-rest", "read_timeout": 30.0},
        make_transport=AiohttpTransport,
        # The job executor runs a failing job within a second; the retry cycle's interval is one second.
        incident_timeout=30.0,
    )


HARNESS = real_camunda7_harness("camunda7")
