"""The process use cases behind the API: each one calls the engine's adapter, then records its audit row and
events through `gateway.changes` (one mechanism for every audited change).

A `ProcessService` is made per request for one engine and one caller (`gateway.api.context`); routers only
parse, call one method and shape the answer. Access is decided here, for every route alike: the caller's
permission (403 naming it), their tenants (another tenant's object answers 404, as an unknown id would) and,
for tasks, the task-level rule (a task one may not see is 404). A refused change is audited (outcome failure).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable
from functools import partial
from typing import Any, TypeVar

from gateway import bpmn, records
from gateway.auth import Caller
from gateway.changes import Attempts, ChangeLog
from gateway.engines.port import Capability, EngineAdapter
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.journal import AuditDraft
from gateway.processes.scoping import tenant_page, visible_task_page
from gateway.registry import EngineHandle
from gateway.schemas import (
    DefinitionQuery,
    Deployment,
    InstanceMigration,
    InstanceModification,
    InstanceQuery,
    MessageCorrelation,
    MessageResults,
    Page,
    ProcessDefinition,
    ProcessDefinitionDetails,
    ProcessInstance,
    ProcessInstanceDetails,
    SignalBroadcast,
    SignalResult,
    StartInstance,
    Task,
    TaskDetails,
    TaskQuery,
)
from gateway.uow import UnitOfWork
from gateway.variables import Variables, audit_summary

T = TypeVar("T")


class ProcessService:
    """Use cases on one engine (`engine`) on behalf of one `caller` (their actor is recorded in audit and events)."""

    def __init__(self, changes: ChangeLog, engine: EngineHandle, caller: Caller) -> None:
        self.changes = changes
        self.engine = engine
        self.caller = caller

    @property
    def actor(self) -> str:
        return self.caller.actor

    @property
    def adapter(self) -> EngineAdapter:
        return self.engine.adapter

    def _audit(
        self,
        operation: str,
        resource_type: str,
        resource_id: str | None,
        request: dict[str, Any],
        status: int,
        tenant_id: str | None,
    ) -> AuditDraft:
        return AuditDraft(operation, resource_type, resource_id, self.engine.name, request, status, tenant_id=tenant_id)

    def _attempts(
        self,
        operation: str,
        resource_type: str,
        resource_id: str | None,
        request: dict[str, Any],
        status: int = 200,
        *,
        tenant_id: str | None = None,
    ) -> Attempts:
        audit = self._audit(operation, resource_type, resource_id, request, status, tenant_id)
        return self.changes.attempts(self.actor, audit, transactional=self.adapter.transactional)

    @contextlib.asynccontextmanager
    async def _checking(
        self, operation: str, resource_type: str, resource_id: str | None, request: dict[str, Any], status: int = 200
    ) -> AsyncIterator[None]:
        """The access checks before a change: one that refuses (or whose lookup fails) is audited as a failure."""
        audit = self._audit(operation, resource_type, resource_id, request, status, self.caller.home_tenant)
        async with self.changes.checking(self.actor, audit):
            yield

    # ------------------------------------------------------------ access
    def _unrestricted(self, permission: str, *, task: bool = False) -> bool:
        """Whether no check could refuse `permission` to this caller (every tenant, every definition, and for
        tasks `task:admin`): then commands skip the lookup that the checks need, and take the audit row's
        tenant from the engine's answer where it gives one."""
        caller = self.caller
        return caller.tenants is None and caller.may(permission) and (not task or caller.may("task:admin"))

    async def _lookup(self, what: str, read: Awaitable[T]) -> T:
        """Read an object for the access checks. A caller limited to tenants gets the same 404 for an unknown id
        as for another tenant's (`Caller.visible`), so that the answer tells nothing about the other tenant."""
        try:
            return await read
        except NotFound:
            if self.caller.tenants is None:
                raise
            raise NotFound(f"{what} does not exist", engine=self.engine.name) from None

    async def _definition(self, definition_id: str, permission: str) -> ProcessDefinition:
        self.caller.require(permission)
        what = f"Process definition {definition_id}"
        definition = await self._lookup(what, self.adapter.get_definition(definition_id))
        self.caller.visible(definition.tenant_id, what, engine=self.engine.name)
        self.caller.require_for(permission, definition.key)
        return definition

    async def _instance(self, instance_id: str, permission: str) -> ProcessInstanceDetails:
        self.caller.require(permission)
        what = f"Process instance {instance_id}"
        instance = await self._lookup(what, self.adapter.get_instance(instance_id))
        self.caller.visible(instance.tenant_id, what, engine=self.engine.name)
        self.caller.require_for(permission, instance.definition_key)
        return instance

    async def _task(self, task_id: str, permission: str) -> TaskDetails:
        self.caller.require(permission)
        what = f"Task {task_id}"
        task = await self._lookup(what, self.adapter.get_task(task_id))
        self.caller.visible(task.tenant_id, what, engine=self.engine.name)
        if not self.caller.sees_task(task.assignee, task.candidate_users, task.candidate_groups):
            raise NotFound(f"{what} does not exist", engine=self.engine.name)
        self.caller.require_for(permission, task.definition_key)
        return task

    def _require_everywhere(self, permission: str) -> None:
        """For changes that may reach any process definition (messages, signals): the permission for all of them."""
        self.caller.require(permission)
        if not self.caller.may(permission):
            raise Forbidden(
                f"Your roles grant '{permission}' only for some process definitions; a message or signal may reach "
                "any of them, so it needs the permission for every definition"
            )

    def _listing(self, permission: str, definition_key: str | None) -> None:
        """A list needs the permission for every definition, or the filter by a definition key it is granted for."""
        self.caller.require(permission)
        if not self.caller.may(permission) and definition_key is None:
            raise Forbidden(
                f"Your roles grant '{permission}' only for some process definitions; filter by one of them "
                "(definition_key)"
            )
        if definition_key is not None:
            self.caller.require_for(permission, definition_key)

    # ------------------------------------------------------------ definitions
    async def deploy(self, xml: bytes, *, filename: str, name: str | None, tenant_id: str | None) -> Deployment:
        """Check the BPMN (400 naming the line when malformed), deploy it into one of the caller's tenants, emit
        `definition.deployed`. Needs `definition:deploy` (for every executable process key in the file)."""
        request = _deploy_request(xml, filename, name, tenant_id)
        async with self._checking("deploy", "definition", None, request, status=201):
            self.caller.require("definition:deploy")
            processes = self._validate(xml)
            for process in processes:
                if process.executable:
                    self.caller.require_for("definition:deploy", process.id)
            tenant_id = self.caller.tenant_for_new(tenant_id, "deploy")
        return await self._deploy(xml, filename, name, tenant_id, operation="deploy", resource_id=None)

    async def redeploy(
        self, definition_id: str, xml: bytes, *, filename: str, name: str | None, tenant_id: str | None
    ) -> Deployment:
        """Deploy a new version of `definition_id`'s key; the file must contain that executable process (400)."""
        request = _deploy_request(xml, filename, name, tenant_id)
        async with self._checking("redeploy", "definition", definition_id, request, status=201):
            current = await self._definition(definition_id, "definition:deploy")
            processes = self._validate(xml)
            if current.key not in {p.id for p in processes if p.executable}:
                raise BadRequest(
                    f"The new BPMN must contain the executable process '{current.key}' to be a new version of {definition_id}"
                )
            for process in processes:
                if process.executable:
                    self.caller.require_for("definition:deploy", process.id)
            tenant_id = self.caller.tenant_for_new(tenant_id or current.tenant_id, "deploy")
        return await self._deploy(xml, filename, name, tenant_id, operation="redeploy", resource_id=definition_id)

    def _validate(self, xml: bytes) -> list[bpmn.ProcessSummary]:
        """The file's processes; InvalidBpmn (400) when malformed or over PM_MAX_BPMN_ELEMENTS elements."""
        return bpmn.validate(xml, max_elements=self.adapter.context.settings.max_bpmn_elements)

    async def _deploy(
        self,
        xml: bytes,
        filename: str,
        name: str | None,
        tenant_id: str | None,
        *,
        operation: str,
        resource_id: str | None,
    ) -> Deployment:
        request = _deploy_request(xml, filename, name, tenant_id)
        async for attempt in self._attempts(
            operation, "definition", resource_id, request, status=201, tenant_id=tenant_id
        ):
            async with attempt as uow:
                deployment = await self.adapter.deploy(
                    xml, filename=filename, name=name, tenant_id=tenant_id, deployed_by=self.actor
                )
                if resource_id is None:
                    uow.audited_resource(deployment.deployment_id)
                uow.emit(
                    "definition.deployed",
                    engine=self.engine.name,
                    tenant_id=tenant_id,
                    data={
                        "deployment_id": deployment.deployment_id,
                        "name": deployment.name,
                        "definitions": [
                            {"id": d.id, "key": d.key, "version": d.version} for d in deployment.definitions
                        ],
                    },
                )
        return deployment

    async def list_definitions(self, query: DefinitionQuery, *, with_counts: bool) -> Page[ProcessDefinition]:
        """A page of the caller's tenants' definitions; `with_counts` adds each one's running-instance count."""
        self._listing("definition:read", query.key)
        page = await tenant_page(self.caller, query, self.adapter.list_definitions)
        if with_counts:
            for definition in page.items:
                definition.instances = await self._running_count(definition.id)
        return page

    async def get_definition(self, definition_id: str, *, with_counts: bool) -> ProcessDefinitionDetails:
        """A definition with the tasks and start form read from its BPMN. Errors: NotFound, Forbidden."""
        definition = await self._definition(definition_id, "definition:read")
        xml = await self.adapter.get_definition_xml(definition_id)
        tasks, start_form = bpmn.describe_process(xml, definition.key, self.adapter.task_extensions)
        start_events, catch_events = bpmn.describe_events(xml, definition.key)
        details = ProcessDefinitionDetails(
            **definition.model_dump(),
            tasks=tasks,
            start_form=start_form,
            start_events=start_events,
            catch_events=catch_events,
        )
        if with_counts:
            details.instances = await self._running_count(definition_id)
        return details

    async def get_definition_xml(self, definition_id: str) -> bytes:
        if not self._unrestricted("definition:read"):
            await self._definition(definition_id, "definition:read")
        return await self.adapter.get_definition_xml(definition_id)

    async def _running_count(self, definition_id: str) -> int:
        running = await self.adapter.list_instances(InstanceQuery(definition_id=definition_id, status="active", size=1))
        return running.total

    async def delete_definition(self, definition_id: str, *, cascade: bool) -> None:
        """Delete a definition (with its instances when `cascade`). Errors: NotFound, Conflict (running instances)."""
        request = {"cascade": cascade}
        async with self._checking("delete", "definition", definition_id, request, status=204):
            # looked up even for unrestricted callers: the audit row needs the definition's tenant
            current = await self._definition(definition_id, "definition:delete")
        async for attempt in self._attempts(
            "delete", "definition", definition_id, request, status=204, tenant_id=_tenant(current)
        ):
            async with attempt:
                await self.adapter.delete_definition(definition_id, cascade)

    async def set_definition_suspended(
        self, definition_id: str, *, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        """Suspend or activate a definition (501 where the engine cannot)."""
        operation = "suspend" if suspended else "activate"
        request = {"suspended": suspended, "include_instances": include_instances}
        async with self._checking(operation, "definition", definition_id, request):
            self.engine.require(Capability.SUSPEND_DEFINITION)
            current = None
            if not self._unrestricted("definition:suspend"):
                current = await self._definition(definition_id, "definition:suspend")
        async for attempt in self._attempts(
            operation, "definition", definition_id, request, tenant_id=_tenant(current)
        ):
            async with attempt as uow:
                definition = await self.adapter.set_definition_suspended(definition_id, suspended, include_instances)
                _audited_tenant(uow, definition.tenant_id)
        return definition

    # ------------------------------------------------------------ instances
    async def start_instance(self, request: StartInstance) -> ProcessInstance:
        """Start an instance in one of the caller's tenants (`instance:start` for its definition key) and emit
        `instance.started` before the events of what the engine did meanwhile."""
        summary = {
            "definition_key": request.definition_key,
            "definition_id": request.definition_id,
            "business_key": request.business_key,
            "tenant_id": request.tenant_id,
            "start_message": request.start_message,
            "variables": audit_summary(request.variables),
        }
        async with self._checking("start", "instance", None, summary, status=201):
            if request.definition_id is not None:
                definition = await self._definition(request.definition_id, "instance:start")
                tenant_id = definition.tenant_id
            else:
                self.caller.require("instance:start", request.definition_key)
                tenant_id = self.caller.tenant_for_new(request.tenant_id, "start instances")
                request = request.model_copy(update={"tenant_id": tenant_id})
        async for attempt in self._attempts("start", "instance", None, summary, status=201, tenant_id=tenant_id):
            async with attempt as uow:
                mark = uow.mark()
                instance = await self.adapter.start_instance(request, started_by=self.actor)
                uow.audited_resource(instance.id)
                uow.emit(
                    "instance.started",
                    at=mark,
                    engine=self.engine.name,
                    instance_id=instance.id,
                    tenant_id=instance.tenant_id,
                    data=_instance_event_data(
                        instance,
                        started_by=self.actor,
                        variables={name: typed.model_dump(mode="json") for name, typed in request.variables.items()},
                    ),
                )
        return instance

    # ------------------------------------------------------------ messages and signals
    async def correlate_message(self, message: MessageCorrelation) -> MessageResults:
        """Deliver a message (501 where the engine cannot; `EngineAdapter.correlate_message` for matching); emits
        `message.correlated` per instance reached (and `instance.started` for one it started), or
        `message.published` when the engine buffered it. Errors: NotFound (nobody waits), Conflict (several
        match without `all`), BadRequest (both a process instance id and `all`)."""
        summary = {
            "message_name": message.message_name,
            "business_key": message.business_key,
            "correlation_keys": audit_summary(message.correlation_keys),
            "process_instance_id": message.process_instance_id,
            "all": message.all,
            "tenant_id": message.tenant_id,
            "variables": audit_summary(message.variables),
        }
        async with self._checking("correlate", "message", message.message_name, summary):
            self._require_everywhere("message:correlate")
            self.engine.require(Capability.CORRELATE_MESSAGE)
            if message.all and message.process_instance_id:
                raise BadRequest("Give either process_instance_id or all, not both: an instance id names one instance")
            if message.process_instance_id is not None and self.caller.tenants is not None:
                await self._instance(message.process_instance_id, "message:correlate")
            tenant_id = self.caller.tenant_for_new(message.tenant_id, "correlate messages")
            message = message.model_copy(update={"tenant_id": tenant_id})
        variables = {name: typed.model_dump(mode="json") for name, typed in message.variables.items()}
        async for attempt in self._attempts("correlate", "message", message.message_name, summary, tenant_id=tenant_id):
            async with attempt as uow:
                mark = uow.mark()
                outcome = await self.adapter.correlate_message(message, started_by=self.actor)
                common = {"message_name": message.message_name, "business_key": message.business_key}
                if outcome.published:
                    uow.emit(
                        "message.published",
                        engine=self.engine.name,
                        tenant_id=message.tenant_id,
                        data={**common, "message_key": outcome.message_key, "variables": variables},
                    )
                for result in outcome.results:
                    if result.type == "started":
                        uow.emit(
                            "instance.started",
                            at=mark,
                            engine=self.engine.name,
                            instance_id=result.instance_id,
                            tenant_id=message.tenant_id,
                            data={
                                "definition_key": result.definition_key,
                                "business_key": message.business_key,
                                "started_by": self.actor,
                                "start_message": message.message_name,
                                "variables": variables,
                            },
                        )
                    uow.emit(
                        "message.correlated",
                        engine=self.engine.name,
                        instance_id=result.instance_id,
                        tenant_id=message.tenant_id,
                        data={
                            **common,
                            "type": result.type,
                            "definition_key": result.definition_key,
                            "variables": variables,
                        },
                    )
        return outcome

    async def broadcast_signal(self, signal: SignalBroadcast) -> SignalResult:
        """Throw a signal to every waiting catch event and signal start event (501 where the engine cannot);
        emits `signal.broadcast`."""
        summary = {
            "signal_name": signal.signal_name,
            "tenant_id": signal.tenant_id,
            "variables": audit_summary(signal.variables),
        }
        async with self._checking("broadcast", "signal", signal.signal_name, summary, status=202):
            self._require_everywhere("signal:broadcast")
            self.engine.require(Capability.BROADCAST_SIGNAL)
            tenant_id = self.caller.tenant_for_new(signal.tenant_id, "broadcast signals")
            signal = signal.model_copy(update={"tenant_id": tenant_id})
        async for attempt in self._attempts(
            "broadcast", "signal", signal.signal_name, summary, status=202, tenant_id=tenant_id
        ):
            async with attempt as uow:
                mark = uow.mark()
                result = await self.adapter.broadcast_signal(signal, started_by=self.actor)
                uow.emit(
                    "signal.broadcast",
                    at=mark,
                    engine=self.engine.name,
                    tenant_id=signal.tenant_id,
                    data={
                        "signal_name": signal.signal_name,
                        "executions": result.executions,
                        "signal_key": result.signal_key,
                        "variables": {name: typed.model_dump(mode="json") for name, typed in signal.variables.items()},
                    },
                )
        return result

    # ------------------------------------------------------------ modification and migration
    async def modify_instance(self, instance_id: str, modification: InstanceModification) -> ProcessInstance:
        """Move an instance's tokens (501 where the engine cannot); emits `instance.modified`.
        Errors: NotFound, BadRequest (unknown activity), Conflict (ended or suspended)."""
        request = {
            "instructions": [
                {"type": i.type, "activity_id": i.activity_id, "variables": audit_summary(i.variables)}
                for i in modification.instructions
            ],
            "skip_listeners": modification.skip_listeners,
            "annotation": modification.annotation,
        }
        async with self._checking("modify", "instance", instance_id, request):
            self.caller.require("instance:modify")
            self.engine.require(Capability.MODIFY_INSTANCE)
            if not modification.instructions:
                raise BadRequest("Give at least one instruction (start_before, start_after or cancel)")
            current = await self._instance(instance_id, "instance:modify")
            xml = await self.adapter.get_definition_xml(current.definition_id)
            known = bpmn.flow_node_ids(xml, current.definition_key)
            unknown = [i.activity_id for i in modification.instructions if i.activity_id not in known]
            if unknown:
                raise BadRequest(
                    f"Process {current.definition_key!r} has no activity {', '.join(repr(u) for u in unknown)}: "
                    "name BPMN element ids of the instance's definition"
                )
        async for attempt in self._attempts("modify", "instance", instance_id, request, tenant_id=_tenant(current)):
            async with attempt as uow:
                mark = uow.mark()
                instance = await self.adapter.modify_instance(instance_id, modification)
                uow.emit(
                    "instance.modified",
                    at=mark,
                    engine=self.engine.name,
                    instance_id=instance_id,
                    tenant_id=instance.tenant_id,
                    data=_instance_event_data(
                        instance,
                        instructions=[
                            {"type": i.type, "activity_id": i.activity_id} for i in modification.instructions
                        ],
                        annotation=modification.annotation,
                    ),
                )
        return instance

    async def migrate_instance(self, instance_id: str, migration: InstanceMigration) -> ProcessInstance:
        """Move an instance to another definition version (501 where the engine cannot); emits `instance.migrated`
        with the instance after the move and the mappings. Errors: NotFound (instance or definition), BadRequest (the
        instance already runs on the target; a mapping naming an activity the source or target definition lacks; the
        engine refusing a waiting activity it cannot map, named in the detail), Conflict (ended)."""
        request = {"target_definition_id": migration.target_definition_id, "mappings": migration.mappings}
        async with self._checking("migrate", "instance", instance_id, request):
            self.caller.require("instance:modify")
            self.engine.require(Capability.MIGRATE_INSTANCE)
            current = await self._instance(instance_id, "instance:modify")
            target = await self._definition(migration.target_definition_id, "instance:modify")
            if target.key != current.definition_key:
                self.caller.require_for("instance:modify", target.key)
            if current.definition_id == target.id:
                raise BadRequest(f"Process instance {instance_id} already runs on definition {target.id}")
            source_ids = bpmn.flow_node_ids(
                await self.adapter.get_definition_xml(current.definition_id), current.definition_key
            )
            target_ids = bpmn.flow_node_ids(await self.adapter.get_definition_xml(target.id), target.key)
            unknown = [f"source {s!r}" for s in migration.mappings if s not in source_ids] + [
                f"target {t!r}" for t in migration.mappings.values() if t not in target_ids
            ]
            if unknown:
                raise BadRequest(
                    f"Mappings name activities the definitions do not have: {', '.join(unknown)} (sources are "
                    f"activity ids of {current.definition_id}, targets of {target.id})"
                )
        async for attempt in self._attempts("migrate", "instance", instance_id, request, tenant_id=_tenant(current)):
            async with attempt as uow:
                mark = uow.mark()
                instance = await self.adapter.migrate_instance(instance_id, migration)
                uow.emit(
                    "instance.migrated",
                    at=mark,
                    engine=self.engine.name,
                    instance_id=instance_id,
                    tenant_id=instance.tenant_id,
                    data=_instance_event_data(
                        instance, source_definition_id=current.definition_id, mappings=migration.mappings
                    ),
                )
        return instance

    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        """Instances of the caller's tenants; a sort or variable operator the engine lacks is a 501
        (`EngineHandle.check_query`)."""
        self._listing("instance:read", query.definition_key)
        self.engine.check_query(query)
        return await tenant_page(self.caller, query, self.adapter.list_instances)

    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        """The instance with activities, incidents, execution path and (with `audit:read`) its audit trail.
        Errors: NotFound, Forbidden."""
        details = await self._instance(instance_id, "instance:read")
        if self.caller.may("audit:read"):
            details.audit_trail, _ = await records.audit_page(
                self.changes.db,
                self.caller,
                resource_type="instance",
                resource_id=instance_id,
                limit=100,
                newest_first=False,
            )
        return details

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        """End a running instance and emit `instance.terminated`. Errors: NotFound, Forbidden."""
        request = {"reason": reason}
        async with self._checking("terminate", "instance", instance_id, request, status=204):
            # looked up even for unrestricted callers: the event and audit row need the instance's tenant
            current = await self._instance(instance_id, "instance:terminate")
        async for attempt in self._attempts(
            "terminate", "instance", instance_id, request, status=204, tenant_id=_tenant(current)
        ):
            async with attempt as uow:
                mark = uow.mark()
                await self.adapter.terminate_instance(instance_id, reason)
                uow.emit(
                    "instance.terminated",
                    at=mark,
                    engine=self.engine.name,
                    instance_id=instance_id,
                    tenant_id=_tenant(current),
                    data={"reason": reason},
                )

    async def set_instance_suspended(self, instance_id: str, *, suspended: bool) -> ProcessInstance:
        """Suspend or activate an instance (501 where the engine cannot); emits instance.suspended|activated."""
        operation = "suspend" if suspended else "activate"
        request = {"suspended": suspended}
        async with self._checking(operation, "instance", instance_id, request):
            self.engine.require(Capability.SUSPEND_INSTANCE)
            current = None
            if not self._unrestricted("instance:suspend"):
                current = await self._instance(instance_id, "instance:suspend")
        async for attempt in self._attempts(operation, "instance", instance_id, request, tenant_id=_tenant(current)):
            async with attempt as uow:
                instance = await self.adapter.set_instance_suspended(instance_id, suspended)
                _audited_tenant(uow, instance.tenant_id)
                uow.emit(
                    "instance.suspended" if suspended else "instance.activated",
                    engine=self.engine.name,
                    instance_id=instance_id,
                    tenant_id=instance.tenant_id,
                    data=_instance_event_data(instance),
                )
        return instance

    async def get_variables(self, instance_id: str) -> Variables:
        if not self._unrestricted("instance:read"):
            await self._instance(instance_id, "instance:read")
        return await self.adapter.get_variables(instance_id)

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        """Apply all modifications and deletions or none (400 when a name is in both); returns every variable.
        Emits instance.variables_updated with the names modified and deleted (never the values), for which the
        instance is read first (its tenant and definition go with the event)."""
        request = {"variables": audit_summary(modifications), "deletions": deletions}
        async with self._checking("update_variables", "instance", instance_id, request):
            current = await self._instance(instance_id, "instance:write-variables")
            both = sorted(set(modifications) & set(deletions))
            if both:
                raise BadRequest(f"Variables both modified and deleted: {', '.join(both)}")
        async for attempt in self._attempts(
            "update_variables", "instance", instance_id, request, tenant_id=current.tenant_id
        ):
            async with attempt as uow:
                variables = await self.adapter.update_variables(instance_id, modifications, deletions)
                uow.emit(
                    "instance.variables_updated",
                    engine=self.engine.name,
                    instance_id=instance_id,
                    tenant_id=current.tenant_id,
                    data=_instance_event_data(current, modified=sorted(modifications), deleted=sorted(deletions)),
                )
        return variables

    # ------------------------------------------------------------ tasks
    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        """Tasks of the caller's tenants; without `task:admin` only those the task-level rule lets them see. A sort
        or variable operator the engine lacks is a 501 (`EngineHandle.check_query`).

        `candidates=False` (the merged inbox, which shows only some of the tasks it reads): the tasks may lack
        their candidate users and groups (`EngineAdapter.list_tasks`); `task_candidates` adds them to those shown.
        """
        self._listing("task:read", query.definition_key)
        self.engine.check_query(query)
        if self.caller.may("task:admin"):
            return await tenant_page(self.caller, query, partial(self.adapter.list_tasks, candidates=candidates))
        # the task-level rule reads the candidates of every task it checks
        return await visible_task_page(self.caller, query, self.adapter.list_tasks)

    async def task_candidates(self, tasks: list[Task]) -> list[Task]:
        """`tasks` of `list_tasks(..., candidates=False)`, same order, with their candidates (read only where
        `list_tasks` left them out: for callers with `task:admin`)."""
        if not self.caller.may("task:admin"):
            return tasks
        return await self.adapter.with_candidates(tasks)

    async def get_task(self, task_id: str) -> TaskDetails:
        return await self._task(task_id, "task:read")

    async def claim_task(self, task_id: str, user_id: str) -> Task:
        """Claim for `user_id` (409 when another user holds it; for someone else needs `task:assign`);
        emits `task.assigned`."""
        request = {"user_id": user_id}
        async with self._checking("claim", "task", task_id, request):
            for_another = user_id != self.actor
            current = None
            if not self._unrestricted("task:claim", task=True) or (for_another and not self.caller.may("task:assign")):
                current = await self._task(task_id, "task:claim")
            if for_another:
                self.caller.require("task:assign", current.definition_key if current else None)
        async for attempt in self._attempts("claim", "task", task_id, request, tenant_id=_tenant(current)):
            async with attempt as uow:
                task = await self.adapter.claim_task(task_id, user_id)
                self._emit_assigned(uow, "claim", task)
        return task

    async def claim_next_task(self, candidate_groups: list[str] | None, definition_key: str | None) -> Task | None:
        """Claim for the caller the next task of a queue (`EngineAdapter.claim_next`), of the caller's tenants when
        they are limited to some; emits `task.assigned`. None when no task the caller may claim is waiting."""
        request = {"candidate_groups": candidate_groups, "definition_key": definition_key}
        tenant_ids = None if self.caller.tenants is None else sorted(self.caller.tenants)
        async with self._checking("claim_next", "task", None, request):
            self._listing("task:claim", definition_key)
            if not self.caller.may("task:admin"):
                # the task-level rule: only queues one is a candidate of
                candidate_groups = sorted(self.caller.groups) if candidate_groups is None else candidate_groups
                foreign = sorted(set(candidate_groups) - self.caller.groups)
                if foreign:
                    raise Forbidden(
                        f"You are not in the candidate groups {', '.join(foreign)}; this needs 'task:admin'"
                    )
        async for attempt in self._attempts("claim_next", "task", None, request):
            async with attempt as uow:
                task = await self.adapter.claim_next(self.actor, candidate_groups, definition_key, tenant_ids)
                if task is not None:
                    uow.audited_resource(task.id)
                    self._emit_assigned(uow, "claim", task)
        return task

    async def unclaim_task(self, task_id: str) -> Task:
        """Give the task back (no assignee; another user's needs `task:assign`); emits `task.assigned`."""
        async with self._checking("unclaim", "task", task_id, {}):
            current = None
            if not self._unrestricted("task:claim", task=True) or not self.caller.may("task:assign"):
                current = await self._task(task_id, "task:claim")
                if current.assignee not in (None, self.actor):
                    self.caller.require("task:assign", current.definition_key)
        async for attempt in self._attempts("unclaim", "task", task_id, {}, tenant_id=_tenant(current)):
            async with attempt as uow:
                task = await self.adapter.unclaim_task(task_id)
                self._emit_assigned(uow, "unclaim", task)
        return task

    async def assign_task(self, task_id: str, user_id: str) -> Task:
        """Set the assignee, whoever held the task; emits `task.assigned`."""
        request = {"user_id": user_id}
        async with self._checking("assign", "task", task_id, request):
            current = None
            if not self._unrestricted("task:assign", task=True):
                current = await self._task(task_id, "task:assign")
        async for attempt in self._attempts("assign", "task", task_id, request, tenant_id=_tenant(current)):
            async with attempt as uow:
                task = await self.adapter.assign_task(task_id, user_id)
                self._emit_assigned(uow, "assign", task)
        return task

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        """Delegate (501 where the engine cannot); the assignee stays owner; emits `task.assigned`."""
        request = {"user_id": user_id}
        async with self._checking("delegate", "task", task_id, request):
            self.engine.require(Capability.DELEGATE_TASK)
            current = None
            if not self._unrestricted("task:delegate", task=True):
                current = await self._task(task_id, "task:delegate")
        async for attempt in self._attempts("delegate", "task", task_id, request, tenant_id=_tenant(current)):
            async with attempt as uow:
                task = await self.adapter.delegate_task(task_id, user_id)
                self._emit_assigned(uow, "delegate", task)
        return task

    def _emit_assigned(self, uow: UnitOfWork, action: str, task: Task) -> None:
        _audited_tenant(uow, task.tenant_id)
        uow.emit(
            "task.assigned",
            engine=self.engine.name,
            instance_id=task.instance_id,
            tenant_id=task.tenant_id,
            data={
                "task_id": task.id,
                "task_name": task.name,
                "action": action,
                "assignee": task.assignee,
                "owner": task.owner,
            },
        )

    async def complete_task(self, task_id: str, variables: Variables) -> Task:
        """Complete a task with `variables` and emit `task.completed` before what the engine did next.

        Errors: NotFound (completed, unknown or not visible to the caller), Conflict (suspended), Forbidden.
        """
        request = {"variables": audit_summary(variables)}
        async with self._checking("complete", "task", task_id, request, status=204):
            current = None
            if not self._unrestricted("task:complete", task=True):
                current = await self._task(task_id, "task:complete")
        async for attempt in self._attempts(
            "complete", "task", task_id, request, status=204, tenant_id=_tenant(current)
        ):
            async with attempt as uow:
                mark = uow.mark()
                task = await self.adapter.complete_task(task_id, variables, user_id=self.actor)
                _audited_tenant(uow, task.tenant_id)
                uow.emit(
                    "task.completed",
                    at=mark,
                    engine=self.engine.name,
                    instance_id=task.instance_id,
                    tenant_id=task.tenant_id,
                    data={
                        "task_id": task_id,
                        "task_name": task.name,
                        "task_definition_key": task.task_definition_key,
                        "definition_key": task.definition_key,
                        "completed_by": self.actor,
                        "variables": {name: typed.model_dump(mode="json") for name, typed in variables.items()},
                    },
                )
        return task


def _tenant(current: ProcessDefinition | ProcessInstance | Task | None) -> str | None:
    return current.tenant_id if current is not None else None


def _audited_tenant(uow: UnitOfWork, tenant_id: str | None) -> None:
    """The audit row's tenant from the engine's answer, when the access checks did not look the object up."""
    if uow.audit_entry is not None and uow.audit_entry.tenant_id is None:
        uow.audit_entry.tenant_id = tenant_id


def _deploy_request(xml: bytes, filename: str, name: str | None, tenant_id: str | None) -> dict[str, Any]:
    return {
        "filename": filename,
        "bytes": len(xml),
        "sha256": hashlib.sha256(xml).hexdigest(),
        "name": name,
        "tenant_id": tenant_id,
    }


def _instance_event_data(instance: ProcessInstance, **extra: Any) -> dict[str, Any]:
    return {
        "definition_id": instance.definition_id,
        "definition_key": instance.definition_key,
        "business_key": instance.business_key,
        **extra,
    }
