"""The embedded engine: SpiffWorkflow running inside the gateway, its state in the gateway's own database.

Zero setup: deploy BPMN and go. Every change runs in the caller's unit of work (`transaction`), so the
engine's state, its events and the gateway's audit row commit or roll back together.

Service tasks are external work: register an async handler per topic with `register_handler`. Handlers run
inline, in the transaction of the change that reached their task, and get the engine's `read_timeout`;
keep them short. Raise `BpmnError(code)` from a handler to take a boundary error event. A background
poller (every `PM_EMBEDDED_TIMER_INTERVAL` seconds) fires due timers and runs tasks that waited for a
handler registered later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any, cast

import SpiffWorkflow
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.embedded import mapping, repository, schedules
from adapters.embedded.engine import InstanceEngine
from adapters.embedded.parsing import CAMUNDA_NS, SpecCache, called_elements, load_schema, parse_bpmn
from adapters.embedded.runtime import Failure, Handler, Runtime, failure_report
from adapters.embedded.variables import loaded, stored
from gateway.bpmn import TaskExtensions
from gateway.conditions import VariableOperator
from gateway.db import Database, utcnow
from gateway.engines.port import AdapterContext, Capability, EngineAdapter
from gateway.errors import BadRequest, ConcurrentModification, Conflict, GatewayError, NotFound
from gateway.schemas import (
    ActivityRecord,
    CorrelationResult,
    DefinitionQuery,
    Deployment,
    EngineHealth,
    EngineIncident,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceMigration,
    InstanceModification,
    InstanceQuery,
    MessageCorrelation,
    MessageResults,
    Page,
    ProcessDefinition,
    ProcessInstance,
    ProcessInstanceDetails,
    SignalBroadcast,
    SignalResult,
    StartInstance,
    Task,
    TaskDetails,
    TaskQuery,
)
from gateway.uow import UnitOfWork, reading, transaction
from gateway.variables import Variables

logger = logging.getLogger(__name__)

POLL_BATCH = 100  # instances the poller resumes per round


class EmbeddedOptions(BaseSettings):
    """The embedded engine's settings: `PM_EMBEDDED_*` environment variables, or an engine's `options`."""

    model_config = SettingsConfigDict(env_prefix="PM_EMBEDDED_", extra="forbid")

    allow_scripts: bool = Field(False, description="Run BPMN script tasks (Python; trusted models only)")
    timer_interval: float = Field(1.0, gt=0, description="Seconds between timer and external-work checks")
    max_cardinality: int = Field(
        1_000, ge=1, description="Most instances one multi-instance activity may create (more: an incident)"
    )
    spec_cache_bytes: int = Field(
        16 * 1024 * 1024, ge=0, description="Bytes of parsed definitions (pickled) kept in memory"
    )


class EmbeddedAdapter(EngineAdapter):
    capabilities = frozenset(Capability)
    variable_operators = frozenset(VariableOperator)  # indexed in embedded_variable_index
    options_schema = EmbeddedOptions
    task_extensions = TaskExtensions(namespaces=(CAMUNDA_NS,))
    transactional = True

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        self.options = cast(EmbeddedOptions, context.options)
        self.runtime = Runtime(
            allow_scripts=self.options.allow_scripts,
            handler_timeout=context.config.read_timeout,
            max_cardinality=self.options.max_cardinality,
        )
        self.engine = InstanceEngine(self.name, self.runtime, SpecCache(self.options.spec_cache_bytes))
        self._poller: asyncio.Task[None] | None = None

    @property
    def db(self) -> Database:
        return self.context.db

    def register_handler(self, topic: str, handler: Handler) -> None:
        """Do the work of service tasks with this topic: `async handler(variables) -> new variables or None`."""
        self.runtime.handlers[topic] = handler

    async def start(self) -> None:
        # Loading the BPMN schema holds the interpreter for about a second: do it before requests arrive.
        await asyncio.to_thread(load_schema)
        self._poller = asyncio.create_task(self._poll(), name=f"embedded-engine-poller-{self.name}")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.timer_interval)
            try:
                await self.run_waiting_work()
            except Exception:  # the poller must outlive a failed round (e.g. the database restarting)
                logger.exception("Embedded engine %r: resuming waiting instances failed", self.name)

    async def run_waiting_work(self) -> int:
        """Start instances whose timer start event is due, fire due timers and run external work that has a
        handler now; returns how many instances started or moved."""
        moved = await self.fire_start_timers()
        async with reading(self.db) as session:
            ids = await repository.instances_with_work(session, utcnow(), list(self.runtime.handlers), POLL_BATCH)
        for instance_id in ids:
            try:
                async with transaction(self.db) as uow:
                    await self.engine.resume_waiting(uow, instance_id)
                moved += 1
            except (ConcurrentModification, NotFound, Conflict):
                continue  # changed, ended or deleted meanwhile: the next round sees the new state
            except Exception as exc:  # one broken instance must not hold up the others
                await self._background_failure(instance_id, exc)
        return moved

    async def fire_start_timers(self) -> int:
        """Start an instance through each due timer start event (see `schedules`); returns how many started.

        Taking the schedule's occurrence and starting the instance commit together, so an occurrence starts
        one instance even with several gateway workers; a failure leaves the occurrence due for the next round."""
        now = utcnow()
        async with reading(self.db) as session:
            due = await repository.due_start_timers(session, now, POLL_BATCH)
        started = 0
        for timer in due:
            interval = None if timer.interval_seconds is None else timedelta(seconds=timer.interval_seconds)
            following = schedules.next_occurrence(timer.due_at, timer.remaining, interval, now)
            try:
                async with transaction(self.db) as uow:
                    if not await repository.take_start_timer(uow.session, timer, following):
                        continue
                    definition = await self._definition(uow.session, timer.definition_id)
                    request = StartInstance(definition_id=definition.id)
                    mark = uow.mark()
                    instance = await self.engine.start(uow, definition, request, None, timer_start=timer.activity_id)
                    uow.emit(
                        "instance.started",
                        at=mark,
                        engine=self.name,
                        instance_id=instance.id,
                        tenant_id=instance.tenant_id,
                        data={
                            "definition_id": definition.id,
                            "definition_key": definition.key,
                            "business_key": None,
                            "started_by": None,
                            "start_event_id": timer.activity_id,
                        },
                    )
                started += 1
            except (ConcurrentModification, NotFound):
                continue  # the definition was deleted meanwhile (its schedules with it)
            except Exception as exc:
                logger.warning(
                    "Embedded engine %r: timer start event %r of process %r could not start an instance: %s: %s",
                    self.name,
                    timer.activity_id,
                    timer.definition_key,
                    type(exc).__name__,
                    exc,
                )
        return started

    async def _background_failure(self, instance_id: str, exc: Exception) -> None:
        """A failed background resume: its due jobs back off (doubling), the first failure in a row becomes an
        incident on the waiting activity, and the log gets one line per failure, without a traceback."""
        now = utcnow()
        reason = exc.detail if isinstance(exc, GatewayError) else "the engine could not restore or run its workflow"
        message = f"Resuming the instance in the background failed: {reason} (the incident's detail has the report)"
        async with transaction(self.db) as uow:
            base = self.options.timer_interval
            job = await repository.back_off_jobs(uow.session, instance_id, now, base)
            instance = await repository.get_instance(uow.session, instance_id)
            if job is None or instance is None:
                return
            if job.failures == 0:
                failure = Failure(job.id, job.activity_id, None, "failedJob", message, failure_report(exc))
                await repository.insert_incidents(uow.session, instance, [failure], now)
        logger.warning(
            "Embedded engine %r: instance %s at %r: attempt %d failed, next one backs off: %s",
            self.name,
            instance_id,
            job.activity_id,
            job.failures + 1,
            message,
        )

    # ------------------------------------------------------------ definitions
    async def deploy(
        self, bpmn_xml: bytes, *, filename: str, name: str | None, tenant_id: str | None, deployed_by: str
    ) -> Deployment:
        tenant_id = tenant_id or self.context.config.tenant_id
        calls = await asyncio.to_thread(called_elements, bpmn_xml)
        async with reading(self.db) as session:
            called_ids = await self.engine.called_definitions(session, calls, tenant_id)
            called = [
                document
                for called_id in called_ids
                if (document := await repository.definition_xml(session, called_id))
            ]
        # Before anything is stored (invalid BPMN stores nothing), and off the loop: schema validation takes time.
        processes = await asyncio.to_thread(parse_bpmn, bpmn_xml, filename, called)
        deployment_id, now = str(uuid.uuid4()), utcnow()
        timers = {process.key: schedules.start_timers(process, now) for process in processes}
        async with transaction(self.db) as uow:
            versions = await repository.latest_versions(uow.session, [p.key for p in processes], tenant_id)
            definition_rows: list[dict[str, Any]] = [
                {
                    "id": str(uuid.uuid4()),
                    "deployment_id": deployment_id,
                    "key": process.key,
                    "version": versions.get(process.key, 0) + 1,
                    "name": process.name,
                    "description": process.description,
                    "category": process.category,
                    "deployed_at": now,
                    "deployed_by": deployed_by,
                    "suspended": False,
                    "tenant_id": tenant_id,
                }
                for process in processes
            ]
            deployment_row = {
                "id": deployment_id,
                "name": name or filename,
                "filename": filename,
                "resource": bpmn_xml,
                "deployed_at": now,
                "deployed_by": deployed_by,
                "tenant_id": tenant_id,
            }
            try:
                await repository.insert_deployment(uow.session, deployment_row, definition_rows)
            except IntegrityError:
                raise ConcurrentModification(
                    "Another deployment of the same process took this version number; try again", engine=self.name
                ) from None
            for process, row in zip(processes, definition_rows, strict=True):
                await repository.replace_start_timers(
                    uow.session, process.key, tenant_id, row["id"], timers[process.key]
                )
            rows = await repository.definitions_of_deployment(uow.session, deployment_id)
        for process, row in zip(processes, definition_rows, strict=True):
            await self.engine.cache(row["id"], called_ids, process)
        return Deployment(
            deployment_id=deployment_id,
            name=deployment_row["name"],
            deployed_at=now,
            definitions=[mapping.definition(row, self.name) for row in rows],
        )

    async def list_definitions(self, query: DefinitionQuery) -> Page[ProcessDefinition]:
        async with reading(self.db) as session:
            rows, total = await repository.list_definitions(session, query)
        return Page(
            items=[mapping.definition(r, self.name) for r in rows], total=total, page=query.page, size=query.size
        )

    async def get_definition(self, definition_id: str) -> ProcessDefinition:
        async with reading(self.db) as session:
            return mapping.definition(await self._definition(session, definition_id), self.name)

    async def get_definition_xml(self, definition_id: str) -> bytes:
        async with reading(self.db) as session:
            xml = await repository.definition_xml(session, definition_id)
        if xml is None:
            raise NotFound(f"Process definition {definition_id} not found", engine=self.name)
        return xml

    async def set_definition_suspended(
        self, definition_id: str, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        async with transaction(self.db) as uow:
            await self._definition(uow.session, definition_id)
            await repository.set_definition_suspended(uow.session, definition_id, suspended)
            if include_instances:
                await repository.set_instances_status(
                    uow.session,
                    definition_id=definition_id,
                    status="suspended" if suspended else "active",
                    current="active" if suspended else "suspended",
                )
            return mapping.definition(await self._definition(uow.session, definition_id), self.name)

    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        """Without cascade, finished instances stay in the history; with it, every instance goes, and each
        running one emits `instance.terminated` (as if terminated one by one)."""
        async with transaction(self.db) as uow:
            definition = await self._definition(uow.session, definition_id)
            running = await repository.running_instances(uow.session, definition_id)
            if running and not cascade:
                raise Conflict(
                    f"Process definition {definition_id} has {len(running)} running instance(s); "
                    "delete with cascade to delete them too",
                    engine=self.name,
                )
            if cascade:
                await repository.delete_instances_of(uow.session, definition_id)
                for instance in running:
                    uow.emit(
                        "instance.terminated",
                        engine=self.name,
                        instance_id=instance.id,
                        tenant_id=instance.tenant_id,
                        data={"reason": f"Process definition {definition_id} was deleted with cascade"},
                    )
            await repository.delete_start_timers(uow.session, definition_id)
            await repository.delete_definition(uow.session, definition)
        self.engine.specs.discard(definition_id)

    # ------------------------------------------------------------ instances
    async def start_instance(self, request: StartInstance, *, started_by: str) -> ProcessInstance:
        async with transaction(self.db) as uow:
            definition = await self._definition_to_start(uow.session, request)
            if definition.suspended:
                raise Conflict(
                    f"Process definition {definition.id} ({definition.key} v{definition.version}) is suspended",
                    engine=self.name,
                )
            return await self.engine.start(uow, definition, request, started_by)

    # ------------------------------------------------------------ messages and signals
    async def correlate_message(self, message: MessageCorrelation, *, started_by: str) -> MessageResults:
        """Camunda 7's rules: the instances waiting for the message (event subscriptions) that match business key,
        instance id and `correlation_keys` (process variables, value and type) come first; only when none waits
        are the latest definitions whose start event catches it started (with `all`, both). One subscription per
        instance receives the message."""
        async with transaction(self.db) as uow:
            waiting = await repository.subscribers(
                uow.session,
                "message",
                message.message_name,
                tenant_id=message.tenant_id,
                business_key=message.business_key,
                instance_id=message.process_instance_id,
            )
            targets: dict[str, repository.Row] = {}
            for row in waiting:
                if row.instance_id not in targets and _variables_match(loaded(row.variables), message.correlation_keys):
                    targets[row.instance_id] = row
            starts = []
            if message.process_instance_id is None and not message.correlation_keys and (message.all or not targets):
                starts = await self._definitions_starting_by(uow, "message", message.message_name, message.tenant_id)
            matches = len(targets) + len(starts)
            if matches == 0:
                raise NotFound(f"{_no_match(message)}", engine=self.name)
            if matches > 1 and not message.all:
                described = [f"instance {row.instance_id} at {row.activity_id!r}" for row in targets.values()]
                described += [f"a new instance of {row.key!r}" for row in starts]
                raise Conflict(
                    f"Message {message.message_name!r} matches {matches} receivers ({', '.join(described)}); "
                    "narrow it with business_key, correlation_keys or process_instance_id, or give all=true",
                    engine=self.name,
                )
            results = []
            for row in targets.values():
                await self.engine.deliver(
                    uow, row.instance_id, "message", message.message_name, [row.task_id], message.variables
                )
                results.append(
                    CorrelationResult(type="correlated", instance_id=row.instance_id, definition_key=row.definition_key)
                )
            for definition in starts:
                request = StartInstance(
                    definition_id=definition.id,
                    business_key=message.business_key,
                    variables=message.variables,
                    start_message=message.message_name,
                )
                instance = await self.engine.start(uow, definition, request, started_by)
                results.append(
                    CorrelationResult(type="started", instance_id=instance.id, definition_key=definition.key)
                )
            return MessageResults(results=results)

    async def broadcast_signal(self, signal: SignalBroadcast, *, started_by: str) -> SignalResult:
        """Every active instance's waiting signal events (all of them in each instance) and a new instance of
        every latest definition whose start event catches it; `executions` counts both."""
        async with transaction(self.db) as uow:
            waiting = await repository.subscribers(
                uow.session, "signal", signal.signal_name, tenant_id=signal.tenant_id
            )
            by_instance: dict[str, list[str]] = {}
            for row in waiting:
                by_instance.setdefault(row.instance_id, []).append(row.task_id)
            for instance_id, task_ids in by_instance.items():
                await self.engine.deliver(uow, instance_id, "signal", signal.signal_name, task_ids, signal.variables)
            starts = await self._definitions_starting_by(uow, "signal", signal.signal_name, signal.tenant_id)
            for definition in starts:
                request = StartInstance(definition_id=definition.id, variables=signal.variables)
                await self.engine.start(uow, definition, request, started_by, signal=signal.signal_name)
            return SignalResult(signal_name=signal.signal_name, executions=len(waiting) + len(starts))

    async def modify_instance(self, instance_id: str, modification: InstanceModification) -> ProcessInstance:
        """As far as SpiffWorkflow allows (`runtime.Execution.modify`): skip an active activity (`start_after`, with
        or after `cancel`), go back to a passed one (`start_before`), cancel one while another stays active."""
        async with transaction(self.db) as uow:
            await self._instance_row(uow.session, instance_id)
            instructions = [(i.type, i.activity_id, i.variables) for i in modification.instructions]
            await self.engine.modify(uow, instance_id, instructions)
            return await self._instance(uow.session, instance_id)

    async def migrate_instance(self, instance_id: str, migration: InstanceMigration) -> ProcessInstance:
        """SpiffWorkflow's workflow migration (`SpiffWorkflow.bpmn.util.diff.migrate_workflow`, see
        `runtime.Execution.migrate`): the instance's tasks go to the target's specs of the same id or the mapped
        one; the activities it waits in keep their task ids. BadRequest naming an activity it waits in or passed
        that the target lacks; NotFound for an unknown target."""
        async with transaction(self.db) as uow:
            await self._instance_row(uow.session, instance_id)
            target = await repository.get_definition(uow.session, migration.target_definition_id)
            if target is None:
                raise NotFound(f"Process definition {migration.target_definition_id} not found", engine=self.name)
            await self.engine.migrate(uow, instance_id, target, migration.mappings)
            return await self._instance(uow.session, instance_id)

    async def _definitions_starting_by(
        self, uow: UnitOfWork, event_type: str, name: str, tenant_id: str | None
    ) -> list[repository.Row]:
        """The latest active definitions whose own start event catches the message or signal `name`."""
        found = []
        for definition in await repository.latest_active_definitions(uow.session, tenant_id):
            process, _ = await self.engine.process(uow, definition.id, definition.key, definition.tenant_id)
            if (event_type, name) in process.start_triggers:
                found.append(definition)
        return found

    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        async with reading(self.db) as session:
            rows, total = await repository.list_instances(session, query)
            items = await self._instances(session, rows)
        return Page(items=items, total=total, page=query.page, size=query.size)

    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        async with reading(self.db) as session:
            row = await self._instance_row(session, instance_id)
            activities = await repository.instance_activities(session, instance_id)
            incidents = await repository.open_incidents(session, instance_id)
        return mapping.instance_details(row, activities, incidents, self.name)

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        """The reason is the gateway's to keep (audit log and event); the engine only ends the instance."""
        async with transaction(self.db) as uow:
            await self.engine.terminate(uow, instance_id)

    async def set_instance_suspended(self, instance_id: str, suspended: bool) -> ProcessInstance:
        async with transaction(self.db) as uow:
            row = await self._instance_row(uow.session, instance_id)
            if row.status not in repository.RUNNING:
                raise Conflict(f"Instance {instance_id} has already ended ({row.status})", engine=self.name)
            target = "suspended" if suspended else "active"
            if row.status != target:
                await repository.set_instances_status(
                    uow.session, instance_id=instance_id, status=target, current=row.status
                )
            return await self._instance(uow.session, instance_id)

    async def get_variables(self, instance_id: str) -> Variables:
        async with reading(self.db) as session:
            return mapping.variables(await self._instance_row(session, instance_id))

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        """Change the instance's variables; the workflow picks them up the next time it moves."""
        async with transaction(self.db) as uow:
            row = await self._instance_row(uow.session, instance_id)
            if row.status not in repository.RUNNING:
                raise Conflict(
                    f"Instance {instance_id} has ended ({row.status}); its variables are final", engine=self.name
                )
            variables = {name: typed for name, typed in loaded(row.variables).items() if name not in deletions}
            variables.update(modifications)
            await repository.save_instance(uow.session, row, variables=stored(variables))
        return variables

    # ------------------------------------------------------------ tasks
    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        """Candidates come with each row (`candidates` is not needed)."""
        async with reading(self.db) as session:
            rows, total = await repository.list_tasks(session, query)
        return Page(items=[mapping.task(r, self.name) for r in rows], total=total, page=query.page, size=query.size)

    async def get_task(self, task_id: str) -> TaskDetails:
        async with reading(self.db) as session:
            row = await repository.get_task(session, task_id)
        if row is None:
            raise NotFound(f"Task {task_id} not found", engine=self.name)
        return mapping.task_details(row, self.name)

    async def claim_task(self, task_id: str, user_id: str) -> Task:
        async with transaction(self.db) as uow:
            row = await self._open_task(uow.session, task_id)
            status = _status(user_id, row.delegation_state)
            if not await repository.assign_task(uow.session, task_id, user_id, only_if_free=True, status=status):
                holder = await repository.get_task(uow.session, task_id)
                if holder is None:  # completed or deleted meanwhile
                    raise NotFound(f"Task {task_id} not found", engine=self.name)
                raise Conflict(f"Task {task_id} is already claimed by {holder.assignee}", engine=self.name)
            return await self._task(uow.session, task_id)

    async def claim_next(
        self,
        user_id: str,
        candidate_groups: list[str] | None,
        definition_key: str | None,
        tenant_ids: list[str] | None = None,
    ) -> Task | None:
        """Picks and claims in the database (`repository.claim_next`), instead of the base class's query then claim."""
        async with transaction(self.db) as uow:
            claimed = await repository.claim_next(uow.session, user_id, candidate_groups, definition_key, tenant_ids)
            return None if claimed is None else mapping.task(claimed, self.name)

    async def unclaim_task(self, task_id: str) -> Task:
        return await self._reassign(task_id, None)

    async def assign_task(self, task_id: str, user_id: str) -> Task:
        return await self._reassign(task_id, user_id)

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        """The assignee stays responsible as owner; the delegate becomes the assignee, delegation pending."""
        async with transaction(self.db) as uow:
            row = await self._open_task(uow.session, task_id)
            await repository.assign_task(
                uow.session,
                task_id,
                user_id,
                owner=row.owner or row.assignee,
                delegation_state="pending",
                status="delegated",
            )
            return await self._task(uow.session, task_id)

    async def complete_task(self, task_id: str, variables: Variables, *, user_id: str) -> Task:
        """Anyone may complete an open task (who may is the gateway's business, as with the other engines).

        A delegated task is completed directly by whoever holds it: there is no separate "resolve" step as in
        Camunda; its delegation counts as resolved.
        """
        async with transaction(self.db) as uow:
            row = await self._open_task(uow.session, task_id)
            await self.engine.complete(uow, row, variables, user_id)
        return mapping.task(row, self.name)

    # ------------------------------------------------------------ engine incidents
    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]:
        async with reading(self.db) as session:
            rows, total = await repository.list_incidents(session, query)
        return Page(items=[mapping.incident(r, self.name) for r in rows], total=total, page=query.page, size=query.size)

    async def get_engine_incident(self, incident_id: str) -> EngineIncident:
        async with reading(self.db) as session:
            return mapping.incident(await self._incident(session, incident_id), self.name)

    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        """Run the failed task again, now. A new failure is a new incident (`retries` has no use here)."""
        async with transaction(self.db) as uow:
            incident = await self._incident(uow.session, incident_id)
            if await repository.retry_jobs_now(uow.session, incident.instance_id, incident.task_id, utcnow()):
                # A background resume that failed: the poller tries again now; a new failure, a new incident.
                await repository.resolve_incidents(uow.session, utcnow(), incident_id=incident.id)
                return
            await self.engine.retry(uow, incident)

    async def resolve_engine_incident(self, incident_id: str) -> None:
        """Close the incident without a retry; the failed task stays failed (a retry can still run it)."""
        async with transaction(self.db) as uow:
            await self._incident(uow.session, incident_id)
            await repository.resolve_incidents(uow.session, utcnow(), incident_id=incident_id)

    async def annotate_engine_incident(self, incident_id: str, annotation: str | None) -> None:
        async with transaction(self.db) as uow:
            await self._incident(uow.session, incident_id)
            await repository.annotate_incident(uow.session, incident_id, annotation)

    # ------------------------------------------------------------ history and health
    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        async with reading(self.db) as session:
            rows, total = await repository.history_instances(session, query)
            items = await self._instances(session, rows)
        return Page(items=items, total=total, page=query.page, size=query.size)

    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]:
        async with reading(self.db) as session:
            rows, total = await repository.history_activities(session, query)
        return Page(items=[mapping.activity_record(r) for r in rows], total=total, page=query.page, size=query.size)

    async def health(self) -> EngineHealth:
        version = f"SpiffWorkflow {SpiffWorkflow.__version__}"
        try:
            await self.db.ping()
        except Exception as exc:  # any database failure means the engine cannot work
            return EngineHealth(status="down", version=version, detail=f"The gateway database is unreachable: {exc}")
        return EngineHealth(status="up", version=version)

    # ------------------------------------------------------------ lookups
    async def _definition(self, session: AsyncSession, definition_id: str) -> repository.Row:
        row = await repository.get_definition(session, definition_id)
        if row is None:
            raise NotFound(f"Process definition {definition_id} not found", engine=self.name)
        return row

    async def _definition_to_start(self, session: AsyncSession, request: StartInstance) -> repository.Row:
        if request.definition_id is not None:
            return await self._definition(session, request.definition_id)
        if request.definition_key is None:
            raise BadRequest("Name the process to start: definition_key or definition_id", engine=self.name)
        tenant_id = request.tenant_id or self.context.config.tenant_id
        row = await repository.latest_definition(session, request.definition_key, tenant_id)
        if row is None:
            tenant = f" for tenant {tenant_id!r}" if tenant_id else ""
            raise NotFound(f"No process definition with key {request.definition_key!r}{tenant}", engine=self.name)
        return row

    async def _instance_row(self, session: AsyncSession, instance_id: str) -> repository.Row:
        row = await repository.get_instance(session, instance_id)
        if row is None:
            raise NotFound(f"Process instance {instance_id} not found", engine=self.name)
        return row

    async def _instance(self, session: AsyncSession, instance_id: str) -> ProcessInstance:
        (item,) = await self._instances(session, [await self._instance_row(session, instance_id)])
        return item

    async def _instances(self, session: AsyncSession, rows: list[repository.Row]) -> list[ProcessInstance]:
        current: dict[str, list[repository.Row]] = {row.id: [] for row in rows}
        for activity in await repository.open_activities(session, list(current)):
            current[activity.instance_id].append(activity)
        return [mapping.instance(row, current[row.id], self.name) for row in rows]

    async def _open_task(self, session: AsyncSession, task_id: str) -> repository.Row:
        """An open task of an active instance: NotFound when unknown or ended, Conflict when suspended."""
        row = await repository.get_task(session, task_id)
        if row is None or row.ended_at is not None:
            raise NotFound(f"Task {task_id} not found or no longer open", engine=self.name)
        if row.instance_status == "suspended":
            raise Conflict(f"Task {task_id} belongs to a suspended instance", engine=self.name)
        return row

    async def _task(self, session: AsyncSession, task_id: str) -> Task:
        return mapping.task(await repository.get_task(session, task_id), self.name)

    async def _reassign(self, task_id: str, assignee: str | None) -> Task:
        async with transaction(self.db) as uow:
            row = await self._open_task(uow.session, task_id)
            await repository.assign_task(uow.session, task_id, assignee, status=_status(assignee, row.delegation_state))
            return await self._task(uow.session, task_id)

    async def _incident(self, session: AsyncSession, incident_id: str) -> repository.Row:
        row = await repository.get_incident(session, incident_id)
        if row is None:
            raise NotFound(f"Engine incident {incident_id} not found", engine=self.name)
        return row


def _variables_match(variables: Variables, expected: Variables) -> bool:
    """Every expected variable is there with the same value (Camunda's correlationKeys / processVariables)."""
    return all(name in variables and variables[name].value == typed.value for name, typed in expected.items())


def _no_match(message: MessageCorrelation) -> str:
    narrowed = [
        f"{label} {value!r}"
        for label, value in (
            ("business key", message.business_key),
            ("instance", message.process_instance_id),
            ("tenant", message.tenant_id),
        )
        if value is not None
    ]
    narrowed += [f"variable {name} = {_shown(typed.value)}" for name, typed in message.correlation_keys.items()]
    where = f" with {', '.join(narrowed)}" if narrowed else ""
    return (
        f"No active process instance{where} waits for message {message.message_name!r}, and no process starts with it"
    )


def _status(assignee: str | None, delegation_state: str | None) -> str:
    if assignee is None:
        return "created"
    return "delegated" if delegation_state == "pending" else "assigned"


def _shown(value: Any) -> str:
    """A value as JSON for a problem's detail, cut to 100 characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 100 else text[:97] + "..."
