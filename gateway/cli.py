"""`pm-gateway`: run the gateway (default), apply migrations, or verify the audit chain."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from gateway.settings import ConfigError, load_settings


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
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

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
            elif result.anchored_id is None:
                print("no checkpoint yet: nothing is anchored")
            else:
                print(
                    f"last anchored position: row {result.anchored_id} at {result.anchored_at.isoformat()}; "
                    f"{result.rows_after_anchor} rows after it are not anchored yet"
                )
            return 0

        return asyncio.run(verify())

    import uvicorn

    from gateway.app import create_app

    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"pm-gateway: {exc}", file=sys.stderr)
        return 2
    from gateway.slow_clients import header_deadline_protocol

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http=header_deadline_protocol(settings.client_header_timeout),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
