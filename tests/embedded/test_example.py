"""examples/order-process.bpmn behaves as the README walkthrough says."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.embedded import EmbeddedAdapter
from gateway.variables import parse_request_variables
from tests.embedded.conftest import deploy, incidents_of, start, tasks_of

ORDER_PROCESS = Path(__file__).parents[2] / "examples" / "order-process.bpmn"


@pytest.fixture
async def example(adapter: EmbeddedAdapter) -> EmbeddedAdapter:
    await deploy(adapter, ORDER_PROCESS.read_bytes())
    return adapter


async def test_a_positive_amount_waits_for_approval_and_completes(example: EmbeddedAdapter) -> None:
    instance_id = await start(example, "order-process", {"amount": 120})
    task = (await tasks_of(example, instance_id))["approve-order"]
    assert (task.name, task.candidate_groups, task.due is not None) == ("Approve order", ["sales"], True)
    await example.complete_task(task.id, parse_request_variables({"approved": True}), user_id="alice")
    instance = await example.get_instance(instance_id)
    assert instance.status == "completed"
    assert [step.activity_id for step in instance.execution_path][-1] == "order-accepted"


async def test_a_zero_amount_is_rejected_at_once(example: EmbeddedAdapter) -> None:
    instance = await example.get_instance(await start(example, "order-process", {"amount": 0}))
    assert (instance.status, instance.execution_path[-1].activity_id) == ("completed", "order-rejected")


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({}, "the variable 'amount' is not set"),
        ({"amount": "abc"}, "not supported between instances of 'str' and 'int'"),
    ],
)
async def test_a_missing_or_non_numeric_amount_fails_until_fixed(
    example: EmbeddedAdapter, variables: dict[str, object], reason: str
) -> None:
    instance_id = await start(example, "order-process", variables)
    (incident,) = await incidents_of(example, instance_id)
    assert (incident.incident_type, incident.activity_id, incident.activity_name) == (
        "conditionError", "check-amount", "Amount valid?",
    )  # fmt: skip
    assert reason in incident.message
    assert (await example.get_instance(instance_id)).status == "active"

    await example.update_variables(instance_id, parse_request_variables({"amount": 50}), [])
    await example.retry_engine_incident(incident.id)
    assert list(await tasks_of(example, instance_id)) == ["approve-order"]
