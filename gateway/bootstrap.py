"""The composition root: the one place that wires settings, database, engine registry, adapters, the change
log, the Incident Center and the routers into the FastAPI application.

Only this module imports the domain packages (`incidents`, `events`); adapters are found through their entry points
by the registry. Every other core module depends on the port (`gateway.engines.port`), never on a plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from analytics import views as analytics_views
from analytics.center import AnalyticsCenter
from analytics.settings import load_analytics_settings
from events import views as event_views
from events.service import EventService
from events.settings import load_event_settings
from gateway import __version__, journal
from gateway.api import definitions, instances, messages, operations, tasks
from gateway.api.context import AUTH_RESPONSES, operational_access
from gateway.app import RequestContextMiddleware, UploadLimitMiddleware, install_error_handlers
from gateway.auth import build_authenticator
from gateway.changes import ChangeLog
from gateway.console import install_console, swagger_ui_page
from gateway.db import Database
from gateway.guard import RequestGuardMiddleware
from gateway.idempotency import IdempotencyMiddleware, purge_expired
from gateway.metrics import watch_event_loop_lag
from gateway.openapi import problem_openapi
from gateway.registry import EngineRegistry
from gateway.settings import Settings, load_settings
from gateway.slow_clients import BodyDeadlineMiddleware
from incidents import views as incident_views
from incidents.center import IncidentCenter
from incidents.settings import load_incident_settings

log = logging.getLogger("gateway")

IDEMPOTENCY_PURGE_INTERVAL = 3600.0  # seconds

STALE_INTENT_SWEEP_INTERVAL = 60.0  # seconds


# Generation thresholds of the cyclic garbage collector (Python's default: 700, 10, 10).
GC_THRESHOLDS = (5_000, 10, 100)


def tune_garbage_collection() -> None:
    """Make the cyclic garbage collector's pauses rare and short: once per server process, after the application
    is built (gateway.cli.worker_app).

    A collection holds the interpreter for all threads, the event loop's included, and takes time in proportion to
    the objects it walks. Freezing what start-up allocated (modules, routes, schemas: never garbage) takes those
    out of every collection; long-lived data is kept as bytes, which the collector does not walk (the embedded
    engine's SpecCache). The youngest generation is collected every 5,000 net allocations: often enough that one
    collection walks little (at 50,000 one took 50-80 ms on a corpus of public BPMN files; at 5,000 at most 7 ms of
    CPU, and one of the middle generation 17 ms), yet seldom enough that restoring and saving an embedded workflow
    does not collect several times per change as Python's default of 700 did (bench/event_loop_stalls.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _periodic(interval: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run `job` every `interval` seconds, first right away; a failed round is logged and retried next time."""
    while True:
        try:
            await job()
        except Exception:  # a failed round is retried at the next interval
            log.exception("periodic job failed")
        await asyncio.sleep(interval)


def create_app(
    settings: Settings | None = None,
    *,
    engine_transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway application. `engine_transports` (engine name → httpx transport) lets tests put simulators
    in place of remote engines. Raises ConfigError naming the field when the configuration is invalid."""
    settings = settings or load_settings()
    incident_settings = load_incident_settings()
    analytics_settings = load_analytics_settings()
    authenticator = build_authenticator(settings)
    event_settings = load_event_settings()

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
        changes = ChangeLog(db)
        app.state.db, app.state.redis, app.state.registry, app.state.changes = db, redis, registry, changes
        await registry.start()
        incidents = IncidentCenter(db, registry, incident_settings)
        app.state.incidents = incidents
        await incidents.start()
        app.state.analytics = AnalyticsCenter(db, registry, redis, analytics_settings)
        await app.state.analytics.start()
        app.state.events = EventService(db, registry, event_settings, redis)
        await app.state.events.start()
        housekeeping = [
            asyncio.create_task(
                _periodic(IDEMPOTENCY_PURGE_INTERVAL, lambda: purge_expired(db, settings.idempotency_ttl_hours))
            ),
            asyncio.create_task(_periodic(STALE_INTENT_SWEEP_INTERVAL, changes.settle_stale_intents)),
            asyncio.create_task(watch_event_loop_lag()),
        ]
        anchor_key = settings.audit_anchor_key.get_secret_value().encode() if settings.audit_anchor_key else None
        if anchor_key is not None:
            housekeeping.append(
                asyncio.create_task(
                    _periodic(settings.audit_checkpoint_seconds, lambda: journal.write_checkpoint(db, anchor_key))
                )
            )
        try:
            yield
        finally:
            for task in housekeeping:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if anchor_key is not None:
                with contextlib.suppress(Exception):  # a last anchor at shutdown; the periodic one covers failures
                    await journal.write_checkpoint(db, anchor_key)
            await app.state.analytics.stop()
            await app.state.events.stop()
            await incidents.stop()
            await registry.close()
            if redis is not None:
                await redis.aclose()
            await db.dispose()
            await authenticator.close()

    app = FastAPI(
        title="pm-gateway",
        version=__version__,
        description="One stable REST API for BPMN process management over Camunda 7, Flowable, "
        "Camunda 8 and an embedded engine. Errors are RFC 9457 problem details.",
        lifespan=lifespan,
        docs_url=None,  # _document serves /docs from local assets; FastAPI's own pages load from a CDN
        openapi_url=None,
        redoc_url=None,
        redirect_slashes=False,  # RequestContextMiddleware routes `/path/` like `/path`; never an empty 307
    )
    app.state.settings, app.state.authenticator = settings, authenticator
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    _document(app)
    # analytics first: its /tasks/statistics must win over /tasks/{task_id}
    for module in (analytics_views, definitions, instances, messages, tasks, operations, incident_views, event_views):
        app.include_router(module.router, responses={} if module is operations else AUTH_RESPONSES)
    install_console(app)
    app.add_middleware(
        IdempotencyMiddleware,
        db_getter=lambda: app.state.db,
        ttl_hours=settings.idempotency_ttl_hours,
        lease_seconds=settings.idempotency_lease_seconds,
        authenticator_getter=lambda: app.state.authenticator,
    )
    app.add_middleware(
        RequestGuardMiddleware, db_getter=lambda: app.state.db, authenticator_getter=lambda: app.state.authenticator
    )
    app.add_middleware(UploadLimitMiddleware, limit=settings.max_upload_bytes)
    app.add_middleware(BodyDeadlineMiddleware, seconds=settings.client_body_timeout)
    app.add_middleware(RequestContextMiddleware)
    return app


def _document(app: FastAPI) -> None:
    """/openapi.json and /docs, open or behind a token as PM_AUTH_OPEN_PATHS says (`operational_access`)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(operational_access)])
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(operational_access)])
    async def swagger_ui() -> HTMLResponse:
        return swagger_ui_page()
