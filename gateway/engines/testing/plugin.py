"""The pytest plugin of the conformance suite: the `adapter` fixture, a default `database`, and requirements.

Load it with `pytest_plugins = ["gateway.engines.testing.plugin"]` in the root conftest.py of the tests that run
the suite (see `gateway.engines.testing`). It provides:

- `adapter`: the adapter under test, built by an `EngineRegistry` from the `harness` parameter's configuration
  (engine name "under-test", the default engine) and its simulator transport, recorded when
  PM_RECORD_REQUESTS_DIR is set; `harness.prepare` runs before the test, the registry closes after it.
- `processes`: the gateway's use cases (`gateway.processes.ProcessService`) over `adapter`, for caller "tester",
  recording audit rows and events in `database` as the API does.
- `database`: the gateway database the adapter keeps its state in: a migrated SQLite file per test. A conftest
  that defines its own `database` fixture (PostgreSQL, say) overrides it.
- at collection, tests whose `requires(...)` the harness's adapter does not declare are deselected; the terminal
  summary lists them with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.changes import ChangeLog
from gateway.db import Database
from gateway.engines.port import EngineAdapter
from gateway.engines.testing.harness import Harness
from gateway.engines.testing.recording import maybe_recording
from gateway.engines.testing.requirements import MARKER, not_applicable
from gateway.auth import Caller
from gateway.processes.service import ProcessService
from gateway.registry import EngineHandle, EngineRegistry
from gateway.settings import Settings

# The suite's tests are imported into the project's test modules; rewrite their asserts as pytest does a test
# module's, so a failure shows the values compared.
pytest.register_assert_rewrite("gateway.engines.testing.suite")

ENGINE_NAME = "under-test"
ACTOR = "tester"
NOT_APPLICABLE = pytest.StashKey[list[tuple[str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*capabilities): the conformance test applies only to adapters declaring them"
    )
    config.stash[NOT_APPLICABLE] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, deselected = [], []
    for item in items:
        reason = not_applicable(item)
        if reason is None:
            kept.append(item)
        else:
            deselected.append(item)
            config.stash[NOT_APPLICABLE].append((item.nodeid, reason))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    not_applicable_tests = config.stash.get(NOT_APPLICABLE, [])
    if not_applicable_tests:
        terminalreporter.section("conformance tests not applicable (deselected)")
        for nodeid, reason in not_applicable_tests:
            terminalreporter.line(f"{nodeid}: {reason}")


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await db.migrate()
    yield db
    await db.dispose()


@pytest_asyncio.fixture
async def adapter(harness: Harness, database: Database) -> AsyncIterator[EngineAdapter]:
    settings = Settings(engines=[{"name": ENGINE_NAME, "default": True, **harness.engine}], database_url=database.url)
    transports = None
    if harness.make_transport is not None:
        transports = {ENGINE_NAME: maybe_recording(harness.make_transport(), harness.id)}
    registry = EngineRegistry(settings, database, transports=transports)
    await registry.start()
    adapter = registry.get().adapter
    if harness.prepare is not None:
        await harness.prepare(adapter)
    try:
        yield adapter
    finally:
        await registry.close()


@pytest.fixture
def processes(adapter: EngineAdapter, database: Database) -> ProcessService:
    caller = Caller.unrestricted(ACTOR)
    return ProcessService(ChangeLog(database), EngineHandle(config=adapter.context.config, adapter=adapter), caller)
