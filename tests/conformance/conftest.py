from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.engines.port import EngineAdapter
from gateway.db import Database
from gateway.registry import EngineRegistry
from gateway.settings import Settings
from tests.conformance.harness import Harness, discover
from tests.conformance.recording import maybe_recording

HARNESSES = discover()


@pytest.fixture(params=[pytest.param(h, id=h.id, marks=h.marks) for h in HARNESSES])
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.param


@pytest.fixture
async def adapter(harness: Harness, database: Database) -> AsyncIterator[EngineAdapter]:
    settings = Settings(engines=[{"name": "under-test", "default": True, **harness.engine}], database_url=database.url)
    transports = None
    if harness.make_transport is not None:
        transports = {"under-test": maybe_recording(harness.make_transport(), harness.id)}
    registry = EngineRegistry(settings, database, transports=transports)
    await registry.start()
    adapter = registry.get().adapter
    if harness.prepare is not None:
        await harness.prepare(adapter)
    try:
        yield adapter
    finally:
        await registry.close()
