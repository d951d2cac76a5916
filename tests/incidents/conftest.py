"""Incident Center fixtures: fake engines the tests control, an Incident Center on the test database, and a
whole gateway (API) on it. Each runs on SQLite and, when reachable, PostgreSQL (`database` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

import gateway.registry
from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.registry import EngineRegistry
from gateway.settings import Settings
from incidents.center import IncidentCenter
from tests.incidents.fake_engine import FAKE_ENGINES, WORLDS, FakeWorld
from tests.incidents.helpers import BASIC_URL, ENGINES, FAKE_URL, Gateway, quiet_settings


@pytest.fixture(autouse=True)
def fake_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = gateway.registry.adapter_class
    monkeypatch.setattr(gateway.registry, "adapter_class", lambda config: FAKE_ENGINES.get(config.type) or real(config))
    WORLDS.clear()
    yield
    WORLDS.clear()


@pytest.fixture
def world() -> FakeWorld:
    return WORLDS.setdefault(FAKE_URL, FakeWorld())


@pytest.fixture
def basic_world() -> FakeWorld:
    return WORLDS.setdefault(BASIC_URL, FakeWorld())


@pytest.fixture
def make_center(database: Database) -> Callable[..., Any]:
    """An Incident Center, the leader unless `lead=False`, whose rounds the test runs itself
    (`center.syncs[name].run_once()`, `center.apply_policies()`, `center.bulk_retries.run_pending()`)."""

    @asynccontextmanager
    async def factory(db: Database | None = None, lead: bool = True, **settings: Any) -> AsyncIterator[IncidentCenter]:
        db = db or database
        registry = EngineRegistry(Settings(engines=ENGINES, database_url=db.url), db)
        await registry.start()
        center = IncidentCenter(db, registry, quiet_settings(**settings))
        if lead:
            assert await center.leadership.refresh()
        try:
            yield center
        finally:
            await center.stop()
            await registry.close()

    return factory


@pytest.fixture
async def center(make_center: Callable[..., Any]) -> AsyncIterator[IncidentCenter]:
    async with make_center() as built:
        yield built


@pytest.fixture
def make_gateway(database: Database, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The whole gateway with its background work running, detection every 50 ms."""

    @asynccontextmanager
    async def factory(
        engines: list[dict[str, Any]] | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        **incident_env: str,
    ) -> AsyncIterator[Gateway]:
        environment = {"POLL_INTERVAL": "0.05", "ESCALATION_TIMEOUT": "0", "SEVERITY_AGE_STEP": "0", **incident_env}
        for name, value in environment.items():
            monkeypatch.setenv(f"PM_INCIDENTS_{name}", value)
        settings = Settings(engines=engines or ENGINES, database_url=database.url, auto_migrate=False)
        app = create_app(settings, engine_transports=transports)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                yield Gateway(client=client, app=app)

    return factory
