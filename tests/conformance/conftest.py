"""Registers this project's harnesses with the shipped conformance suite (`gateway.engines.testing`); the suite's
plugin is loaded by tests/conftest.py and the `database` fixture there runs it on SQLite and PostgreSQL."""

from __future__ import annotations

from gateway.engines.testing import harness_fixture
from tests.conformance.harnesses import HARNESSES

harness = harness_fixture(*HARNESSES)
