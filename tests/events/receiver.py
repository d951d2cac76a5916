"""A webhook receiver on a real loopback HTTP server that checks both signatures of every request it gets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from events.webhooks import secret_key


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.time() when it arrived
    standard_valid: list[str]  # secrets whose Standard Webhooks signature matched
    legacy_valid: list[str]  # secrets whose X-PM-Signature matched

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str]]


@dataclass
class Receiver:
    """Records every request; `answer(event, attempt_number)` decides the response (default 200)."""

    secrets: list[str] = field(default_factory=list)
    answer: Callable[[dict[str, Any], int], Answer] = lambda event, attempt: (200, {})
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _attempts: dict[str, int] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        self._attempts[webhook_id] = self._attempts.get(webhook_id, 0) + 1
        status, extra = self.answer(json.loads(body), self._attempts[webhook_id])
        self.received.append(
            Received(
                headers,
                body,
                status,
                time.time(),
                self._standard_valid(body, headers),
                self._legacy_valid(body, headers),
            )
        )
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=status, headers=extra, text="ok" if status < 300 else "no")

    def _standard_valid(self, body: bytes, headers: dict[str, str]) -> list[str]:
        valid = []
        for secret in self.secrets:
            try:
                Webhook(secret_key(secret)).verify(body, headers)
                valid.append(secret)
            except WebhookVerificationError:
                pass
        return valid

    def _legacy_valid(self, body: bytes, headers: dict[str, str]) -> list[str]:
        sent = [part.strip() for part in headers.get("x-pm-signature", "").split(",")]
        return [
            secret
            for secret in self.secrets
            if "sha256=" + hmac.new(secret_key(secret), body, hashlib.sha256).hexdigest() in sent
        ]

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        return [r for r in self.received if 200 <= r.status < 300]

    async def wait_for(
        self,
        accept: Callable[[list[Received]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - at the timeout it returns what arrived, for the test to assert on
    ) -> list[Received]:
        """The requests received, once `accept(received)` holds or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: accept(self.received))
        return self.received
