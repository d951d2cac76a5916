"""The simulators answer as the real engines did: every scenario of `answers.py` is replayed on the
simulator and on the real engine, and both must match what the real engine answered when it was recorded
(`recorded/*.json`; re-record with `python -m tests.real_engines.answers`)."""

from __future__ import annotations

import httpx
import pytest

from tests.camunda.simulator import CamundaSimulator
from tests.flowable.simulator import BASE_PATH as FLOWABLE_BASE_PATH, FlowableSimulator
from tests.real_engines.answers import SCENARIOS, recorded, run_scenario
from tests.real_engines.fixtures import running_engine

CASES = [
    pytest.param(engine, scenario, id=f"{engine}-{scenario}") for engine in SCENARIOS for scenario in SCENARIOS[engine]
]


def simulator_client(engine: str) -> httpx.AsyncClient:
    if engine == "camunda7":
        return httpx.AsyncClient(transport=CamundaSimulator().transport, base_url="http://camunda7.test/engine-rest")
    simulator = FlowableSimulator()
    return httpx.AsyncClient(
        transport=simulator.transport, base_url=f"http://flowable.test{FLOWABLE_BASE_PATH}", auth=("rest-admin", "test")
    )


@pytest.mark.parametrize(("engine", "scenario"), CASES)
async def test_simulator_answers_as_the_real_engine_did(engine: str, scenario: str) -> None:
    async with simulator_client(engine) as client:
        assert await run_scenario(engine, scenario, client) == recorded(engine, scenario)


@pytest.mark.parametrize(("engine", "scenario"), CASES)
async def test_real_engine_still_answers_as_recorded(
    engine: str, scenario: str, request: pytest.FixtureRequest
) -> None:
    running = running_engine(request, engine)
    running.reset()
    async with httpx.AsyncClient(base_url=running.url, auth=running.credentials, timeout=30) as client:
        assert await run_scenario(engine, scenario, client) == recorded(engine, scenario)
