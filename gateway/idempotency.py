"""`Idempotency-Key` on POST: the same key and body replay the first response for 24 hours.

An ASGI middleware, so it sees the exact request body and the exact response. The key is scoped to the
caller and the path. Same key with another body → 422; the same key while the first request still runs →
409. Responses with a 5xx status are not kept, so the client may try again with the same key.

Crash safety: the running request holds the key on a lease (`PM_IDEMPOTENCY_LEASE_SECONDS`) that it renews
while it runs. The audited change the request makes stamps the key in its own transaction
(`record_commit`, called by the journal), so the key knows whether the change committed even when the
process died before the response was stored. A key whose lease lapsed is taken over by the next request
with that key: replayed from the committed change (its status and the resource as it is now) when there
is one, run afresh otherwise. A request that lost its lease cannot commit: its stamp finds another token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.db import Database, rowcount, utcnow
from gateway.errors import Conflict, GatewayError, ValidationFailed
from gateway.tables import idempotency_keys as keys

log = logging.getLogger(__name__)
HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
JSON = b"application/json"
# Where the resource of a committed change is read back when its response was never stored.
RESOURCE_PATHS = {
    "instance": "/api/processes/instances/",
    "task": "/api/processes/tasks/",
    "incident": "/api/processes/incidents/",
}

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


@dataclass
class Committed:
    """A change that committed under a key whose request died before its response was stored."""

    status: int
    resource: str  # "type/id", or just the type when the change named no resource


@dataclass
class Claim:
    """The key a running request holds: its scope, the key and the token of this holder's lease."""

    scope: str
    key: str
    token: str
    open: bool = True


_claim: ContextVar[Claim | None] = ContextVar("pm_gateway_idempotency_claim", default=None)


async def record_commit(session: AsyncSession, status: int, resource_type: str, resource_id: str | None) -> None:
    """Stamp the running request's key with its change's outcome, inside the change's own transaction.

    Called by the journal for each successful audited change. Raises Conflict (rolling the change back)
    when the key's lease lapsed and another request took it over, so a key never commits two changes.
    """
    claim = _claim.get()
    if claim is None or not claim.open:
        return
    resource = f"{resource_type}/{resource_id}" if resource_id is not None else resource_type
    result = await session.execute(
        keys.update()
        .where(_stored(claim.scope, claim.key) & (keys.c.claim_token == claim.token))
        .values(committed_status=status, committed_resource=resource[:320])
    )
    if rowcount(result) == 0:
        raise Conflict("This request's Idempotency-Key lease expired and another request took the key over")


def _problem_response(error: GatewayError, path: str) -> Answer:
    body = json.dumps(error.problem(path)).encode()
    return error.status, [(b"content-type", b"application/problem+json")], body


def _stored(scope_id: str, key: str) -> sa.ColumnElement[bool]:
    return (keys.c.scope == scope_id) & (keys.c.key == key)


class IdempotencyMiddleware:
    """Keys are scoped by caller (`authenticator_getter()`: the token's subject, or X-User-Id with auth off)
    and path; a request whose caller cannot be established is passed on untouched (the route answers 401),
    so a stored response never reaches someone who could not have made the request."""

    def __init__(
        self, app: ASGIApp, db_getter: Any, ttl_hours: float, lease_seconds: float, authenticator_getter: Any
    ) -> None:
        self.app = app
        self.db_getter = db_getter
        self.authenticator_getter = authenticator_getter
        self.ttl = timedelta(hours=ttl_hours)
        self.lease = timedelta(seconds=lease_seconds)

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
        body = await read_body(receive)
        db: Database = self.db_getter()
        scope_id = f"{caller.actor}|{path}"
        request_hash = hashlib.sha256(scope.get("query_string", b"") + b"\n" + body).hexdigest()

        claim = Claim(scope_id, key_text, uuid.uuid4().hex)
        outcome = await self._claim(db, claim, request_hash, path)
        if isinstance(outcome, Committed):
            answer = await self._read_back(scope, outcome)
            await self._store(db, claim, answer)
            await _send(send, *answer)
            return
        if outcome is not None:
            await _send(send, *outcome)
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [(k, v) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        token = _claim.set(claim)
        renewing = asyncio.create_task(self._renew(db, claim))
        try:
            await self.app(scope, replay_body(body), capture)
        finally:
            claim.open = False
            _claim.reset(token)
            renewing.cancel()
            answer = (captured["status"], captured["headers"], captured["body"])
            await asyncio.shield(self._store(db, claim, answer))

    async def _claim(self, db: Database, claim: Claim, request_hash: str, path: str) -> Answer | Committed | None:
        """Reserve the key (None), or say what to answer instead: a replay, a problem, or a change that
        committed under a lapsed lease (to read back)."""
        where = _stored(claim.scope, claim.key)
        now = utcnow()
        lease = {"state": "running", "claim_token": claim.token, "lease_until": now + self.lease}
        async with db.writer(), db.sessionmaker() as session, session.begin():
            row = (await session.execute(sa.select(keys).where(where).with_for_update())).mappings().first()
            if row is not None and row["created_at"] < now - self.ttl:
                await session.execute(keys.delete().where(where))
                row = None
            if row is None:
                try:
                    async with session.begin_nested():
                        await session.execute(
                            keys.insert().values(
                                scope=claim.scope, key=claim.key, request_hash=request_hash, created_at=now, **lease
                            )
                        )
                    return None
                except sa.exc.IntegrityError:
                    row = (await session.execute(sa.select(keys).where(where))).mappings().first()
            if row is None:  # pragma: no cover - inserted and removed concurrently
                return _problem_response(Conflict("A request with this Idempotency-Key is in progress"), path)
            if row["request_hash"] != request_hash:
                return _problem_response(
                    ValidationFailed("This Idempotency-Key was used with a different request body"), path
                )
            if row["state"] == "done":
                headers = [(k.encode(), v.encode()) for k, v in row["response_headers"]]
                return row["response_status"], [*headers, (b"idempotent-replayed", b"true")], row["response_body"]
            if row["lease_until"] is not None and row["lease_until"] >= now:
                return _problem_response(
                    Conflict("A request with this Idempotency-Key is still in progress; retry later"), path
                )
            # The request that held the key died (its lease lapsed). Its change committed or never happened.
            await session.execute(keys.update().where(where).values(**lease))
            if row["committed_status"] is not None:
                return Committed(row["committed_status"], row["committed_resource"])
            return None

    async def _read_back(self, scope: Scope, committed: Committed) -> Answer:
        """The answer for a change that committed but whose response was lost: its status, and the resource
        as a GET reads it now (a small `{resource_type, resource_id}` body when there is no such GET)."""
        resource_type, _, resource_id = committed.resource.partition("/")
        headers = [(b"idempotent-replayed", b"true")]
        prefix = RESOURCE_PATHS.get(resource_type)
        if prefix is not None and resource_id:
            location = prefix + resource_id
            captured: dict[str, Any] = {"status": 500, "body": b""}

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    captured["status"] = message["status"]
                elif message["type"] == "http.response.body":
                    captured["body"] += message.get("body", b"")

            get = {
                **scope,
                "method": "GET",
                "path": location,
                "raw_path": location.encode(),
                "headers": [
                    (k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type", HEADER)
                ],
            }
            await self.app(get, replay_body(b""), capture)
            if captured["status"] == 200:
                headers += [(b"content-type", JSON), (b"location", location.encode())]
                return committed.status, headers, captured["body"]
        body = json.dumps({"resource_type": resource_type, "resource_id": resource_id or None}).encode()
        return committed.status, [*headers, (b"content-type", JSON)], body

    async def _renew(self, db: Database, claim: Claim) -> None:
        """Extend the lease every third of its length while the request runs."""
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with db.writer(), db.sessionmaker() as session, session.begin():
                    await session.execute(
                        keys.update()
                        .where(_stored(claim.scope, claim.key) & (keys.c.claim_token == claim.token))
                        .values(lease_until=utcnow() + self.lease)
                    )
            except Exception:  # the next round tries again; a lapsed lease is safe, see record_commit
                log.warning("could not renew the lease of Idempotency-Key %s", claim.key, exc_info=True)

    async def _store(self, db: Database, claim: Claim, answer: Answer) -> None:
        """Keep the answer for replays, unless another request took the key over.

        A 5xx answer is not kept: the key is released, unless its change committed, in which case the
        lease is ended so the next request with the key reads the committed change back.
        """
        status, response_headers, body = answer
        where = _stored(claim.scope, claim.key) & (keys.c.claim_token == claim.token)
        try:
            async with db.writer(), db.sessionmaker() as session, session.begin():
                if status >= 500:
                    await session.execute(keys.delete().where(where & keys.c.committed_status.is_(None)))
                    await session.execute(keys.update().where(where).values(lease_until=utcnow()))
                    return
                kept = [
                    (k.decode(), v.decode()) for k, v in response_headers if k.lower() in (b"content-type", b"location")
                ]
                await session.execute(
                    keys.update()
                    .where(where)
                    .values(state="done", response_status=status, response_headers=kept, response_body=body)
                )
        except Exception:  # the response is already sent; the key's lease lapses and the next request takes it over
            log.exception("could not store the response for Idempotency-Key %s", claim.key)


async def purge_expired(db: Database, ttl_hours: float) -> int:
    """Forget keys older than `ttl_hours`; returns how many were removed."""
    cutoff = utcnow() - timedelta(hours=ttl_hours)
    async with db.writer(), db.sessionmaker() as session, session.begin():
        result = await session.execute(keys.delete().where(keys.c.created_at < cutoff))
        return rowcount(result) or 0


async def read_body(receive: Receive) -> bytes:
    """The whole request body (every `http.request` message)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay_body(body: bytes) -> Receive:
    """A `receive` that hands the already-read body to the app once, then waits like an open connection."""
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
