"""Detection: the gateway's incident records follow each engine's incidents.

Each round reads every open incident of an engine and compares it with the engine incidents the gateway has
linked and believes open (`incident_links`, closed_at NULL). That stored set is the sync's cursor: it is in the
database, so after a restart the first round records what appeared and resolves what vanished while the
gateway was down. (A cursor on the engines' `created` time would miss failures: Flowable reports a failed job
with the job's creation time, not the failure's.) New engine incidents become records, or recurrences of an
existing one; linked ones the engine no longer lists resolve their record.

Only the leader replica syncs (`gateway.leader.Leadership`, a PostgreSQL advisory lock on a connection of its own). The
unique (engine, engine_incident_id) of `incident_links` still guarantees one record per engine incident should
two replicas ever sync at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError

from gateway.db import Database
from gateway.engines.port import EngineAdapter
from gateway.registry import EngineHandle
from gateway.schemas import EngineIncident, EngineIncidentQuery, SortOrder
from gateway.uow import reading
from incidents import repository
from incidents.actions import perform
from incidents.service import IncidentService

log = logging.getLogger(__name__)

SYSTEM = "system"
LEADER_LOCK_ID = (
    7_301_007  # PostgreSQL advisory lock held by the replica that runs the Incident Center's background work
)
SNAPSHOT_PAGE_SIZE = 500


async def open_engine_incidents(adapter: EngineAdapter, instance_id: str | None = None) -> dict[str, EngineIncident]:
    """Every incident the engine lists as open (of one instance, if given), by id."""
    found: dict[str, EngineIncident] = {}
    page = 1
    while True:
        query = EngineIncidentQuery(
            instance_id=instance_id, page=page, size=SNAPSHOT_PAGE_SIZE, sort="created", order=SortOrder.ASC
        )
        result = await adapter.list_engine_incidents(query)
        found.update((incident.id, incident) for incident in result.items)
        if not result.items or page * SNAPSHOT_PAGE_SIZE >= result.total:
            return found
        page += 1


class IncidentSync:
    """Detection for one engine."""

    def __init__(self, db: Database, handle: EngineHandle, service: IncidentService) -> None:
        self.db = db
        self.handle = handle
        self.service = service

    @property
    def engine(self) -> str:
        return self.handle.name

    async def run_once(self) -> None:
        snapshot = await open_engine_incidents(self.handle.adapter)
        async with reading(self.db) as session:
            linked = await repository.open_links(session, self.engine)
        appeared = sorted(
            (incident for incident_id, incident in snapshot.items() if incident_id not in linked),
            key=lambda incident: (incident.created is None, incident.created, incident.id),
        )
        for incident in appeared:
            await self._appeared(incident)
        vanished = set(linked) - set(snapshot)
        if vanished:
            # The snapshot was read page by page while the engine changed; confirm before resolving anything.
            vanished -= await self._still_open(vanished, linked)
        for engine_incident_id in sorted(vanished):
            await perform(
                self.db,
                actor=SYSTEM,
                operation="detect",
                incident_id=None,
                request={"engine_incident_id": engine_incident_id, "change": "disappeared"},
                change=functools.partial(
                    self.service.engine_incident_gone, engine=self.engine, engine_incident_id=engine_incident_id
                ),
            )

    async def _appeared(self, incident: EngineIncident) -> None:
        try:
            await perform(
                self.db,
                actor=SYSTEM,
                operation="detect",
                incident_id=None,
                request={"engine_incident_id": incident.id, "change": "appeared"},
                change=lambda uow: self.service.record_engine_incident(uow, self.engine, incident),
            )
        except IntegrityError:
            log.debug("engine incident %s of %s was recorded by another replica", incident.id, self.engine)

    async def _still_open(self, vanished: Iterable[str], linked: dict[str, str | None]) -> set[str]:
        instances = {linked[engine_incident_id] for engine_incident_id in vanished}
        still_open: set[str] = set()
        for instance_id in instances:
            still_open |= set(await open_engine_incidents(self.handle.adapter, instance_id))
        return still_open
