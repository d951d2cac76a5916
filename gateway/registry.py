"""The engine registry: named engines from configuration, each with its adapter and resilience."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.db import Database
from gateway.engine_auth import build_auth
from gateway.engines.http import HttpEngineAdapter
from gateway.engines.plugins import adapter_class, adapter_options
from gateway.engines.port import CAPABILITY_DESCRIPTIONS, AdapterContext, Capability, EngineAdapter
from gateway.errors import GatewayError, NotFound, NotSupported
from gateway.logs import note_engine
from gateway.metadata import MetadataStore
from gateway.resilience import EngineBreaker, EngineHttp, RedisBreakerSync
from gateway.schemas import ListQuery
from gateway.settings import EngineConfig, Settings


@dataclass
class EngineHandle:
    config: EngineConfig
    adapter: EngineAdapter
    breaker: EngineBreaker | None = None
    http: EngineHttp | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def type(self) -> str:
        return self.config.type

    def check_query(self, query: ListQuery) -> None:
        """Refuse, before the adapter is called, a sort field or variable operator the engine's queries lack
        (`EngineAdapter.unsortable`, `EngineAdapter.variable_operators`). Errors: `NotSupported` (501) naming the
        engine and the field or operator."""
        adapter = self.adapter
        if query.sort is not None and query.sort in adapter.unsortable.get(type(query), frozenset()):
            raise NotSupported(
                f"Engine '{self.name}' ({self.type}) cannot sort this list by {query.sort}", engine=self.name
            )
        for condition in getattr(query, "conditions", ()):
            if condition.operator not in adapter.variable_operators:
                raise NotSupported(
                    f"Engine '{self.name}' ({self.type}) cannot filter by variables with the operator "
                    f"'{condition.operator}' (condition '{condition.text}')",
                    engine=self.name,
                )

    def require(self, capability: Capability) -> None:
        if capability not in self.adapter.capabilities:
            raise NotSupported(
                f"Engine '{self.name}' ({self.type}) does not support {CAPABILITY_DESCRIPTIONS[capability]}",
                engine=self.name,
            )


class EngineRegistry:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        redis: Any = None,
    ) -> None:
        self.settings = settings
        self.default = settings.default_engine_name()
        self.redis = redis
        self.engines: dict[str, EngineHandle] = {}
        transports = transports or {}
        for index, config in enumerate(settings.engine_configs):
            cls = adapter_class(config)
            options = adapter_options(cls, config, f"engines[{index}]")
            breaker = http = None
            if issubclass(cls, HttpEngineAdapter):
                transport = transports.get(config.name)
                breaker = EngineBreaker(
                    config.name, config.breaker_fail_max, config.breaker_reset_timeout, url=config.public_url()
                )
                auth = build_auth(config.auth, engine=config.name, transport=transport)
                http = EngineHttp(config, breaker=breaker, auth=auth, transport=transport)
            context = AdapterContext(
                config=config,
                settings=settings,
                db=db,
                store=MetadataStore(db, config.name),
                options=options,
                http=http,
            )
            adapter = cls(context)
            if http is not None and isinstance(adapter, HttpEngineAdapter):
                http.engine_message = adapter.engine_message
                http.classify = adapter.classify_error
            self.engines[config.name] = EngineHandle(config=config, adapter=adapter, breaker=breaker, http=http)
        self._breaker_sync: RedisBreakerSync | None = None

    def get(self, name: str | None = None) -> EngineHandle:
        handle = self.engines.get(name or self.default)
        if handle is None:
            known = ", ".join(sorted(self.engines))
            raise NotFound(f"Unknown engine '{name}'. Known engines: {known}")
        note_engine(handle.name)
        return handle

    async def start(self) -> None:
        breakers = {name: h.breaker for name, h in self.engines.items() if h.breaker is not None}
        if self.redis is not None and breakers:
            self._breaker_sync = RedisBreakerSync(self.redis, breakers)
            await self._breaker_sync.start()
        for handle in self.engines.values():
            await handle.adapter.start()

    async def close(self) -> None:
        for handle in self.engines.values():
            await handle.adapter.close()
            if handle.http is not None:
                await handle.http.aclose()
        if self._breaker_sync is not None:
            await self._breaker_sync.close()

    async def describe(self, name: str) -> dict[str, Any]:
        handle = self.engines[name]
        try:
            health = await asyncio.wait_for(handle.adapter.health(), timeout=handle.config.connect_timeout + 1)
            status, version, detail = health.status, health.version, health.detail
        except (GatewayError, TimeoutError) as exc:
            status, version, detail = "down", None, str(exc)
        return {
            "name": name,
            "type": handle.type,
            "url": handle.config.public_url(),
            "default": name == self.default,
            "status": status,
            "version": version,
            "detail": detail,
            "tenant_id": handle.config.tenant_id,
            "capabilities": sorted(c.value for c in handle.adapter.capabilities),
            "emulated": handle.adapter.emulated,
            "circuit": handle.breaker.snapshot() if handle.breaker else None,
        }
