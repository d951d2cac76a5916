"""Facts about deployed definitions that never change, fetched once per id and kept in memory.

Camunda's tasks and incidents name their definition only by id, and its definitions carry no deployment time;
the unified models want the key, the activity names and the deployment time. A deployed definition is
immutable, so what is learnt about it stays true until it is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from adapters.camunda import mapping
from adapters.camunda.mapping import activity_names
from adapters.camunda.paths import segment
from gateway.errors import NotFound
from gateway.resilience import EngineHttp

# Ids per GET /process-definition?processDefinitionIdIn=..., to keep the URL short.
_IDS_PER_LOOKUP = 50


class DefinitionFacts:
    def __init__(self, http: EngineHttp) -> None:
        self._http = http
        self._keys: dict[str, str] = {}
        self._activity_names: dict[str, dict[str, str]] = {}
        self._deployment_times: dict[str, datetime | None] = {}

    def remember(self, definition: dict[str, Any]) -> None:
        self._keys[definition["id"]] = definition["key"]

    def remember_deployment(self, deployment_id: str, deployed_at: datetime | None) -> None:
        self._deployment_times[deployment_id] = deployed_at

    def forget(self, definition_id: str) -> None:
        self._keys.pop(definition_id, None)
        self._activity_names.pop(definition_id, None)

    async def keys(self, definition_ids: Iterable[str | None]) -> dict[str, str]:
        """Definition id -> key; deleted definitions are left out."""
        wanted = {definition_id for definition_id in definition_ids if definition_id}
        missing = sorted(wanted - self._keys.keys())
        for start in range(0, len(missing), _IDS_PER_LOOKUP):
            chunk = missing[start : start + _IDS_PER_LOOKUP]
            rows = await self._http.json(
                "GET",
                "/process-definition",
                operation="list_definitions",
                params={"processDefinitionIdIn": ",".join(chunk), "maxResults": len(chunk)},
            )
            for row in rows:
                self.remember(row)
        return {definition_id: self._keys[definition_id] for definition_id in wanted if definition_id in self._keys}

    async def activity_names(self, definition_id: str) -> dict[str, str]:
        if definition_id not in self._activity_names:
            try:
                body = await self._http.json(
                    "GET", f"/process-definition/{segment(definition_id)}/xml", operation="get_definition_xml"
                )
            except NotFound:
                return {}
            self._activity_names[definition_id] = activity_names(body["bpmn20Xml"])
        return self._activity_names[definition_id]

    async def deployment_times(self, deployment_ids: Iterable[str | None]) -> dict[str, datetime | None]:
        wanted = {deployment_id for deployment_id in deployment_ids if deployment_id}
        missing = sorted(wanted - self._deployment_times.keys())
        found = await asyncio.gather(*(self._deployment_time(deployment_id) for deployment_id in missing))
        self._deployment_times.update(zip(missing, found, strict=True))
        return {deployment_id: self._deployment_times[deployment_id] for deployment_id in wanted}

    async def _deployment_time(self, deployment_id: str) -> datetime | None:
        try:
            body = await self._http.json("GET", f"/deployment/{segment(deployment_id)}", operation="get_deployment")
        except NotFound:
            return None
        return mapping.moment(body.get("deploymentTime"))
