"""This project's conformance harnesses: one module per engine, each defining `HARNESS` (a
`gateway.engines.testing.Harness`). `HARNESSES` collects every module's `HARNESS`, sorted by id; a new module
here is picked up without another edit (tests/conformance/conftest.py registers them for the suite).
"""

from __future__ import annotations

import importlib
import pkgutil

from gateway.engines.testing import Harness


def _collect() -> list[Harness]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        if hasattr(loaded, "HARNESS"):
            found.append(loaded.HARNESS)
    return sorted(found, key=lambda h: h.id)


HARNESSES = _collect()
