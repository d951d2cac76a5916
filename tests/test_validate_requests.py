"""tools.validate_requests against tiny inline specs, with requests recorded by the conformance recorder."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.engines.testing.recording import RecordingTransport
from tools.validate_requests import main

CAMUNDA7_SPEC = """
openapi: 3.0.2
info: {title: tiny Camunda 7, version: "1"}
servers: [{url: "http://{host}/engine-rest", variables: {host: {default: localhost}}}]
security: [{basicAuth: []}]
components: {securitySchemes: {basicAuth: {type: http, scheme: basic}}}
paths:
  /process-definition/key/{key}/start:
    post:
      parameters: [{name: key, in: path, required: true, schema: {type: string}}]
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties: {businessKey: {type: string}, variables: {type: object}}
      responses: {"200": {description: started}}
  /task/{id}:
    put:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {due: {type: string, format: date-time}}}
      responses: {"204": {description: updated}}
  /task:
    get:
      parameters: [{name: maxResults, in: query, schema: {type: integer}}]
      responses: {"200": {description: tasks}}
"""

# A two-file spec with the Camunda 8 quirks the tool patches; like 8.9, the root refers to other files.
ZEEBE_ROOT = """
openapi: 3.0.3
info: {title: tiny Camunda 8, version: "1"}
servers: [{url: "{schema}://{host}/v2", variables: {schema: {default: http}, host: {default: localhost}}}]
paths:
  /process-instances/search:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              allOf: [{$ref: "search.yaml#/components/schemas/SearchQueryRequest"}]
              properties:
                filter:
                  type: object
                  properties: {processDefinitionId: {$ref: "search.yaml#/components/schemas/ProcessDefinitionId"}}
      responses: {"200": {description: found}}
"""
ZEEBE_SEARCH_MODELS = r"""
components:
  schemas:
    SearchQueryRequest:
      type: object
      properties: {page: {$ref: "#/components/schemas/SearchQueryPageRequest"}}
    SearchQueryPageRequest:
      oneOf:
        - {type: object, properties: {limit: {type: integer, minimum: 1}}}
        - {type: object, properties: {from: {type: integer}, limit: {type: integer, minimum: 1}}}
    ProcessDefinitionId: {type: string, pattern: '^[\p{L}_][\p{L}\p{N}_\-\.]*$'}
"""


async def record(base_url: str, recording: Path, calls: list[dict]) -> None:
    """Sends the calls through the conformance suite's recorder, as an adapter under test would."""
    transport = RecordingTransport(httpx.MockTransport(lambda request: httpx.Response(200)), recording)
    async with httpx.AsyncClient(base_url=base_url, transport=transport) as client:
        for call in calls:
            await client.request(**call)


@pytest.fixture
def camunda7_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "camunda7.yaml"
    spec.write_text(CAMUNDA7_SPEC)
    return spec


async def test_reports_each_invalid_request_and_exits_1(tmp_path: Path, camunda7_spec: Path, capsys) -> None:
    recording = tmp_path / "camunda7.jsonl"
    await record(
        "http://camunda7.test/engine-rest",
        recording,
        [
            {"method": "POST", "url": "/process-definition/key/approval/start", "json": {"businessKey": "order-1"}},
            {"method": "POST", "url": "/process-definition/key/approval/start", "json": {"businessKey": 7}},
            {"method": "GET", "url": "/task", "params": {"maxResults": "many"}},
            {"method": "DELETE", "url": "/no-such-resource"},
        ],
    )

    exit_code = main(["--engine", "camunda7", "--spec", str(camunda7_spec), str(recording)])

    lines = capsys.readouterr().out.splitlines()
    assert exit_code == 1
    assert lines[-1] == "4 requests, 1 valid, 3 invalid"
    body_error, query_error, path_error = lines[:-1]
    assert body_error.startswith(
        f"{recording}:2: POST http://camunda7.test/engine-rest/process-definition/key/approval"
    )
    assert "request body: businessKey: 7 is not of type 'string'" in body_error
    assert "maxResults" in query_error and "many" in query_error
    assert "DELETE" in path_error and "not found" in path_error


async def test_valid_requests_exit_0_and_camunda7_dates_use_the_engine_format(
    tmp_path: Path, camunda7_spec: Path, capsys
) -> None:
    valid, rfc3339 = tmp_path / "valid.jsonl", tmp_path / "rfc3339.jsonl"
    await record(
        "http://camunda7.test/engine-rest",
        valid,
        [
            {"method": "PUT", "url": "/task/1", "json": {"due": "2026-11-22T10:00:00.250+0000"}},
            {"method": "GET", "url": "/task", "params": {"maxResults": "5"}},
        ],
    )
    await record(
        "http://camunda7.test/engine-rest",
        rfc3339,
        [{"method": "PUT", "url": "/task/1", "json": {"due": "2026-11-22T10:00:00Z"}}],
    )

    assert main(["--engine", "camunda7", "--spec", str(camunda7_spec), str(valid)]) == 0
    assert capsys.readouterr().out.splitlines() == ["2 requests, 2 valid, 0 invalid"]

    assert main(["--engine", "camunda7", "--spec", str(camunda7_spec), str(rfc3339)]) == 1
    assert "due: '2026-11-22T10:00:00Z' is not a 'date-time'" in capsys.readouterr().out


async def test_zeebe_spec_quirks_are_patched_in_every_file_of_the_spec(tmp_path: Path, capsys) -> None:
    (tmp_path / "rest-api.yaml").write_text(ZEEBE_ROOT)
    (tmp_path / "search.yaml").write_text(ZEEBE_SEARCH_MODELS)
    recording = tmp_path / "zeebe.jsonl"
    search = {"method": "POST", "url": "/process-instances/search"}
    await record(
        "http://zeebe.test/v2",
        recording,
        [
            # Valid only once patched: `page` next to additionalProperties:false, a page matching both
            # oneOf branches, and a \p{L} pattern.
            {**search, "json": {"filter": {"processDefinitionId": "approval"}, "page": {"from": 0, "limit": 50}}},
            {**search, "json": {"filter": {"processDefinitionId": "9-lives"}}},
            {**search, "json": {"page": {"limit": 0}}},
        ],
    )

    exit_code = main(["--engine", "zeebe", "--spec", str(tmp_path / "rest-api.yaml"), str(recording)])

    lines = capsys.readouterr().out.splitlines()
    assert exit_code == 1
    assert lines[-1] == "3 requests, 1 valid, 2 invalid"
    assert "filter/processDefinitionId: '9-lives' does not match" in lines[0]
    assert "page: {'limit': 0} is not valid under any of the given schemas" in lines[1]


FLOWABLE_MIGRATE = """
openapi: 3.0.1
info: {title: flowable, version: "7.2.0"}
paths:
  /runtime/process-instances/{processInstanceId}/migrate:
    post:
      parameters:
        - {name: processInstanceId, in: path, required: true, schema: {type: string}}
      requestBody: {$ref: "#/components/requestBodies/batchMigrateInstancesOfProcessDefinitionBody"}
      responses: {"200": {description: ok}}
components:
  requestBodies:
    batchMigrateInstancesOfProcessDefinitionBody:
      content: {application/json: {schema: {type: string}}}
"""


async def test_flowable_migration_documents_are_json_objects_as_the_engine_reads_them(tmp_path: Path, capsys) -> None:
    (tmp_path / "flowable.yaml").write_text(FLOWABLE_MIGRATE)
    recording = tmp_path / "flowable.jsonl"
    migrate = {"method": "POST", "url": "/runtime/process-instances/4711/migrate"}
    document = {
        "toProcessDefinitionId": "approval:2:1",
        "activityMappings": [{"fromActivityId": "a", "toActivityId": "b"}],
    }
    await record(
        "http://flowable.test/flowable-rest/service",
        recording,
        [{**migrate, "json": document}, {**migrate, "json": [1]}],
    )

    exit_code = main(["--engine", "flowable", "--spec", str(tmp_path / "flowable.yaml"), str(recording)])

    lines = capsys.readouterr().out.splitlines()
    assert exit_code == 1
    assert lines[-1] == "2 requests, 1 valid, 1 invalid"  # the document passes; a body that is no object does not
