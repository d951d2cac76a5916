"""A real Operaton (engines/operaton) under the conformance suite, through the camunda7 adapter unchanged."""

from __future__ import annotations

from tests.conformance.harnesses.real_camunda7 import real_camunda7_harness

HARNESS = real_camunda7_harness("operaton")
