"""The shipped adapter conformance suite, run for every harness of tests/conformance/harnesses."""

from gateway.engines.testing.suite import *  # noqa: F403 - the suite's tests, collected here
