"""The gateway's own database: engine, sessions, shared column types and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from gateway.engines.plugins import installed_adapters

metadata = sa.MetaData()

# Auto-increment ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonColumn = sa.JSON().with_variant(JSONB(), "postgresql")

DOMAIN_PACKAGES = ("incidents", "analytics", "events")
MIGRATIONS_LOCK_ID = 7_301_001  # PostgreSQL advisory lock: one replica migrates at a time


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_keeping_floats(value: Any) -> str:
    """JSON text for PostgreSQL's JSONB, which keeps a number as written: a float with an integral value is
    written with a decimal point (`1e+16` becomes `10000000000000000.0`), so it reads back as a float, not
    as an integer. Everything else is as `json.dumps` writes it (which also does all of it when the text has no
    `e+`: only floats of 1e16 and more are written with a positive exponent)."""
    text = json.dumps(value)
    return text if "e+" not in text else _keeping_floats(value)


def _keeping_floats(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value) and "e" in repr(value):
        return f"{int(value)}.0"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_keeping_floats(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_keeping_floats(item) for item in value) + "]"
    return json.dumps(value)


class EncodedJson(dict[str, Any]):
    """A JSON object that carries its text, encoded where it was made (e.g. in a worker thread): the database
    writes `text` as is, so a large value (1 MB of variables) is not encoded again on the event loop."""

    def __init__(self, value: dict[str, Any]) -> None:
        super().__init__(value)
        self.text = json_keeping_floats(value)


def _json_serializer(encode: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda value: value.text if isinstance(value, EncodedJson) else encode(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rowcount(result: sa.Result[Any]) -> int:
    """The number of rows an UPDATE or DELETE matched. SQLAlchemy answers DML with a `CursorResult`; its
    `AsyncSession.execute` is typed with the base `Result`, which has no `rowcount`."""
    return cast(CursorResult[Any], result).rowcount


def _on_loopback(url: str) -> bool:
    """A PostgreSQL URL naming this machine (or a Unix socket) without an `ssl`/`sslmode` of its own. asyncpg's
    default (TLS preferred) encrypts every round trip to a server on the same host, where nothing travels a
    network: about 60 µs of CPU per statement, 15 statements per embedded start or complete (issue 18). `allow`
    connects without TLS and still uses it when the server insists (a `hostssl` rule)."""
    parsed = sa.make_url(url)
    if {"ssl", "sslmode"} & set(parsed.query):
        return False
    host = parsed.host or str(parsed.query.get("host", ""))
    return host in ("", "localhost", "::1") or host.startswith(("127.", "/"))


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            options.update(connect_args={"timeout": 30}, json_serializer=_json_serializer(json.dumps))
        else:
            options.update(
                pool_size=pool_size, max_overflow=pool_size, json_serializer=_json_serializer(json_keeping_floats)
            )
            if _on_loopback(url):
                options.update(connect_args={"ssl": "allow"})
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; queueing writers here avoids "database is locked" errors.
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def writer(self) -> AsyncIterator[None]:
        if self._sqlite_writer is None:
            yield
            return
        async with self._sqlite_writer:
            yield

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATIONS_LOCK_ID})
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migration_locations() -> list[Path]:
    """The gateway's migrations, those of its domain packages, and those of each installed adapter package."""
    root = Path(__file__).parent.parent
    locations = [Path(__file__).parent / "migrations" / "versions"]
    locations += [
        root / package / "migrations" for package in DOMAIN_PACKAGES if (root / package / "migrations").is_dir()
    ]
    for entry in installed_adapters().values():
        spec = importlib.util.find_spec(entry.module)
        if spec is None or not spec.submodule_search_locations:
            continue
        candidate = Path(next(iter(spec.submodule_search_locations))) / "migrations"
        if candidate.is_dir() and candidate not in locations:
            locations.append(candidate)
    return locations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in migration_locations()))
    return config


def _upgrade(connection: sa.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")
