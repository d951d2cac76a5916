"""Input no column, JSON parser or database can take is refused before any route sees it, and every failed
mutating call is audited, whichever layer refused it.

Refused with a 422 problem naming the field and the limit (anywhere: path, query, `X-User-Id`, JSON body):
a NUL character in any string (PostgreSQL text cannot hold one), NaN / ±Infinity and numbers that overflow
to them (JSON has no such values; they were stored as null), integers outside the signed 64-bit range, JSON
nested deeper than MAX_JSON_DEPTH, and an `X-User-Id` longer than the audit log's actor column.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import journal
from gateway.auth import Authenticator
from gateway.db import Database
from gateway.errors import GatewayError, ValidationFailed
from gateway.idempotency import read_body, replay_body
from gateway.journal import AuditDraft
from gateway.uow import transaction
from gateway.variables import INT64_MAX, INT64_MIN, unstorable

MAX_JSON_DEPTH = 64
MAX_ACTOR_LENGTH = 255  # audit_log.actor
INVALID_ACTOR = "(invalid X-User-Id)"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEPT_PROBLEM_BYTES = 64 * 1024


class _NonFinite:
    """What the parser makes of NaN, Infinity and -Infinity, so the walk can name where they were."""

    def __init__(self, text: str) -> None:
        self.text = text


def _name(part: str) -> str:
    """A key as it may be shown in a problem: control characters escaped, at most 80 characters."""
    shown = json.dumps(part)[1:-1]
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _json_problem(value: Any, path: list[str], depth: int = 0) -> tuple[list[str], str] | None:
    """The first value of a parsed JSON document that the gateway cannot keep: (its path, the reason)."""
    if depth > MAX_JSON_DEPTH:
        return path, f"JSON is nested deeper than the limit of {MAX_JSON_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if reason := unstorable(key):
                return [*path, _name(key)], f"the name {reason}"
            found = _json_problem(item, [*path, _name(key)], depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _json_problem(item, [*path, str(index)], depth + 1)
            if found:
                return found
    elif isinstance(value, str):
        if reason := unstorable(value):
            return path, reason
    elif isinstance(value, _NonFinite):
        return path, f"{value.text} is not a JSON number; numbers must be finite"
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return path, f"the integer is outside the signed 64-bit range [{INT64_MIN}, {INT64_MAX}]"
    elif isinstance(value, float) and not math.isfinite(value):
        return path, "the number is too large for a double; numbers must be finite"
    return None


def check_json(body: bytes) -> GatewayError | None:
    """A 422 for the first value of a JSON body the gateway cannot keep; None when it is fine or not JSON
    (not JSON at all is left to the route, which answers 400)."""
    try:
        value = json.loads(body, parse_constant=_NonFinite)
    except RecursionError:
        return ValidationFailed(
            f"The request body is JSON nested deeper than the limit of {MAX_JSON_DEPTH} levels",
            errors=[{"loc": ["body"], "msg": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
        )
    except ValueError:
        return None
    found = _json_problem(value, [])
    if found is None:
        return None
    path, reason = found
    shown = path if len(path) <= 8 else [*path[:4], "...", *path[-2:]]
    field = ".".join(shown) or "body"
    return ValidationFailed(f"{field}: {reason}", errors=[{"loc": ["body", *path], "msg": reason}])


def check_target(scope: Scope) -> GatewayError | None:
    """A 422 for a NUL character in the path or a query parameter, an integer query parameter outside
    64 bits, or an invalid `X-User-Id`."""
    if "\x00" in scope["path"]:
        return ValidationFailed("The URL path contains a NUL character, which no identifier may contain")
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return ValidationFailed(
                f"Query parameter {_name(name)}: contains a NUL character, which no string may contain",
                errors=[{"loc": ["query", _name(name)], "msg": "contains a NUL character"}],
            )
        digits = value.strip().lstrip("+-")
        if digits.isascii() and digits.isdigit() and not INT64_MIN <= int(value) <= INT64_MAX:
            return ValidationFailed(
                f"Query parameter {_name(name)}: the integer is outside the signed 64-bit range",
                errors=[{"loc": ["query", _name(name)], "msg": "outside the signed 64-bit range"}],
            )
    user = _user_header(scope)
    if user is not None and ("\x00" in user or len(user) > MAX_ACTOR_LENGTH):
        return ValidationFailed(
            f"X-User-Id must be at most {MAX_ACTOR_LENGTH} characters and contain no NUL character",
            errors=[{"loc": ["header", "x-user-id"], "msg": f"at most {MAX_ACTOR_LENGTH} characters, no NUL"}],
        )
    return None


def _user_header(scope: Scope) -> str | None:
    value = dict(scope["headers"]).get(b"x-user-id")
    return None if value is None else value.decode("utf-8", errors="replace")


async def _actor(scope: Scope, authenticator: Authenticator) -> str:
    """Who made the request, as the route would have seen it; `unauthenticated` when its token was refused."""
    user = _user_header(scope)
    if user is not None and ("\x00" in user or len(user) > MAX_ACTOR_LENGTH):
        return INVALID_ACTOR
    authorization = dict(scope["headers"]).get(b"authorization")
    try:
        caller = await authenticator.caller(
            None if authorization is None else authorization.decode(errors="replace"), user
        )
    except GatewayError:
        return "unauthenticated"
    return caller.actor


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    return content_type.split(b";")[0].strip().lower().endswith(b"json")


class RequestGuardMiddleware:
    """Refuse what `check_target` and `check_json` find, and audit every mutating call that failed (4xx or
    5xx) without an audit row of its own: validation errors, unknown routes, refusals here."""

    def __init__(self, app: ASGIApp, db_getter: Any, authenticator_getter: Any) -> None:
        self.app = app
        self.db_getter = db_getter
        self.authenticator_getter = authenticator_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = check_target(scope)
        if error is None and scope["method"] in MUTATING and _is_json(scope):
            body = await read_body(receive)
            error = check_json(body)
            receive = replay_body(body)
        answered: dict[str, Any] = {"status": 500, "replayed": False, "body": b""}
        if error is not None:
            answered.update(status=error.status, body=json.dumps(error.problem(scope["path"])).encode())
            await send_problem(send, error, scope["path"])
        else:

            async def observing_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    answered["status"] = message["status"]
                    answered["replayed"] = any(
                        k.lower() == b"idempotent-replayed" for k, _ in message.get("headers", [])
                    )
                elif message["type"] == "http.response.body" and len(answered["body"]) < KEPT_PROBLEM_BYTES:
                    answered["body"] += message.get("body", b"")
                await send(message)

            with journal.watching_appends() as appended:
                try:
                    await self.app(scope, receive, observing_send)
                except Exception:
                    # An unexpected error: its 500 was answered (install_error_handlers); it is audited all the same.
                    if scope["method"] in MUTATING and not appended:
                        await self._audit_failure(scope, 500, answered["body"])
                    raise
            if appended or answered["replayed"]:
                return
        if scope["method"] in MUTATING and answered["status"] >= 400:
            await self._audit_failure(scope, answered["status"], answered["body"])

    async def _audit_failure(self, scope: Scope, status: int, body: bytes) -> None:
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        route = scope.get("route")
        raw_path = scope.get("raw_path") or scope["path"].encode("unicode_escape")
        entry = AuditDraft(
            operation=getattr(route, "name", None) or "request",
            resource_type="request",
            resource_id=None,
            engine=None,
            request={"method": scope["method"], "path": raw_path.decode("ascii", errors="replace")[:1000]},
            status=status,
            outcome="failure",
            detail=detail if isinstance(detail, str) else None,
        )
        db: Database = self.db_getter()
        async with transaction(db, actor=await _actor(scope, self.authenticator_getter())) as uow:
            uow.audit(entry)


async def send_problem(send: Send, error: GatewayError, path: str) -> None:
    """Answer a raw ASGI request with the error's RFC 9457 problem document."""
    body = json.dumps(error.problem(path)).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
