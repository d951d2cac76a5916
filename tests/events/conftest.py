"""Event delivery fixtures: a whole gateway served by uvicorn on a loopback port (SSE needs a real HTTP server),
webhook receivers on loopback, and a helper that writes events into the outbox the way the API does."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from events.service import EventService
from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.settings import Settings
from gateway.uow import transaction
from tests.events.receiver import Receiver

QUICK = {
    "POLL_INTERVAL": "0.05",
    "ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2",
    "WEBHOOK_JITTER": "0",
    "SSE_HEARTBEAT": "0.5",
}


@dataclass
class ServedGateway:
    url: str
    client: httpx.AsyncClient
    events: EventService

    async def subscribe(self, receiver: Receiver, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/api/processes/subscriptions", json={"url": receiver.url, **body})
        assert response.status_code == 201, response.text
        subscription = response.json()
        receiver.secrets.append(subscription["secret"])
        return subscription


@pytest.fixture
def event_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set PM_EVENTS_* variables (the quick test defaults, overridden by the keyword arguments)."""

    def apply(**overrides: str) -> None:
        for name, value in {**QUICK, **overrides}.items():
            monkeypatch.setenv(f"PM_EVENTS_{name}", value)

    apply()
    return apply


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[ServedGateway]:
    """Run the gateway app under uvicorn on 127.0.0.1 (a free port) until the block ends."""
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield ServedGateway(url=url, client=client, events=app.state.events)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def gateway_settings(database: Database) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        return Settings(database_url=database.url, auto_migrate=False, engine_type="embedded", **overrides)

    return build


@pytest.fixture
async def served(event_env: Any, gateway_settings: Callable[..., Settings]) -> AsyncIterator[ServedGateway]:
    async with serve(gateway_settings()) as gateway:
        yield gateway


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    built = Receiver()
    await built.start()
    yield built
    await built.stop()


async def write_events(
    db: Database,
    events: list[tuple[str, str | None, dict[str, Any]]],
    engine: str = "default",
    tenant_id: str | None = None,
) -> None:
    """Commit events (type without prefix, instance id, data) of one tenant (None: no tenant) in one unit of work,
    as an API call does."""
    async with transaction(db, actor="tester") as uow:
        for event_type, instance_id, data in events:
            uow.emit(event_type, engine=engine, instance_id=instance_id, data=data, tenant_id=tenant_id)


def unique_stream() -> str:
    return f"pm:events:test-{uuid.uuid4().hex[:8]}"
