"""What a suite test needs from an adapter, declared on the test and decided at collection.

SQLAlchemy's `SuiteRequirements` in the shape of this port: a test that exercises an optional operation says so
with `@requires(Capability.X)`; for a harness whose adapter class does not declare X in `capabilities` (natively
or as one of its `emulated` behaviours, which an adapter also lists in `capabilities`) the test is not
applicable: the gateway answers 501 before it would ever call the adapter. Such tests are deselected at
collection and listed with their reason at the end of the run; nothing is skipped inside a test body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from gateway.engines.port import Capability
from gateway.engines.testing.harness import Harness

F = TypeVar("F", bound=Callable[..., object])

MARKER = "pm_gateway_requires"


def requires(*capabilities: Capability) -> Callable[[F], F]:
    """Decorate a suite test that runs only for adapters declaring every one of `capabilities`."""
    mark: Callable[[F], F] = getattr(pytest.mark, MARKER)(*capabilities)
    return mark


def not_applicable(item: pytest.Item) -> str | None:
    """Why `item` does not apply to its harness's adapter, or None when it does (or declares no requirement).

    Raises pytest.UsageError when the test declares requirements but its harness is not a collection-time
    parameter (register harnesses with `harness_fixture`).
    """
    required = [c for mark in item.iter_markers(MARKER) for c in mark.args]
    if not required:
        return None
    callspec = getattr(item, "callspec", None)
    harness = callspec.params.get("harness") if callspec is not None else None
    if not isinstance(harness, Harness):
        raise pytest.UsageError(
            f"{item.nodeid} declares requirements ({', '.join(required)}) but its harness is not known at "
            "collection: register harnesses with gateway.engines.testing.harness_fixture"
        )
    cls = harness.adapter_class()
    missing = [c for c in required if c not in cls.capabilities]
    if not missing:
        return None
    return f"{harness.id}: {cls.__name__} does not declare {', '.join(missing)} (the gateway answers 501)"
