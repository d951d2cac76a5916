"""The incident actions: what detection, people and policies do to an incident record.

Every method runs inside the caller's unit of work and never commits (see `incidents.actions.perform`). Each
action locks the record, checks its transition in `policies`, makes the engine calls it needs, updates the
record, appends one history entry and queues one event (`incident.created`, `.updated` or `.resolved`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from gateway.db import utcnow
from gateway.engines.port import Capability
from gateway.errors import Conflict, GatewayError, NotFound, ValidationFailed
from gateway.registry import EngineHandle, EngineRegistry
from gateway.schemas import EngineIncident
from gateway.uow import UnitOfWork
from gateway.variables import Variables, audit_summary
from incidents import policies, repository
from incidents.models import Action, IncidentDetails, IncidentSeverity, IncidentStatus, ResolutionType
from incidents.repository import Row
from incidents.settings import IncidentSettings


class IncidentService:
    def __init__(self, registry: EngineRegistry, settings: IncidentSettings) -> None:
        self.registry = registry
        self.settings = settings

    # ------------------------------------------------------------ detection
    async def record_engine_incident(self, uow: UnitOfWork, engine: str, found: EngineIncident) -> Row | None:
        """Create a record for an engine incident the gateway has not seen, or link it to the record of the
        same failure (same instance and activity) and mark that record `recurred`.

        An engine incident that is the engine running the failed work again (`found.rerun_pending`: Flowable
        lists a retried job in its executable table with the old exception until the async executor has run
        it) is linked without a recurrence: it is the retry in flight, not a new failure. Its disappearance
        then resolves a retried record as `retry`; a failure of the run shows as a new engine incident.
        Returns the changed record, or None when nothing the user sees changed."""
        session, now = uow.session, utcnow()
        link = await repository.lock_link(session, engine, found.id)
        if link is not None:
            if link["closed_at"] is None:
                return None
            # The engine lists again an incident it had dropped.
            await repository.set_link_closed(session, engine, [found.id], None)
            target = await repository.lock_incident(session, link["incident_id"])
        else:
            same_failure = await self._recurrence_target(uow, engine, found)
            if same_failure is None:
                return await self._create(uow, engine, found, now)
            target = same_failure
            await repository.insert_link(session, _link(engine, target["id"], found, now))
        if found.rerun_pending:
            return None
        if not policies.takes_recurrence(IncidentStatus(target["status"]), target["resolution_type"]):
            return None
        return await self._recur(uow, target, found, now)

    async def engine_incident_gone(self, uow: UnitOfWork, engine: str, engine_incident_id: str) -> Row | None:
        """The engine no longer lists this incident: the record resolves once none of its engine incidents is open."""
        session, now = uow.session, utcnow()
        link = await repository.lock_link(session, engine, engine_incident_id)
        if link is None or link["closed_at"] is not None:
            return None
        await repository.set_link_closed(session, engine, [engine_incident_id], now)
        incident = await repository.lock_incident(session, link["incident_id"])
        if not policies.allows(IncidentStatus(incident["status"]), Action.RESOLVED):
            return None
        if await repository.open_engine_incident_ids(session, incident["id"]):
            return None
        resolution = policies.resolution_when_engine_incident_gone(IncidentStatus(incident["status"]))
        message = (
            "The engine incident is gone after the retry"
            if resolution is ResolutionType.RETRY
            else "The engine incident was resolved outside the gateway"
        )
        return await self._change(
            uow,
            incident,
            Action.RESOLVED,
            message=message,
            details={"resolution_type": resolution.value, "engine_incident_id": engine_incident_id},
            values=_resolution(resolution, message, uow.actor, now),
            now=now,
        )

    async def _recurrence_target(self, uow: UnitOfWork, engine: str, found: EngineIncident) -> Row | None:
        if found.instance_id is None or found.activity_id is None:
            return None
        latest = await repository.latest_at_place(uow.session, engine, found.instance_id, found.activity_id)
        if latest is None:
            return None
        if policies.takes_recurrence(IncidentStatus(latest["status"]), latest["resolution_type"]):
            return latest
        return None

    async def _create(self, uow: UnitOfWork, engine: str, found: EngineIncident, now: datetime) -> Row:
        created = found.created or now
        incident = await repository.insert_incident(
            uow.session,
            {
                "id": str(uuid.uuid4()),
                "engine": engine,
                "incident_type": found.incident_type,
                "message": found.message,
                "status": IncidentStatus.OPEN,
                "severity": policies.severity(self.settings, found.incident_type, now - created),
                "instance_id": found.instance_id,
                "definition_id": found.definition_id,
                "definition_key": found.definition_key,
                "activity_id": found.activity_id,
                "activity_name": found.activity_name,
                "tenant_id": found.tenant_id,
                "retry_count": 0,
                "auto_retries": 0,
                "next_retry_at": policies.next_auto_retry(self.settings, found.incident_type, 0, now),
                "escalation_level": 0,
                "created": created,
                "detected_at": now,
                "updated": now,
                "status_changed_at": now,
            },
        )
        await repository.insert_link(uow.session, _link(engine, incident["id"], found, now))
        await self._record(uow, None, incident, Action.CREATED, found.message, {"engine_incident_id": found.id}, now)
        return incident

    async def _recur(self, uow: UnitOfWork, incident: Row, found: EngineIncident, now: datetime) -> Row:
        status = policies.transition(incident["id"], IncidentStatus(incident["status"]), Action.RECURRED)
        severity = max(
            IncidentSeverity(incident["severity"]),
            policies.severity(self.settings, found.incident_type, now - incident["created"]),
            key=lambda s: s.rank,
        )
        values: dict[str, Any] = {"incident_type": found.incident_type, "message": found.message, "severity": severity}
        if status is not IncidentStatus(incident["status"]):  # reopened: clear the resolution, plan an automatic retry
            values.update(_resolution(None, None, None, None))
            values["next_retry_at"] = policies.next_auto_retry(
                self.settings, found.incident_type, incident["auto_retries"], now
            )
        return await self._change(
            uow,
            incident,
            Action.RECURRED,
            message=found.message,
            details={"engine_incident_id": found.id, "incident_type": found.incident_type},
            values=values,
            now=now,
        )

    # ------------------------------------------------------------ reading the engine
    async def engine_incident(self, incident: IncidentDetails, engine_incident_id: str) -> EngineIncident:
        """One of the record's engine incidents as the engine keeps it now, read live with its `detail` (the
        stack trace or error details, where the engine keeps them): `EngineAdapter.get_engine_incident`.

        Errors: NotFound when the engine incident is not linked to this record or the engine no longer keeps it;
        Conflict when the record's engine is not configured; the engine's own errors (502, 503, 504)."""
        if engine_incident_id not in {link.id for link in incident.engine_incidents}:
            raise NotFound(f"Engine incident {engine_incident_id} is not linked to incident {incident.id}")
        handle = self._engine(incident.id, incident.engine)
        try:
            return await handle.adapter.get_engine_incident(engine_incident_id)
        except NotFound as exc:
            raise exc.restated(
                NotFound,
                f"Engine incident {engine_incident_id} of incident {incident.id} is no longer kept by the engine",
                engine=handle.name,
            ) from exc

    # ------------------------------------------------------------ people
    async def acknowledge(self, uow: UnitOfWork, incident_id: str, message: str | None) -> Row:
        incident = await repository.lock_incident(uow.session, incident_id)
        return await self._change(uow, incident, Action.ACKNOWLEDGED, message=message)

    async def assign(self, uow: UnitOfWork, incident_id: str, user_id: str) -> Row:
        incident = await repository.lock_incident(uow.session, incident_id)
        return await self._change(
            uow,
            incident,
            Action.ASSIGNED,
            details={"assignee": user_id, "previous_assignee": incident["assignee"]},
            values={"assignee": user_id},
        )

    async def comment(self, uow: UnitOfWork, incident_id: str, message: str) -> Row:
        """A note on the record; where the engine keeps annotations, the latest note is copied to its open
        engine incidents too (Cockpit shows it). The note is kept even when the engine cannot take it."""
        incident = await repository.lock_incident(uow.session, incident_id)
        details: dict[str, Any] = {}
        handle = self.registry.engines.get(incident["engine"])
        if handle is not None and Capability.ANNOTATE_INCIDENT in handle.adapter.capabilities:
            for engine_incident_id in await repository.open_engine_incident_ids(uow.session, incident_id):
                try:
                    await handle.adapter.annotate_engine_incident(engine_incident_id, message)
                except NotFound:
                    continue  # gone from the engine meanwhile; the sync closes it
                except GatewayError as exc:
                    details["annotation"] = f"not copied to the engine: {exc.detail}"
        return await self._change(uow, incident, Action.COMMENTED, message=message, details=details)

    async def retry(
        self,
        uow: UnitOfWork,
        incident_id: str,
        *,
        retries: int = 1,
        variables: Variables | None = None,
        operation_id: str | None = None,
        automatic: bool = False,
    ) -> Row:
        """Set the variables (if any), then have the engine run the failed work again; the record is `retrying`
        until the sync sees the engine incident gone (resolved) or a new failure there (open, recurred)."""
        incident = await repository.lock_incident(uow.session, incident_id)
        policies.transition(incident_id, IncidentStatus(incident["status"]), Action.RETRIED)
        handle = self._handle(incident)
        targets = await repository.open_engine_incident_ids(uow.session, incident_id)
        if not targets:
            raise Conflict(
                f"Incident {incident_id} has no open engine incident to retry; the engine no longer reports the "
                "failure and the gateway marks the incident resolved at its next sync"
            )
        try:
            if variables:
                await handle.adapter.update_variables(self._instance(incident), variables, [])
            for engine_incident_id in targets:
                await handle.adapter.retry_engine_incident(engine_incident_id, retries)
        except NotFound as exc:
            raise exc.restated(
                Conflict, f"Incident {incident_id} cannot be retried: {exc.detail}", engine=handle.name
            ) from exc
        details: dict[str, Any] = {"retries": retries, "engine_incident_ids": targets}
        if variables:
            details["variables"] = audit_summary(variables)
        if operation_id is not None:
            details["operation_id"] = operation_id
        if automatic:
            details["automatic"] = True
        return await self._change(
            uow,
            incident,
            Action.RETRIED,
            details=details,
            values={
                "retry_count": incident["retry_count"] + 1,
                "auto_retries": incident["auto_retries"] + int(automatic),
                "next_retry_at": None,
            },
        )

    async def confirm_retry(
        self, uow: UnitOfWork, incident_id: str, targets: list[str], operation_id: str
    ) -> Row | None:
        """Record a retry the engine is known to have run, though the gateway stopped before recording it."""
        incident = await repository.lock_incident(uow.session, incident_id)
        if not policies.allows(IncidentStatus(incident["status"]), Action.RETRIED):
            return None
        return await self._change(
            uow,
            incident,
            Action.RETRIED,
            message="The engine ran this retry before the gateway restarted",
            details={"engine_incident_ids": targets, "operation_id": operation_id},
            values={"retry_count": incident["retry_count"] + 1, "next_retry_at": None},
        )

    async def resolve(self, uow: UnitOfWork, incident_id: str, resolution: ResolutionType, message: str) -> Row:
        """Close the record. `skip` drops the engine's failure without running the work again (engines that
        can: 501 otherwise); `abort` terminates the instance; the other types leave the engine as it is."""
        incident = await repository.lock_incident(uow.session, incident_id)
        policies.transition(incident_id, IncidentStatus(incident["status"]), Action.RESOLVED)
        now = utcnow()
        if resolution in (ResolutionType.SKIP, ResolutionType.ABORT):
            handle = self._handle(incident)
            targets = await repository.open_engine_incident_ids(uow.session, incident_id)
            if resolution is ResolutionType.SKIP:
                handle.require(Capability.RESOLVE_INCIDENT)
                for engine_incident_id in targets:
                    await handle.adapter.resolve_engine_incident(engine_incident_id)
            else:
                reason = f"Incident {incident_id} aborted: {message}"
                mark = uow.mark()
                await handle.adapter.terminate_instance(self._instance(incident), reason)
                uow.emit(
                    "instance.terminated",
                    at=mark,
                    engine=handle.name,
                    instance_id=incident["instance_id"],
                    tenant_id=incident["tenant_id"],
                    data={"reason": reason, "incident_id": incident_id},
                )
            await repository.set_link_closed(uow.session, incident["engine"], targets, now)
        return await self._change(
            uow,
            incident,
            Action.RESOLVED,
            message=message,
            details={"resolution_type": resolution.value},
            values=_resolution(resolution, message, uow.actor, now),
            now=now,
        )

    async def escalate(self, uow: UnitOfWork, incident_id: str, message: str, level: int | None) -> Row:
        incident = await repository.lock_incident(uow.session, incident_id)
        policies.transition(incident_id, IncidentStatus(incident["status"]), Action.ESCALATED)
        current = incident["escalation_level"]
        if level is not None and level < current:
            raise ValidationFailed(
                f"Incident {incident_id} is already escalated to level {current}; give a higher level"
            )
        new_level = current + 1 if level is None else level
        return await self._change(
            uow,
            incident,
            Action.ESCALATED,
            message=message,
            details={"level": new_level},
            values={"escalation_level": new_level},
        )

    # ------------------------------------------------------------ policies
    async def auto_retry(self, uow: UnitOfWork, incident_id: str, now: datetime) -> Row | None:
        incident = await repository.lock_incident(uow.session, incident_id)
        due = incident["next_retry_at"]
        if not policies.AUTOMATIC_RETRY.applies(IncidentStatus(incident["status"])) or due is None or due > now:
            return None  # a person or the engine changed it meanwhile
        return await self.retry(uow, incident_id, automatic=True)

    async def postpone_auto_retry(self, uow: UnitOfWork, incident_id: str, now: datetime) -> None:
        """The engine refused an automatic retry: count the attempt and wait the next backoff."""
        incident = await repository.lock_incident(uow.session, incident_id)
        attempts = incident["auto_retries"] + 1
        await repository.update_incident(
            uow.session,
            incident_id,
            auto_retries=attempts,
            next_retry_at=policies.next_auto_retry(self.settings, incident["incident_type"], attempts, now),
        )

    async def auto_escalate(self, uow: UnitOfWork, incident_id: str, cutoff: datetime) -> Row | None:
        incident = await repository.lock_incident(uow.session, incident_id)
        if not policies.AUTOMATIC_ESCALATION.applies(IncidentStatus(incident["status"])):
            return None  # a person took it up meanwhile
        if incident["status_changed_at"] > cutoff:
            return None
        timeout = self.settings.escalation_timeout
        return await self.escalate(uow, incident_id, f"Open for more than {_duration(timeout)}", None)

    async def reassess_severity(self, uow: UnitOfWork, incident_id: str, now: datetime) -> Row | None:
        """Raise the severity an unresolved incident has grown into with age; it is never lowered automatically."""
        incident = await repository.lock_incident(uow.session, incident_id)
        if not policies.allows(IncidentStatus(incident["status"]), Action.SEVERITY_CHANGED):
            return None
        current = IncidentSeverity(incident["severity"])
        due = policies.severity(self.settings, incident["incident_type"], now - incident["created"])
        if due.rank <= current.rank:
            return None
        return await self._change(
            uow,
            incident,
            Action.SEVERITY_CHANGED,
            message=f"Unresolved for {_duration(now - incident['created'])}",
            details={"from": current.value, "to": due.value},
            values={"severity": due},
        )

    # ------------------------------------------------------------ shared
    async def _change(
        self,
        uow: UnitOfWork,
        incident: Row,
        action: Action,
        *,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Row:
        status = policies.transition(incident["id"], IncidentStatus(incident["status"]), action)
        now = now or utcnow()
        changes = {**(values or {}), "status": status, "updated": now}
        if status != incident["status"]:
            changes["status_changed_at"] = now
        after = await repository.update_incident(uow.session, incident["id"], **changes)
        await self._record(uow, incident, after, action, message, details or {}, now)
        return after

    async def _record(
        self,
        uow: UnitOfWork,
        before: Row | None,
        after: Row,
        action: Action,
        message: str | None,
        details: dict[str, Any],
        now: datetime,
    ) -> None:
        await repository.add_history(
            uow.session, after["id"], action=action, actor=uow.actor, message=message, details=details, at=now
        )
        if action is Action.CREATED:
            event = "incident.created"
        elif action is Action.RESOLVED:
            event = "incident.resolved"
        else:
            event = "incident.updated"
        uow.emit(
            event,
            engine=after["engine"],
            instance_id=after["instance_id"],
            tenant_id=after["tenant_id"],
            data={
                "incident_id": after["id"],
                "action": action.value,
                "status": after["status"],
                "previous_status": before["status"] if before is not None else None,
                "severity": after["severity"],
                "incident_type": after["incident_type"],
                "definition_key": after["definition_key"],
                "activity_id": after["activity_id"],
                "assignee": after["assignee"],
                "retry_count": after["retry_count"],
                "escalation_level": after["escalation_level"],
                "resolution_type": after["resolution_type"],
                "message": message,
                "details": details,
            },
        )

    def _handle(self, incident: Row) -> EngineHandle:
        return self._engine(incident["id"], incident["engine"])

    def _engine(self, incident_id: str, engine: str) -> EngineHandle:
        handle = self.registry.engines.get(engine)
        if handle is None:
            raise Conflict(f"Incident {incident_id} belongs to engine '{engine}', which is not configured")
        return handle

    @staticmethod
    def _instance(incident: Row) -> str:
        if incident["instance_id"] is None:
            raise Conflict(f"Incident {incident['id']} belongs to no process instance")
        return incident["instance_id"]


def _link(engine: str, incident_id: str, found: EngineIncident, now: datetime) -> dict[str, Any]:
    return {
        "engine": engine,
        "engine_incident_id": found.id,
        "incident_id": incident_id,
        "incident_type": found.incident_type,
        "message": found.message,
        "created": found.created,
        "linked_at": now,
    }


def _resolution(
    resolution: ResolutionType | None, message: str | None, actor: str | None, at: datetime | None
) -> dict[str, Any]:
    return {
        "resolution_type": resolution,
        "resolution_message": message,
        "resolved_by": actor,
        "resolved_at": at,
        "next_retry_at": None,
    }


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return " ".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "min"), (seconds, "s")) if n) or "0s"
