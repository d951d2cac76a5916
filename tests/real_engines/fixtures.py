"""Pytest glue for the real engines: the session's `RealEngines` and access to one running engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.real_engines.runner import ArtifactsNotServed, RealEngines, RunningEngine, missing_tools


@pytest.fixture(scope="session")
def real_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealEngines]:
    """Every real engine of the session, each built and started on first use and stopped at the end.
    Skips (with the reason) only when `java` or `mvn` is missing."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    engines = RealEngines(tmp_path_factory.mktemp("engines"))
    yield engines
    engines.close()


def running_engine(request: pytest.FixtureRequest, name: str) -> RunningEngine:
    """The session's running engine `name`. Skips when Maven Central does not serve its artifacts to this
    machine (the reason names the missing artifact); any other build or start failure fails the test."""
    engines: RealEngines = request.getfixturevalue("real_engines")
    try:
        return engines.get(name)
    except ArtifactsNotServed as error:
        pytest.skip(str(error))
