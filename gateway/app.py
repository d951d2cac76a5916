"""The FastAPI application: wiring, lifespan, problem responses, request metrics and limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import __version__, journal, metrics
from gateway.api import definitions, instances, operations, tasks
from gateway.db import Database
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, ValidationFailed
from gateway.guard import RequestGuardMiddleware
from gateway.idempotency import IdempotencyMiddleware, purge_expired
from gateway.registry import EngineRegistry
from gateway.settings import Settings, load_settings
from gateway.slow_clients import BodyDeadlineMiddleware
from incidents import views as incident_views
from incidents.center import IncidentCenter
from incidents.settings import load_incident_settings

log = logging.getLogger("gateway")
PROBLEM_JSON = "application/problem+json"
IDEMPOTENCY_PURGE_INTERVAL = 3600.0


def problem_response(error: GatewayError, request: Request) -> JSONResponse:
    return JSONResponse(
        error.problem(request.url.path), status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers
    )


def _validation_problem(errors: list[dict[str, Any]]) -> GatewayError:
    items = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors]
    if any(e.get("type") == "json_invalid" for e in errors):
        return BadRequest("The request body is not valid JSON", errors=items)
    summary = "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in items)
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
        error.status, error.title = exc.status_code, {404: "Not found", 405: "Method not allowed"}.get(
            exc.status_code, "HTTP error"
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
        error = PayloadTooLarge(f"The request body is larger than the limit of {self.limit} bytes (PM_MAX_UPLOAD_BYTES)")
        body = JSONResponse(error.problem(scope["path"]), status_code=413, media_type=PROBLEM_JSON)
        await body({"type": "http"}, _no_receive, send)


async def _no_receive() -> Any:  # pragma: no cover - JSONResponse never reads the request
    return {"type": "http.disconnect"}


class MetricsMiddleware:
    """Request latency per route template and status (a plain ASGI middleware: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observing_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.http_requests.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)


async def _periodic(interval: float, job: Any) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await job()
        except Exception:  # noqa: BLE001 - a failed round is retried at the next interval
            log.exception("periodic job failed")


def create_app(
    settings: Settings | None = None,
    *,
    engine_transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    incident_settings = load_incident_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        if settings.auto_migrate:
            await db.migrate()
        redis = None
        if settings.redis_url:
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.redis_url)
        registry = EngineRegistry(settings, db, transports=engine_transports, redis=redis)
        app.state.db, app.state.redis, app.state.registry = db, redis, registry
        await registry.start()
        incidents = IncidentCenter(db, registry, incident_settings)
        app.state.incidents = incidents
        await incidents.start()
        jobs = [
            asyncio.create_task(
                _periodic(IDEMPOTENCY_PURGE_INTERVAL, lambda: purge_expired(db, settings.idempotency_ttl_hours))
            )
        ]
        anchor_key = settings.audit_anchor_key.get_secret_value().encode() if settings.audit_anchor_key else None
        if anchor_key is not None:
            jobs.append(
                asyncio.create_task(
                    _periodic(settings.audit_checkpoint_seconds, lambda: journal.write_checkpoint(db, anchor_key))
                )
            )
        try:
            yield
        finally:
            for job in jobs:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            if anchor_key is not None:
                with contextlib.suppress(Exception):  # a last anchor at shutdown; the periodic one covers failures
                    await journal.write_checkpoint(db, anchor_key)
            await incidents.stop()
            await registry.close()
            if redis is not None:
                await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title="pm-gateway",
        version=__version__,
        description="One stable REST API for BPMN process management over Camunda 7, Flowable, "
        "Camunda 8 and an embedded engine. Errors are RFC 9457 problem details.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (definitions, instances, tasks, operations, incident_views):
        app.include_router(module.router)
    app.add_middleware(
        IdempotencyMiddleware,
        db_getter=lambda: app.state.db,
        ttl_hours=settings.idempotency_ttl_hours,
        lease_seconds=settings.idempotency_lease_seconds,
    )
    app.add_middleware(RequestGuardMiddleware, db_getter=lambda: app.state.db)
    app.add_middleware(UploadLimitMiddleware, limit=settings.max_upload_bytes)
    app.add_middleware(BodyDeadlineMiddleware, seconds=settings.client_body_timeout)
    app.add_middleware(MetricsMiddleware)
    return app
