"""Facts the Flowable REST responses leave out, looked up once and remembered.

Instances, tasks and jobs name their definition only by id, never by key; deployments carry their time
but no author; and every call Flowable receives comes from the gateway's one REST user, so the engine
cannot tell who deployed or started something. Definition keys and deployment times never change, so
they are cached in memory; the gateway's caller is kept in the metadata store.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import quote

from adapters.flowable import mapping
from gateway.errors import NotFound
from gateway.metadata import MetadataStore
from gateway.resilience import EngineHttp

K = TypeVar("K")
V = TypeVar("V")

DEPLOYMENT = "deployment"
PROCESS_INSTANCE = "process_instance"


def segment(value: str) -> str:
    """One path segment; Flowable ids contain ':' and may contain other reserved characters."""
    return quote(value, safe="")


class BoundedCache(Generic[K, V]):
    """Least-recently-used entries go first once `capacity` is reached."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class EngineFacts:
    CAPACITY = 10_000
    CONCURRENCY = 8

    def __init__(self, http: EngineHttp, store: MetadataStore) -> None:
        self.http = http
        self.store = store
        self._definition_keys: BoundedCache[str, str] = BoundedCache(self.CAPACITY)
        self._deployment_times: BoundedCache[str, datetime] = BoundedCache(self.CAPACITY)
        self._limit = asyncio.Semaphore(self.CONCURRENCY)

    # ------------------------------------------------------------ definition keys
    async def definition_keys(self, definition_ids: Iterable[str | None]) -> dict[str, str | None]:
        wanted = {definition_id for definition_id in definition_ids if definition_id}
        keys: dict[str, str | None] = {}
        missing = []
        for definition_id in wanted:
            key = mapping.definition_key_from_id(definition_id) or self._definition_keys.get(definition_id)
            if key is None:
                missing.append(definition_id)
            keys[definition_id] = key
        looked_up = await asyncio.gather(*(self._look_up_key(definition_id) for definition_id in missing))
        keys.update(zip(missing, looked_up, strict=True))
        return keys

    async def definition_key(self, definition_id: str | None) -> str | None:
        return (await self.definition_keys([definition_id])).get(definition_id or "")

    async def _look_up_key(self, definition_id: str) -> str | None:
        async with self._limit:
            try:
                data = await self.http.json(
                    "GET", f"/repository/process-definitions/{segment(definition_id)}", operation="get_definition"
                )
            except NotFound:
                return None  # deleted without its history; nothing names its key any more
        self._definition_keys.put(definition_id, data["key"])
        return data["key"]

    # ------------------------------------------------------------ deployments
    async def record_deployment(self, deployment_id: str, facts: mapping.DeploymentFacts) -> None:
        await self.store.put(DEPLOYMENT, deployment_id, {"deployed_by": facts.deployed_by})
        if facts.deployed_at is not None:
            self._deployment_times.put(deployment_id, facts.deployed_at)

    async def deployments(self, deployment_ids: Iterable[str | None]) -> dict[str, mapping.DeploymentFacts]:
        """When and by whom; the author is read from the store each time, since another replica may record it."""
        wanted = sorted({deployment_id for deployment_id in deployment_ids if deployment_id})
        if not wanted:
            return {}
        authors = await self.store.get_many(DEPLOYMENT, wanted)
        times = await asyncio.gather(*(self._deployment_time(deployment_id) for deployment_id in wanted))
        return {
            deployment_id: mapping.DeploymentFacts(
                deployed_at=deployed_at, deployed_by=authors.get(deployment_id, {}).get("deployed_by")
            )
            for deployment_id, deployed_at in zip(wanted, times, strict=True)
        }

    async def _deployment_time(self, deployment_id: str) -> datetime | None:
        cached = self._deployment_times.get(deployment_id)
        if cached is not None:
            return cached
        async with self._limit:
            try:
                data = await self.http.json(
                    "GET", f"/repository/deployments/{segment(deployment_id)}", operation="get_deployment"
                )
            except NotFound:
                return None  # deleted meanwhile
        deployed_at = mapping.moment(data.get("deploymentTime"))
        if deployed_at is not None:
            self._deployment_times.put(deployment_id, deployed_at)
        return deployed_at

    # ------------------------------------------------------------ instances
    async def record_start(self, instance_id: str, started_by: str) -> None:
        await self.store.put(PROCESS_INSTANCE, instance_id, {"started_by": started_by})

    async def starters(self, instance_ids: Iterable[str]) -> dict[str, str | None]:
        recorded = await self.store.get_many(PROCESS_INSTANCE, sorted(set(instance_ids)))
        return {instance_id: values.get("started_by") for instance_id, values in recorded.items()}
