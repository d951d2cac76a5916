"""The Camunda Platform 7 adapter: the unified contract over Camunda's `engine-rest` API (7.23).

Running and finished instances are read from history (`/history/process-instance`), which knows start and end
times; the runtime API only knows running instances. Facts Camunda's REST API cannot keep (who deployed a
definition, who started an instance) live in the gateway's metadata store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from datetime import datetime
from pathlib import PurePath
from typing import Any, TypeVar

import httpx

from adapters.camunda import changes, mapping, queries
from adapters.camunda.errors import classify, error_type, migration_failures
from adapters.camunda.facts import DEPLOYMENT_SOURCE, DefinitionFacts
from adapters.camunda.mapping import (
    FAILED_EXTERNAL_TASK,
    FAILED_JOB,
    current_activities,
    execution_path,
    variables_from_history,
)
from adapters.camunda.paths import locate, segment
from gateway import bpmn
from gateway.bpmn import TaskExtensions
from gateway.conditions import VariableScope
from gateway.engines.http import HttpEngineAdapter
from gateway.engines.port import AdapterContext, Capability, ChangeBatch
from gateway.errors import BadRequest, Conflict, GatewayError, NotFound, NotSupported
from gateway.resilience import EngineHttp
from gateway.schemas import (
    FINISHED_TASK_STATUSES,
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
    ListQuery,
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
from gateway.variables import Variables

T = TypeVar("T")

# Camunda deploys a resource as BPMN only when its name ends like this.
BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml")
# Upper bound for the rows read about one instance (activities, incidents); Camunda may reject unbounded queries.
DETAIL_LIMIT = 500
# Identity-link requests in flight at once while listing tasks (Camunda has no bulk endpoint for them).
LINK_CONCURRENCY = 8
ENDED = ("completed", "terminated", "externally_terminated")


def resource_name(filename: str) -> str:
    return filename if filename.endswith(BPMN_SUFFIXES) else f"{PurePath(filename).stem or 'process'}.bpmn"


DELEGATION_PENDING = "cannot be completed, but should be resolved instead"
# MismatchingMessageCorrelationException's messages (MessageCorrelationCmd / CorrelationHandler).
_NO_MATCH = "No process definition or execution matches the parameters"
_SEVERAL_MATCH = re.compile(
    r"to a single (?:execution|process definition)|\d+ (?:executions|process definitions) match"
)
_MODIFICATION_TYPES = {"start_before": "startBeforeActivity", "start_after": "startAfterActivity", "cancel": "cancel"}


class Camunda7Adapter(HttpEngineAdapter):
    task_extensions = TaskExtensions(namespaces=("http://camunda.org/schema/1.0/bpmn",))
    capabilities = frozenset(
        {
            Capability.SUSPEND_DEFINITION,
            Capability.SUSPEND_INSTANCE,
            Capability.DELEGATE_TASK,
            Capability.ANNOTATE_INCIDENT,
            Capability.CORRELATE_MESSAGE,
            Capability.BROADCAST_SIGNAL,
            Capability.MODIFY_INSTANCE,
            Capability.MIGRATE_INSTANCE,
            # Not RESOLVE_INCIDENT: Camunda resolves only custom incidents without a retry
            # (DELETE /incident/{id}); failed jobs and external tasks, the incidents that matter, need one.
        }
    )

    observes_changes = True
    variable_operators = frozenset(queries.VARIABLE_OPERATORS)  # no `in` in VariableQueryParameterDto

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        if context.http is None:
            raise ValueError("the Camunda 7 adapter needs the engine's HTTP client")
        self.http: EngineHttp = context.http
        self.facts = DefinitionFacts(self.http, context.store)

    def classify_error(self, response: httpx.Response, message: str | None) -> type[GatewayError] | None:
        return classify(response.status_code, error_type(response), message)

    # ------------------------------------------------------------ definitions
    async def deploy(
        self, bpmn_xml: bytes, *, filename: str, name: str | None, tenant_id: str | None, deployed_by: str
    ) -> Deployment:
        resource = resource_name(filename)
        # Duplicate filtering stays off (Camunda's default): every deployment is a new version, as the unified
        # API promises, even of an unchanged BPMN.
        form = {"deployment-name": name or PurePath(resource).stem, "deployment-source": DEPLOYMENT_SOURCE}
        tenant = tenant_id or self.context.config.tenant_id
        if tenant:
            form["tenant-id"] = tenant
        body = await self.http.json(
            "POST",
            "/deployment/create",
            operation="deploy",
            data=form,
            files={"data": (resource, bpmn_xml, "application/octet-stream")},
        )
        deployed_at = mapping.moment(body.get("deploymentTime"))
        await self.facts.record_deployment(body["id"], deployed_at, deployed_by)
        rows = sorted((body.get("deployedProcessDefinitions") or {}).values(), key=lambda row: row["key"])
        for row in rows:
            self.facts.remember(row)
        return Deployment(
            deployment_id=body["id"],
            name=body.get("name"),
            deployed_at=deployed_at,
            definitions=[
                mapping.definition(row, engine=self.name, deployed_at=deployed_at, deployed_by=deployed_by)
                for row in rows
            ],
        )

    async def list_definitions(self, query: DefinitionQuery) -> Page[ProcessDefinition]:
        rows, total = await self._list(
            "/process-definition",
            "definitions",
            queries.definition_filters(query),
            query,
            queries.sorting(query, queries.DEFINITION_SORT, "deployed_at"),
        )
        return self._page(await self._definitions(rows), total, query)

    async def get_definition(self, definition_id: str) -> ProcessDefinition:
        row = await self.http.json("GET", f"/process-definition/{segment(definition_id)}", operation="get_definition")
        return (await self._definitions([row]))[0]

    async def get_definition_xml(self, definition_id: str) -> bytes:
        body = await self.http.json(
            "GET", f"/process-definition/{segment(definition_id)}/xml", operation="get_definition_xml"
        )
        return body["bpmn20Xml"].encode("utf-8")

    async def set_definition_suspended(
        self, definition_id: str, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        # An unknown id: with an authenticated user Camunda 7.24 answers 500 NullPointerException (without one,
        # 204 and nothing happens), so the definition is looked up first for a clear not-found.
        await self.get_definition(definition_id)
        await self.http.request(
            "PUT",
            f"/process-definition/{segment(definition_id)}/suspended",
            operation="suspend_definition",
            idempotent=True,
            json={"suspended": suspended, "includeProcessInstances": include_instances},
        )
        return await self.get_definition(definition_id)

    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        if not cascade:
            # Camunda refuses too, but with an undocumented 500; asking first gives a clear answer.
            running = await self._count("/process-instance/count", {"processDefinitionId": definition_id}, "instances")
            if running:
                raise Conflict(
                    f"Definition {definition_id} has {running} running instance(s); delete with cascade to cancel them",
                    engine=self.name,
                )
        await self.http.request(
            "DELETE",
            f"/process-definition/{segment(definition_id)}",
            operation="delete_definition",
            params={"cascade": cascade},
        )
        self.facts.forget(definition_id)

    async def _definitions(self, rows: list[dict[str, Any]]) -> list[ProcessDefinition]:
        deployments = await self.facts.deployments(row.get("deploymentId") for row in rows)
        for row in rows:
            self.facts.remember(row)
        definitions = []
        for row in rows:
            deployed_at, deployed_by = deployments.get(row.get("deploymentId") or "", (None, None))
            definitions.append(
                mapping.definition(row, engine=self.name, deployed_at=deployed_at, deployed_by=deployed_by)
            )
        return definitions

    # ------------------------------------------------------------ instances
    async def start_instance(self, request: StartInstance, *, started_by: str) -> ProcessInstance:
        tenant = request.tenant_id or self.context.config.tenant_id
        if request.definition_id:
            path = f"/process-definition/{segment(request.definition_id)}/start"
        elif request.definition_key and tenant:
            path = f"/process-definition/key/{segment(request.definition_key)}/tenant-id/{segment(tenant)}/start"
        elif request.definition_key:
            path = f"/process-definition/key/{segment(request.definition_key)}/start"
        else:
            raise BadRequest("Starting an instance needs a definition_key or a definition_id")
        body: dict[str, Any] = {"variables": mapping.to_rest_variables(request.variables)}
        if request.business_key is not None:
            body["businessKey"] = request.business_key
        if request.start_message is not None:
            body["startInstructions"] = [
                {"type": "startBeforeActivity", "activityId": await self._message_start_event(request, tenant)}
            ]
        started = await self.http.json("POST", path, operation="start_instance", json=body)
        await self.context.store.put("instance", started["id"], {"started_by": started_by})
        return await self._instance(started["id"])

    # ------------------------------------------------------------ messages, signals, modification
    async def correlate_message(self, message: MessageCorrelation, *, started_by: str) -> MessageResults:
        """`POST /message` with `resultEnabled`. Camunda answers 400 both when nothing matches and when several do
        (MismatchingMessageCorrelationException); its message tells which: NotFound or Conflict."""
        body: dict[str, Any] = {"messageName": message.message_name, "all": message.all, "resultEnabled": True}
        for name, value in (
            ("businessKey", message.business_key),
            ("processInstanceId", message.process_instance_id),
            ("tenantId", message.tenant_id or self.context.config.tenant_id),
        ):
            if value is not None:
                body[name] = value
        if message.correlation_keys:
            body["correlationKeys"] = mapping.to_rest_variables(message.correlation_keys)
        if message.variables:
            body["processVariables"] = mapping.to_rest_variables(message.variables)
        try:
            rows = await self.http.json("POST", "/message", operation="correlate_message", json=body)
        except BadRequest as error:
            text = error.engine_message or error.detail
            if _NO_MATCH in text:
                raise error.restated(
                    NotFound,
                    f"Nothing waits for message {message.message_name!r} and no process starts with it",
                    engine=self.name,
                ) from None
            if _SEVERAL_MATCH.search(text):
                raise error.restated(
                    Conflict,
                    f"Message {message.message_name!r} matches several receivers; narrow it with business_key, "
                    "correlation_keys or process_instance_id, or give all=true",
                    engine=self.name,
                ) from None
            raise
        results = []
        for row in rows:
            if row.get("resultType") == "ProcessDefinition":
                instance = row.get("processInstance") or {}
                await self.context.store.put("instance", instance["id"], {"started_by": started_by})
                results.append(
                    CorrelationResult(
                        type="started", instance_id=instance["id"], definition_key=instance.get("definitionKey")
                    )
                )
            else:
                instance_id = (row.get("execution") or {})["processInstanceId"]
                history = await self._historic_instance(instance_id)
                key = history.get("processDefinitionKey") if history else None
                results.append(CorrelationResult(type="correlated", instance_id=instance_id, definition_key=key))
        return MessageResults(results=results)

    async def broadcast_signal(self, signal: SignalBroadcast, *, started_by: str) -> SignalResult:
        """`POST /signal`; Camunda does not say how many executions it reached (`executions` stays None)."""
        body: dict[str, Any] = {"name": signal.signal_name}
        tenant = signal.tenant_id or self.context.config.tenant_id
        if tenant is not None:
            body["tenantId"] = tenant
        if signal.variables:
            body["variables"] = mapping.to_rest_variables(signal.variables)
        await self.http.request("POST", "/signal", operation="broadcast_signal", json=body)
        return SignalResult(signal_name=signal.signal_name)

    async def modify_instance(self, instance_id: str, modification: InstanceModification) -> ProcessInstance:
        """`POST /process-instance/{id}/modification`: the instructions in order, one engine transaction."""
        await self._refuse_unless_running(instance_id, "modify it")
        instructions = []
        for instruction in modification.instructions:
            item: dict[str, Any] = {
                "type": _MODIFICATION_TYPES[instruction.type],
                "activityId": instruction.activity_id,
            }
            if instruction.variables:
                item["variables"] = mapping.to_rest_variables(instruction.variables)
            instructions.append(item)
        body: dict[str, Any] = {
            "instructions": instructions,
            "skipCustomListeners": modification.skip_listeners,
            "skipIoMappings": False,
        }
        if modification.annotation is not None:
            body["annotation"] = modification.annotation
        await self.http.request(
            "POST", f"/process-instance/{segment(instance_id)}/modification", operation="modify_instance", json=body
        )
        return await self._instance(instance_id)

    async def migrate_instance(self, instance_id: str, migration: InstanceMigration) -> ProcessInstance:
        """`POST /migration/generate` (instructions for the activities equal in both versions), the `mappings` as
        instructions in place of generated ones for the same source activity, then `POST /migration/execute` for this
        one instance. The engine validates the plan against the instance: a waiting activity without an
        instruction, or an instruction it cannot apply, is its 400 (`MigrationPlanValidationException`,
        `MigratingProcessInstanceValidationException`), answered as a BadRequest naming the activities
        (`engine_message`)."""
        await self._refuse_unless_running(instance_id, "migrate it")
        source = (await self._running_instance(instance_id) or {}).get("definitionId")
        plan = await self.http.json(
            "POST",
            "/migration/generate",
            operation="migrate_instance",
            json={"sourceProcessDefinitionId": source, "targetProcessDefinitionId": migration.target_definition_id},
        )
        instructions = [
            instruction
            for instruction in plan.get("instructions") or []
            if not set(instruction.get("sourceActivityIds") or []) & set(migration.mappings)
        ]
        instructions += [
            {"sourceActivityIds": [source_id], "targetActivityIds": [target_id]}
            for source_id, target_id in migration.mappings.items()
        ]
        await self.http.request(
            "POST",
            "/migration/execute",
            operation="migrate_instance",
            json={"migrationPlan": {**plan, "instructions": instructions}, "processInstanceIds": [instance_id]},
        )
        return await self._instance(instance_id)

    def engine_message(self, response: httpx.Response) -> str | None:
        """The engine's `message`; for a migration refused by validation, followed by each activity it names and
        why (the report's `sourceScopeId`s and instruction `sourceActivityIds` with their `failures`)."""
        message = super().engine_message(response)
        failures = migration_failures(response)
        if not failures:
            return message
        listed = "; ".join(f"activity {activity!r}: {', '.join(reasons)}" for activity, reasons in failures.items())
        return f"{(message or '').strip()} ({listed})"

    async def _refuse_unless_running(self, instance_id: str, action: str) -> None:
        history, runtime = await self._sources(instance_id)
        if history is None and runtime is None:
            raise NotFound(f"Process instance {instance_id} not found", engine=self.name)
        if runtime is None:
            raise Conflict(f"Process instance {instance_id} has already ended; cannot {action}", engine=self.name)

    async def _message_start_event(self, request: StartInstance, tenant: str | None) -> str:
        """The id of the start event of `request.start_message` in the definition to start (Camunda's REST API
        starts "before" an element, not by message name on one definition)."""
        if request.definition_id:
            definition = await self.get_definition(request.definition_id)
        else:
            found = await self.list_definitions(DefinitionQuery(key=request.definition_key, tenant_id=tenant, size=1))
            if not found.items:
                raise NotFound(f"No process definition with key {request.definition_key!r}", engine=self.name)
            definition = found.items[0]
        xml = await self.get_definition_xml(definition.id)
        return bpmn.message_start_event(xml, definition.key, request.start_message or "")

    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        """`POST /history/process-instance` (+ `/count`): variable conditions as typed `variables`, sorted by the
        requested field then by id."""
        body = queries.query_body(queries.instance_filters(query))
        variables = queries.variable_filters(query.conditions, VariableScope.INSTANCE)
        if variables:
            body["variables"] = variables
        sorting = queries.sorting_list(query, queries.INSTANCE_SORT, "start_time", "instanceId")
        rows, total = await self._query("/history/process-instance", "instances", body, sorting, query)
        return self._page(await self._instances(rows), total, query)

    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        history, runtime = await self._sources(instance_id)
        instance = await self._instance_from(instance_id, history, runtime)
        if runtime is None:
            return await self._ended_instance_details(instance)
        return await self._running_instance_details(instance)

    async def _running_instance_details(self, instance: ProcessInstance) -> ProcessInstanceDetails:
        path = f"/process-instance/{segment(instance.id)}"
        per_instance = {"processInstanceId": instance.id, "maxResults": DETAIL_LIMIT}
        tree, tasks, variables, history, incidents = await asyncio.gather(
            self.http.json("GET", f"{path}/activity-instances", operation="get_activity_tree"),
            self.http.json("GET", "/task", operation="list_tasks", params=per_instance),
            self.http.json("GET", f"{path}/variables", operation="get_variables", params={"deserializeValues": False}),
            self._activity_history(instance.id),
            self.http.json("GET", "/incident", operation="list_incidents", params=per_instance),
        )
        failed = {incident.get("activityId") for incident in incidents}
        return ProcessInstanceDetails(
            **instance.model_dump(exclude={"variables", "current_activities"}),
            variables=mapping.variables_from_rest(variables),
            current_activities=current_activities(
                tree,
                started={row["id"]: mapping.moment(row.get("startTime")) for row in history},
                assignees={task.get("taskDefinitionKey"): task.get("assignee") for task in tasks},
            ),
            activities=[mapping.activity(row, failed_activities=failed) for row in history],
            incidents=await self._incidents(incidents),
            execution_path=execution_path(history),
        )

    async def _ended_instance_details(self, instance: ProcessInstance) -> ProcessInstanceDetails:
        history, variables = await asyncio.gather(
            self._activity_history(instance.id), self._historic_variables(instance.id)
        )
        return ProcessInstanceDetails(
            **instance.model_dump(exclude={"variables"}),
            variables=variables,
            activities=[mapping.activity(row, failed_activities=set()) for row in history],
            execution_path=execution_path(history),
        )

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        """Cancel a running instance. Camunda's synchronous delete takes no reason; the gateway's audit keeps it."""
        try:
            await self.http.request(
                "DELETE",
                f"/process-instance/{segment(instance_id)}",
                operation="terminate_instance",
                params={"failIfNotExists": True},
            )
        except NotFound:
            await self._refuse_if_ended(instance_id, "terminate it")
            raise

    async def set_instance_suspended(self, instance_id: str, suspended: bool) -> ProcessInstance:
        # Camunda answers 204 even for an unknown instance, so the instance is read back to tell.
        await self.http.request(
            "PUT",
            f"/process-instance/{segment(instance_id)}/suspended",
            operation="suspend_instance",
            idempotent=True,
            json={"suspended": suspended},
        )
        instance = await self._instance(instance_id)
        if instance.status in ENDED:
            raise Conflict(f"Process instance {instance_id} has already ended ({instance.status})", engine=self.name)
        return instance

    async def get_variables(self, instance_id: str) -> Variables:
        try:
            raw = await self.http.json(
                "GET",
                f"/process-instance/{segment(instance_id)}/variables",
                operation="get_variables",
                params={"deserializeValues": False},
            )
        except NotFound:
            if await self._historic_instance(instance_id) is None:
                raise
            return await self._historic_variables(instance_id)
        return mapping.variables_from_rest(raw)

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        try:
            await self.http.request(
                "POST",
                f"/process-instance/{segment(instance_id)}/variables",
                operation="update_variables",
                idempotent=True,  # absolute values and deletions: sending them twice changes nothing
                json={"modifications": mapping.to_rest_variables(modifications), "deletions": deletions},
            )
        except NotFound:
            await self._refuse_if_ended(instance_id, "change its variables")
            raise
        return await self.get_variables(instance_id)

    async def _instance(self, instance_id: str) -> ProcessInstance:
        return await self._instance_from(instance_id, *await self._sources(instance_id))

    async def _sources(self, instance_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(historic, running) record of an instance; an ended one has no running record."""
        return await asyncio.gather(self._historic_instance(instance_id), self._running_instance(instance_id))

    async def _instance_from(
        self, instance_id: str, history: dict[str, Any] | None, runtime: dict[str, Any] | None
    ) -> ProcessInstance:
        started_by = (await self.context.store.get("instance", instance_id)).get("started_by")
        if history is not None:
            instance = mapping.historic_instance(history, engine=self.name, started_by=started_by)
            if runtime is not None:  # the runtime's suspension flag is authoritative while the instance runs
                instance.status = "suspended" if runtime.get("suspended") else "active"
            return instance
        if runtime is not None:
            return mapping.runtime_instance(runtime, engine=self.name, started_by=started_by)
        raise NotFound(f"Process instance {instance_id} does not exist", engine=self.name)

    async def _instances(self, rows: list[dict[str, Any]]) -> list[ProcessInstance]:
        starters = await self.context.store.get_many("instance", [row["id"] for row in rows])
        return [
            mapping.historic_instance(row, engine=self.name, started_by=starters.get(row["id"], {}).get("started_by"))
            for row in rows
        ]

    async def _historic_instance(self, instance_id: str) -> dict[str, Any] | None:
        return await _unless_missing(
            self.http.json(
                "GET", f"/history/process-instance/{segment(instance_id)}", operation="get_historic_instance"
            )
        )

    async def _running_instance(self, instance_id: str) -> dict[str, Any] | None:
        return await _unless_missing(
            self.http.json("GET", f"/process-instance/{segment(instance_id)}", operation="get_instance")
        )

    async def _refuse_if_ended(self, instance_id: str, action: str) -> None:
        history = await self._historic_instance(instance_id)
        if history is not None and history.get("endTime"):
            status = mapping.historic_instance(history, engine=self.name).status
            raise Conflict(
                f"Cannot {action}: process instance {instance_id} has already ended ({status})", engine=self.name
            )

    async def _activity_history(self, instance_id: str) -> list[dict[str, Any]]:
        return await self.http.json(
            "GET",
            "/history/activity-instance",
            operation="list_activity_history",
            params={
                "processInstanceId": instance_id,
                "sortBy": "occurrence",
                "sortOrder": "asc",
                "maxResults": DETAIL_LIMIT,
            },
        )

    async def _historic_variables(self, instance_id: str) -> Variables:
        rows = await self.http.json(
            "GET",
            "/history/variable-instance",
            operation="list_variable_history",
            params={"processInstanceId": instance_id, "deserializeValues": False, "maxResults": DETAIL_LIMIT},
        )
        return variables_from_history(rows, instance_id)

    # ------------------------------------------------------------ tasks
    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        """Open tasks: `POST /task` (+ `/count`) with typed `processVariables` / `taskVariables`, sorted by the
        requested field then by id, and (`candidates`) their identity links. Finished tasks: `GET /history/task`
        (no variable conditions: 501; no candidates)."""
        if queries.is_finished_task_query(query):
            if query.conditions:
                raise NotSupported(
                    f"Engine '{self.name}' (camunda7) cannot filter finished tasks by variables", engine=self.name
                )
            rows, total = await self._list(
                "/history/task",
                "historic_tasks",
                queries.historic_task_filters(query),
                query,
                queries.sorting(query, queries.HISTORIC_TASK_SORT, "created"),
            )
            return self._page([mapping.historic_task(row, engine=self.name) for row in rows], total, query)
        body = queries.query_body(queries.task_filters(query))
        for field, scope in (("processVariables", VariableScope.INSTANCE), ("taskVariables", VariableScope.TASK)):
            variables = queries.variable_filters(query.conditions, scope)
            if variables:
                body[field] = variables
        sorting = queries.sorting_list(query, queries.TASK_SORT, "created", "id")
        rows, total = await self._query("/task", "tasks", body, sorting, query)
        return self._page(await self._tasks(rows, candidates=candidates), total, query)

    async def get_task(self, task_id: str) -> TaskDetails:
        try:
            raw = await self._task_row(task_id)
        except NotFound:
            finished = await self._finished_task(task_id)
            if finished is None:
                raise
            return TaskDetails(**finished.model_dump())
        (task,), variables = await asyncio.gather(
            self._tasks([raw]),
            self.http.json(
                "GET",
                f"/task/{segment(task_id)}/variables",
                operation="get_task_variables",
                params={"deserializeValues": False},
            ),
        )
        return mapping.task_details(task, raw, mapping.variables_from_rest(variables))

    async def claim_task(self, task_id: str, user_id: str) -> Task:
        return await self._task_action(task_id, "claim", {"userId": user_id})

    async def unclaim_task(self, task_id: str) -> Task:
        return await self._task_action(task_id, "unclaim", None)

    async def assign_task(self, task_id: str, user_id: str) -> Task:
        return await self._task_action(task_id, "assignee", {"userId": user_id})

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        return await self._task_action(task_id, "delegate", {"userId": user_id})

    async def complete_task(self, task_id: str, variables: Variables, *, user_id: str) -> Task:
        body = {"variables": mapping.to_rest_variables(variables)}
        path = f"/task/{segment(task_id)}"
        (task,) = await self._tasks([await self._task_row(task_id)])
        try:
            await self.http.request("POST", f"{path}/complete", operation="complete_task", json=body)
        except GatewayError as exc:
            if DELEGATION_PENDING not in (exc.engine_message or ""):
                raise
            # The unified API completes a delegated task in one step on every engine: an engine that wants
            # the delegation resolved first (the task handed back to its owner) gets that, then the completion.
            await self.http.request("POST", f"{path}/resolve", operation="resolve_task", json=body)
            await self.http.request("POST", f"{path}/complete", operation="complete_task", json={"variables": {}})
        return task

    async def _task_action(self, task_id: str, action: str, body: dict[str, Any] | None) -> Task:
        await self.http.request("POST", f"/task/{segment(task_id)}/{action}", operation=f"task_{action}", json=body)
        (task,) = await self._tasks([await self._task_row(task_id)])
        return task

    async def _task_row(self, task_id: str) -> dict[str, Any]:
        return await self.http.json("GET", f"/task/{segment(task_id)}", operation="get_task")

    async def _finished_task(self, task_id: str) -> Task | None:
        rows = await self.http.json("GET", "/history/task", operation="list_historic_tasks", params={"taskId": task_id})
        return mapping.historic_task(rows[0], engine=self.name) if rows else None

    async def _tasks(self, rows: list[dict[str, Any]], *, candidates: bool = True) -> list[Task]:
        """Open tasks with their definition keys and (`candidates`) their candidates."""
        keys = await self.facts.keys(row.get("processDefinitionId") for row in rows)
        tasks = [
            mapping.task(row, engine=self.name, definition_key=keys.get(row.get("processDefinitionId", "")))
            for row in rows
        ]
        return await self.with_candidates(tasks) if candidates else tasks

    async def with_candidates(self, tasks: list[Task]) -> list[Task]:
        """Open tasks' candidates from `GET /task/{id}/identity-links`, one request per task (the task query
        returns none, and Camunda 7 reads identity links per task only); finished tasks keep none."""
        limit = asyncio.Semaphore(LINK_CONCURRENCY)

        async def with_links(task: Task) -> Task:
            if task.status in FINISHED_TASK_STATUSES:
                return task
            async with limit:
                found = await _unless_missing(
                    self.http.json("GET", f"/task/{segment(task.id)}/identity-links", operation="get_identity_links")
                )
            users, groups = mapping.candidates(found or [])  # a task completed meanwhile has none
            return task.model_copy(update={"candidate_users": users, "candidate_groups": groups})

        return list(await asyncio.gather(*(with_links(task) for task in tasks)))

    # ------------------------------------------------------------ engine incidents
    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]:
        rows, total = await self._list(
            "/incident",
            "incidents",
            queries.incident_filters(query),
            query,
            queries.sorting(query, queries.INCIDENT_SORT, "created"),
        )
        return self._page(await self._incidents(rows), total, query)

    async def get_engine_incident(self, incident_id: str) -> EngineIncident:
        """An open incident, or a resolved one from history; with the failure's stack trace as detail."""
        raw = await _unless_missing(
            self.http.json("GET", f"/incident/{segment(incident_id)}", operation="get_incident")
        )
        if raw is None:
            rows = await self.http.json(
                "GET", "/history/incident", operation="list_historic_incidents", params={"incidentId": incident_id}
            )
            if not rows:
                raise NotFound(f"Incident {incident_id} does not exist", engine=self.name)
            raw = rows[0]
        (incident,) = await self._incidents([raw])
        incident.detail = await self._failure_detail(raw)
        return incident

    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        raw = await self.http.json("GET", f"/incident/{segment(incident_id)}", operation="get_incident")
        kind, target = raw["incidentType"], raw.get("configuration")
        if kind == FAILED_JOB:
            path = f"/job/{segment(target)}/retries"
        elif kind == FAILED_EXTERNAL_TASK:
            path = f"/external-task/{segment(target)}/retries"
        else:
            raise Conflict(
                f"Incident {incident_id} is of type {kind}; only failed jobs and failed external tasks can be retried",
                engine=self.name,
            )
        await self.http.request("PUT", path, operation="retry_incident", idempotent=True, json={"retries": retries})

    async def annotate_engine_incident(self, incident_id: str, annotation: str | None) -> None:
        path = f"/incident/{segment(incident_id)}/annotation"
        try:
            if annotation is None:
                await self.http.request("DELETE", path, operation="clear_incident_annotation", idempotent=True)
            else:
                await self.http.request(
                    "PUT", path, operation="annotate_incident", idempotent=True, json={"annotation": annotation}
                )
        except BadRequest as exc:  # Camunda's documented answer for an unknown incident
            raise exc.restated(NotFound, f"Incident {incident_id} does not exist", engine=self.name) from None

    async def _incidents(self, rows: list[dict[str, Any]]) -> list[EngineIncident]:
        """Incidents with their definition keys (historic ones carry theirs) and activity names."""
        definition_ids = sorted({row["processDefinitionId"] for row in rows if row.get("processDefinitionId")})
        keys, *names = await asyncio.gather(
            self.facts.keys(row.get("processDefinitionId") for row in rows if not row.get("processDefinitionKey")),
            *(self.facts.activity_names(d) for d in definition_ids),
        )
        names_by_definition = dict(zip(definition_ids, names, strict=True))
        return [
            mapping.incident(
                row,
                engine=self.name,
                definition_key=keys.get(row.get("processDefinitionId", "")),
                activity_name=names_by_definition.get(row.get("processDefinitionId", ""), {}).get(
                    row.get("failedActivityId") or row.get("activityId")
                ),
            )
            for row in rows
        ]

    async def _failure_detail(self, raw: dict[str, Any]) -> str | None:
        """The stack trace of a failed job, or the error details of a failed external task, while they exist."""
        target = raw.get("configuration")
        if not target:
            return None
        match raw["incidentType"]:
            case "failedJob":
                path, operation = f"/job/{segment(target)}/stacktrace", "get_job_stacktrace"
            case "failedExternalTask":
                path, operation = f"/external-task/{segment(target)}/errorDetails", "get_external_task_error"
            case _:
                return None
        try:
            response = await self.http.request("GET", path, operation=operation, headers={"Accept": "text/plain"})
        except (NotFound, BadRequest):  # the job or external task is gone with a resolved incident
            return None
        return response.text or None

    # ------------------------------------------------------------ history and health
    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        rows, total = await self._list(
            "/history/process-instance",
            "instances",
            queries.history_instance_filters(query),
            query,
            queries.sorting(query, queries.HISTORIC_INSTANCE_SORT, "start_time"),
        )
        return self._page(await self._instances(rows), total, query)

    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]:
        """Historic activity instances. Camunda filters them by one definition id, not by key: for a key, the
        versions are read one after the other (newest first), each sorted as asked, and paged as one list."""
        sort = queries.sorting(query, queries.ACTIVITY_SORT, "start_time")
        if query.definition_key is None:
            filters = queries.history_activity_filters(query, None)
            rows, total = await self._list("/history/activity-instance", "activity_history", filters, query, sort)
            return self._page([mapping.activity_record(row) for row in rows], total, query)
        versions = await self.http.json(
            "GET",
            "/process-definition",
            operation="list_definitions",
            params={"key": query.definition_key, "sortBy": "version", "sortOrder": "desc", "maxResults": DETAIL_LIMIT},
        )
        per_version = [queries.history_activity_filters(query, version["id"]) for version in versions]
        counts = await asyncio.gather(
            *(self._count("/history/activity-instance/count", f, "activity_history") for f in per_version)
        )
        rows = []
        skip = query.offset
        for version_filters, count in zip(per_version, counts, strict=True):
            if len(rows) == query.size:
                break
            if skip >= count:
                skip -= count
                continue
            rows += await self.http.json(
                "GET",
                "/history/activity-instance",
                operation="list_activity_history",
                params={**version_filters, **sort, "firstResult": skip, "maxResults": query.size - len(rows)},
            )
            skip = 0
        return self._page([mapping.activity_record(row) for row in rows], sum(counts), query)

    async def health(self) -> EngineHealth:
        location = locate(self.context.config.url or "")
        body = await self.http.json("GET", f"{location.root}/version", operation="health")
        if location.engine_name is not None:
            engines = await self.http.json("GET", f"{location.root}/engine", operation="list_engines")
            if location.engine_name not in [engine.get("name") for engine in engines]:
                return EngineHealth(
                    status="down",
                    version=body.get("version"),
                    detail=f"Camunda serves no process engine named {location.engine_name!r}",
                )
        return EngineHealth(status="up", version=body.get("version"))

    # ------------------------------------------------------------ paging
    async def _list(
        self, path: str, what: str, filters: dict[str, Any], query: ListQuery, sort: dict[str, str]
    ) -> tuple[list[dict[str, Any]], int]:
        rows, total = await asyncio.gather(
            self.http.json("GET", path, operation=f"list_{what}", params={**filters, **sort, **queries.page(query)}),
            self._count(f"{path}/count", filters, what),
        )
        return rows, queries.page_total(rows, total, query)

    async def _query(
        self, path: str, what: str, body: dict[str, Any], sorting: list[dict[str, str]], query: ListQuery
    ) -> tuple[list[dict[str, Any]], int]:
        """One page and the total of a POST query (`firstResult`/`maxResults` in the URL, filters in the body)."""
        rows, counted = await asyncio.gather(
            self.http.json(
                "POST",
                path,
                operation=f"list_{what}",
                idempotent=True,
                params=queries.page(query),
                json={**body, "sorting": sorting},
            ),
            self.http.json("POST", f"{path}/count", operation=f"count_{what}", idempotent=True, json=body),
        )
        return rows, queries.page_total(rows, int(counted["count"]), query)

    async def _count(self, path: str, filters: dict[str, Any], what: str) -> int:
        body = await self.http.json("GET", path, operation=f"count_{what}", params=filters)
        return int(body["count"])

    @staticmethod
    def _page(items: list[T], total: int, query: ListQuery) -> Page[T]:
        return Page(items=items, total=total, page=query.page, size=query.size)

    # ------------------------------------------------------------ change feed
    async def read_changes(self, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
        """What the engine did after `mark`, from its history (adapters/camunda/changes.py)."""
        return await changes.read_changes(self.http, mark, settled_before)


async def _unless_missing(call: Awaitable[T]) -> T | None:
    try:
        return await call
    except NotFound:
        return None
