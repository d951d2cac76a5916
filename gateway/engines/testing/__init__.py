"""The adapter conformance suite, shipped with the gateway: an adapter is correct when it passes it.

Modules: `suite` (the tests: the behaviour and the error contract of `gateway.engines.port`, and the events and
audit rows the gateway's use cases record over the adapter), `harness` (what an engine provides,
`harness_fixture`), `requirements` (`requires(Capability.X)`), `plugin` (the pytest plugin: fixtures `adapter`,
`processes` and `database`, requirement handling), `recording` (request recording for spec checks),
`polling` (`eventually`, for engines that work asynchronously).

Running it for an adapter in its own package (install `pm-gateway[conformance]` next to it):

1. Write a harness: `MY_HARNESS = Harness(id="myengine", engine={"type": "myengine", "url": ...}, bpmn={...},
   make_transport=...)`, with the two scenario processes described in `harness.SCENARIOS`.
2. In the tests' root conftest.py:

       pytest_plugins = ["gateway.engines.testing.plugin"]
       from gateway.engines.testing import harness_fixture
       harness = harness_fixture(MY_HARNESS)

3. In a test module (e.g. tests/test_conformance.py): `from gateway.engines.testing.suite import *`.

Then `pytest tests/test_conformance.py` runs every behaviour against the adapter. Tests of optional operations
the adapter does not declare in `capabilities` are deselected with the reason. The plugin's `database` is SQLite;
define a `database` fixture (a `gateway.db.Database`, migrated) in the conftest to run on PostgreSQL too.

Why a fixture and an explicit plugin line, not entry points: harnesses are test code, often next to a simulator
that is not shipped with the adapter; a `pytest11` plugin or a harness entry point would load into every pytest
run wherever the package is installed. This project registers its own harnesses the same way: each module of
tests/conformance/harnesses/ defines `HARNESS`, tests/conformance/harnesses/__init__.py collects them into
`HARNESSES`, and tests/conformance/conftest.py passes them to `harness_fixture`. A new harness for this project
(another engine, or a real engine next to its simulator, with an `id` of its own) is one more module there
defining `HARNESS`. For a real engine: leave out `make_transport`, so the adapter calls `engine["url"]`; give it
`marks=[pytest.mark.skipif(...)]` for when the engine is absent; and use `prepare` (awaited with the adapter
before each test) to delete what earlier tests deployed, since the suite expects an engine without other
versions of its two processes. A module that runs the suite against a container it starts itself registers
`harness_fixture(dataclasses.replace(HARNESS, make_transport=None))` and overrides `adapter` to point the
configuration at the container (this repository starts real engines instead: tests/real_engines/harness.py).
"""

from gateway.engines.testing.harness import SCENARIOS, Harness, harness_fixture
from gateway.engines.testing.requirements import requires

__all__ = ["SCENARIOS", "Harness", "harness_fixture", "requires"]
