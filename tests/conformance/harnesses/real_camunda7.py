"""A real Camunda Platform 7.24.0 (engines/camunda7, built from Maven Central) under the conformance suite."""

from __future__ import annotations

import dataclasses

from httpx_aiohttp import AiohttpTransport

from tests.conformance.harness import Harness
from tests.conformance.harnesses.camunda7 import HARNESS as SIMULATED


def real_camunda7_harness(name: str) -> Harness:
    """The Camunda 7 harness (same BPMN) on the real engine `name` (camunda7 or operaton), production transport."""
    return dataclasses.replace(
        SIMULATED,
        id=f"real-{name}",
        engine={**SIMULATED.engine, "url": f"http://{name}.invalid/engine-rest", "read_timeout": 30.0},
        make_transport=AiohttpTransport,
        # The job executor runs a failing job within a second; the retry cycle's interval is one second.
        incident_timeout=30.0,
        real_engine=name,
    )


HARNESS = real_camunda7_harness("camunda7")
