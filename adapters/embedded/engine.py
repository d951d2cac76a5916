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
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.embedded import mapping, repository
from adapters.embedded.parsing import CalledElement, ParsedProcess, SpecCache, called_elements, parse_bpmn
from adapters.embedded.runtime import Changes, Execution, Runtime
from adapters.embedded.variables import loaded, plain, stored, typed
from gateway.db import EncodedJson, utcnow
from gateway.errors import BadRequest, Conflict, GatewayError, InvalidBpmn, NotFound
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
        self._call_lists: dict[str, list[CalledElement]] = {}  # by definition id

    async def process(
        self, uow: UnitOfWork, definition_id: str, key: str, tenant_id: str | None, called: Sequence[str] | None = None
    ) -> tuple[ParsedProcess, list[str]]:
        """The parsed definition and the ids of the definitions its call activities call in it: `called` (those an
        instance started with), else those they resolve to now (latest binding: a version deployed a moment ago
        is the one a new instance calls). From the cache, or parsed once per combination and gateway process."""
        session = uow.session
        if called is None:
            called = await self.called_definitions(session, await self._calls(session, definition_id), tenant_id)
        cache_key = "|".join([definition_id, *called])
        process = await self.specs.get(cache_key)
        if process is None:
            xml = await repository.definition_xml(session, definition_id)
            found = [await repository.definition_xml(session, called_id) for called_id in called]
            documents = [document for document in found if document is not None]
            if xml is None or len(documents) < len(found):
                raise NotFound(
                    f"Process definition {definition_id} or a process it calls was deleted", engine=self.engine_name
                )
            parsed = await asyncio.to_thread(parse_bpmn, xml, None, documents)
            process = next(p for p in parsed if p.key == key)
            await self.cache(definition_id, called, process)
        return process, list(called)

    async def cache(self, definition_id: str, called: Sequence[str], process: ParsedProcess) -> None:
        """Keep a parsed definition (with the called definitions `called`) for the next change."""
        await self.specs.put("|".join([definition_id, *called]), process)

    async def called_definitions(
        self, session: AsyncSession, calls: Sequence[CalledElement], tenant_id: str | None
    ) -> list[str]:
        """The ids of the deployed definitions that `calls` (a document's calls of processes it does not define)
        reach, directly or through each other's call activities.

        A `calledElement` resolves as Camunda resolves it: to the latest deployed version of that key in the same
        tenant, or the version `camunda:calledElementBinding="version"` names. InvalidBpmn names the call activity
        whose process is not deployed."""
        found: list[str] = []
        seen: set[tuple[str, int | None]] = set()
        pending = [list(calls)]
        while pending and len(found) < MAX_CALL_CHAIN:
            for called in pending.pop():
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
                        f"Call activity {called.activity_id!r} calls process {called.key!r}{version}, which is "
                        "neither in this file nor deployed: deploy it first"
                    )
                found.append(row.id)
                pending.append(await self._calls(session, row.id))
        return found

    async def _calls(self, session: AsyncSession, definition_id: str) -> list[CalledElement]:
        """A deployed definition's calls of processes its document does not define (read once: they never change)."""
        calls = self._call_lists.get(definition_id)
        if calls is None:
            xml = await repository.definition_xml(session, definition_id)
            if xml is None:
                raise NotFound(f"Process definition {definition_id} not found", engine=self.engine_name)
            calls = self._call_lists[definition_id] = await asyncio.to_thread(called_elements, xml)
        return calls

    async def start(
        self,
        uow: UnitOfWork,
        definition: Row,
        request: StartInstance,
        started_by: str | None,
        timer_start: str | None = None,
        *,
        signal: str | None = None,
    ) -> ProcessInstance:
        """A new instance of `definition`, started at `request.start_message`'s or `signal`'s start event if given;
        `timer_start` names the timer start event whose schedule is due (then nobody started it: `started_by` is
        None)."""
        process, called = await self.process(uow, definition.id, definition.key, definition.tenant_id)
        execution = await asyncio.to_thread(
            partial(self.runtime.start, message=request.start_message, signal=signal),
            process,
            plain(request.variables),
            timer_start,
        )
        await execution.advance()
        changes, variables = await _finished(execution, request.variables)
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
            "variables": variables,
            "state": changes.state,
            "called_definitions": called,
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
        await execution.advance(first=partial(execution.complete, task.id, plain(variables)))
        known = {**loaded(instance.variables), **variables}
        await self._save(uow, instance, execution, known, completed_by={task.id: user_id})

    async def retry(self, uow: UnitOfWork, incident: Row) -> None:
        instance, execution = await self._resume(uow, incident.instance_id)
        if instance.status != "active":
            raise Conflict(
                f"Instance {instance.id} is {instance.status}; only an active instance can retry",
                engine=self.engine_name,
            )
        await execution.advance(first=partial(execution.retry, incident.task_id))
        await self._save(uow, instance, execution, loaded(instance.variables))
        await repository.resolve_incidents(uow.session, utcnow(), incident_id=incident.id)

    async def resume_waiting(self, uow: UnitOfWork, instance_id: str) -> None:
        """Fire the instance's due timers and run external work whose handler is registered (the poller)."""
        instance, execution = await self._resume(uow, instance_id)
        if instance.status != "active":
            return
        await execution.advance(first=execution.fire_timers)
        await self._save(uow, instance, execution, loaded(instance.variables))

    async def deliver(
        self, uow: UnitOfWork, instance_id: str, event_type: str, name: str, task_ids: list[str], variables: Variables
    ) -> None:
        """Deliver a correlated message or a signal to the waiting tasks `task_ids` of one instance, with
        `variables` becoming process variables, and run the instance on (its events follow)."""
        instance, execution = await self._resume(uow, instance_id)
        if instance.status != "active":
            raise Conflict(f"Instance {instance_id} is suspended; it catches no {event_type}", engine=self.engine_name)
        for task_id in task_ids:
            await asyncio.to_thread(execution.receive, task_id, event_type, name, plain(variables))
        await execution.advance()
        await self._save(uow, instance, execution, {**loaded(instance.variables), **variables})

    async def modify(
        self, uow: UnitOfWork, instance_id: str, instructions: Sequence[tuple[str, str, Variables]]
    ) -> None:
        """Apply modification instructions (`Execution.modify`), run on, resolve the incidents of the tasks that
        are no longer open."""
        instance, execution = await self._resume(uow, instance_id)
        if instance.status != "active":
            raise Conflict(f"Instance {instance_id} is suspended; activate it to modify it", engine=self.engine_name)
        plain_instructions = [(kind, activity_id, plain(variables)) for kind, activity_id, variables in instructions]
        left = await asyncio.to_thread(execution.modify, plain_instructions)
        await execution.advance()
        if execution.stranded():
            raise BadRequest(
                "The modification would leave the instance without an active activity; the embedded engine ends an "
                "instance only by terminating it (DELETE /instances/{id})",
                engine=self.engine_name,
            )
        known = dict(loaded(instance.variables))
        for _, _, variables in instructions:
            known.update(variables)
        await self._save(uow, instance, execution, known, reopening=True)
        await repository.resolve_incidents(uow.session, utcnow(), instance_id=instance_id, task_ids=left)

    async def migrate(self, uow: UnitOfWork, instance_id: str, target: Row, mappings: Mapping[str, str]) -> None:
        """Move the instance onto the definition `target` (`Execution.migrate`), run on, and let its instance row,
        open tasks, activity records and incidents name the target. BadRequest naming the activities it cannot
        map; Conflict when it is suspended."""
        instance, execution = await self._resume(uow, instance_id)
        if instance.status != "active":
            raise Conflict(f"Instance {instance_id} is suspended; activate it to migrate it", engine=self.engine_name)
        process, called = await self.process(uow, target.id, target.key, target.tenant_id)
        try:
            moved = await asyncio.to_thread(execution.migrate, process, mappings)
        except BadRequest as refused:
            raise BadRequest(refused.detail, engine=self.engine_name) from None
        await execution.advance()
        await self._save(
            uow,
            instance,
            execution,
            dict(loaded(instance.variables)),
            definition_id=target.id,
            definition_key=target.key,
            definition_name=target.name,
            called_definitions=called,
        )
        records = [
            (task_id, activity_id, process.node(activity_id).name, process.node(activity_id).type)
            for task_id, activity_id in moved
        ]
        await repository.migrate_records(uow.session, instance_id, target, records)

    async def terminate(self, uow: UnitOfWork, instance_id: str) -> None:
        """End the instance; one whose stored state can no longer be restored is ended all the same."""
        try:
            instance, execution = await self._resume(uow, instance_id)
        except GatewayError:
            raise
        except Exception:  # e.g. a state written before user data was escaped (serializer.py)
            logger.exception(
                "Embedded engine %r: instance %s cannot be restored; terminating it as stored",
                self.engine_name,
                instance_id,
            )
            instance = await repository.load_instance(uow.session, instance_id)
            if instance is None:
                raise
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
        process, _ = await self.process(
            uow, instance.definition_id, instance.definition_key, instance.tenant_id, instance.called_definitions
        )
        variables = plain(loaded(instance.variables))
        return instance, await asyncio.to_thread(self.runtime.resume, process, instance.state, variables)

    async def _save(
        self,
        uow: UnitOfWork,
        instance: Row,
        execution: Execution,
        known: Variables,
        completed_by: dict[str, str] | None = None,
        *,
        reopening: bool = False,
        **instance_values: Any,
    ) -> None:
        """Store the change: the instance row, then its tasks, activities and incidents (`_record`). `reopening`:
        tasks may open under the ids of tasks that ran before (instance modification goes back to them).
        `instance_values`: further columns of the instance row to change with it (a migration's definition)."""
        changes, variables = await _finished(execution, known)
        now = utcnow()
        ended = {"status": "completed", "end_time": now, "duration_ms": _milliseconds(instance.start_time, now)}
        await repository.save_instance(
            uow.session,
            instance,
            state=changes.state,
            variables=variables,
            **(ended if changes.completed else {}),
            **instance_values,
        )
        if reopening:
            await repository.forget_tasks(uow.session, [task.id for task in changes.opened_tasks])
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
        if changes.subscriptions_changed:
            await repository.replace_subscriptions(session, instance.id, changes.subscriptions)
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


MAX_CALL_CHAIN = 20  # definitions followed from call activity to call activity


async def _finished(execution: Execution, known: Variables) -> tuple[Changes, dict[str, Any]]:
    """What the change did, and the instance's variables typed and as stored (with their JSON text), worked out in
    a worker thread: typing and encoding a large Json value walks all of it and would hold the event loop."""

    def finish() -> tuple[Changes, dict[str, Any]]:
        changes = execution.finish()
        return changes, EncodedJson(stored(typed(changes.variables, known)))

    return await asyncio.to_thread(finish)


def _milliseconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
