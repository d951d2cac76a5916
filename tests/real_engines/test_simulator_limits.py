"""The simulators refuse what they cannot run as the engines do, instead of silently running something else:
branching BPMN and waiting for anything but a message or signal is a NotImplementedError naming the element, and a duplicate id is the rejection
the real engines' XSD validation gives (see test_flows.py for these flows on the real engines)."""

from __future__ import annotations

import pytest

from tests.real_engines.answers import camunda_deploy, flowable_deploy
from tests.real_engines.flows import bpmn
from tests.real_engines.test_recorded_answers import simulator_client

DEPLOY = {"camunda7": camunda_deploy, "flowable": flowable_deploy}


@pytest.mark.parametrize("engine", ["camunda7", "flowable"])
@pytest.mark.parametrize(
    ("flow", "refusal"),
    [
        ("parallel", "straight lines only; parallelGateway 'fork'"),
        ("timer", r"catches messages and signals .*only; boundaryEvent 'late'"),
    ],
)
async def test_branching_or_waiting_bpmn_is_refused(engine: str, flow: str, refusal: str) -> None:
    async with simulator_client(engine) as client:
        with pytest.raises(NotImplementedError, match=refusal):
            await DEPLOY[engine](client, flow)


@pytest.mark.parametrize("engine", ["camunda7", "flowable"])
async def test_a_duplicate_id_is_rejected_as_the_xsd_does(engine: str) -> None:
    duplicate = bpmn(engine, "dividing").replace(b'id="divide"', b'id="dividing"')
    path = "/deployment/create" if engine == "camunda7" else "/repository/deployments"
    field = "data" if engine == "camunda7" else "file"
    async with simulator_client(engine) as client:
        response = await client.post(path, files={field: ("dup.bpmn", duplicate, "application/xml")})
    assert response.status_code == (400 if engine == "camunda7" else 500)
    assert "cvc-id.2: There are multiple occurrences of ID value 'dividing'." in response.text
