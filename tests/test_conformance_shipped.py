"""The shipped conformance suite as a third-party adapter's project uses it: a fresh directory with only the
documented conftest.py (the plugin line and `harness_fixture`) and the star import, run by pytest in a subprocess."""

from __future__ import annotations

import pytest

from tests.conformance.harnesses.embedded import APPROVAL

CONFTEST = f"""
from gateway.engines.testing import Harness, harness_fixture

pytest_plugins = ["gateway.engines.testing.plugin"]

EMBEDDED = Harness(id="myembedded", engine={{"type": "embedded"}}, bpmn={{"approval": {APPROVAL!r}}})
FLOWABLE = Harness(id="myflowable", engine={{"type": "flowable", "url": "http://127.0.0.1:9/rest"}}, bpmn={{}})
harness = harness_fixture(EMBEDDED, FLOWABLE)
"""

TEST_MODULE = "from gateway.engines.testing.suite import *  # noqa: F403\n"


def test_a_third_party_project_runs_the_shipped_suite(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_my_adapter=TEST_MODULE)
    # strict asyncio mode, unlike this project: the suite must not depend on the importing project's setting
    pytester.makeini("[pytest]\nasyncio_mode = strict\n")

    result = pytester.runpytest_subprocess(
        "-k", "(deploy_lists_and_versions and myembedded) or (annotate_engine_incident and myflowable)"
    )

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*conformance tests not applicable (deselected)*",
            "*test_annotate_engine_incident_sets_and_clears_the_annotation[[]myflowable[]]: myflowable: "
            "FlowableAdapter does not declare annotate_incident (the gateway answers 501)",
        ]
    )
