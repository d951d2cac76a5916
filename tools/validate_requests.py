r"""Check recorded adapter requests against an engine's official OpenAPI spec.

    PM_RECORD_REQUESTS_DIR=/tmp/rec .venv/bin/python -m pytest -q tests/conformance
    .venv/bin/python -m tools.validate_requests --engine camunda7 --spec SPEC.json /tmp/rec/camunda7.jsonl
    .venv/bin/python -m tools.validate_requests --engine flowable --base-path /process-api --spec SPEC.json \
        /tmp/rec/real-flowable.jsonl

Recordings are the JSON lines written by `gateway/engines/testing/recording.py`. Prints one line per invalid
request with the reason, then `N requests, N valid, N invalid`; exits 1 if any request is invalid.

Every request is checked with openapi-core: path and method, path/query parameters, content type and body.
Security requirements are not checked: recordings deliberately hold no credentials. The spec files are
not part of the project; pass their path. Known spec quirks are patched in memory (see ENGINES).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jsonschema.exceptions import ValidationError, best_match
from jsonschema_path import SchemaPath
from jsonschema_path.handlers.file import FileHandler
from jsonschema_path.handlers.utils import uri_to_path
from openapi_core import Config, OpenAPI
from openapi_core.security.factories import SecurityProviderFactory
from openapi_core.testing import MockRequest
from openapi_core.validation.request.exceptions import RequestBodyValidationError

# A patch sees every mapping of every spec document, with the key it sits under, and edits it in place.
SpecPatch = Callable[[str | None, dict[str, Any]], None]


# ---------------------------------------------------------------- Camunda 8 (Zeebe) spec quirks
def allow_page_in_strict_search_bodies(name: str | None, node: dict[str, Any]) -> None:
    """Search bodies are `additionalProperties: false` plus `allOf: [SearchQueryRequest]`. Properties
    declared inside `allOf` do not count for `additionalProperties`, so any `page` is "unexpected".
    Declaring `page` locally as `{}` lets it through; the SearchQueryRequest branch still validates it."""
    if node.get("additionalProperties") is False and any(
        str(part.get("$ref", "")).endswith("/SearchQueryRequest") for part in node.get("allOf", ())
    ):
        node.setdefault("properties", {}).setdefault("page", {})


def page_one_of_as_any_of(name: str | None, node: dict[str, Any]) -> None:
    """`SearchQueryPageRequest` is a `oneOf` whose branches overlap (8.8: `{after, limit}` matches two;
    8.9: every page matches both LimitPagination and OffsetPagination), so strictly no page is valid."""
    if name == "SearchQueryPageRequest" and "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")


def key_alias_one_of_as_any_of(name: str | None, node: dict[str, Any]) -> None:
    """`ResourceKey`, `ScopeKey`, `elementInstanceScopeKey` ... are a `oneOf` of key schemas that all
    accept the same numeric string, so a `oneOf` of them rejects every key."""
    branches = node.get("oneOf")
    if branches and all(str(branch.get("$ref", "")).endswith("Key") for branch in branches):
        node["anyOf"] = node.pop("oneOf")


def filter_property_accepts_plain_value(name: str | None, node: dict[str, Any]) -> None:
    """8.8 declares every `*FilterProperty` as `type: object` around `oneOf: [plain value, advanced
    filter]`, which rejects the plain form `{"assignee": "demo"}`. 8.9 drops that `type`; so do we."""
    if name is not None and name.endswith("FilterProperty") and "oneOf" in node:
        node.pop("type", None)


# Python's `re` has no `\p{...}` classes. `[^\W\d]` is a letter or `_`; `\w` adds digits.
PYTHON_PATTERNS = {r"^[\p{L}_][\p{L}\p{N}_\-\.]*$": r"^[^\W\d][\w\-\.]*$"}


def unicode_class_patterns_for_python(name: str | None, node: dict[str, Any]) -> None:
    r"""8.9 `ProcessDefinitionId`/`DecisionDefinitionId` patterns use `\p{L}`/`\p{N}`: openapi-core fails
    with "bad escape \p" on every valid id. Translate the known patterns; refuse unknown ones."""
    pattern = node.get("pattern")
    if isinstance(pattern, str) and r"\p{" in pattern:
        if pattern not in PYTHON_PATTERNS:
            raise SystemExit(f"spec pattern {pattern!r} uses \\p{{...}}: add its Python form to PYTHON_PATTERNS")
        node["pattern"] = PYTHON_PATTERNS[pattern]


# ---------------------------------------------------------------- Flowable spec quirks
def migration_document_is_json(name: str | None, node: dict[str, Any]) -> None:
    """The migrate endpoints take `@RequestBody String migrationDocumentJson` and parse the raw body as the
    migration document (`ProcessInstanceMigrationDocumentImpl.fromJson`), so the generated spec says
    `type: string`; what the engine reads is a JSON object. Accept any JSON document there."""
    if name == "batchMigrateInstancesOfProcessDefinitionBody":
        for media in node.get("content", {}).values():
            media["schema"] = {"type": "object"}


# ---------------------------------------------------------------- Camunda 7 spec quirks
CAMUNDA7_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}")


def is_camunda7_date(value: object) -> bool:
    """Camunda 7 declares dates as `format: date-time` (RFC 3339), yet their descriptions say "the date must
    have the format `yyyy-MM-dd'T'HH:mm:ss.SSSZ`" (`2013-01-23T14:42:45.000+0200`): check what the engine parses."""
    return not isinstance(value, str) or CAMUNDA7_DATE.fullmatch(value) is not None


@dataclass(frozen=True)
class Engine:
    base_path: str  # what the adapter puts in front of the spec's paths; stripped before matching
    spec_patches: tuple[SpecPatch, ...] = ()
    format_checks: dict[str, Callable[[object], bool]] = field(default_factory=dict)
    spec_hint: str = ""


ENGINES = {
    "camunda7": Engine(
        base_path="/engine-rest",
        format_checks={"date-time": is_camunda7_date},
        spec_hint="camunda7-engine-rest-openapi-7.23.0.json",
    ),
    # openapi-core cannot read the Swagger 2.0 file Flowable serves: use the converted, patched OAS3 copy.
    "flowable": Engine(
        base_path="/flowable-rest/service",
        spec_patches=(migration_document_is_json,),
        spec_hint="flowable-rest-process-openapi3-7.2.0.patched.json",
    ),
    "zeebe": Engine(
        base_path="/v2",
        spec_patches=(
            allow_page_in_strict_search_bodies,
            page_one_of_as_any_of,
            key_alias_one_of_as_any_of,
            filter_property_accepts_plain_value,
            unicode_class_patterns_for_python,
        ),
        spec_hint="8.8/rest-api.yaml or 8.9/v2/rest-api.yaml",
    ),
}


class _CredentialsNotRecorded(SecurityProviderFactory):
    """Treats every security scheme as satisfied: recordings carry no Authorization header."""

    def create(self, scheme: SchemaPath) -> Callable[[object], None]:
        return lambda parameters: None


def load_spec(spec_file: Path, engine: Engine) -> OpenAPI:
    """The spec with the engine's patches applied to every document it is made of (8.9 is multi-file)."""

    def load_document(uri: str) -> dict[str, Any]:
        path = Path(uri_to_path(uri))
        with path.open(encoding="utf-8") as stream:
            # PyYAML reads the 2 MB Camunda 7 JSON file in seconds; json in a tenth of one.
            document = json.load(stream) if path.suffix == ".json" else FileHandler()(stream)
        _patch(document, None, engine.spec_patches)
        return document

    root_uri = spec_file.resolve().as_uri()
    root = load_document(root_uri)
    if not str(root.get("openapi", "")).startswith("3."):
        raise SystemExit(f"{spec_file} is not an OpenAPI 3 document; use {engine.spec_hint}")
    # Match paths from the API root: the engine's base path is stripped from each recorded path instead.
    root.pop("servers", None)
    return OpenAPI(
        SchemaPath.from_dict(root, base_uri=root_uri, handlers={"file": load_document}),
        config=Config(
            # The spec itself is not re-validated: that takes 5 s for Camunda 7 and is not what we check here.
            spec_validator_cls=None,
            extra_format_validators=engine.format_checks,
            security_provider_factory=_CredentialsNotRecorded(),
        ),
    )


def _patch(node: Any, name: str | None, patches: tuple[SpecPatch, ...]) -> None:
    if isinstance(node, dict):
        for patch in patches:
            patch(name, node)
        for key, child in list(node.items()):
            _patch(child, key, patches)
    elif isinstance(node, list):
        for child in node:
            _patch(child, name, patches)


def problems(api: OpenAPI, engine: Engine, entry: dict[str, Any]) -> list[str]:
    """Why the recorded request is not a valid request of the spec; empty when it is."""
    path = entry["path"]
    if not path.startswith(engine.base_path + "/"):
        return [f"path is not under the engine base path {engine.base_path}"]
    request = MockRequest(
        "http://engine.test",
        entry["method"],
        path.removeprefix(engine.base_path),
        args=parse_qsl(entry["query"], keep_blank_values=True),  # type: ignore[arg-type]  # a list keeps repeated keys
        data=base64.b64decode(entry["body_b64"]),
        content_type=entry["content_type"] or "",
    )
    return [_describe(error) for error in api.request_validator.iter_errors(request)]


def _describe(error: Exception) -> str:
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        subject = "request body" if isinstance(error, RequestBodyValidationError) else str(error)
        return f"{subject}: " + "; ".join(_schema_message(e) for e in schema_errors)
    if cause is not None and str(cause) not in str(error):
        return f"{error}: {cause}"
    return str(error)


def _schema_message(error: ValidationError) -> str:
    """The most specific failure, e.g. inside the `oneOf` branch that came closest to matching."""
    error = best_match([error]) or error
    location = "/".join(map(str, error.absolute_path))
    return f"{location}: {error.message}" if location else error.message


def read_recording(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.validate_requests", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", required=True, choices=sorted(ENGINES))
    parser.add_argument(
        "--spec", required=True, type=Path, help="the engine's OpenAPI 3 file (kept outside the project)"
    )
    parser.add_argument(
        "--base-path",
        help="the engine's REST base path when it differs from the default (a real Flowable: /process-api)",
    )
    parser.add_argument("recordings", nargs="+", type=Path, help="JSON-lines files from PM_RECORD_REQUESTS_DIR")
    args = parser.parse_args(argv)

    engine = ENGINES[args.engine]
    if args.base_path:
        engine = dataclasses.replace(engine, base_path=args.base_path.rstrip("/"))
    api = load_spec(args.spec, engine)
    total = invalid = 0
    for recording in args.recordings:
        for number, entry in read_recording(recording):
            total += 1
            reasons = problems(api, engine, entry)
            if reasons:
                invalid += 1
                print(f"{recording}:{number}: {entry['method']} {entry['url']}: {' | '.join(reasons)}")
    print(f"{total} requests, {total - invalid} valid, {invalid} invalid")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
