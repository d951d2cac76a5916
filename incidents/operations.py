"""Bulk retry: an operation with one item per selected incident, run by the leader, resumable after a restart.

An item's state is committed before its engine call: pending -> retrying -> done | failed. The retry and
the item's `done` commit together. An item still `retrying` after a restart was interrupted between the
two; it is checked against the engine, never simply run again: if the engine still lists the engine
incidents the retry targeted, the retry never took effect and the item goes back to pending; otherwise the
engine ran it and the retry is recorded.
"""

from __future__ import annotations

import logging
import uuid

from gateway.changes import ChangeLog
from gateway.db import Database, utcnow
from gateway.errors import GatewayError
from gateway.journal import AuditDraft
from gateway.leader import Leadership
from gateway.uow import UnitOfWork, reading, transaction
from incidents import repository
from incidents.actions import perform
from incidents.models import Action, BulkRetryRequest, ItemState, OperationAccepted, OperationStatus
from incidents.repository import Row
from incidents.service import IncidentService
from incidents.sync import open_engine_incidents

log = logging.getLogger(__name__)

BULK_RETRY = "incident_retry"


async def start_bulk_retry(
    db: Database, actor: str, request: BulkRetryRequest, tenants: frozenset[str] | None = None
) -> OperationAccepted:
    """Record the operation and its items (the incidents the filter selects, of `tenants` when given, that can
    be retried now)."""
    operation_id = str(uuid.uuid4())
    body = request.model_dump(mode="json")
    home = next(iter(tenants)) if tenants is not None and len(tenants) == 1 else None
    audit = AuditDraft("bulk_retry", "operation", operation_id, request.filter.engine, body, 202, tenant_id=home)
    async for attempt in ChangeLog(db).attempts(actor, audit, transactional=True):
        async with attempt as uow:
            incident_ids = await repository.matching_ids(uow.session, request.filter, Action.RETRIED, tenants)
            await repository.insert_operation(
                uow.session,
                operation_id=operation_id,
                type=BULK_RETRY,
                request=body,
                requested_by=actor,
                incident_ids=incident_ids,
                now=utcnow(),
            )
    return OperationAccepted(operation_id=operation_id, total=len(incident_ids))


class BulkRetryRunner:
    def __init__(self, db: Database, service: IncidentService, leadership: Leadership) -> None:
        self.db = db
        self.service = service
        self.leadership = leadership

    async def run_pending(self) -> None:
        async with reading(self.db) as session:
            unfinished = await repository.unfinished_operations(session)
        for operation in unfinished:
            try:
                await self._run(operation)
            except GatewayError as exc:  # an engine that cannot be checked holds up only its own operation
                log.warning("Bulk operation %s waits for its engine: %s", operation["id"], exc.detail)

    async def _run(self, operation: Row) -> None:
        operation_id = operation["id"]
        async with transaction(self.db) as uow:
            await repository.set_operation_status(uow.session, operation_id, OperationStatus.RUNNING, utcnow())
        async with reading(self.db) as session:
            interrupted = await repository.items_in_state(session, operation_id, ItemState.RETRYING)
        for item in interrupted:
            await self._check(operation, item)
        async with reading(self.db) as session:
            pending = await repository.items_in_state(session, operation_id, ItemState.PENDING)
        for item in pending:
            if not self.leadership.held:
                return  # the new leader carries on
            await self._retry(operation, item["incident_id"])
        async with reading(self.db) as session:
            unsettled = [
                *await repository.items_in_state(session, operation_id, ItemState.PENDING),
                *await repository.items_in_state(session, operation_id, ItemState.RETRYING),
            ]
        if not unsettled:
            async with transaction(self.db) as uow:
                await repository.set_operation_status(uow.session, operation_id, OperationStatus.COMPLETED, utcnow())

    async def _retry(self, operation: Row, incident_id: str) -> None:
        operation_id, actor = operation["id"], operation["requested_by"]
        retries = operation["request"]["retries"]
        async with transaction(self.db, actor=actor) as uow:
            targets = await repository.open_engine_incident_ids(uow.session, incident_id)
            if not await repository.claim_item(uow.session, operation_id, incident_id, targets, utcnow()):
                return

        async def retry_and_finish(uow: UnitOfWork) -> Row:
            incident = await self.service.retry(uow, incident_id, retries=retries, operation_id=operation_id)
            await repository.set_item_state(uow.session, operation_id, incident_id, ItemState.DONE, None, utcnow())
            return incident

        try:
            await perform(
                self.db,
                actor=actor,
                operation="retry",
                incident_id=incident_id,
                request={"operation_id": operation_id, "retries": retries},
                change=retry_and_finish,
                status=202,
            )
        except GatewayError as exc:
            async with transaction(self.db, actor=actor) as uow:
                await repository.set_item_state(
                    uow.session, operation_id, incident_id, ItemState.FAILED, exc.detail, utcnow()
                )

    async def _check(self, operation: Row, item: Row) -> None:
        operation_id, incident_id = operation["id"], item["incident_id"]
        targets: list[str] = item["engine_incident_ids"] or []
        async with reading(self.db) as session:
            incident = await repository.get_incident(session, incident_id)
        handle = self.service.registry.engines.get(incident["engine"])
        if handle is None:
            async with transaction(self.db) as uow:
                detail = f"Interrupted; the retry cannot be checked: engine '{incident['engine']}' is not configured"
                await repository.set_item_state(
                    uow.session, operation_id, incident_id, ItemState.FAILED, detail, utcnow()
                )
            return
        still_open = await open_engine_incidents(handle.adapter, incident["instance_id"])
        if not targets or any(target in still_open for target in targets):
            async with transaction(self.db) as uow:
                detail = "Interrupted before the engine ran the retry"
                await repository.set_item_state(
                    uow.session, operation_id, incident_id, ItemState.PENDING, detail, utcnow()
                )
            return

        async def confirm(uow: UnitOfWork) -> Row | None:
            incident = await self.service.confirm_retry(uow, incident_id, targets, operation_id)
            detail = "The engine ran the retry before the gateway restarted"
            await repository.set_item_state(uow.session, operation_id, incident_id, ItemState.DONE, detail, utcnow())
            return incident

        await perform(
            self.db,
            actor=operation["requested_by"],
            operation="retry",
            incident_id=incident_id,
            request={"operation_id": operation_id, "confirmed_after_restart": True},
            change=confirm,
            status=202,
        )
