"""Shared fixtures: the gateway database on SQLite (always) and PostgreSQL (when one is reachable).

PostgreSQL comes from PM_TEST_DATABASE_URL, else the local server at 127.0.0.1:5432 (user postgres, password
from PGPASSWORD) when it answers, else testcontainers when a Docker engine runs, else the PostgreSQL variants
are skipped with the reason. Redis likewise: PM_TEST_REDIS_URL, else 127.0.0.1:6379 (database 15).
At the end one line says which optional suites ran and which were skipped, and why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fastapi.dependencies.models
import pytest
import respx.mocks
import sqlalchemy as sa

import gateway.tables  # noqa: F401 - registers the gateway tables on the metadata
from gateway.db import Database, metadata
from tests.real_engines.fixtures import real_engines  # noqa: F401 - the session's real engines, for every test module

# The shipped conformance suite's plugin (fixtures `adapter` and a default `database`, `requires(...)` handling);
# the `database` fixture below overrides its SQLite-only default. pytester runs the suite as a third party would.
pytest_plugins = ["gateway.engines.testing.plugin", "pytester"]


# Engine calls use httpx-aiohttp's transport; respx's "httpx" mocker intercepts at the httpx client, whatever
# the transport, so every respx test sees them (its default mocker patches only httpx's own transport).
respx.mocks.DEFAULT_MOCKER = "httpx"


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # any failure means no usable engine
        return False


@pytest.fixture(autouse=True)
def _forget_finished_applications() -> Iterator[None]:
    """Clear FastAPI's module-level caches of dependency callables (fastapi.dependencies.models, up to 4,096 each).

    The gateway's dependencies are closures over one application, so in a suite that builds hundreds of
    applications those caches kept every one alive: the heap grew past a million objects and each full garbage
    collection held the event loop for seconds, failing tests that wait 5 s for an answer. A server process builds
    one application, so the caches are bounded there."""
    yield
    for cached in vars(fastapi.dependencies.models).values():
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


OPTIONAL_SUITES: dict[str, str] = {}  # "PostgreSQL" → "ran (where)" or "skipped (why)", for the summary line
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def _local_postgres() -> str | None:
    """The local server's URL when it accepts user postgres (password from PGPASSWORD), else None."""
    url = sa.make_url(LOCAL_POSTGRES)
    if os.environ.get("PGPASSWORD"):
        url = url.set(password=os.environ["PGPASSWORD"])
    rendered = url.render_as_string(hide_password=False)

    async def ping() -> None:
        db = Database(rendered)
        try:
            await db.ping()
        finally:
            await db.dispose()

    try:
        asyncio.run(asyncio.wait_for(ping(), timeout=3))
        return rendered
    except Exception:  # anything wrong means "not usable here"
        return None


def _local_redis() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as probe:
            probe.sendall(b"PING\r\n")
            return LOCAL_REDIS if probe.recv(16).startswith(b"+PONG") else None
    except OSError:
        return None


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("PM_TEST_DATABASE_URL")
    if url:
        OPTIONAL_SUITES["PostgreSQL"] = "ran (PM_TEST_DATABASE_URL)"
        yield url
        return
    url = _local_postgres()
    if url:
        OPTIONAL_SUITES["PostgreSQL"] = "ran (local 127.0.0.1:5432)"
        yield url
        return
    if not _docker_available():
        reason = "PM_TEST_DATABASE_URL is not set, none answers at 127.0.0.1:5432, no Docker for testcontainers"
        OPTIONAL_SUITES["PostgreSQL"] = f"skipped ({reason})"
        pytest.skip(f"PostgreSQL: {reason}")
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
        OPTIONAL_SUITES["PostgreSQL"] = "ran (testcontainers)"
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("PM_TEST_REDIS_URL")
    if url:
        OPTIONAL_SUITES["Redis"] = "ran (PM_TEST_REDIS_URL)"
        yield url
        return
    url = _local_redis()
    if url:
        OPTIONAL_SUITES["Redis"] = "ran (local 127.0.0.1:6379, database 15)"
        yield url
        return
    if not _docker_available():
        reason = "PM_TEST_REDIS_URL is not set, none answers at 127.0.0.1:6379, no Docker for testcontainers"
        OPTIONAL_SUITES["Redis"] = f"skipped ({reason})"
        pytest.skip(f"Redis: {reason}")
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7-alpine") as container:
        OPTIONAL_SUITES["Redis"] = "ran (testcontainers)"
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: which optional suites ran, which were skipped and why (grouped skip reasons with counts)."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    parts = [f"{suite}: {state}" for suite, state in OPTIONAL_SUITES.items()]
    parts += [f"{count} skipped: {reason}" for reason, count in reasons.most_common()]
    terminalreporter.write_line("optional suites: " + ("; ".join(parts) or "none needed by the selected tests"))


@pytest.fixture(scope="session")
def postgres_test_database(postgres_server_url: str) -> Iterator[str]:
    """A database of its own for this test session, migrated once, dropped at the end."""
    name = f"pm_test_{uuid.uuid4().hex[:10]}"
    admin = sa.make_url(postgres_server_url)

    async def run(sql: str) -> None:
        db = Database(admin.render_as_string(hide_password=False))
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(sql))
        await db.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)

    async def migrate() -> None:
        db = Database(url)
        await db.migrate()
        await db.dispose()

    asyncio.run(migrate())
    yield url
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.migrate()
        await db.dispose()

    asyncio.run(migrate())
    return path


async def _truncate_all(db: Database) -> None:
    async with db.engine.begin() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        tables = [n for n in names if n != "alembic_version"]
        if tables:
            await conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    return request.getfixturevalue("postgres_test_database")


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    if not db.is_sqlite:
        await _truncate_all(db)
    yield db
    await db.dispose()


__all__ = ["metadata"]
