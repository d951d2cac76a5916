"""Write the API reference, docs/API.md, from the gateway's OpenAPI document; `--snapshot` also records the
document as the compatibility snapshot docs/openapi.json (do that with a release: see CHANGELOG.md).

Run: python -m tools.api_docs [--snapshot]. tests/test_openapi_contract.py fails when docs/API.md is not current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "API.md"
SNAPSHOT = ROOT / "docs" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The document the gateway serves at /openapi.json (built without starting it: no database is opened)."""
    from gateway.bootstrap import create_app
    from gateway.settings import Settings

    app = create_app(
        Settings(database_url="sqlite+aiosqlite:///:memory:", engines=[{"name": "default", "type": "embedded"}])
    )
    return app.openapi()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(_type(option) for option in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    return f"{kind}" + (f" ({schema['format']})" if "format" in schema else "")


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def render(document: dict[str, Any]) -> str:
    from gateway.openapi import ERROR_ANSWERS

    """Markdown: the operations by tag (parameters, body, answers) and then every schema with its fields."""
    out = [
        f"# {document['info']['title']} API reference (version {document['info']['version']})",
        "",
        "Generated from the OpenAPI document by `python -m tools.api_docs`; do not edit by hand. The running",
        "gateway serves the same document at `/openapi.json` and an explorer at `/docs`.",
        "",
        _cell(document["info"].get("description")),
        "",
        "Every error answer is an RFC 9457 problem, `application/problem+json` ([Problem](#problem)); a 422",
        "also lists each invalid field in `errors[]` ([ValidationProblem](#validationproblem)). What each status",
        "means:",
        "",
        *(f"- `{status}` {text}" for status, text in ERROR_ANSWERS.items()),
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            by_tag.setdefault((operation.get("tags") or ["operations"])[0], []).append((method, path, operation))
    for tag, operations in by_tag.items():
        out += [f"## {tag.capitalize()}", ""]
        for method, path, operation in operations:
            out += [
                f"### `{method.upper()} {path}`",
                "",
                f"**{operation.get('summary', '')}.** {_cell(operation.get('description'))}",
                "",
            ]
            parameters = operation.get("parameters", [])
            if parameters:
                out += ["| Parameter | In | Type | Required | Description |", "|---|---|---|---|---|"]
                for p in parameters:
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                        f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description'))} |"
                    )
                out.append("")
            body = operation.get("requestBody")
            if body:
                kinds = ", ".join(
                    f"{media}: {_type(content.get('schema', {}))}" for media, content in body["content"].items()
                )
                out += [f"Body ({'required' if body.get('required') else 'optional'}): {kinds}", ""]
            answers, problems = [], []
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if "application/problem+json" in content:
                    problems.append(f"`{status}`")
                    continue
                kinds = ", ".join(f"`{media}` {_type(c.get('schema', {}))}".rstrip() for media, c in content.items())
                answers.append(f"`{status}` {_cell(answer.get('description'))}" + (f" ({kinds})" if kinds else ""))
            out += ["Answers: " + "; ".join(answers) + "."]
            if problems:
                out += [f"Problems: {', '.join(problems)}."]
            out.append("")
    out += ["## Schemas", ""]
    for name, schema in sorted(document["components"]["schemas"].items()):
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        fields = schema.get("properties", {})
        if "enum" in schema:
            out += ["One of " + ", ".join(f"`{value}`" for value in schema["enum"]) + ".", ""]
        if fields:
            required = set(schema.get("required", []))
            out += ["| Field | Type | Required | Description |", "|---|---|---|---|"]
            for field, field_schema in fields.items():
                out.append(
                    f"| `{field}` | {_type(field_schema)} | {'yes' if field in required else 'no'} | "
                    f"{_cell(field_schema.get('description'))} |"
                )
            out.append("")
        if schema.get("additionalProperties") is False:
            out += ["Unknown fields are refused (422).", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    document = openapi_document()
    API_MD.parent.mkdir(exist_ok=True)
    API_MD.write_text(render(document))
    print(f"wrote {API_MD.relative_to(ROOT)}")
    if "--snapshot" in argv:
        SNAPSHOT.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
