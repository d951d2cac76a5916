"""Deadlines for clients that send a request slowly (slowloris): they are closed, and never hold a worker.

Two settings: PM_CLIENT_HEADER_TIMEOUT, the seconds a connection has to deliver a request's headers (from
when it opened, or from the previous response on a kept-alive connection), and PM_CLIENT_BODY_TIMEOUT, the
seconds a request has to deliver its whole body once its headers are in. uvicorn has neither (its keep-alive
timeout stops at the first byte of the next request), hence the protocol subclass below.
"""

from __future__ import annotations

import asyncio
import json

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol

from gateway.errors import BadRequest, GatewayError


class RequestTimeout(GatewayError):
    """408: the client did not send its request body in time (PM_CLIENT_BODY_TIMEOUT)."""

    status, title, slug = 408, "Request timeout", "request-timeout"


LINGER_SECONDS = 2.0


def _closing_problem(error: GatewayError, instance: str | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a problem+json answer after which the connection closes (the request's end
    cannot be trusted): (headers, body)."""
    body = json.dumps(error.problem(instance)).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete in time.

    Given to uvicorn by import (`http=`), so every worker process gets it; `header_timeout` (seconds) is set
    from PM_CLIENT_HEADER_TIMEOUT by `gateway.cli.worker_app`, which uvicorn runs in each worker first."""

    header_timeout: float = 10.0
    _header_deadline: asyncio.TimerHandle | None = None
    _refused = False  # a request h11 could not parse was answered: the rest of what arrives is discarded

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers were parsed
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        self._arm_header_deadline()  # the next request on a kept-alive connection; a pipelined one disarms it
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._close_slow_client)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _close_slow_client(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 cannot parse (a request line or headers over its 16 KiB limit, malformed
        syntax) with a problem+json 400, where uvicorn sends a plain-text "Invalid HTTP request received.".

        The request's end cannot be found, so the connection ends, but lingering: the answer is sent with a FIN
        and what the client still sends is read and discarded for LINGER_SECONDS, as a close with unread data
        would make the kernel reset the connection and the client could lose the answer."""
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        error = BadRequest(
            "The request is not valid HTTP/1.1: its request line or headers are malformed, or longer than "
            f"{limit // 1024} KiB together"
        )
        headers, body = _closing_problem(error, None)
        for event in (h11.Response(status_code=error.status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self._refused = True
        self._disarm_header_deadline()
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class _BodyTooSlow(Exception):
    pass


class BodyDeadlineMiddleware:
    """Answer 408 (and close the connection) when a request body is not complete within `seconds` of the
    request reaching the application."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_complete = False
        started = False

        async def receive_in_time() -> Message:
            nonlocal body_complete
            if body_complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTooSlow from None
            body_complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_in_time, tracking_send)
        except _BodyTooSlow:
            if started:
                raise
            error = RequestTimeout(
                f"The request body did not arrive within {self.seconds:g} s (PM_CLIENT_BODY_TIMEOUT)"
            )
            headers, body = _closing_problem(error, scope["path"])
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
