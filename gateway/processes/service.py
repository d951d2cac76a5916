"""The process use cases behind the API: each one calls the engine's adapter, then records its audit row and
events through `gateway.changes` (one mechanism for every audited change).

A `ProcessService` is made per request for one engine and one caller (`gateway.api.context`); routers only
parse, call one method and shape the answer. Reads go through here too, so that whatever decides who may
see what has one place to live.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway import bpmn
from gateway.changes import Attempts, ChangeLog
from gateway.engines.port import Capability, EngineAdapter
from gateway.errors import BadRequest
from gateway.journal import AuditDraft
from gateway.registry import EngineHandle
from gateway.schemas import (
    DefinitionQuery,
    Deployment,
    InstanceQuery,
    Page,
    ProcessDefinition,
    ProcessDefinitionDetails,
    ProcessInstance,
    ProcessInstanceDetails,
    StartInstance,
    Task,
    TaskDetails,
    TaskQuery,
)
from gateway.uow import UnitOfWork
from gateway.variables import Variables, audit_summary


class ProcessService:
    """Use cases on one engine (`engine`) on behalf of one caller (`actor`, recorded in audit and events)."""

    def __init__(self, changes: ChangeLog, engine: EngineHandle, actor: str) -> None:
        self.changes = changes
        self.engine = engine
        self.actor = actor

    @property
    def adapter(self) -> EngineAdapter:
        return self.engine.adapter

    def _attempts(
        self, operation: str, resource_type: str, resource_id: str | None, request: dict[str, Any], status: int = 200
    ) -> Attempts:
        audit = AuditDraft(operation, resource_type, resource_id, self.engine.name, request, status)
        return self.changes.attempts(self.actor, audit, transactional=self.adapter.transactional)

    # ------------------------------------------------------------ definitions
    async def deploy(self, xml: bytes, *, filename: str, name: str | None, tenant_id: str | None) -> Deployment:
        """Check the BPMN (400 naming the line when malformed), deploy it, emit `definition.deployed`."""
        self._validate(xml)
        return await self._deploy(xml, filename, name, tenant_id, operation="deploy", resource_id=None)

    async def redeploy(
        self, definition_id: str, xml: bytes, *, filename: str, name: str | None, tenant_id: str | None
    ) -> Deployment:
        """Deploy a new version of `definition_id`'s key; the file must contain that executable process (400)."""
        current = await self.adapter.get_definition(definition_id)
        processes = self._validate(xml)
        if current.key not in {p.id for p in processes if p.executable}:
            raise BadRequest(
                f"The new BPMN must contain the executable process '{current.key}' to be a new version of {definition_id}"
            )
        tenant_id = tenant_id or current.tenant_id
        return await self._deploy(xml, filename, name, tenant_id, operation="redeploy", resource_id=definition_id)

    def _validate(self, xml: bytes) -> list[bpmn.ProcessSummary]:
        """The file's processes; InvalidBpmn (400) when malformed or over PM_MAX_BPMN_ELEMENTS elements."""
        return bpmn.validate(xml, max_elements=self.adapter.context.settings.max_bpmn_elements)

    async def _deploy(
        self, xml: bytes, filename: str, name: str | None, tenant_id: str | None, *, operation: str, resource_id: str | None
    ) -> Deployment:
        request = {"filename": filename, "bytes": len(xml), "sha256": hashlib.sha256(xml).hexdigest(), "name": name, "tenant_id": tenant_id}
        async for attempt in self._attempts(operation, "definition", resource_id, request, status=201):
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
                        "definitions": [{"id": d.id, "key": d.key, "version": d.version} for d in deployment.definitions],
                    },
                )
        return deployment

    async def list_definitions(self, query: DefinitionQuery, *, with_counts: bool) -> Page[ProcessDefinition]:
        """A page of definitions; `with_counts` adds each one's running-instance count (`instances`)."""
        page = await self.adapter.list_definitions(query)
        if with_counts:
            for definition in page.items:
                definition.instances = await self._running_count(definition.id)
        return page

    async def get_definition(self, definition_id: str, *, with_counts: bool) -> ProcessDefinitionDetails:
        """A definition with the tasks and start form read from its BPMN. Errors: NotFound."""
        definition = await self.adapter.get_definition(definition_id)
        tasks, start_form = bpmn.describe_process(
            await self.adapter.get_definition_xml(definition_id), definition.key, self.adapter.task_extensions
        )
        details = ProcessDefinitionDetails(**definition.model_dump(), tasks=tasks, start_form=start_form)
        if with_counts:
            details.instances = await self._running_count(definition_id)
        return details

    async def get_definition_xml(self, definition_id: str) -> bytes:
        return await self.adapter.get_definition_xml(definition_id)

    async def _running_count(self, definition_id: str) -> int:
        running = await self.adapter.list_instances(InstanceQuery(definition_id=definition_id, status="active", size=1))
        return running.total

    async def delete_definition(self, definition_id: str, *, cascade: bool) -> None:
        """Delete a definition (with its instances when `cascade`). Errors: NotFound, Conflict (running instances)."""
        async for attempt in self._attempts("delete", "definition", definition_id, {"cascade": cascade}, status=204):
            async with attempt:
                await self.adapter.delete_definition(definition_id, cascade)

    async def set_definition_suspended(
        self, definition_id: str, *, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        """Suspend or activate a definition (501 where the engine cannot)."""
        self.engine.require(Capability.SUSPEND_DEFINITION)
        request = {"suspended": suspended, "include_instances": include_instances}
        async for attempt in self._attempts("suspend" if suspended else "activate", "definition", definition_id, request):
            async with attempt:
                definition = await self.adapter.set_definition_suspended(definition_id, suspended, include_instances)
        return definition

    # ------------------------------------------------------------ instances
    async def start_instance(self, request: StartInstance) -> ProcessInstance:
        """Start an instance and emit `instance.started` before the events of what the engine did meanwhile."""
        summary = {
            "definition_key": request.definition_key,
            "definition_id": request.definition_id,
            "business_key": request.business_key,
            "tenant_id": request.tenant_id,
            "variables": audit_summary(request.variables),
        }
        async for attempt in self._attempts("start", "instance", None, summary, status=201):
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

    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        return await self.adapter.list_instances(query)

    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        """The instance with activities, incidents and execution path. Errors: NotFound."""
        return await self.adapter.get_instance(instance_id)

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        """End a running instance and emit `instance.terminated`. Errors: NotFound."""
        async for attempt in self._attempts("terminate", "instance", instance_id, {"reason": reason}, status=204):
            async with attempt as uow:
                mark = uow.mark()
                await self.adapter.terminate_instance(instance_id, reason)
                uow.emit(
                    "instance.terminated", at=mark, engine=self.engine.name, instance_id=instance_id, data={"reason": reason}
                )

    async def set_instance_suspended(self, instance_id: str, *, suspended: bool) -> ProcessInstance:
        """Suspend or activate an instance (501 where the engine cannot); emits instance.suspended|activated."""
        self.engine.require(Capability.SUSPEND_INSTANCE)
        operation = "suspend" if suspended else "activate"
        async for attempt in self._attempts(operation, "instance", instance_id, {"suspended": suspended}):
            async with attempt as uow:
                instance = await self.adapter.set_instance_suspended(instance_id, suspended)
                uow.emit(
                    "instance.suspended" if suspended else "instance.activated",
                    engine=self.engine.name,
                    instance_id=instance_id,
                    tenant_id=instance.tenant_id,
                    data=_instance_event_data(instance),
                )
        return instance

    async def get_variables(self, instance_id: str) -> Variables:
        return await self.adapter.get_variables(instance_id)

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        """Apply all modifications and deletions or none (400 when a name is in both); returns every variable."""
        both = sorted(set(modifications) & set(deletions))
        if both:
            raise BadRequest(f"Variables both modified and deleted: {', '.join(both)}")
        request = {"variables": audit_summary(modifications), "deletions": deletions}
        async for attempt in self._attempts("update_variables", "instance", instance_id, request):
            async with attempt:
                variables = await self.adapter.update_variables(instance_id, modifications, deletions)
        return variables

    # ------------------------------------------------------------ tasks
    async def list_tasks(self, query: TaskQuery) -> Page[Task]:
        return await self.adapter.list_tasks(query)

    async def get_task(self, task_id: str) -> TaskDetails:
        return await self.adapter.get_task(task_id)

    async def claim_task(self, task_id: str, user_id: str) -> Task:
        """Claim for `user_id` (409 when another user holds it); emits `task.assigned`."""
        async for attempt in self._attempts("claim", "task", task_id, {"user_id": user_id}):
            async with attempt as uow:
                task = await self.adapter.claim_task(task_id, user_id)
                self._emit_assigned(uow, "claim", task)
        return task

    async def claim_next_task(self, candidate_groups: list[str] | None, definition_key: str | None) -> Task | None:
        """Claim for the caller the next task of a queue (`EngineAdapter.claim_next`); emits `task.assigned`.
        None when no task the caller may claim is waiting."""
        request = {"candidate_groups": candidate_groups, "definition_key": definition_key}
        async for attempt in self._attempts("claim_next", "task", None, request):
            async with attempt as uow:
                task = await self.adapter.claim_next(self.actor, candidate_groups, definition_key)
                if task is not None:
                    uow.audited_resource(task.id)
                    self._emit_assigned(uow, "claim", task)
        return task

    async def unclaim_task(self, task_id: str) -> Task:
        """Give the task back (no assignee); emits `task.assigned`."""
        async for attempt in self._attempts("unclaim", "task", task_id, {}):
            async with attempt as uow:
                task = await self.adapter.unclaim_task(task_id)
                self._emit_assigned(uow, "unclaim", task)
        return task

    async def assign_task(self, task_id: str, user_id: str) -> Task:
        """Set the assignee, whoever held the task; emits `task.assigned`."""
        async for attempt in self._attempts("assign", "task", task_id, {"user_id": user_id}):
            async with attempt as uow:
                task = await self.adapter.assign_task(task_id, user_id)
                self._emit_assigned(uow, "assign", task)
        return task

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        """Delegate (501 where the engine cannot); the assignee stays owner; emits `task.assigned`."""
        self.engine.require(Capability.DELEGATE_TASK)
        async for attempt in self._attempts("delegate", "task", task_id, {"user_id": user_id}):
            async with attempt as uow:
                task = await self.adapter.delegate_task(task_id, user_id)
                self._emit_assigned(uow, "delegate", task)
        return task

    def _emit_assigned(self, uow: UnitOfWork, action: str, task: Task) -> None:
        uow.emit(
            "task.assigned",
            engine=self.engine.name,
            instance_id=task.instance_id,
            tenant_id=task.tenant_id,
            data={"task_id": task.id, "task_name": task.name, "action": action, "assignee": task.assignee, "owner": task.owner},
        )

    async def complete_task(self, task_id: str, variables: Variables) -> Task:
        """Complete a task with `variables` and emit `task.completed` before what the engine did next.

        Errors: NotFound (completed or unknown), Conflict (suspended).
        """
        request = {"variables": audit_summary(variables)}
        async for attempt in self._attempts("complete", "task", task_id, request, status=204):
            async with attempt as uow:
                mark = uow.mark()
                task = await self.adapter.complete_task(task_id, variables, user_id=self.actor)
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


def _instance_event_data(instance: ProcessInstance, **extra: Any) -> dict[str, Any]:
    return {
        "definition_id": instance.definition_id,
        "definition_key": instance.definition_key,
        "business_key": instance.business_key,
        **extra,
    }
