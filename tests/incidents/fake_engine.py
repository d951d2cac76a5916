"""An in-memory engine whose incidents the tests control, for detection, workflow and bulk-retry tests.

Its state lives in a `FakeWorld` shared by every adapter built for the same URL, so two gateways (two
registries) see one engine. A retry runs the failed work again at once: it fails again (a new engine
incident at the same place) while the instance's variable `fail` is true.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from gateway.engines.port import AdapterContext, Capability, EngineAdapter
from gateway.errors import EngineUnavailable, NotFound, NotSupported
from gateway.schemas import EngineIncident, EngineIncidentQuery, Page
from gateway.variables import TypedValue, Variables


@dataclass
class FakeWorld:
    incidents: dict[str, EngineIncident] = field(default_factory=dict)
    variables: dict[str, Variables] = field(default_factory=dict)
    retries: Counter[str] = field(default_factory=Counter)
    annotations: dict[str, str | None] = field(default_factory=dict)
    resolved_without_retry: list[str] = field(default_factory=list)
    terminated: dict[str, str | None] = field(default_factory=dict)
    down: bool = False
    # Like Flowable's async executor: a retry only queues the failed work (the engine lists it, still carrying
    # its old failure, as a pending re-run) until `run_pending_reruns` runs it.
    queues_reruns: bool = False
    # Awaited inside retry_engine_incident before and after the engine runs the retry: a test blocks there to
    # stop the gateway in the middle of a bulk retry.
    before_retry: Any = None
    after_retry: Any = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail(
        self,
        instance_id: str,
        activity_id: str = "charge",
        *,
        incident_type: str = "failedJob",
        message: str = "The card was declined",
        definition_key: str = "charging",
        created: datetime | None = None,
        detail: str | None = None,
    ) -> EngineIncident:
        incident = EngineIncident(
            id=f"ei-{next(self._ids)}",
            incident_type=incident_type,
            message=message,
            instance_id=instance_id,
            definition_id=f"{definition_key}:1",
            definition_key=definition_key,
            activity_id=activity_id,
            activity_name=activity_id.title(),
            created=created or datetime.now(UTC),
            job_id=f"job-{instance_id}-{activity_id}",
            detail=detail,
        )
        self.incidents[incident.id] = incident
        self.variables.setdefault(instance_id, {"fail": TypedValue(value=True, type="Boolean")})
        return incident

    def run_pending_reruns(self) -> None:
        """The executor runs every queued re-run: it fails again (a new incident) while `fail` is true."""
        for incident in [i for i in self.incidents.values() if i.rerun_pending]:
            del self.incidents[incident.id]
            self._run_again(incident)

    def _run_again(self, incident: EngineIncident) -> None:
        if self.variables.get(incident.instance_id or "", {}).get("fail", TypedValue(type="Null")).value:
            self.fail(incident.instance_id or "", incident.activity_id or "", incident_type=incident.incident_type)

    def fix(self, engine_incident_id: str) -> None:
        """Resolve an incident outside the gateway (as in Cockpit or Operate)."""
        del self.incidents[engine_incident_id]

    def open_at(self, instance_id: str) -> list[EngineIncident]:
        return [i for i in self.incidents.values() if i.instance_id == instance_id]


WORLDS: dict[str, FakeWorld] = {}


class FakeEngine(EngineAdapter):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        self.world = WORLDS.setdefault(context.config.url or "", FakeWorld())

    def _check_up(self) -> None:
        if self.world.down:
            raise EngineUnavailable(f"Engine '{self.name}' is unreachable", engine=self.name)

    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]:
        self._check_up()
        found = [
            incident.model_copy(update={"engine": self.name})
            for incident in self.world.incidents.values()
            if query.instance_id in (None, incident.instance_id)
            and query.definition_key in (None, incident.definition_key)
            and query.incident_type in (None, incident.incident_type)
        ]
        found.sort(key=lambda i: (i.created, i.id), reverse=query.order.value == "desc")
        return Page(
            items=found[query.offset : query.offset + query.size], total=len(found), page=query.page, size=query.size
        )

    async def get_engine_incident(self, incident_id: str) -> EngineIncident:
        self._check_up()
        return self._incident(incident_id)

    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        self._check_up()
        incident = self._incident(incident_id)
        if self.world.before_retry is not None:
            await self.world.before_retry()
        self.world.retries[incident_id] += 1
        del self.world.incidents[incident_id]
        if self.world.queues_reruns:
            pending = incident.model_copy(update={"id": f"rerun-{incident_id}", "rerun_pending": True, "engine": ""})
            self.world.incidents[pending.id] = pending
        else:
            self.world._run_again(incident)
        if self.world.after_retry is not None:
            await self.world.after_retry()

    async def resolve_engine_incident(self, incident_id: str) -> None:
        self._incident(incident_id)
        self.world.resolved_without_retry.append(incident_id)
        del self.world.incidents[incident_id]

    async def annotate_engine_incident(self, incident_id: str, annotation: str | None) -> None:
        self._check_up()
        self._incident(incident_id)
        self.world.annotations[incident_id] = annotation

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        self._check_up()
        variables = self.world.variables.setdefault(instance_id, {})
        variables.update(modifications)
        for name in deletions:
            variables.pop(name, None)
        return dict(variables)

    async def get_variables(self, instance_id: str) -> Variables:
        return dict(self.world.variables.get(instance_id, {}))

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        self._check_up()
        self.world.terminated[instance_id] = reason
        for incident in self.world.open_at(instance_id):
            del self.world.incidents[incident.id]

    def _incident(self, incident_id: str) -> EngineIncident:
        if incident_id not in self.world.incidents:
            raise NotFound(f"Incident {incident_id} does not exist", engine=self.name)
        return self.world.incidents[incident_id].model_copy(update={"engine": self.name})

    async def health(self) -> Any:
        raise NotSupported("not part of the incident test double")

    # Not used by the Incident Center.
    async def deploy(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupported("not part of the incident test double")

    async def list_definitions(self, query: Any) -> Any:
        raise NotSupported("not part of the incident test double")

    async def get_definition(self, definition_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def get_definition_xml(self, definition_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        raise NotSupported("not part of the incident test double")

    async def start_instance(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupported("not part of the incident test double")

    async def list_instances(self, query: Any) -> Any:
        raise NotSupported("not part of the incident test double")

    async def get_instance(self, instance_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def list_tasks(self, query: Any, *, candidates: bool = True) -> Any:
        raise NotSupported("not part of the incident test double")

    async def get_task(self, task_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def claim_task(self, task_id: str, user_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def unclaim_task(self, task_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def assign_task(self, task_id: str, user_id: str) -> Any:
        raise NotSupported("not part of the incident test double")

    async def complete_task(self, *args: Any, **kwargs: Any) -> None:
        raise NotSupported("not part of the incident test double")

    async def history_instances(self, query: Any) -> Any:
        raise NotSupported("not part of the incident test double")

    async def history_activities(self, query: Any) -> Any:
        raise NotSupported("not part of the incident test double")


class BasicFakeEngine(FakeEngine):
    """The same engine without the optional operations (like Flowable: no annotations, no resolve)."""

    capabilities = frozenset()


FAKE_ENGINES: dict[str, type[EngineAdapter]] = {"fake": FakeEngine, "fake-basic": BasicFakeEngine}
