"""HTTP plumbing of the FastAPI application: problem responses, the request context (request id, access line,
metrics, trailing slashes) and the upload limit.

The application itself is assembled in `gateway.bootstrap` (the composition root)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import metrics, tracing
from gateway.conditions import CONDITION_ERROR
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, ValidationFailed
from gateway.logs import RequestContext, access_log, current_request, note_problem

log = logging.getLogger("gateway")
PROBLEM_JSON = "application/problem+json"


def problem_response(error: GatewayError, request: Request) -> JSONResponse:
    note_problem(error.title)
    return JSONResponse(
        error.problem(request.url.path), status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers
    )


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return f"unknown field '{error['loc'][-1]}'" if error.get("loc") else "unknown field"
    return str(error.get("msg", ""))


def _validation_problem(errors: list[dict[str, Any]]) -> GatewayError:
    items = [{"loc": list(e.get("loc", ())), "msg": _message(e)} for e in errors]
    if any(e.get("type") == "json_invalid" for e in errors):
        return BadRequest("The request body is not valid JSON", errors=items)
    summary = "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in items)
    if all(e.get("type") == CONDITION_ERROR for e in errors):
        return BadRequest(f"The query is invalid: {summary}", errors=items)
    return ValidationFailed(f"The request is invalid: {summary}", errors=items)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(_validation_problem(list(exc.errors())), request)

    @app.exception_handler(ValidationError)
    async def model_validation(request: Request, exc: ValidationError) -> JSONResponse:
        errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
        return problem_response(_validation_problem(errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = GatewayError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status, error.title = (
            exc.status_code,
            {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error"),
        )
        error.slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        if exc.status_code == 404 and exc.detail == "Not Found":
            error.detail = f"No route {request.method} {request.url.path}"
        return problem_response(error, request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(GatewayError("An unexpected error occurred; it has been logged"), request)


class UploadLimitMiddleware:
    """Refuse request bodies over PM_MAX_UPLOAD_BYTES before reading them (413), declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Multipart framing adds a little to the file itself; allow for it.
        ceiling = self.limit + 64 * 1024
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > ceiling:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > ceiling:
                raise PayloadTooLarge(f"The request body is larger than the limit of {self.limit} bytes")
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge:
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(
            f"The request body is larger than the limit of {self.limit} bytes (PM_MAX_UPLOAD_BYTES)"
        )
        note_problem(error.title)
        body = JSONResponse(error.problem(scope["path"]), status_code=413, media_type=PROBLEM_JSON)
        await body({"type": "http"}, _no_receive, send)


async def _no_receive() -> Any:  # pragma: no cover - JSONResponse never reads the request
    return {"type": "http.disconnect"}


REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 128


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if 0 < len(value) <= MAX_REQUEST_ID and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Per request, in one plain ASGI layer (no per-request task): take or make the request id (X-Request-Id,
    returned on the answer and sent on to the engines), route `/path/` like `/path`, and once the answer is
    sent observe its latency and write the one access line (method, route template, status, ms, engine,
    request id, and the problem title for 4xx/5xx)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        context = RequestContext(_request_id(scope))
        token = current_request.set(context)
        started = time.perf_counter()
        status = 500
        header = (REQUEST_ID_HEADER, context.request_id.encode())

        async def observing_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            with tracing.span(scope["method"], **{"pm.request_id": context.request_id}) as span:
                try:
                    await self.app(scope, receive, observing_send)
                finally:
                    if span is not None:
                        route = getattr(scope.get("route"), "path", "unmatched")
                        span.update_name(f"{scope['method']} {route}")
                        span.set_attributes({"http.route": route, "http.response.status_code": status})
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.http_requests.labels(scope["method"], route, str(status)).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope["method"], route, status, elapsed * 1000, context)
            current_request.reset(token)


def _log_access(method: str, route: str, status: int, duration_ms: float, context: RequestContext) -> None:
    problem = f' problem="{context.problem}"' if context.problem else ""
    access_log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s %s %.1f ms engine=%s%s",
        method,
        route,
        status,
        duration_ms,
        context.engine or "-",
        problem,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 2),
            "engine": context.engine,
            "problem": context.problem,
            "request_id": context.request_id,
        },
    )
