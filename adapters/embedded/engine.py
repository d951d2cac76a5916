"""Changes to instances: load the instance, run its workflow, store what changed, emit the engine's events.

Every function here runs inside the caller's unit of work; SpiffWorkflow's synchronous work (parsing,
restoring, running, serialising a workflow) runs in a worker thread so the event loop never waits for it. An instance is saved with an optimistic lock
on its `version`: when two changes race, the second one to save fails with ConcurrentModification and
nothing of it is kept (the gateway retries it as a whole).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.embedded import mapping, repository
from adapters.embedded.parsing import ParsedProcess, SpecCache, called_elements, parse_bpmn
from adapters.embedded.runtime import Changes, Execution, Runtime
from adapters.embedded.variables import loaded, plain, stored, typed
from gateway.db import utcnow
from gateway.errors import Conflict, GatewayError, InvalidBpmn, NotFound
from gateway.schemas import ProcessInstance, StartInstance
from gateway.uow import UnitOfWork
from gateway.variables import Variables

logger = logging.getLogger(__name__)

Row = Any  # a SQLAlchemy row


class InstanceEngine:
    def __init__(self, engine_name: str, runtime: Runtime, specs: SpecCache) -> None:
        self.engine_name = engine_name
        self.runtime = runtime
        self.specs = specs

    async def process(self, uow: UnitOfWork, definition_id: str, key: str, tenant_id: str | None) -> ParsedProcess:
        """The parsed definition, from the cache or (once per definition and gateway process) from its XML."""
        process = self.specs.get(definition_id)
        if process is None:
            xml = await repository.definition_xml(uow.session, definition_id)
            if xml is None:
                raise NotFound(f"Process definition {definition_id} not found", engine=self.engine_name)
            called = await called_documents(uow.session, xml, tenant_id)
            parsed = await asyncio.to_thread(parse_bpmn, xml, None, called)
            process = next(p for p in parsed if p.key == key)
            self.specs.put(definition_id, process, len(xml))
        return process

    async def start(self, uow: UnitOfWork, definition: Row, request: StartInstance, started_by: str) -> ProcessInstance:
        process = await self.process(uow, definition.id, definition.key, definition.tenant_id)
        execution = await asyncio.to_thread(self.runtime.start, process, plain(request.variables))
        await execution.advance()
        changes = await asyncio.to_thread(execution.finish)
        now = utcnow()
        values = {
            "id": str(uuid.uuid4()),
            "definition_id": definition.id,
            "definition_key": definition.key,
            "definition_name": definition.name,
            "business_key": request.business_key,
            "status": "completed" if changes.completed else "active",
            "started_by": started_by,
            "tenant_id": definition.tenant_id,
            "super_instance_id": None,
            "start_time": now,
            "end_time": now if changes.completed else None,
            "duration_ms": 0 if changes.completed else None,
            "variables": stored(typed(changes.variables, request.variables)),
            "state": changes.state,
            "version": 1,
        }
        await repository.insert_instance(uow.session, values)
        instance = SimpleNamespace(**values)  # the row as inserted: no need to read it back
        await self._record(uow, instance, changes, now)
        current = [activity for activity in changes.new_activities if activity.ended_at is None]
        return mapping.instance(instance, current, self.engine_name)

    async def complete(self, uow: UnitOfWork, task: Row, variables: Variables, user_id: str) -> None:
        instance, execution = await self._resume(uow, task.instance_id)
        if instance.status != "active":
            raise Conflict(f"Task {task.id} belongs to a suspended instance", engine=self.engine_name)
        await asyncio.to_thread(execution.complete, task.id, plain(variables))
        await execution.advance()
        known = {**loaded(instance.variables), **variables}
        await self._save(uow, instance, execution, known, completed_by={task.id: user_id})

    async def retry(self, uow: UnitOfWork, incident: Row) -> None:
        instance, execution = await self._resume(uow, incident.instance_id)
        if instance.status != "active":
            raise Conflict(
                f"Instance {instance.id} is {instance.status}; only an active instance can retry",
                engine=self.engine_name,
            )
        await asyncio.to_thread(execution.retry, incident.task_id)
        await execution.advance()
        await self._save(uow, instance, execution, loaded(instance.variables))
        await repository.resolve_incidents(uow.session, utcnow(), incident_id=incident.id)

    async def resume_waiting(self, uow: UnitOfWork, instance_id: str) -> None:
        """Fire the instance's due timers and run external work whose handler is registered (the poller)."""
        instance, execution = await self._resume(uow, instance_id)
        if instance.status != "active":
            return
        await asyncio.to_thread(execution.fire_timers)
        await execution.advance()
        await self._save(uow, instance, execution, loaded(instance.variables))

    async def terminate(self, uow: UnitOfWork, instance_id: str) -> None:
        """End the instance; one whose stored state can no longer be restored is ended all the same."""
        try:
            instance, execution = await self._resume(uow, instance_id)
        except GatewayError:
            raise
        except Exception:  # noqa: BLE001 - e.g. a state written before user data was escaped (serializer.py)
            logger.exception(
                "Embedded engine %r: instance %s cannot be restored; terminating it as stored", self.engine_name, instance_id
            )
            instance = await repository.load_instance(uow.session, instance_id)
            state = instance.state
        else:
            await asyncio.to_thread(execution.cancel)
            state = await asyncio.to_thread(self.runtime.dump, execution.workflow)
        now = utcnow()
        await repository.save_instance(
            uow.session,
            instance,
            status="terminated",
            end_time=now,
            duration_ms=_milliseconds(instance.start_time, now),
            state=state,
        )
        await repository.cancel_open_tasks(uow.session, instance_id, now)
        await repository.close_activities(uow.session, instance_id, now)
        await repository.delete_jobs(uow.session, instance_id)
        await repository.resolve_incidents(uow.session, now, instance_id=instance_id)

    async def _resume(self, uow: UnitOfWork, instance_id: str) -> tuple[Row, Execution]:
        instance = await repository.load_instance(uow.session, instance_id)
        if instance is None:
            raise NotFound(f"Process instance {instance_id} not found", engine=self.engine_name)
        if instance.status not in repository.RUNNING:
            raise Conflict(f"Instance {instance_id} has already ended ({instance.status})", engine=self.engine_name)
        process = await self.process(uow, instance.definition_id, instance.definition_key, instance.tenant_id)
        variables = plain(loaded(instance.variables))
        return instance, await asyncio.to_thread(self.runtime.resume, process, instance.state, variables)

    async def _save(
        self,
        uow: UnitOfWork,
        instance: Row,
        execution: Execution,
        known: Variables,
        completed_by: dict[str, str] | None = None,
    ) -> None:
        changes = await asyncio.to_thread(execution.finish)
        now = utcnow()
        ended = {"status": "completed", "end_time": now, "duration_ms": _milliseconds(instance.start_time, now)}
        await repository.save_instance(
            uow.session,
            instance,
            state=changes.state,
            variables=stored(typed(changes.variables, known)),
            **(ended if changes.completed else {}),
        )
        await self._record(uow, instance, changes, now, completed_by)

    async def _record(
        self,
        uow: UnitOfWork,
        instance: Row,
        changes: Changes,
        now: datetime,
        completed_by: dict[str, str] | None = None,
    ) -> None:
        session = uow.session
        await repository.insert_tasks(session, instance, changes.opened_tasks)
        await repository.close_tasks(session, changes.closed_tasks, now, completed_by or {})
        await repository.insert_activities(session, instance, changes.new_activities)
        # A task completed without a claim: its history names who did the work.
        await repository.update_activities(session, changes.updated_activities, completed_by or {})
        await repository.insert_incidents(session, instance, changes.failures, now)
        await repository.update_jobs(session, instance.id, changes.jobs_added, changes.jobs_removed)
        for task in changes.opened_tasks:
            uow.emit(
                "task.created",
                engine=self.engine_name,
                instance_id=instance.id,
                tenant_id=instance.tenant_id,
                data={
                    "task_id": task.id,
                    "task_name": task.name,
                    "task_definition_key": task.activity_id,
                    "assignee": task.assignee,
                    "candidate_groups": task.candidate_groups,
                    "definition_key": instance.definition_key,
                },
            )
        if changes.completed:
            uow.emit(
                "instance.completed",
                engine=self.engine_name,
                instance_id=instance.id,
                tenant_id=instance.tenant_id,
                data={
                    "definition_key": instance.definition_key,
                    "business_key": instance.business_key,
                    "duration_ms": _milliseconds(instance.start_time, now),
                },
            )


MAX_CALL_CHAIN = 20  # documents followed from call activity to call activity


async def called_documents(session: AsyncSession, xml: bytes, tenant_id: str | None) -> list[bytes]:
    """The deployed BPMN documents a document's call activities reach, directly or through each other.

    A `calledElement` the document does not define resolves as Camunda resolves it: to the latest deployed
    version of that key in the same tenant, or the version `camunda:calledElementBinding="version"` names.
    InvalidBpmn names the call activity whose process is not deployed."""
    documents: list[bytes] = []
    seen: set[tuple[str, int | None]] = set()
    pending = [xml]
    while pending and len(documents) < MAX_CALL_CHAIN:
        for called in called_elements(pending.pop()):
            if (called.key, called.version) in seen:
                continue
            seen.add((called.key, called.version))
            if called.version is None:
                row = await repository.latest_definition(session, called.key, tenant_id)
            else:
                row = await repository.definition_by_version(session, called.key, called.version, tenant_id)
            if row is None:
                version = "" if called.version is None else f" version {called.version}"
                raise InvalidBpmn(
                    f"Call activity {called.activity_id!r} calls process {called.key!r}{version}, which is neither "
                    "in this file nor deployed: deploy it first"
                )
            document = await repository.definition_xml(session, row.id)
            documents.append(document)
            pending.append(document)
    return documents


def _milliseconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
