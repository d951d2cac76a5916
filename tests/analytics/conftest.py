"""Analytics fixtures: a gateway whose engine is a hand-written history (`history_engine`), with the projection's
background rounds slowed down so that each test runs them itself (`gateway.app.state.analytics.projector`)."""

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
from gateway.settings import Settings
from tests.analytics.history_engine import HISTORIES, History, HistoryEngine
from tests.incidents.helpers import Gateway

HISTORY_URL = "http://history.test"
HISTORY_ENGINES = [{"name": "history", "type": "history", "url": HISTORY_URL, "default": True}]


@pytest.fixture(autouse=True)
def history_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = gateway.registry.adapter_class
    monkeypatch.setattr(
        gateway.registry, "adapter_class", lambda config: HistoryEngine if config.type == "history" else real(config)
    )
    HISTORIES.clear()
    yield
    HISTORIES.clear()


@pytest.fixture
def history() -> History:
    return HISTORIES.setdefault(HISTORY_URL, History())


@pytest.fixture
def make_gateway(database: Database, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The whole gateway; the analytics rounds run once at start, then only when the test runs them."""

    @asynccontextmanager
    async def factory(
        engines: list[dict[str, Any]] | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        **settings: Any,
    ) -> AsyncIterator[Gateway]:
        for name in ("EVENT_INTERVAL", "SYNC_INTERVAL", "OVERDUE_INTERVAL"):
            monkeypatch.setenv(f"PM_ANALYTICS_{name}", "3600")
        monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "3600")
        app = create_app(
            Settings(engines=engines or HISTORY_ENGINES, database_url=database.url, auto_migrate=False, **settings),
            engine_transports=transports,
        )
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway.test") as client,
        ):
            yield Gateway(client=client, app=app)

    return factory
