"""The Incident Center of one gateway process: the service the API uses and, on the leader replica, the
background work — detection per engine, the policies (automatic retry, escalation, severity by age) and
bulk operations — each in a loop of its own so a slow engine delays nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from gateway.db import Database, utcnow
from gateway.errors import GatewayError
from gateway.leader import LeaderLoops, Leadership, LeaderWork
from gateway.registry import EngineRegistry
from gateway.uow import UnitOfWork, reading, transaction
from incidents import policies, repository
from incidents.actions import perform
from incidents.models import IncidentSeverity
from incidents.operations import BulkRetryRunner
from incidents.repository import Row
from incidents.service import IncidentService
from incidents.settings import IncidentSettings
from incidents.sync import LEADER_LOCK_ID, SYSTEM, IncidentSync

log = logging.getLogger(__name__)


class IncidentCenter:
    def __init__(self, db: Database, registry: EngineRegistry, settings: IncidentSettings) -> None:
        self.db = db
        self.settings = settings
        self.service = IncidentService(registry, settings)
        self.leadership = Leadership(db, LEADER_LOCK_ID, "Incident Center")
        self.loops = LeaderLoops(self.leadership, settings.poll_interval)
        self.syncs = {name: IncidentSync(db, handle, self.service) for name, handle in registry.engines.items()}
        self.bulk_retries = BulkRetryRunner(db, self.service, self.leadership)
        self._engine_wakes = {name: asyncio.Event() for name in self.syncs}
        self._operations_wake = asyncio.Event()

    async def start(self) -> None:
        await self.loops.start(
            [
                LeaderWork("policies", self.apply_policies, self.settings.poll_interval),
                LeaderWork(
                    "bulk operations", self.bulk_retries.run_pending, self.settings.poll_interval, self._operations_wake
                ),
                *(
                    LeaderWork(
                        f"detection on {name}", sync.run_once, self.settings.poll_interval, self._engine_wakes[name]
                    )
                    for name, sync in self.syncs.items()
                ),
            ]
        )

    async def stop(self) -> None:
        await self.loops.stop()

    def nudge_detection(self, engine: str) -> None:
        """Run an engine's detection now rather than at its next interval."""
        if engine in self._engine_wakes:
            self._engine_wakes[engine].set()

    def nudge_operations(self) -> None:
        self._operations_wake.set()

    async def apply_policies(self) -> None:
        """Automatic retries that are due, escalation of incidents left open, severity raised by age."""
        now = utcnow()
        await self._retry_due(now)
        if self.settings.escalation_timeout:
            await self._escalate_overdue(now - self.settings.escalation_timeout)
        if self.settings.severity_age_step:
            await self._raise_severities(now)

    async def _retry_due(self, now: datetime) -> None:
        async with reading(self.db) as session:
            due = await repository.due_auto_retries(session, now)
        for incident_id in due:
            await self._auto_retry(incident_id)

    async def _escalate_overdue(self, cutoff: datetime) -> None:
        async with reading(self.db) as session:
            overdue = await repository.open_since(session, cutoff)
        for incident_id in overdue:
            await self._system_action(
                "escalate",
                incident_id,
                functools.partial(self.service.auto_escalate, incident_id=incident_id, cutoff=cutoff),
            )

    async def _raise_severities(self, now: datetime) -> None:
        async with reading(self.db) as session:
            aged = await repository.unresolved_created_before(session, now - self.settings.severity_age_step)
        for row in aged:
            grown = policies.severity(self.settings, row["incident_type"], now - row["created"])
            if grown.rank > IncidentSeverity(row["severity"]).rank:
                await self._system_action(
                    "reassess_severity",
                    row["id"],
                    functools.partial(self.service.reassess_severity, incident_id=row["id"], now=now),
                )

    async def _auto_retry(self, incident_id: str) -> None:
        try:
            await perform(
                self.db,
                actor=SYSTEM,
                operation="retry",
                incident_id=incident_id,
                request={"automatic": True},
                change=lambda uow: self.service.auto_retry(uow, incident_id, utcnow()),
                status=202,
            )
        except GatewayError as exc:
            log.warning("Automatic retry of incident %s failed: %s", incident_id, exc.detail)
            async with transaction(self.db, actor=SYSTEM) as uow:
                await self.service.postpone_auto_retry(uow, incident_id, utcnow())

    async def _system_action(
        self, operation: str, incident_id: str, change: Callable[[UnitOfWork], Awaitable[Row | None]]
    ) -> None:
        try:
            await perform(
                self.db, actor=SYSTEM, operation=operation, incident_id=incident_id, request={}, change=change
            )
        except GatewayError as exc:
            log.warning("Incident %s: %s by policy failed: %s", incident_id, operation, exc.detail)
