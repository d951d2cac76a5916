"""A real Flowable 7.2.0 (engines/flowable, built from Maven Central) under the conformance suite."""

from __future__ import annotations

from httpx_aiohttp import AiohttpTransport

from tests.conformance.harnesses.flowable import harness_for

HARNESS = harness_for(
    "http://flowable.invalid/process-api", id="real-flowable", make_transport=AiohttpTransport, real_engine="flowable"
)
