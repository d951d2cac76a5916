"""`Idempotency-Key` on POST: the same key and body replay the first response for 24 hours.

An ASGI middleware, so it sees the exact request body and the exact response. The key is scoped to the
caller and the path. Same key with another body → 422; the same key while the first request still runs →
409. Responses with a 5xx status are not kept, so the client may try again with the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.db import Database, utcnow
from gateway.errors import Conflict, GatewayError, ValidationFailed
from gateway.tables import idempotency_keys as keys

log = logging.getLogger(__name__)
HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255


def _problem_response(error: GatewayError, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(error.problem(path)).encode()
    return error.status, [(b"content-type", b"application/problem+json")], body


def _stored(scope_id: str, key: str) -> sa.ColumnElement[bool]:
    return (keys.c.scope == scope_id) & (keys.c.key == key)


class IdempotencyMiddleware:
    """Keys are scoped by caller (`authenticator_getter()`: the token's subject, or X-User-Id with auth off)
    and path; a request whose caller cannot be established is passed on untouched (the route answers 401),
    so a stored response never reaches someone who could not have made the request."""

    def __init__(self, app: ASGIApp, db_getter: Any, ttl_hours: float, authenticator_getter: Any) -> None:
        self.app = app
        self.db_getter = db_getter
        self.authenticator_getter = authenticator_getter
        self.ttl = timedelta(hours=ttl_hours)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        key_text = key.decode(errors="replace")
        if not key_text or len(key_text) > MAX_KEY_LENGTH:
            error = ValidationFailed(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
            await _send(send, *_problem_response(error, path))
            return
        user, authorization = headers.get(b"x-user-id"), headers.get(b"authorization")
        try:
            caller = await self.authenticator_getter().caller(
                authorization.decode(errors="replace") if authorization is not None else None,
                user.decode(errors="replace") if user is not None else None,
            )
        except GatewayError:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        db: Database = self.db_getter()
        scope_id = f"{caller.actor}|{path}"
        request_hash = hashlib.sha256(scope.get("query_string", b"") + b"\n" + body).hexdigest()

        stored = await self._claim(db, scope_id, key_text, request_hash, path)
        if stored is not None:
            await _send(send, *stored)
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [(k, v) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, _replay(body), capture)
        finally:
            await asyncio.shield(self._finish(db, scope_id, key_text, captured))

    async def _claim(
        self, db: Database, scope_id: str, key: str, request_hash: str, path: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Reserve the key, or return what to answer instead (a replay or a problem)."""
        where = _stored(scope_id, key)
        async with db.writer(), db.sessionmaker() as session, session.begin():
            row = (await session.execute(sa.select(keys).where(where).with_for_update())).mappings().first()
            if row is not None and row["created_at"] < utcnow() - self.ttl:
                await session.execute(keys.delete().where(where))
                row = None
            if row is None:
                try:
                    async with session.begin_nested():
                        await session.execute(
                            keys.insert().values(
                                scope=scope_id, key=key, request_hash=request_hash, state="running", created_at=utcnow()
                            )
                        )
                    return None
                except sa.exc.IntegrityError:
                    row = (await session.execute(sa.select(keys).where(where))).mappings().first()
        if row is None:  # pragma: no cover - inserted and removed concurrently
            return _problem_response(Conflict("A request with this Idempotency-Key is in progress"), path)
        if row["request_hash"] != request_hash:
            return _problem_response(ValidationFailed("This Idempotency-Key was used with a different request body"), path)
        if row["state"] == "running":
            return _problem_response(
                Conflict("A request with this Idempotency-Key is still in progress; retry later"), path
            )
        headers = [(k.encode(), v.encode()) for k, v in row["response_headers"]] + [(b"idempotent-replayed", b"true")]
        return row["response_status"], headers, row["response_body"]

    async def _finish(self, db: Database, scope_id: str, key: str, captured: dict[str, Any]) -> None:
        where = _stored(scope_id, key)
        try:
            async with db.writer(), db.sessionmaker() as session, session.begin():
                if captured["status"] >= 500:
                    await session.execute(keys.delete().where(where))
                    return
                headers = [
                    (k.decode(), v.decode())
                    for k, v in captured["headers"]
                    if k.lower() in (b"content-type", b"location")
                ]
                await session.execute(
                    keys.update()
                    .where(where)
                    .values(
                        state="done",
                        response_status=captured["status"],
                        response_headers=headers,
                        response_body=captured["body"],
                    )
                )
        except Exception:  # the response is already sent; the key simply stays 'running' until it expires
            log.exception("could not store the response for Idempotency-Key %s", key)


async def purge_expired(db: Database, ttl_hours: float) -> int:
    cutoff = utcnow() - timedelta(hours=ttl_hours)
    async with db.writer(), db.sessionmaker() as session, session.begin():
        result = await session.execute(keys.delete().where(keys.c.created_at < cutoff))
        return result.rowcount or 0


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that keeps the connection open
        return {"type": "http.disconnect"}

    return receive


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
