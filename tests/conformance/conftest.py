"""Registers this project's harnesses with the shipped conformance suite (`gateway.engines.testing`); the suite's
plugin is loaded by tests/conftest.py and the `database` fixture there runs it on SQLite and PostgreSQL.

The `harness` fixture is `harness_fixture`'s, except that a real engine's harness (tests/real_engines) is
pointed at the session's running engine before each test."""

from __future__ import annotations

import pytest

from gateway.engines.testing import Harness
from tests.conformance.harnesses import HARNESSES
from tests.real_engines.harness import on_real_engine


@pytest.fixture(params=[pytest.param(h, id=h.id, marks=h.marks) for h in HARNESSES])
def harness(request: pytest.FixtureRequest) -> Harness:
    return on_real_engine(request.param, request)
