"""The cache of analytics answers: Redis when PM_REDIS_URL is set (shared by every replica), else this process.

An entry's key carries the generation numbers of what it depends on: `(engine, definition_key)` for an answer
about one process, `engine` for an answer about all of an engine's processes. The projection bumps the
generations of what a round changed (`invalidate`), so an entry computed before a change is never served
after it; entries also expire after `PM_ANALYTICS_CACHE_TTL`, since answers about "now" (overdue tasks, the
default period ending now) age by themselves. A cold key requested by many callers at once is computed once:
by one coroutine per process (the others await its result) and, with Redis, by one replica (a lock key; the
others wait for the value).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

cache_requests = Counter(
    "pm_analytics_cache_requests_total",
    "Analytics answers served from the cache (hit) or computed (miss)",
    ["endpoint", "result"],
)

ALL = "*"  # the generation of everything of an engine
LOCK_SECONDS = 30.0
POLL_SECONDS = 0.01


def _stored(value: bytes | str | None) -> bytes | None:
    """A cached answer as Redis returns it: bytes from the gateway's client (made without decode_responses)."""
    return value.encode() if isinstance(value, str) else value


class StatisticsCache:
    def __init__(self, redis: Redis | None, ttl: float, prefix: str = "pm:analytics:") -> None:
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._generations: dict[str, int] = {}
        self._computing: dict[str, asyncio.Future[bytes]] = {}

    async def get_or_compute(
        self,
        endpoint: str,
        engine: str,
        definition_key: str | None,
        params: dict[str, Any],
        compute: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        """The cached answer (JSON bytes) for these parameters, computing and storing it when absent."""
        try:
            key = await self._key(endpoint, engine, definition_key, params)
            cached = await self._read(key)
        except RedisError as exc:
            log.warning("Analytics cache unavailable (%s); computing the answer", exc)
            cache_requests.labels(endpoint, "miss").inc()
            return await compute()
        if cached is not None:
            cache_requests.labels(endpoint, "hit").inc()
            return cached
        running = self._computing.get(key)
        if running is not None:  # someone in this process computes it: share the result
            cache_requests.labels(endpoint, "hit").inc()
            return await asyncio.shield(running)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._computing[key] = future
        try:
            value, computed = await self._compute_once(key, compute)
            cache_requests.labels(endpoint, "miss" if computed else "hit").inc()
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._computing[key]

    async def invalidate(self, engine: str, definition_keys: Iterable[str] | None) -> None:
        """Bump the generations of an engine's answers: about all its processes, and about each key changed
        (None: every key, as for incidents, which count in every process's answers)."""
        names = [f"{engine}|{ALL}"]
        names += [f"{engine}|key|*"] if definition_keys is None else [f"{engine}|key|{key}" for key in definition_keys]
        if self.redis is None:
            for name in names:
                self._generations[name] = self._generations.get(name, 0) + 1
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.incr(self.prefix + "gen:" + name)
                await pipe.execute()
        except RedisError as exc:
            log.warning("Analytics cache: invalidation for engine %s failed (%s)", engine, exc)

    async def _key(self, endpoint: str, engine: str, definition_key: str | None, params: dict[str, Any]) -> str:
        names = [f"{engine}|{ALL}"] if definition_key is None else [f"{engine}|key|{definition_key}", f"{engine}|key|*"]
        if self.redis is None:
            generations = [self._generations.get(name, 0) for name in names]
        else:
            generations = [int(g or 0) for g in await self.redis.mget([self.prefix + "gen:" + n for n in names])]
        material = json.dumps([endpoint, engine, definition_key, params, generations], sort_keys=True, default=str)
        return f"{self.prefix}answer:{endpoint}:{hashlib.sha256(material.encode()).hexdigest()[:32]}"

    async def _read(self, key: str) -> bytes | None:
        if self.redis is not None:
            return _stored(await self.redis.get(key))
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    async def _compute_once(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        """(value, whether this call computed it)."""
        if self.redis is None:
            value = await compute()
            self._prune()
            self._entries[key] = (time.monotonic() + self.ttl, value)
            return value, True
        lock = key + ":lock"
        deadline = time.monotonic() + LOCK_SECONDS
        while time.monotonic() < deadline:
            if await self.redis.set(lock, b"1", nx=True, px=int(LOCK_SECONDS * 1000)):
                try:
                    stored = _stored(await self.redis.get(key))  # stored by a replica that held the lock just before
                    if stored is not None:
                        return stored, False
                    value = await compute()
                    await self.redis.set(key, value, px=int(self.ttl * 1000))
                    return value, True
                finally:
                    await self.redis.delete(lock)
            await asyncio.sleep(POLL_SECONDS)  # another replica computes it
            stored = _stored(await self.redis.get(key))
            if stored is not None:
                return stored, False
        return await compute(), True  # the lock holder took too long: answer without waiting further

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._entries.items() if expires < now]:
            del self._entries[key]
