"""Input no column, JSON parser or database can take is refused before any route sees it, and every failed
mutating call is audited, whichever layer refused it.

Refused with a 422 problem naming the field and the limit (anywhere: path, query, `X-User-Id`, JSON body):
a NUL character in any string (PostgreSQL text cannot hold one), NaN / ±Infinity and numbers that overflow
to them (JSON has no such values; they were stored as null), integers outside the signed 64-bit range, JSON
nested deeper than MAX_JSON_DEPTH, and an `X-User-Id` longer than the audit log's actor column.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
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
INLINE_CHECK_BYTES = 16 * 1024  # a JSON body up to this size is checked on the event loop (about 0.5 ms at most)


class _NonFinite:
    """What the parser makes of NaN, Infinity and -Infinity, so the walk can name where they were."""

    def __init__(self, text: str) -> None:
        self.text = text


def _name(part: str) -> str:
    """A key as it may be shown in a problem: control characters escaped, at most 80 characters."""
    shown = json.dumps(part)[1:-1]
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _json_problem(value: Any, strings: bool, depth: int = 0) -> tuple[list[str], str] | None:
    """The first value of a parsed JSON document that the gateway cannot keep: (its path, innermost part first;
    the reason). The path is built only on the way back from a find: the walk itself stays cheap. `strings`:
    whether names and strings may hold what no column can (see `_ESCAPES_TO_CHECK`)."""
    if depth > MAX_JSON_DEPTH:
        return [], f"JSON is nested deeper than the limit of {MAX_JSON_DEPTH} levels"
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if strings and (reason := unstorable(key)):
                return [_name(key)], f"the name {reason}"
            if type(item) in _LEAVES_WITHOUT_LIMITS:
                continue
            if found := _json_problem(item, strings, depth + 1):
                found[0].append(_name(key))
                return found
    elif kind is list:
        for index, item in enumerate(value):
            if type(item) in _LEAVES_WITHOUT_LIMITS:
                continue
            if found := _json_problem(item, strings, depth + 1):
                found[0].append(str(index))
                return found
    elif kind is str:
        if strings and (reason := unstorable(value)):
            return [], reason
    elif kind is _NonFinite:
        return [], f"{value.text} is not a JSON number; numbers must be finite"
    elif kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            return [], f"the integer is outside the signed 64-bit range [{INT64_MIN}, {INT64_MAX}]"
    elif kind is float and not math.isfinite(value):
        return [], "the number is too large for a double; numbers must be finite"
    return None


_LEAVES_WITHOUT_LIMITS = frozenset({bool, type(None)})  # what json.loads makes that can never be refused
# A NUL or a lone surrogate reaches a parsed string only through a \u escape (raw, json.loads refuses them):
# a body without these escapes needs no string checked (one with them, even in a valid pair, gets the full walk).
_ESCAPES_TO_CHECK = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


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
    found = _json_problem(value, strings=_ESCAPES_TO_CHECK.search(body) is not None)
    if found is None:
        return None
    inside_out, reason = found
    path = inside_out[::-1]
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
            # a large body's walk takes tens of ms of pure Python: in a worker thread the loop keeps its turns
            error = check_json(body) if len(body) <= INLINE_CHECK_BYTES else await asyncio.to_thread(check_json, body)
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
