"""Facts about deployed definitions that never change, fetched once per id and kept in memory.

Camunda's tasks and incidents name their definition only by id, and its definitions carry no deployment time
or deployer; the unified models want the key, the activity names, the deployment time and who deployed it. A
deployed definition is immutable, so what is learnt about it stays true until it is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.camunda import mapping
from adapters.camunda.mapping import activity_names
from adapters.camunda.paths import segment
from gateway.errors import NotFound
from gateway.metadata import MetadataStore
from gateway.resilience import EngineHttp

# Ids per GET /process-definition?processDefinitionIdIn=..., to keep the URL short.
_IDS_PER_LOOKUP = 50

# The `deployment-source` of every deployment the gateway makes (POST /deployment/create): only those can have a
# deployer in the metadata store.
DEPLOYMENT_SOURCE = "pm-gateway"
DEPLOYMENT = "deployment"


@dataclass(frozen=True)
class DeploymentFacts:
    """What GET /deployment/{id} tells once and for all: when, and whether the gateway made it."""

    deployed_at: datetime | None
    by_gateway: bool


class DefinitionFacts:
    def __init__(self, http: EngineHttp, store: MetadataStore) -> None:
        self._http = http
        self._store = store
        self._keys: dict[str, str] = {}
        self._activity_names: dict[str, dict[str, str]] = {}
        self._deployments: dict[str, DeploymentFacts] = {}
        self._deployers: dict[str, str] = {}

    def remember(self, definition: dict[str, Any]) -> None:
        self._keys[definition["id"]] = definition["key"]

    async def record_deployment(self, deployment_id: str, deployed_at: datetime | None, deployed_by: str) -> None:
        """A deployment the gateway just made: its deployer goes to the metadata store (Camunda cannot keep it)."""
        await self._store.put(DEPLOYMENT, deployment_id, {"deployed_by": deployed_by})
        self._deployments[deployment_id] = DeploymentFacts(deployed_at, by_gateway=True)
        self._deployers[deployment_id] = deployed_by

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

    async def deployments(self, deployment_ids: Iterable[str | None]) -> dict[str, tuple[datetime | None, str | None]]:
        """Deployment id -> (deployed_at, deployed_by).

        The deployer is read from the metadata store only for deployments the gateway made (the others cannot have
        one there: no database read for them), and only until it is found: it is written once, by `record_deployment`,
        and never changes. Not finding it is not remembered, as another replica may be about to write it."""
        wanted = {deployment_id for deployment_id in deployment_ids if deployment_id}
        missing = sorted(wanted - self._deployments.keys())
        found = await asyncio.gather(*(self._deployment(deployment_id) for deployment_id in missing))
        self._deployments.update(zip(missing, found, strict=True))
        unknown = sorted(d for d in wanted if self._deployments[d].by_gateway and d not in self._deployers)
        if unknown:
            recorded = await self._store.get_many(DEPLOYMENT, unknown)
            for deployment_id, values in recorded.items():
                if (deployed_by := values.get("deployed_by")) is not None:
                    self._deployers[deployment_id] = deployed_by
        return {d: (self._deployments[d].deployed_at, self._deployers.get(d)) for d in wanted}

    async def _deployment(self, deployment_id: str) -> DeploymentFacts:
        try:
            body = await self._http.json("GET", f"/deployment/{segment(deployment_id)}", operation="get_deployment")
        except NotFound:
            return DeploymentFacts(None, by_gateway=False)
        return DeploymentFacts(mapping.moment(body.get("deploymentTime")), body.get("source") == DEPLOYMENT_SOURCE)
