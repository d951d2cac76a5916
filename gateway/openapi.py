"""The OpenAPI document as the API really answers: every error is an RFC 9457 problem (`application/problem+json`),
a 422 carries `errors[]`, and each operation lists the error statuses it can answer.

`compatibility_breaks` compares two documents for the changes that break a frontend (a removed operation,
a removed response field, a narrowed type, a new required input); `tests/test_openapi_contract.py` runs it
against the snapshot `docs/openapi.json`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_JSON = "application/problem+json"

ERROR_ANSWERS: dict[int, str] = {
    400: "Bad request: malformed input (e.g. invalid BPMN, not JSON), or the engine refused it",
    401: "Not authenticated",
    403: "Not allowed for this caller",
    404: "No such resource, route or engine",
    409: "Conflict with the current state (e.g. task claimed by another user, concurrent change)",
    413: "The request body is over PM_MAX_UPLOAD_BYTES",
    422: "Invalid input; `errors[]` names each bad field",
    501: "The engine does not support this operation",
    502: "The engine answered with an error it should not have, or an answer the gateway cannot read",
    503: "The engine (or the gateway's database) is unavailable; `Retry-After` says when to try again",
    504: "The engine did not answer in time",
}
ENGINE_STATUSES = (501, 502, 503, 504)
GATEWAY_ONLY_PREFIXES = ("/api/processes/audit", "/api/processes/events", "/api/processes/operations")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "example": "https://pm-gateway.dev/problems/not-found"},
        "title": {"type": "string", "example": "Not found"},
        "status": {"type": "integer", "example": 404},
        "detail": {"type": "string", "example": "No task 'abc' on engine 'local'"},
        "instance": {"type": "string", "nullable": True, "description": "The request path"},
        "engine": {"type": "string", "description": "The engine involved, when one is"},
        "engine_status": {"type": "integer", "description": "The engine's own HTTP status"},
        "engine_message": {"type": "string", "description": "The engine's own error message"},
    },
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "A problem whose `errors[]` names each invalid field (`loc`: where, `msg`: what is wrong)",
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg"],
                        "properties": {
                            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                            "msg": {"type": "string"},
                        },
                    },
                }
            },
        },
    ],
}


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    if not path.startswith("/api/"):
        return []
    statuses = [400, 401, 403, 404, 422]
    if method in ("post", "put", "patch", "delete"):
        statuses.append(409)
    if "requestBody" in operation:
        statuses.append(413)
    if not path.startswith(GATEWAY_ONLY_PREFIXES):
        statuses.extend(ENGINE_STATUSES)
    return sorted(statuses)


def _problem_answer(status: int) -> dict[str, Any]:
    schema = "ValidationProblem" if status == 422 else "Problem"
    answer: dict[str, Any] = {
        "description": ERROR_ANSWERS[status],
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if status == 503:
        answer["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    return answer


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the problem answers put in; cached on the app like FastAPI's own."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _error_statuses(path, method, operation):
                responses[str(status)] = _problem_answer(status)
    app.openapi_schema = document
    return document


# ---------------------------------------------------------------- compatibility
def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema admits (`$ref`s by name), to see whether a type narrowed."""
    if "$ref" in schema:
        return {schema["$ref"]}
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            found |= _types(option)
    if "type" in schema:
        found.add(schema["type"])
    if schema.get("nullable"):
        found.add("null")
    return found or {"any"}


def _request_schemas(document: dict[str, Any]) -> set[str]:
    """Names of the component schemas a request body uses, directly or nested."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in found:
                    found.add(name)
                    walk(document["components"]["schemas"].get(name, {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            walk(operation.get("requestBody", {}))
    return found


def compatibility_breaks(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Changes from `old` to `new` that break a client written against `old`: removed operations and
    response statuses, removed schema fields, narrowed field types or enums, newly required parameters and
    request fields. Additions are not breaks. Returns one line per break."""
    breaks: list[str] = []
    for path, operations in old.get("paths", {}).items():
        for method, operation in operations.items():
            current = new.get("paths", {}).get(path, {}).get(method)
            where = f"{method.upper()} {path}"
            if current is None:
                breaks.append(f"{where}: operation removed")
                continue
            before = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
            for parameter in current.get("parameters", []):
                if parameter.get("required") and (parameter["in"], parameter["name"]) not in before:
                    breaks.append(f"{where}: new required {parameter['in']} parameter '{parameter['name']}'")
            for status in operation.get("responses", {}):
                if status.startswith("2") and status not in current.get("responses", {}):
                    breaks.append(f"{where}: success answer {status} removed")
            if "requestBody" in current and "requestBody" not in operation and current["requestBody"].get("required"):
                breaks.append(f"{where}: a request body is now required")
    requests = _request_schemas(new)
    old_schemas = old.get("components", {}).get("schemas", {})
    new_schemas = new.get("components", {}).get("schemas", {})
    for name, schema in old_schemas.items():
        current = new_schemas.get(name)
        if current is None:
            continue  # a renamed schema shows up as removed fields or types of the operations that use it
        old_fields, new_fields = schema.get("properties", {}), current.get("properties", {})
        for field, field_schema in old_fields.items():
            if field not in new_fields:
                breaks.append(f"schema {name}: field '{field}' removed")
                continue
            narrowed = _types(field_schema) - _types(new_fields[field])
            if narrowed and "any" not in _types(new_fields[field]):
                breaks.append(f"schema {name}: field '{field}' no longer accepts {', '.join(sorted(narrowed))}")
            dropped = set(field_schema.get("enum", [])) - set(
                new_fields[field].get("enum", field_schema.get("enum", []))
            )
            if dropped:
                breaks.append(f"schema {name}: field '{field}' lost values {', '.join(sorted(map(str, dropped)))}")
        if name in requests:
            for field in set(current.get("required", [])) - set(schema.get("required", [])):
                breaks.append(f"schema {name}: field '{field}' is now required in requests")
    return breaks
