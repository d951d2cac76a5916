"""A handful of real engine answers, recorded as JSON under `recorded/`, that the simulators must give too.

Each scenario sends a few REST calls straight to an engine (no adapter) and returns the answers that matter,
normalized so that what changes from run to run (ids, timestamps, host and port, base path) does not count:
ids become `<id>`, every digit of a timestamp becomes 9 (its format still counts), and fields that are null
are dropped (Flowable writes them, its spec and the simulator leave them out) except a variable's `value`.

    .venv/bin/python -m tests.real_engines.answers   # re-record from freshly started real engines

`test_recorded_answers.py` replays every scenario on the simulator (always) and on the real engine, and
compares both with the recording.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.real_engines.flows import bpmn

RECORDED = Path(__file__).parent / "recorded"
Answers = dict[str, Any]
Scenario = Callable[[httpx.AsyncClient], Awaitable[Answers]]

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
_BASE = re.compile(r"https?://[^/\s]+(/engine-rest|/flowable-rest/service|/process-api)")


def normalize(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in sorted(value.items()) if v is not None or k == "value"}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, str):
        if _TIME.match(value):
            return re.sub(r"\d", "9", value)
        return _ID.sub("<id>", _BASE.sub("<base>", value))
    return value


async def _answer(response: httpx.Response) -> Answers:
    return {"status": response.status_code, "body": response.json() if response.content else None}


async def _poll(client: httpx.AsyncClient, path: str, params: dict[str, str], wait: float = 30.0) -> httpx.Response:
    """GET until the answer lists something (a job executor's work shows up within `wait` seconds)."""
    for _ in range(int(wait / 0.25)):
        response = await client.get(path, params=params)
        body = response.json()
        if response.status_code != 200 or (body.get("data") if isinstance(body, dict) else body):
            return response
        await asyncio.sleep(0.25)
    return response


# ---------------------------------------------------------------- Camunda 7 (/engine-rest)
async def camunda_deploy(client: httpx.AsyncClient, key: str, xml: bytes | None = None) -> None:
    files = {"data": (f"{key}.bpmn", xml or bpmn("camunda7", key), "application/xml")}
    response = await client.post("/deployment/create", data={"deployment-name": key}, files=files)
    assert response.status_code == 200, response.text


CAMUNDA_APPROVAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://pm-gateway.dev">
  <bpmn:process id="holding" isExecutable="true" camunda:historyTimeToLive="P30D">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="hold" />
    <bpmn:userTask id="hold" name="Hold" />
    <bpmn:sequenceFlow id="f2" sourceRef="hold" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


async def camunda_start_unknown_key(client: httpx.AsyncClient) -> Answers:
    return await _answer(await client.post("/process-definition/key/no-such-process/start", json={}))


async def camunda_variables_of_every_type(client: httpx.AsyncClient) -> Answers:
    await camunda_deploy(client, "holding", CAMUNDA_APPROVAL)
    variables = {
        "big": {"value": 9_007_199_254_740_993, "type": "Long"},
        "when": {"value": "2026-11-22T10:00:00.250+0000", "type": "Date"},
        "nothing": {"value": None, "type": "Null"},
        "doc": {
            "value": '{"n":null,"items":[1,2]}',
            "type": "Json",
        },
    }
    started = await client.post("/process-definition/key/holding/start", json={"variables": variables})
    instance_id = started.json()["id"]
    return await _answer(
        await client.get(f"/process-instance/{instance_id}/variables", params={"deserializeValues": "false"})
    )


async def camunda_failing_expression(client: httpx.AsyncClient) -> Answers:
    await camunda_deploy(client, "dividing")
    started = await client.post(
        "/process-definition/key/dividing/start", json={"variables": {"divisor": {"value": 0, "type": "Integer"}}}
    )
    incidents = await _poll(client, "/incident", {"processInstanceId": started.json()["id"]})
    answer = await _answer(incidents)
    answer["body"] = [
        {k: incident.get(k) for k in ("incidentType", "activityId", "failedActivityId", "incidentMessage")}
        for incident in answer["body"]
    ]
    return answer


# ---------------------------------------------------------------- Flowable (/process-api)
async def flowable_deploy(client: httpx.AsyncClient, key: str, xml: bytes | None = None) -> None:
    files = {"file": (f"{key}.bpmn20.xml", xml or bpmn("flowable", key), "application/xml")}
    response = await client.post("/repository/deployments", files=files)
    assert response.status_code == 201, response.text


FLOWABLE_HOLDING = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" targetNamespace="http://pm-gateway.dev">
  <process id="holding" isExecutable="true">
    <startEvent id="start" />
    <sequenceFlow id="f1" sourceRef="start" targetRef="hold" />
    <userTask id="hold" name="Hold" />
    <sequenceFlow id="f2" sourceRef="hold" targetRef="end" />
    <endEvent id="end" />
  </process>
</definitions>
"""


async def flowable_start_unknown_key(client: httpx.AsyncClient) -> Answers:
    return await _answer(await client.post("/runtime/process-instances", json={"processDefinitionKey": "no-such"}))


async def flowable_json_null_entry(client: httpx.AsyncClient) -> Answers:
    await flowable_deploy(client, "holding", FLOWABLE_HOLDING)
    variables = [
        {"name": "doc", "type": "json", "value": {"n": None, "items": [1, None]}},
        {"name": "big", "type": "long", "value": 9_007_199_254_740_993},
        {"name": "nothing", "value": None},
    ]
    started = await client.post(
        "/runtime/process-instances", json={"processDefinitionKey": "holding", "variables": variables}
    )
    answer = await _answer(await client.get(f"/runtime/process-instances/{started.json()['id']}/variables"))
    answer["body"] = sorted(answer["body"], key=lambda variable: variable["name"])
    return answer


async def flowable_resolve_drops_variables(client: httpx.AsyncClient) -> Answers:
    await flowable_deploy(client, "holding", FLOWABLE_HOLDING)
    started = await client.post("/runtime/process-instances", json={"processDefinitionKey": "holding"})
    instance_id = started.json()["id"]
    task_id = (await client.post("/query/tasks", json={"processInstanceId": instance_id})).json()["data"][0]["id"]
    steps = [
        {"action": "claim", "assignee": "bob"},
        {"action": "delegate", "assignee": "dave"},
        {"action": "resolve", "variables": [{"name": "checked_by", "type": "string", "value": "dave"}]},
    ]
    statuses = [(await client.post(f"/runtime/tasks/{task_id}", json=step)).status_code for step in steps]
    task = (await client.get(f"/runtime/tasks/{task_id}")).json()
    variables = (await client.get(f"/runtime/process-instances/{instance_id}/variables")).json()
    return {
        "statuses": statuses,
        "task": {k: task.get(k) for k in ("assignee", "owner", "delegationState")},
        "variables": variables,
    }


async def flowable_failing_expression(client: httpx.AsyncClient) -> Answers:
    await flowable_deploy(client, "dividing")
    started = await client.post(
        "/runtime/process-instances",
        json={"processDefinitionKey": "dividing", "variables": [{"name": "divisor", "type": "integer", "value": 0}]},
    )
    jobs = await _poll(client, "/management/deadletter-jobs", {"processInstanceId": started.json()["id"]})
    answer = await _answer(jobs)
    answer["body"] = [
        {k: job.get(k) for k in ("exceptionMessage", "retries", "elementId", "jobType")}
        for job in answer["body"]["data"]
    ]
    return answer


SCENARIOS: dict[str, dict[str, Scenario]] = {
    "camunda7": {
        "start-unknown-key": camunda_start_unknown_key,
        "variables-of-every-type": camunda_variables_of_every_type,
        "failing-expression": camunda_failing_expression,
    },
    "flowable": {
        "start-unknown-key": flowable_start_unknown_key,
        "json-null-entry": flowable_json_null_entry,
        "resolve-drops-variables": flowable_resolve_drops_variables,
        "failing-expression": flowable_failing_expression,
    },
}


def recording_path(engine: str, scenario: str) -> Path:
    return RECORDED / f"{engine}-{scenario}.json"


def recorded(engine: str, scenario: str) -> Answers:
    return json.loads(recording_path(engine, scenario).read_text())


async def run_scenario(engine: str, scenario: str, client: httpx.AsyncClient) -> Answers:
    """The scenario's normalized answers from the engine behind `client`."""
    return normalize(await SCENARIOS[engine][scenario](client))


def record() -> None:
    """Start each real engine, run every scenario on it and write the answers under `recorded/`."""
    from tests.real_engines.runner import RealEngines, RunningEngine

    RECORDED.mkdir(exist_ok=True)
    engines = RealEngines(Path(tempfile.mkdtemp(prefix="pm-engines-")))
    try:
        for engine, scenarios in SCENARIOS.items():
            running = engines.get(engine)
            for scenario in scenarios:
                running.reset()

                async def run(
                    scenario: str = scenario, engine: str = engine, running: RunningEngine = running
                ) -> Answers:
                    async with httpx.AsyncClient(base_url=running.url, auth=running.credentials, timeout=30) as client:
                        return await run_scenario(engine, scenario, client)

                answers = asyncio.run(run())
                recording_path(engine, scenario).write_text(json.dumps(answers, indent=2, sort_keys=True) + "\n")
                print(f"recorded {engine} {scenario}")
    finally:
        engines.close()


if __name__ == "__main__":
    record()
