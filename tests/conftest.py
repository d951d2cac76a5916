"""Shared fixtures: the gateway database on SQLite (always) and PostgreSQL (when one is reachable).

PostgreSQL comes from PM_TEST_DATABASE_URL, else from testcontainers when a Docker engine runs, else
the PostgreSQL variants are skipped with the reason. Redis likewise from PM_TEST_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import respx.mocks
import sqlalchemy as sa

from gateway.db import Database, metadata

import gateway.tables  # noqa: F401 - registers the gateway tables on the metadata

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
    except Exception:  # noqa: BLE001 - any failure means no usable engine
        return False


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("PM_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if not _docker_available():
        pytest.skip("PostgreSQL: PM_TEST_DATABASE_URL is not set and no Docker engine is available for testcontainers")
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("PM_TEST_REDIS_URL")
    if url:
        yield url
        return
    if not _docker_available():
        pytest.skip("Redis: PM_TEST_REDIS_URL is not set and no Docker engine is available for testcontainers")
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7-alpine") as container:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


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
