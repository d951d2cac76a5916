"""What an engine provides to run the adapter conformance suite, and how a test session registers it.

A `Harness` names the engine's configuration, the two scenario BPMN files in the engine's dialect and, for an
HTTP engine run against a simulator, a transport factory. The suite builds the adapter through the real
`EngineRegistry` from that configuration, so the adapter runs exactly as in production, resilience included.

Register harnesses with `harness_fixture` in a conftest.py (see `gateway.engines.testing` for the whole setup).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.engines.plugins import installed_adapters
from gateway.engines.port import EngineAdapter

# The two processes every harness provides, with these ids, names and behaviour:
# "approval": process id `approval`, name "Approval". start -> userTask `review` (name "Review request",
#   candidate group `sales`) -> end.
# "charging": process id `charging`, name "Charging". start -> serviceTask `charge` (name "Charge card"), which
#   fails while the variable `fail` is true and succeeds otherwise -> userTask `confirm` (name "Confirm") -> end.
# A harness whose adapter declares `Capability.CORRELATE_MESSAGE` and `BROADCAST_SIGNAL` also provides:
# "ordering": process id `ordering`, name "Ordering". message start event `order-placed` (message "order-placed")
#   -> message intermediate catch event `payment-received` (message "payment-received"; on Camunda 8 its
#   subscription's correlation key is the variable `orderId`) -> userTask `ship` (name "Ship order") -> end
#   `shipped`; on `ship` an interrupting signal boundary event `cancelled` (signal "order-cancelled") -> end
#   `withdrawn`.
# A harness whose adapter declares `Capability.MIGRATE_INSTANCE` provides nothing more: the suite deploys a second
#   "approval" with the user task `review` renamed `check` (every quoted "review" in the XML replaced).
SCENARIOS = ("approval", "charging")
MESSAGING_SCENARIO = "ordering"


@dataclass
class Harness:
    """One engine under the suite.

    `engine`: the engine's configuration fields besides `name` (`type`, `url`, `auth`, `options`, ...), as in
    the gateway's `engines` setting; `type` names the adapter's entry point in `pm_gateway.adapters`.
    `bpmn`: scenario name (see `SCENARIOS`) -> BPMN XML the engine deploys.
    `make_transport`: a fresh httpx transport per test (an engine simulator); None talks to `engine["url"]`.
    `prepare`: awaited with the adapter before each test (e.g. registering the embedded engine's handlers).
    `incident_timeout`: seconds the suite waits for asynchronous engine work (a failed job becoming an incident).
    `marks`: pytest marks for every test of this harness (e.g. a skipif when its engine is unavailable).
    """

    id: str
    engine: dict[str, Any]
    bpmn: dict[str, bytes]
    make_transport: Callable[[], httpx.AsyncBaseTransport] | None = None
    prepare: Callable[[EngineAdapter], Awaitable[None]] | None = None
    incident_timeout: float = 5.0
    marks: list[Any] = field(default_factory=list)

    def adapter_class(self) -> type[EngineAdapter]:
        """The installed adapter class for `engine["type"]`; its capabilities decide which tests apply."""
        entry = installed_adapters().get(self.engine["type"])
        if entry is None:
            raise pytest.UsageError(
                f"conformance harness {self.id!r}: no adapter of type {self.engine['type']!r} is installed under "
                f"the entry point group pm_gateway.adapters"
            )
        loaded: type[EngineAdapter] = entry.load()
        return loaded


def harness_fixture(*harnesses: Harness) -> Any:
    """The `harness` fixture, parametrized over `harnesses`: assign it to `harness` in a conftest.py.

    Every suite test then runs once per harness (and per `database` parameter), with ids like
    `test_terminate_instance[embedded-sqlite]`. The parameters are known at collection, which is how the suite
    leaves out tests whose `requires(...)` an adapter does not declare.
    """

    @pytest.fixture(params=[pytest.param(h, id=h.id, marks=h.marks) for h in harnesses])
    def harness(request: pytest.FixtureRequest) -> Harness:
        return request.param

    return harness
