"""`pm-gateway`: run the gateway (default), apply migrations, or verify the audit chain."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from typing import Any

from gateway.errors import ConfigError
from gateway.logs import configure_logging
from gateway.settings import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pm-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server (the default)")
    sub.add_parser("migrate", help="apply the database migrations and exit")
    sub.add_parser(
        "verify-audit",
        help="recompute the audit log's hash chain and check it against the signed checkpoints; exit 1 if it "
        "was tampered with",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"pm-gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, access_lines=settings.access_log)

    from gateway.db import Database

    if args.command == "migrate":

        async def migrate() -> None:
            db = Database(settings.database_url)
            await db.migrate()
            await db.dispose()

        asyncio.run(migrate())
        print("database is at the latest migration")
        return 0
    if args.command == "verify-audit":
        from gateway.journal import verify_chain

        async def verify() -> int:
            db = Database(settings.database_url)
            key = settings.audit_anchor_key
            result = await verify_chain(db, anchor_key=key.get_secret_value().encode() if key else None)
            await db.dispose()
            if not result.ok:
                where = f" at row {result.first_bad_id}" if result.first_bad_id is not None else ""
                print(f"audit chain BROKEN{where}: {result.problem} (after {result.rows} good rows)")
                return 1
            print(f"audit chain intact: {result.rows} rows")
            if key is None:
                print("not anchored: PM_AUDIT_ANCHOR_KEY is not set, so deleting the newest rows cannot be detected")
            elif result.anchored_id is None or result.anchored_at is None:
                print("no checkpoint yet: nothing is anchored")
            else:
                print(
                    f"last anchored position: row {result.anchored_id} at {result.anchored_at.isoformat()}; "
                    f"{result.rows_after_anchor} rows after it are not anchored yet"
                )
            return 0

        return asyncio.run(verify())

    return serve(settings)


def worker_count(settings: Settings) -> int:
    """PM_WORKERS, else one process per CPU core; SQLite is always one process (its database is one file
    and the Incident Center elects its leader through PostgreSQL). Raises ConfigError for SQLite with more."""
    is_sqlite = settings.database_url.startswith("sqlite")
    if settings.workers is None:
        return 1 if is_sqlite else os.cpu_count() or 1
    if is_sqlite and settings.workers > 1:
        raise ConfigError("invalid configuration: PM_WORKERS: more than one worker needs PostgreSQL (PM_DATABASE_URL)")
    return settings.workers


def start_banner(settings: Settings, workers: int) -> str:
    """One line naming what runs: version, address and docs, workers, engines and the database (no password)."""
    from sqlalchemy.engine import make_url

    from gateway import __version__

    default = settings.default_engine_name()
    engines = ", ".join(
        f"{engine.name} ({engine.type}{f' at {engine.public_url()}' if engine.url else ''}"
        f"{', default' if engine.name == default else ''})"
        for engine in settings.engine_configs
    )
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"pm-gateway {__version__} listening on {base} (API docs {base}/docs), {workers} worker(s); "
        f"engines: {engines}; database: {database}"
    )


def worker_app() -> Any:
    """The application of one server process (uvicorn's factory; a worker process starts with no logging)."""
    from gateway.bootstrap import create_app, tune_garbage_collection
    from gateway.slow_clients import HeaderDeadlineProtocol
    from gateway.tracing import configure_tracing

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, access_lines=settings.access_log)
    configure_tracing()
    HeaderDeadlineProtocol.header_timeout = settings.client_header_timeout  # uvicorn builds it in this process
    app = create_app(settings)
    tune_garbage_collection()  # process-wide, like logging and tracing: not per application (tests build many)
    return app


def serve(settings: Settings) -> int:
    """Run uvicorn with PM_WORKERS processes. Migrations run once here, before the workers start; every
    worker runs the background loops, which elect one leader per database (gateway.leader.Leadership) or
    are safe to run concurrently (idempotency purge, stale intents, embedded timers)."""
    import uvicorn

    from gateway.bootstrap import create_app
    from gateway.db import Database
    from gateway.slow_clients import HeaderDeadlineProtocol

    try:
        workers = worker_count(settings)
        create_app(settings)  # checks the whole configuration before any process starts
    except ConfigError as exc:
        print(f"pm-gateway: {exc}", file=sys.stderr)
        return 2
    if settings.auto_migrate:

        async def migrate() -> None:
            db = Database(settings.database_url)
            await db.migrate()
            await db.dispose()

        asyncio.run(migrate())
    logging.getLogger("gateway").info(start_banner(settings, workers))
    os.environ["PM_AUTO_MIGRATE"] = "false"  # the workers read their settings from the environment
    uvicorn.run(
        "gateway.cli:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        timeout_worker_healthcheck=math.ceil(settings.worker_healthcheck_timeout),
        log_level=settings.log_level,
        log_config=None,  # keep configure_logging's handlers and format
        access_log=False,  # RequestContextMiddleware writes the access line
        http=HeaderDeadlineProtocol,  # closes connections that trickle their headers (PM_CLIENT_HEADER_TIMEOUT)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
