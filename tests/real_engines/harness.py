"""Conformance harnesses for the real engines under engines/: a `Harness` that names its engine.

Its `engine["url"]` is a placeholder until `on_real_engine` points it at the session's running engine (started
on first use by the `real_engines` fixture) and empties that engine of deployments, as the suite expects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from gateway.engines.testing import Harness
from tests.real_engines.fixtures import running_engine


@dataclass
class RealEngineHarness(Harness):
    """A harness run on the real engine `real_engine` (camunda7, operaton, flowable: see runner.KINDS)."""

    real_engine: str = ""


def on_real_engine(harness: Harness, request: pytest.FixtureRequest) -> Harness:
    """`harness` itself, or for a real engine a copy pointed at the running engine, emptied of deployments."""
    if not isinstance(harness, RealEngineHarness):
        return harness
    engine = running_engine(request, harness.real_engine)
    engine.reset()
    return dataclasses.replace(harness, engine={**harness.engine, "url": engine.url})


def real_engine_harness(base: Harness, real_engine: str, **changes: object) -> RealEngineHarness:
    """`base` (a simulator's harness: same BPMN, same adapter) as a harness of the real engine `real_engine`."""
    fields = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    return RealEngineHarness(**{**fields, **changes, "real_engine": real_engine})  # type: ignore[arg-type]
