"""What an engine needs to provide to run the adapter conformance suite.

Each engine has a module in `harnesses/` defining `HARNESS = Harness(...)`. The suite builds the adapter
through the real `EngineRegistry`, with the engine's configuration and (for HTTP engines) a fresh
simulator transport per test, so the adapter runs exactly as in production, resilience included.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.engines.port import EngineAdapter

# The two processes every harness provides, with these ids, names and behaviour:
# "approval": process id `approval`, name "Approval". start -> userTask `review` (name "Review request",
#   candidate group `sales`) -> end.
# "charging": process id `charging`, name "Charging". start -> serviceTask `charge` (name "Charge card"), which
#   fails while the variable `fail` is true and succeeds otherwise -> userTask `confirm` (name "Confirm") -> end.
SCENARIOS = ("approval", "charging")


@dataclass
class Harness:
    id: str
    engine: dict[str, Any]  # EngineConfig fields besides the name
    bpmn: dict[str, bytes]  # scenario -> BPMN XML
    make_transport: Callable[[], httpx.AsyncBaseTransport] | None = None
    prepare: Callable[[EngineAdapter], Awaitable[None]] | None = None  # e.g. register service task handlers
    incident_timeout: float = 5.0
    marks: list[Any] = field(default_factory=list)


def discover() -> list[Harness]:
    from tests.conformance import harnesses

    found = []
    for module in pkgutil.iter_modules(harnesses.__path__):
        loaded = importlib.import_module(f"{harnesses.__name__}.{module.name}")
        if hasattr(loaded, "HARNESS"):
            found.append(loaded.HARNESS)
    return sorted(found, key=lambda h: h.id)
