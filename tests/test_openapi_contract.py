"""The OpenAPI document describes the API as it answers, and changes to it keep frontends working."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from gateway import __version__
from gateway.openapi import compatibility_breaks
from tools.api_docs import API_MD, SNAPSHOT, openapi_document, render

ROOT = Path(__file__).resolve().parent.parent
ERROR_STATUSES = {"400", "401", "403", "404", "422"}
ENGINE_STATUSES = {"501", "502", "503", "504"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    bare = [
        f"{m.upper()} {p}" for m, p, op in operations(document) if not op.get("summary") or not op.get("description")
    ]
    assert bare == []


def test_every_error_answer_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if not path.startswith("/api/"):
            continue
        responses = operation["responses"]
        expected = set(ERROR_STATUSES)
        if method in ("post", "put", "delete"):
            expected.add("409")
        if "requestBody" in operation:
            expected.add("413")
        assert expected <= set(responses), f"{method.upper()} {path}"
        for status, answer in responses.items():
            if status[0] in "45":
                assert list(answer["content"]) == ["application/problem+json"], f"{method.upper()} {path} {status}"
    task_list = document["paths"]["/api/processes/tasks"]["get"]["responses"]
    assert set(task_list) >= ENGINE_STATUSES
    assert task_list["422"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/ValidationProblem")
    validation = document["components"]["schemas"]["ValidationProblem"]["allOf"][1]
    assert validation["required"] == ["errors"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_typed_value_type_is_optional(document: dict[str, Any]) -> None:
    assert "type" not in document["components"]["schemas"]["TypedValue"].get("required", [])


def test_no_breaking_change_against_the_snapshot_unless_versioned_in_the_changelog(document: dict[str, Any]) -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    breaks = compatibility_breaks(snapshot, document)
    if not breaks:
        return
    recorded = snapshot["info"]["version"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    bumped = Version(__version__) > Version(recorded)
    assert bumped and re.search(rf"^## {re.escape(__version__)}\b", changelog, re.M), (
        f"breaking API changes against docs/openapi.json (version {recorded}): {breaks}. Bump the version, "
        "describe the change in CHANGELOG.md, then run `python -m tools.api_docs --snapshot`."
    )


def test_the_api_reference_in_the_repository_is_current(document: dict[str, Any]) -> None:
    assert API_MD.read_text() == render(document), "docs/API.md is out of date: run `python -m tools.api_docs`"


# ------------------------------------------------------------------ what counts as breaking
def mutated(document: dict[str, Any], change: Any) -> dict[str, Any]:
    copied = copy.deepcopy(document)
    change(copied)
    return copied


def test_removed_operations_fields_narrowed_types_and_new_required_inputs_break(document: dict[str, Any]) -> None:
    schemas = "components", "schemas"

    def remove_route(d: dict[str, Any]) -> None:
        del d["paths"]["/api/processes/tasks/{task_id}/claim"]

    def remove_field(d: dict[str, Any]) -> None:
        del d[schemas[0]][schemas[1]]["Task"]["properties"]["due"]

    def narrow_type(d: dict[str, Any]) -> None:
        d[schemas[0]][schemas[1]]["Task"]["properties"]["assignee"] = {"type": "string"}

    def require_field(d: dict[str, Any]) -> None:
        d[schemas[0]][schemas[1]]["Completion"]["required"] = ["variables"]

    def require_parameter(d: dict[str, Any]) -> None:
        d["paths"]["/api/processes/tasks"]["get"]["parameters"].append(
            {"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}}
        )

    expected = {
        remove_route: "POST /api/processes/tasks/{task_id}/claim: operation removed",
        remove_field: "schema Task: field 'due' removed",
        narrow_type: "schema Task: field 'assignee' no longer accepts null",
        require_field: "schema Completion: field 'variables' is now required in requests",
        require_parameter: "GET /api/processes/tasks: new required query parameter 'tenant'",
    }
    for change, message in expected.items():
        assert compatibility_breaks(document, mutated(document, change)) == [message]


def test_additions_do_not_break(document: dict[str, Any]) -> None:
    def add(d: dict[str, Any]) -> None:
        d["paths"]["/api/processes/new"] = {"get": {"responses": {"200": {"description": "ok"}}}}
        d["components"]["schemas"]["Task"]["properties"]["sla"] = {"type": "string"}
        d["paths"]["/api/processes/tasks"]["get"]["parameters"].append(
            {"name": "sla", "in": "query", "required": False, "schema": {"type": "string"}}
        )
        d["components"]["schemas"]["Task"]["properties"]["priority"] = {
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        }

    assert compatibility_breaks(document, mutated(document, add)) == []
