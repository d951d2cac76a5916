"""The same process run gives the same numbers on every engine: the conformance suite's engines run one scenario
side by side in one gateway, and every analytics answer, with the values that depend on wall-clock time left out,
must be equal to the embedded engine's. The simulated engines run together in one test; each real engine under
engines/ (built and started by tests/real_engines on first use: slow) runs beside the embedded engine in a test of
its own, selected with e.g. `-k real-flowable`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.engines.testing import Harness
from gateway.engines.testing.polling import eventually
from tests.conformance.harnesses import HARNESSES as ALL_HARNESSES
from tests.real_engines.harness import RealEngineHarness, on_real_engine

SIMULATED = [h for h in ALL_HARNESSES if not isinstance(h, RealEngineHarness)]
REAL = [h for h in ALL_HARNESSES if isinstance(h, RealEngineHarness)]
EMBEDDED = next(h for h in ALL_HARNESSES if h.id == "embedded")
PATHS = (
    "/statistics",
    "/tasks/statistics",
    "/performance",
    "/bottlenecks",
    "/statistics/definitions/approval/elements",
)
TIMED = {
    "generated_at",
    "data_as_of",
    "period",
    "average_duration",
    "median_duration",
    "average_wait_time",
    "average_time_to_claim",
    "average_time_to_complete",
    "p50_duration",
    "p95_duration",
    "peak_load_time",
    "lead_time",
    "cycle_time",
    "processing_time",
    "wait_time",
    "created",
    "id",
    "instance_id",
    "severity",
}
EVENT_TYPES = {"startEvent", "endEvent"}  # the harnesses name these elements differently


def timeless(value: Any) -> Any:
    """The answer without wall-clock values; events keyed by type, since their ids differ between harnesses."""
    if isinstance(value, dict):
        if value.get("activity_type") in EVENT_TYPES:
            value = {**value, "activity_id": value["activity_type"], "activity_name": None}
        return {k: timeless(v) for k, v in value.items() if k not in TIMED}
    if isinstance(value, list):
        return sorted((timeless(v) for v in value), key=repr)
    return value


async def run_scenario(
    client: httpx.AsyncClient, engine: str, bpmn: bytes, project: Callable[[], Any], patience: float
) -> None:
    """Three approvals: alice takes one from the queue, bob claims another, both complete; the third is terminated.
    `patience`: seconds to wait for each step an engine takes on its own (a real engine's is slower)."""
    params = {"engine": engine}
    deployed = await client.post(
        "/api/processes/definitions", params=params, files={"file": ("approval.bpmn", bpmn, "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    ids = []
    for business_key in ("a", "b", "c"):
        started = await client.post(
            "/api/processes/instances", params=params, json={"definition_key": "approval", "business_key": business_key}
        )
        assert started.status_code == 201, started.text
        ids.append(started.json()["id"])

    async def open_task(instance_id: str) -> dict[str, Any]:
        found = await eventually(
            lambda: client.get("/api/processes/tasks", params={**params, "instance_id": instance_id}),
            lambda r: len(r.json()["items"]) == 1,
            patience,
        )
        return found.json()["items"][0]

    for instance_id in ids:
        await open_task(instance_id)
    await project()  # what the background round does after the instance.started events
    taken = await client.post(
        "/api/processes/tasks/claim-next",
        params=params,
        json={"candidate_groups": ["sales"]},
        headers={"X-User-Id": "alice"},
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["assignee"] == "alice"
    completed = await client.post(
        f"/api/processes/tasks/{taken.json()['id']}/complete", params=params, json={}, headers={"X-User-Id": "alice"}
    )
    assert completed.status_code == 204, completed.text
    other = next(i for i in ids[:2] if i != taken.json()["instance_id"])
    task = await open_task(other)
    claimed = await client.post(
        f"/api/processes/tasks/{task['id']}/claim", params=params, json={"user_id": "bob"}, headers={"X-User-Id": "bob"}
    )
    assert claimed.status_code == 200, claimed.text
    completed = await client.post(
        f"/api/processes/tasks/{task['id']}/complete", params=params, json={}, headers={"X-User-Id": "bob"}
    )
    assert completed.status_code == 204, completed.text
    terminated = await client.delete(f"/api/processes/instances/{ids[2]}", params=params)
    assert terminated.status_code == 204, terminated.text
    for instance_id in ids[:2]:
        await eventually(
            lambda i=instance_id: client.get(f"/api/processes/instances/{i}", params=params),
            lambda r: r.json().get("status") == "completed",
            patience,
        )


async def answers_after_the_scenario(
    make_gateway: Callable[..., Any], harnesses: list[Harness], patience: float = 5.0
) -> dict[str, dict[str, Any]]:
    """Run the scenario on each harness's engine (engine name = harness id) in one gateway, project everything,
    and return every analytics answer per engine, without its wall-clock values: {engine: {path: answer}}."""
    engines = [{"name": h.id, "default": h.id == "embedded", **h.engine} for h in harnesses]
    transports = {h.id: h.make_transport() for h in harnesses if h.make_transport is not None}
    answers: dict[str, dict[str, Any]] = {}
    async with make_gateway(engines=engines, transports=transports) as gateway:
        client = gateway.client
        projector = gateway.app.state.analytics.projector
        for harness in harnesses:
            if harness.prepare is not None:
                await harness.prepare(gateway.app.state.registry.get(harness.id).adapter)
            await run_scenario(client, harness.id, harness.bpmn["approval"], projector.run_once, patience)
        await projector.run_once(full=True)
        await projector.run_once(full=True)
        for harness in harnesses:
            answers[harness.id] = {}
            for path in PATHS:
                response = await client.get(f"/api/processes{path}", params={"engine": harness.id})
                assert response.status_code == 200, response.text
                answers[harness.id][path] = timeless(response.json())
    return answers


def differences(engine: Any, embedded: Any, where: str = "") -> list[str]:
    """Every leaf where an engine's answer differs from the embedded engine's, as 'where: engine != embedded'."""
    if isinstance(engine, dict) and isinstance(embedded, dict):
        return [
            found
            for key in sorted(set(engine) | set(embedded))
            for found in differences(engine.get(key), embedded.get(key), f"{where}.{key}")
        ]
    if isinstance(engine, list) and isinstance(embedded, list) and len(engine) == len(embedded):
        return [
            found
            for n, pair in enumerate(zip(engine, embedded, strict=True))
            for found in differences(*pair, f"{where}[{n}]")
        ]
    return [] if engine == embedded else [f"{where}: {engine!r} != {embedded!r}"]


def assert_equal_to_embedded(answers: dict[str, dict[str, Any]]) -> None:
    embedded = answers["embedded"]
    for engine, answer in answers.items():
        for path, body in answer.items():
            assert not differences(body, embedded[path]), f"{engine} {path} differs from the embedded engine"


async def test_one_run_gives_the_same_numbers_on_every_simulated_engine(make_gateway: Callable[..., Any]) -> None:
    answers = await answers_after_the_scenario(make_gateway, SIMULATED)
    embedded = answers["embedded"]
    summary = embedded["/statistics"]["summary"]
    assert (summary["total_instances"], summary["completed_instances"], summary["terminated_instances"]) == (3, 2, 1)
    assert (summary["total_tasks"], summary["completed_tasks"], summary["open_tasks"]) == (3, 2, 0)
    assert embedded["/tasks/statistics"]["by_assignee"] == [
        {"assignee": "alice", "claimed": 0, "completed": 1},
        {"assignee": "bob", "claimed": 0, "completed": 1},
    ]
    elements = {e["activity_id"]: e for e in embedded["/statistics/definitions/approval/elements"]["elements"]}
    assert (elements["review"]["completed"], elements["review"]["canceled"], elements["endEvent"]["completed"]) == (
        2,
        1,
        2,
    )
    assert len(answers) == len(SIMULATED) >= 4
    assert_equal_to_embedded(answers)


@pytest.mark.parametrize("harness", [pytest.param(h, id=h.id, marks=h.marks) for h in REAL])
async def test_one_run_gives_the_same_numbers_on_a_real_engine(
    make_gateway: Callable[..., Any], harness: Harness, request: pytest.FixtureRequest
) -> None:
    real = on_real_engine(harness, request)
    answers = await answers_after_the_scenario(make_gateway, [EMBEDDED, real], patience=60.0)
    summary = answers[real.id]["/statistics"]["summary"]
    assert (summary["total_instances"], summary["completed_instances"], summary["terminated_instances"]) == (3, 2, 1)
    assert_equal_to_embedded(answers)
