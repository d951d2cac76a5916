"""Analytics of one gateway process: the cache, the projection that feeds it, and the service answering from them."""

from __future__ import annotations

from redis.asyncio import Redis

from analytics.cache import StatisticsCache
from analytics.projection import Projector
from analytics.service import AnalyticsService
from analytics.settings import AnalyticsSettings
from gateway.db import Database
from gateway.registry import EngineRegistry


class AnalyticsCenter:
    def __init__(
        self, db: Database, registry: EngineRegistry, redis: Redis | None, settings: AnalyticsSettings
    ) -> None:
        self.settings = settings
        self.cache = StatisticsCache(redis, settings.cache_ttl)
        self.projector = Projector(db, registry, settings, self.cache)
        self.service = AnalyticsService(db, self.cache, settings.timezone)

    async def start(self) -> None:
        await self.projector.start()

    async def stop(self) -> None:
        await self.projector.stop()
