"""The Flowable 7.2 adapter: the unified operations over Flowable's process REST API.

Base URL `http://host:8080/flowable-rest/service` (the Spring Boot starter serves `/process-api`), basic
auth. Lists use Flowable's `POST /query/*` endpoints where they exist: they take every filter, sort field
and `start`/`size` in one JSON body. Translation lives in `mapping`, error reading in `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, ClassVar

import httpx

from adapters.flowable import changes, errors, mapping, queries
from adapters.flowable.facts import EngineFacts, segment
from adapters.flowable.paging import Fetch, Item, collect, page_across
from gateway import bpmn
from gateway.bpmn import TaskExtensions
from gateway.engines.http import HttpEngineAdapter
from gateway.engines.port import AdapterContext, Capability, ChangeBatch, OpenTaskAssignee
from gateway.errors import BadRequest, Conflict, GatewayError, NotFound
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

RESOURCE_SUFFIXES = (".bpmn20.xml", ".bpmn")
FINISHED_STATUSES = frozenset({"completed", "terminated", "externally_terminated"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _resource_name(filename: str) -> str:
    """Flowable deploys a process only from a resource named `*.bpmn20.xml` or `*.bpmn`."""
    name = PurePosixPath(filename.replace("\\", "/")).name or "process"
    if name.endswith(RESOURCE_SUFFIXES):
        return name
    return f"{name.split('.')[0] or 'process'}.bpmn20.xml"


def _page(items: list[Any], total: int, query: ListQuery) -> Page[Any]:
    return Page(items=items, total=total, page=query.page, size=query.size)


DELEGATION_PENDING = "cannot be completed, but should be resolved instead"


class FlowableAdapter(HttpEngineAdapter):
    task_extensions = TaskExtensions(namespaces=("http://flowable.org/bpmn", "http://activiti.org/bpmn"))
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.SUSPEND_DEFINITION,
            Capability.SUSPEND_INSTANCE,
            Capability.DELEGATE_TASK,
            Capability.CORRELATE_MESSAGE,
            Capability.BROADCAST_SIGNAL,
            Capability.MODIFY_INSTANCE,
            Capability.MIGRATE_INSTANCE,
        }
    )

    observes_changes = True
    variable_operators = frozenset(queries.VARIABLE_OPERATIONS)  # QueryVariable has no `in`
    # Flowable's task queries sort by id, name, priority, assignee, createTime and dueDate only.
    unsortable: ClassVar[dict[type[ListQuery], frozenset[str]]] = {TaskQuery: frozenset({"follow_up"})}

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        if context.http is None:
            raise ValueError("the Flowable adapter needs the engine's HTTP client")
        self.http = context.http
        self.facts = EngineFacts(context.http, context.store)

    def engine_message(self, response: httpx.Response) -> str | None:
        return errors.engine_message(response)

    def classify_error(self, response: httpx.Response, message: str | None) -> type[GatewayError] | None:
        return errors.classify(response, message)

    # ------------------------------------------------------------ engine calls
    async def _get(self, path: str, operation: str, **params: Any) -> Any:
        return await self.http.json("GET", path, operation=operation, params=queries.clean(params))

    async def _query(self, path: str, body: dict[str, Any], operation: str) -> dict[str, Any]:
        """A `POST /query/*` search: it changes nothing, so it may be retried."""
        return await self.http.json("POST", path, operation=operation, idempotent=True, json=queries.clean(body))

    def _lister(self, path: str, operation: str, **params: Any) -> Fetch:
        async def fetch(start: int, size: int) -> dict[str, Any]:
            return await self._get(path, operation, **params, start=start, size=size)

        return fetch

    def _searcher(self, path: str, body: dict[str, Any], operation: str) -> Fetch:
        async def fetch(start: int, size: int) -> dict[str, Any]:
            return await self._query(path, {**body, "start": start, "size": size}, operation)

        return fetch

    def _sorting(self, query: ListQuery, fields: dict[str, str], default: tuple[str, str]) -> dict[str, str]:
        return queries.sorting(query, fields, default, engine=self.name)

    @staticmethod
    async def _one_page(fetch: Fetch, query: ListQuery, keep: Callable[[Item], bool] | None) -> tuple[list[Item], int]:
        """The engine's page, or, for a filter the engine lacks, the filtered list sliced here."""
        if keep is None:
            body = await fetch(query.offset, query.size)
            return body["data"], body["total"]
        kept = await collect(fetch, keep)
        return kept[query.offset : query.offset + query.size], len(kept)

    # ------------------------------------------------------------ definitions
    async def deploy(
        self, bpmn_xml: bytes, *, filename: str, name: str | None, tenant_id: str | None, deployed_by: str
    ) -> Deployment:
        params = queries.clean({"deploymentName": name, "tenantId": tenant_id or self.context.config.tenant_id})
        created = await self.http.json(
            "POST",
            "/repository/deployments",
            operation="deploy",
            params=params,
            files={"file": (_resource_name(filename), bpmn_xml, "text/xml")},
        )
        deployment_id = created["id"]
        facts = mapping.DeploymentFacts(
            deployed_at=mapping.moment(created.get("deploymentTime")), deployed_by=deployed_by
        )
        await self.facts.record_deployment(deployment_id, facts)
        definitions = await collect(self._definition_lister(deploymentId=deployment_id))
        return Deployment(
            deployment_id=deployment_id,
            name=created.get("name"),
            deployed_at=facts.deployed_at,
            definitions=await self._definitions(definitions),
        )

    def _definition_lister(self, **filters: Any) -> Fetch:
        return self._lister("/repository/process-definitions", "list_definitions", **filters)

    async def _definitions(self, items: list[Item]) -> list[ProcessDefinition]:
        deployments = await self.facts.deployments(item.get("deploymentId") for item in items)
        return [
            mapping.definition(item, engine=self.name, deployment=deployments.get(item.get("deploymentId") or ""))
            for item in items
        ]

    async def list_definitions(self, query: DefinitionQuery) -> Page[ProcessDefinition]:
        body = await self._get(
            "/repository/process-definitions",
            "list_definitions",
            key=query.key,
            name=query.name,
            latest=True if query.latest_only else None,
            suspended=query.suspended,
            tenantId=query.tenant_id,
            start=query.offset,
            size=query.size,
            **self._sorting(query, queries.DEFINITION_SORT, ("key", "asc")),
        )
        return _page(await self._definitions(body["data"]), body["total"], query)

    async def _definition_data(self, definition_id: str) -> Item:
        return await self._get(f"/repository/process-definitions/{segment(definition_id)}", "get_definition")

    async def get_definition(self, definition_id: str) -> ProcessDefinition:
        (definition,) = await self._definitions([await self._definition_data(definition_id)])
        return definition

    async def get_definition_xml(self, definition_id: str) -> bytes:
        response = await self.http.request(
            "GET",
            f"/repository/process-definitions/{segment(definition_id)}/resourcedata",
            operation="get_definition_xml",
            headers={"Accept": "application/xml, text/xml, */*"},
        )
        return response.content

    async def set_definition_suspended(
        self, definition_id: str, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        path = f"/repository/process-definitions/{segment(definition_id)}"
        action = {"action": "suspend" if suspended else "activate", "includeProcessInstances": include_instances}
        try:
            data = await self.http.json("PUT", path, operation="suspend_definition", idempotent=True, json=action)
        except Conflict:
            # Flowable refuses to suspend a suspended definition (409); the wanted state holds already.
            data = await self._definition_data(definition_id)
            if bool(data.get("suspended")) != suspended:
                raise
        (definition,) = await self._definitions([data])
        return definition

    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        """Flowable deletes definitions only with their whole deployment.

        A deployment that holds other definitions too is not deleted (Conflict), so deleting one definition
        never removes others. Without cascade, running instances make it a Conflict; this is checked first
        because Flowable itself would fail on its foreign keys with a bare 500.
        """
        deployment_id = (await self._definition_data(definition_id))["deploymentId"]
        siblings = await collect(
            self._definition_lister(deploymentId=deployment_id), lambda item: item["id"] != definition_id
        )
        if siblings:
            others = ", ".join(sorted(item["id"] for item in siblings))
            raise Conflict(
                f"Flowable deletes definitions with their whole deployment, and deployment {deployment_id} "
                f"also holds {others}; delete refused so that they are not deleted too",
                engine=self.name,
            )
        if not cascade:
            running = await self._query(
                "/query/process-instances",
                {"processDefinitionId": definition_id, "start": 0, "size": 0},
                "list_instances",
            )
            if running["total"]:
                raise Conflict(
                    f"Process definition {definition_id} has {running['total']} running instance(s); "
                    "delete with cascade to delete them too",
                    engine=self.name,
                )
        await self.http.request(
            "DELETE",
            f"/repository/deployments/{segment(deployment_id)}",
            operation="delete_definition",
            params={"cascade": "true" if cascade else "false"},
        )

    # ------------------------------------------------------------ instances
    async def start_instance(self, request: StartInstance, *, started_by: str) -> ProcessInstance:
        if request.definition_id:
            body: dict[str, Any] = {"processDefinitionId": request.definition_id}
        elif request.definition_key:
            # Flowable accepts a tenant only together with a key.
            body = {
                "processDefinitionKey": request.definition_key,
                "tenantId": request.tenant_id or self.context.config.tenant_id,
            }
        else:
            raise BadRequest("Starting an instance needs definition_key or definition_id", engine=self.name)
        if request.start_message is not None:
            # Flowable starts by message name alone: the definition must be the one whose start event it is.
            definition_id = request.definition_id or (await self._latest_definition(request)).id
            xml = await self.get_definition_xml(definition_id)
            bpmn.message_start_event(
                xml, (await self.get_definition(definition_id)).key, request.start_message
            )  # 400 naming the start events otherwise
            body = {"message": request.start_message, "tenantId": request.tenant_id or self.context.config.tenant_id}
        body["businessKey"] = request.business_key
        if request.variables:
            body["variables"] = mapping.to_rest_variables(request.variables)
        data = await self.http.json(
            "POST", "/runtime/process-instances", operation="start_instance", json=queries.clean(body)
        )
        await self.facts.record_start(data["id"], started_by)
        key = await self.facts.definition_key(data["processDefinitionId"])
        return mapping.runtime_instance(data, engine=self.name, definition_key=key or "", started_by=started_by)

    async def _latest_definition(self, request: StartInstance) -> ProcessDefinition:
        tenant = request.tenant_id or self.context.config.tenant_id
        found = await self.list_definitions(DefinitionQuery(key=request.definition_key, tenant_id=tenant, size=1))
        if not found.items:
            raise NotFound(f"No process definition with key {request.definition_key!r}", engine=self.name)
        return found.items[0]

    # ------------------------------------------------------------ messages, signals, change-state
    async def correlate_message(self, message: MessageCorrelation, *, started_by: str) -> MessageResults:
        """The executions subscribed to the message (`POST /query/executions`, filtered by instance and process
        variables; by business key through `POST /query/process-instances`) each get `messageEventReceived` (`PUT /runtime/executions/{id}`); when none
        waits, `POST /runtime/process-instances` with `message` starts the definition whose message start event
        it is (Flowable keeps at most one per name and tenant)."""
        tenant = message.tenant_id or self.context.config.tenant_id
        query: dict[str, Any] = {
            "messageEventSubscriptionName": message.message_name,
            "processInstanceId": message.process_instance_id,
            "tenantId": tenant,
            "processInstanceVariables": [
                {**mapping.to_rest_variable(name, typed), "operation": "equals"}
                for name, typed in message.correlation_keys.items()
            ]
            or None,
        }
        keep = None
        if message.business_key is not None:
            # The subscribed execution is a child of the process instance, which alone carries the business key
            # (an execution query by business key matches process instances only): match it on the instances.
            named = await collect(
                self._searcher(
                    "/query/process-instances", {"processBusinessKey": message.business_key}, "list_instances"
                ),
                lambda item: True,
            )
            ids = {item["id"] for item in named}
            keep = lambda item: item["processInstanceId"] in ids  # noqa: E731
        executions = await collect(
            self._searcher("/query/executions", query, "list_executions"), keep or (lambda item: True)
        )
        waiting: dict[str, Item] = {}
        for execution in executions:
            waiting.setdefault(execution["processInstanceId"], execution)
        if len(waiting) > 1 and not message.all:
            raise Conflict(
                f"Message {message.message_name!r} matches {len(waiting)} waiting instances "
                f"({', '.join(waiting)}); narrow it with business_key, correlation_keys or process_instance_id, "
                "or give all=true",
                engine=self.name,
            )
        results = []
        action: dict[str, Any] = {"action": "messageEventReceived", "messageName": message.message_name}
        if message.variables:
            action["variables"] = mapping.to_rest_variables(message.variables)
        for instance_id, execution in waiting.items():
            await self.http.request(
                "PUT", f"/runtime/executions/{segment(execution['id'])}", operation="message_received", json=action
            )
            instance = await self._any_instance(instance_id)
            results.append(
                CorrelationResult(type="correlated", instance_id=instance_id, definition_key=instance.definition_key)
            )
        may_start = message.process_instance_id is None and not message.correlation_keys
        if may_start and (message.all or not waiting):
            body: dict[str, Any] = {
                "message": message.message_name,
                "businessKey": message.business_key,
                "tenantId": tenant,
            }
            if message.variables:
                body["variables"] = mapping.to_rest_variables(message.variables)
            try:
                data = await self.http.json(
                    "POST", "/runtime/process-instances", operation="start_instance", json=queries.clean(body)
                )
            except BadRequest as error:
                if _NO_MESSAGE_START not in (error.engine_message or ""):
                    raise
            else:
                await self.facts.record_start(data["id"], started_by)
                key = await self.facts.definition_key(data["processDefinitionId"])
                results.append(CorrelationResult(type="started", instance_id=data["id"], definition_key=key))
        if not results:
            raise NotFound(
                f"No process instance waits for message {message.message_name!r} with these conditions, and no "
                "process starts with it",
                engine=self.name,
            )
        return MessageResults(results=results)

    async def _any_instance(self, instance_id: str) -> ProcessInstance:
        """A running or (after the message ended it) finished instance."""
        return await self.get_instance(instance_id)

    async def broadcast_signal(self, signal: SignalBroadcast, *, started_by: str) -> SignalResult:
        """`POST /runtime/signals`, synchronously (variables are allowed only then); Flowable does not count."""
        body: dict[str, Any] = {
            "signalName": signal.signal_name,
            "tenantId": signal.tenant_id or self.context.config.tenant_id,
            "async": False,
        }
        if signal.variables:
            body["variables"] = mapping.to_rest_variables(signal.variables)
        await self.http.request("POST", "/runtime/signals", operation="broadcast_signal", json=queries.clean(body))
        return SignalResult(signal_name=signal.signal_name)

    async def modify_instance(self, instance_id: str, modification: InstanceModification) -> ProcessInstance:
        """`POST /runtime/process-instances/{id}/change-state`: Flowable moves tokens from the cancelled activities
        to the started ones in one step, without variables. `start_after X` starts the target of X's single
        outgoing sequence flow. BadRequest for what change-state cannot say (variables; nothing to cancel or to
        start; several of both)."""
        if any(i.variables for i in modification.instructions):
            raise BadRequest(
                "Flowable's change-state takes no variables; set them with PUT /instances/{id}/variables first",
                engine=self.name,
            )
        instance = await self.get_instance(instance_id)
        xml = await self.get_definition_xml(instance.definition_id)
        cancel, start = [], []
        for instruction in modification.instructions:
            if instruction.type == "cancel":
                cancel.append(instruction.activity_id)
            elif instruction.type == "start_before":
                start.append(instruction.activity_id)
            else:
                start.append(bpmn.single_successor(xml, instance.definition_key, instruction.activity_id))
        if not cancel or not start or (len(cancel) > 1 and len(start) > 1):
            raise BadRequest(
                "Flowable moves tokens: give the activities to cancel and the ones to start (one of the two a "
                "single activity), e.g. cancel X and start_after X",
                engine=self.name,
            )
        body = {"cancelActivityIds": cancel, "startActivityIds": start}
        await self.http.request(
            "POST",
            f"/runtime/process-instances/{segment(instance_id)}/change-state",
            operation="change_state",
            json=body,
        )
        return await self.get_instance(instance_id)

    async def migrate_instance(self, instance_id: str, migration: InstanceMigration) -> ProcessInstance:
        """`POST /runtime/process-instances/{id}/migrate` with a migration document: `toProcessDefinitionId` and
        one `activityMappings` entry (`fromActivityId`, `toActivityId`) per mapping; Flowable maps the other
        activities by equal id. A waiting activity it cannot map is its 500 "Migration Activity mapping missing for
        activity definition Id:'...'", answered as a BadRequest naming it (`errors.classify`)."""
        document = {
            "toProcessDefinitionId": migration.target_definition_id,
            "activityMappings": [
                {"fromActivityId": source, "toActivityId": target} for source, target in migration.mappings.items()
            ],
        }
        await self.http.request(
            "POST",
            f"/runtime/process-instances/{segment(instance_id)}/migrate",
            operation="migrate_instance",
            json=document,
        )
        return await self.get_instance(instance_id)

    async def _runtime_instances(self, items: list[Item]) -> list[ProcessInstance]:
        keys = await self.facts.definition_keys(item["processDefinitionId"] for item in items)
        starters = await self.facts.starters(item["id"] for item in items)
        return [
            mapping.runtime_instance(
                item,
                engine=self.name,
                definition_key=keys.get(item["processDefinitionId"]) or "",
                started_by=starters.get(item["id"]),
            )
            for item in items
        ]

    async def _historic_instances(self, items: list[Item]) -> list[ProcessInstance]:
        keys = await self.facts.definition_keys(item["processDefinitionId"] for item in items)
        starters = await self.facts.starters(item["id"] for item in items)
        running = [item["id"] for item in items if item.get("endTime") is None]
        suspended: set[str] = set()
        if running:
            found = await self._query(
                "/query/process-instances",
                {"processInstanceIds": running, "suspended": True, "start": 0, "size": len(running)},
                "list_instances",
            )
            suspended = {item["id"] for item in found["data"]}
        return [
            mapping.historic_instance(
                item,
                engine=self.name,
                definition_key=keys.get(item["processDefinitionId"]) or "",
                started_by=starters.get(item["id"]),
                suspended=item["id"] in suspended,
            )
            for item in items
        ]

    async def _instances_with_incidents(self) -> set[str]:
        jobs = await self._failed_jobs(mapping.JOB_KINDS, instance_id=None)
        return {data["processInstanceId"] for _, data in jobs if data.get("processInstanceId")}

    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        """Active and suspended instances come from the runtime, all others from history.

        Flowable filters neither by incidents nor by how an instance ended; those filters are applied
        here, over what the engine lists for the other filters.
        """
        filters = queries.instance_filters(query)
        keeps: list[Callable[[Item], bool]] = []
        if query.has_incident is not None:
            with_incidents = await self._instances_with_incidents()
            if not query.has_incident:
                keeps.append(lambda item: item["id"] not in with_incidents)
            elif with_incidents:
                filters["processInstanceIds"] = sorted(with_incidents)
            else:
                return _page([], 0, query)

        if query.status in ("active", "suspended"):
            filters["suspended"] = query.status == "suspended"
            sorting = self._sorting(query, queries.RUNTIME_INSTANCE_SORT, ("startTime", "desc"))
            fetch = self._searcher("/query/process-instances", {**filters, **sorting}, "list_instances")
            items, total = await self._one_page(fetch, query, _all_of(keeps))
            return _page(await self._runtime_instances(items), total, query)

        if query.status in FINISHED_STATUSES:
            filters["finished"] = True
            keeps.append(lambda item: mapping.historic_status(item) == query.status)
        sorting = self._sorting(query, queries.HISTORIC_INSTANCE_SORT, ("startTime", "desc"))
        fetch = self._searcher("/query/historic-process-instances", {**filters, **sorting}, "list_instances")
        items, total = await self._one_page(fetch, query, _all_of(keeps))
        return _page(await self._historic_instances(items), total, query)

    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        """A running instance from the runtime; a finished one exists only in history."""
        try:
            data = await self._get(f"/runtime/process-instances/{segment(instance_id)}", "get_instance")
        except NotFound:
            return await self._finished_instance(instance_id)
        (instance,) = await self._runtime_instances([data])
        steps, incidents, variables = await asyncio.gather(
            collect(
                self._lister(
                    "/runtime/activity-instances",
                    "get_instance",
                    processInstanceId=instance_id,
                    sort="startTime",
                    order="asc",
                )
            ),
            self._incidents(await self._failed_jobs(mapping.JOB_KINDS, instance_id=instance_id)),
            self._runtime_variables(instance_id),
        )
        return self._details(instance, steps, incidents, variables)

    async def _finished_instance(self, instance_id: str) -> ProcessInstanceDetails:
        data = await self._get(f"/history/historic-process-instances/{segment(instance_id)}", "get_instance")
        (instance,) = await self._historic_instances([data])
        steps, variables = await asyncio.gather(
            collect(
                self._searcher(
                    "/query/historic-activity-instances",
                    {"processInstanceId": instance_id, "sort": "startTime", "order": "asc"},
                    "get_instance",
                )
            ),
            self._historic_variables(instance_id),
        )
        return self._details(instance, steps, [], variables)

    @staticmethod
    def _details(
        instance: ProcessInstance, steps: list[Item], incidents: list[EngineIncident], variables: Variables
    ) -> ProcessInstanceDetails:
        failed = {incident.activity_id for incident in incidents if incident.activity_id}
        activities = [mapping.activity(step, failed_activities=failed) for step in steps if mapping.is_activity(step)]
        details = instance.model_dump()
        details.update(
            variables=variables,
            activities=activities,
            incidents=incidents,
            current_activities=[mapping.current_activity(a) for a in activities if a.end_time is None],
            execution_path=[mapping.execution_step(a) for a in activities],
        )
        return ProcessInstanceDetails.model_validate(details)

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        try:
            await self.http.request(
                "DELETE",
                f"/runtime/process-instances/{segment(instance_id)}",
                operation="terminate_instance",
                params=queries.clean({"deleteReason": reason}),
            )
        except NotFound:
            await self._refuse_if_ended(instance_id, "terminate it")
            raise

    async def set_instance_suspended(self, instance_id: str, suspended: bool) -> ProcessInstance:
        path = f"/runtime/process-instances/{segment(instance_id)}"
        action = {"action": "suspend" if suspended else "activate"}
        try:
            data = await self.http.json("PUT", path, operation="suspend_instance", idempotent=True, json=action)
        except Conflict:
            # Flowable refuses to suspend a suspended instance (409); the wanted state holds already.
            data = await self._get(path, "get_instance")
            if bool(data.get("suspended")) != suspended:
                raise
        (instance,) = await self._runtime_instances([data])
        return instance

    async def _runtime_variables(self, instance_id: str) -> Variables:
        items = await self._get(f"/runtime/process-instances/{segment(instance_id)}/variables", "get_variables")
        return mapping.variables_from_rest(items)

    async def _historic_variables(self, instance_id: str) -> Variables:
        items = await collect(
            self._lister(
                "/history/historic-variable-instances",
                "get_variables",
                processInstanceId=instance_id,
                excludeTaskVariables=True,
                excludeLocalVariables=True,
            )
        )
        return mapping.variables_from_history(items)

    async def get_variables(self, instance_id: str) -> Variables:
        try:
            return await self._runtime_variables(instance_id)
        except NotFound:
            await self._get(f"/history/historic-process-instances/{segment(instance_id)}", "get_instance")
            return await self._historic_variables(instance_id)

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        """Flowable sets all modifications in one transaction but has no call that also removes variables.

        So the modifications go first, in one call, and the deletions follow one by one: should a
        deletion fail, the modifications stay applied. Removing a variable that does not exist is no error.
        """
        path = f"/runtime/process-instances/{segment(instance_id)}/variables"
        present = await self._runtime_variables(instance_id)
        if modifications:
            variables = mapping.to_rest_variables(modifications)
            await self.http.request("PUT", path, operation="update_variables", idempotent=True, json=variables)
        for name in deletions:
            if name not in present:
                continue
            with contextlib.suppress(NotFound):  # removed meanwhile
                await self.http.request("DELETE", f"{path}/{segment(name)}", operation="update_variables")
        return await self._runtime_variables(instance_id)

    # ------------------------------------------------------------ tasks
    async def _candidates(self, task_ids: list[str], *, historic: bool) -> dict[str, mapping.Candidates]:
        """Candidate users and groups: Flowable serves them per task only (identity links)."""
        base = "/history/historic-task-instances" if historic else "/runtime/tasks"
        limit = asyncio.Semaphore(EngineFacts.CONCURRENCY)

        async def links(task_id: str) -> mapping.Candidates:
            async with limit:
                try:
                    found = await self._get(f"{base}/{segment(task_id)}/identitylinks", "get_task")
                except NotFound:
                    return mapping.NO_CANDIDATES  # finished meanwhile
            return mapping.candidates(found)

        return dict(zip(task_ids, await asyncio.gather(*(links(t) for t in task_ids)), strict=True))

    async def _tasks(self, items: list[Item], *, candidates: bool = True) -> list[Task]:
        """Runtime or historic tasks with their definition keys and (`candidates`) their candidates."""
        keys = await self.facts.definition_keys(item.get("processDefinitionId") for item in items)
        tasks = [
            mapping.task(
                item,
                engine=self.name,
                definition_key=keys.get(item.get("processDefinitionId") or ""),
                links=mapping.NO_CANDIDATES,
            )
            for item in items
        ]
        return await self.with_candidates(tasks) if candidates else tasks

    async def with_candidates(self, tasks: list[Task]) -> list[Task]:
        """Candidates from each task's identity links (`_candidates`: one request per task)."""
        runtime, historic = await asyncio.gather(
            self._candidates([t.id for t in tasks if t.status not in FINISHED_TASK_STATUSES], historic=False),
            self._candidates([t.id for t in tasks if t.status in FINISHED_TASK_STATUSES], historic=True),
        )
        links = runtime | historic
        return [
            task.model_copy(update={"candidate_users": links[task.id].users, "candidate_groups": links[task.id].groups})
            for task in tasks
        ]

    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        """Open tasks from the runtime; completed and cancelled ones from history; (`candidates`) with their
        identity links."""
        if query.status in FINISHED_TASK_STATUSES:
            body = queries.finished_task_filters(query, engine=self.name)
            fetch = self._searcher("/query/historic-task-instances", body, "list_tasks")
            items, total = await self._one_page(fetch, query, None)
        else:
            body, keep = queries.open_task_filters(query, engine=self.name)
            items, total = await self._one_page(self._searcher("/query/tasks", body, "list_tasks"), query, keep)
        return _page(await self._tasks(items, candidates=candidates), total, query)

    async def _task(self, task_id: str) -> Task:
        (found,) = await self._tasks([await self._get(f"/runtime/tasks/{segment(task_id)}", "get_task")])
        return found

    async def get_task(self, task_id: str) -> TaskDetails:
        """An open task from the runtime; a finished one exists only in history."""
        try:
            data = await self._get(f"/runtime/tasks/{segment(task_id)}", "get_task")
        except NotFound:
            data = await self._get(f"/history/historic-task-instances/{segment(task_id)}", "get_task")
            historic = True
            instance_id = data.get("processInstanceId")
            variables = await self._historic_variables(instance_id) if instance_id else {}
        else:
            historic = False
            items = await self._get(f"/runtime/tasks/{segment(task_id)}/variables", "get_task")
            variables = mapping.variables_from_rest(items)
        links = await self._candidates([task_id], historic=historic)
        return mapping.task_details(
            data,
            engine=self.name,
            definition_key=await self.facts.definition_key(data.get("processDefinitionId")),
            links=links[task_id],
            variables=variables,
        )

    async def _task_action(self, task_id: str, operation: str, action: dict[str, Any]) -> None:
        await self.http.request("POST", f"/runtime/tasks/{segment(task_id)}", operation=operation, json=action)

    async def claim_task(self, task_id: str, user_id: str) -> Task:
        # A task claimed by someone else: FlowableTaskAlreadyClaimedException, 409.
        await self._task_action(task_id, "claim_task", {"action": "claim", "assignee": user_id})
        return await self._task(task_id)

    async def unclaim_task(self, task_id: str) -> Task:
        # Claiming without an assignee is Flowable's unclaim.
        await self._task_action(task_id, "unclaim_task", {"action": "claim"})
        return await self._task(task_id)

    async def assign_task(self, task_id: str, user_id: str) -> Task:
        path = f"/runtime/tasks/{segment(task_id)}"
        data = await self.http.json("PUT", path, operation="assign_task", idempotent=True, json={"assignee": user_id})
        (found,) = await self._tasks([data])
        return found

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        # Flowable keeps the current assignee as owner and marks the delegation pending.
        await self._task_action(task_id, "delegate_task", {"action": "delegate", "assignee": user_id})
        return await self._task(task_id)

    async def complete_task(self, task_id: str, variables: Variables, *, user_id: str) -> Task:
        task = await self._task(task_id)
        action: dict[str, Any] = {"action": "complete"}
        if variables:
            action["variables"] = mapping.to_rest_variables(variables)
        try:
            await self._task_action(task_id, "complete_task", action)
        except GatewayError as exc:
            if DELEGATION_PENDING not in (exc.engine_message or ""):
                raise
            # The unified API completes a delegated task in one step on every engine: Flowable wants the
            # delegation resolved (the task handed back to its owner) first. Its REST "resolve" action drops
            # the variables it is given, so they go with the completion.
            await self._task_action(task_id, "resolve_task", {"action": "resolve"})
            await self._task_action(task_id, "complete_task", action)
        return task

    # ------------------------------------------------------------ engine incidents
    # Flowable has no incident entity: a job whose execution threw is kept, with its exception message and
    # stack trace, in the timer-job table while it has retries left (executable again when due) and in the
    # dead-letter table once they are exhausted. Those failed jobs are exactly what Camunda calls incidents,
    # so they are presented as engine incidents: dead-letter jobs as `deadLetterJob` (the engine gave up, a
    # person must act) and jobs still retrying as `failedJob` (the failure shows at once). The incident id
    # names the job table, `deadletter:<job id>`, `timer:<job id>` or `job:<job id>`, because each table has
    # its own endpoints. A job keeps its id when it moves between tables, and with it the exception it failed
    # with: a failed job in the executable table is the engine running the work again (`rerun_pending`).
    async def _failed_jobs(
        self, kinds: Iterable[mapping.JobKind], *, instance_id: str | None
    ) -> list[tuple[mapping.JobKind, Item]]:
        async def failed(kind: mapping.JobKind) -> list[tuple[mapping.JobKind, Item]]:
            with_exception = None if kind is mapping.DEAD_LETTER else True
            fetch = self._lister(
                kind.path, "list_incidents", processInstanceId=instance_id, withException=with_exception
            )
            return [(kind, data) for data in await collect(fetch)]

        found = await asyncio.gather(*(failed(kind) for kind in kinds))
        return [job for jobs in found for job in jobs]

    async def _incidents(self, jobs: list[tuple[mapping.JobKind, Item]]) -> list[EngineIncident]:
        keys = await self.facts.definition_keys(data.get("processDefinitionId") for _, data in jobs)
        return [
            mapping.incident(
                data, kind, engine=self.name, definition_key=keys.get(data.get("processDefinitionId") or "")
            )
            for kind, data in jobs
        ]

    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]:
        """Every failed job, read from the three job tables and sorted here.

        Flowable cannot page the tables as one list, nor sort jobs by creation; failed jobs are few on a
        healthy engine.
        """
        kinds = [kind for kind in mapping.JOB_KINDS if query.incident_type in (None, kind.incident_type)]
        incidents = await self._incidents(await self._failed_jobs(kinds, instance_id=query.instance_id))
        if query.definition_key is not None:
            incidents = [incident for incident in incidents if incident.definition_key == query.definition_key]
        incidents.sort(key=lambda incident: incident.created or EPOCH, reverse=query.order.value == "desc")
        return _page(incidents[query.offset : query.offset + query.size], len(incidents), query)

    async def get_engine_incident(self, incident_id: str) -> EngineIncident:
        kind, job_id = self._job_of(incident_id)
        path = f"{kind.path}/{segment(job_id)}"
        data = await self._get(path, "get_incident")
        try:
            response = await self.http.request(
                "GET", f"{path}/exception-stacktrace", operation="get_incident", headers={"Accept": "text/plain, */*"}
            )
            stacktrace: str | None = response.text
        except NotFound:
            stacktrace = None  # the job has no stack trace
        return mapping.incident(
            data,
            kind,
            engine=self.name,
            definition_key=await self.facts.definition_key(data.get("processDefinitionId")),
            detail=stacktrace,
        )

    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        """Move a dead-letter or waiting job back to the executable jobs, or run a due failed job now.

        Flowable REST gives a moved job the engine's configured number of retries; `retries` cannot be
        chosen. A due job runs at once: if it fails again, that is an EngineError with Flowable's message
        (not counted against the engine's circuit), and the engine records the failure as a new failed job.
        """
        kind, job_id = self._job_of(incident_id)
        await self.http.request(
            "POST", f"{kind.path}/{segment(job_id)}", operation="retry_incident", json={"action": kind.retry_action}
        )

    def _job_of(self, incident_id: str) -> tuple[mapping.JobKind, str]:
        parsed = mapping.parse_incident_id(incident_id)
        if parsed is None:
            raise NotFound(f"Engine '{self.name}' has no engine incident {incident_id}", engine=self.name)
        return parsed

    # ------------------------------------------------------------ history and health
    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        body = {
            **queries.history_filters(query),
            **self._sorting(query, queries.HISTORIC_INSTANCE_SORT, ("startTime", "desc")),
        }
        fetch = self._searcher("/query/historic-process-instances", body, "history_instances")
        items, total = await self._one_page(fetch, query, None)
        return _page(await self._historic_instances(items), total, query)

    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]:
        """Historic activity instances, including the `sequenceFlow` records Flowable keeps for taken flows.

        Flowable filters activities by definition id only, so a key becomes one query per version, read one
        after the other in version order (newest version first when descending). It cannot filter them by
        start or end time: with such a filter each version is read newest first (by end time for
        `finished_after`) down to the window's start, and the activities in the window are sorted here.
        """
        if query.definition_key is None:
            definition_ids: list[str | None] = [None]
        else:
            versions = await collect(self._definition_lister(key=query.definition_key))
            definition_ids = [item["id"] for item in sorted(versions, key=lambda item: item["version"])]
            if not definition_ids:
                return _page([], 0, query)
        if query.started_after is None and query.started_before is None and query.finished_after is None:
            sorting = self._sorting(query, queries.ACTIVITY_SORT, ("startTime", "desc"))
            if sorting["order"] == "desc":
                definition_ids.reverse()
            sources = [self._activity_source(definition_id, query, sorting) for definition_id in definition_ids]
            items, total = await page_across(sources, query.offset, query.size)
        else:
            items, total = await self._activities_in_window(definition_ids, query)
        keys = await self.facts.definition_keys(item.get("processDefinitionId") for item in items)
        records = [
            mapping.activity_record(item, definition_key=keys.get(item.get("processDefinitionId") or ""))
            for item in items
        ]
        return _page(records, total, query)

    def _activity_source(self, definition_id: str | None, query: HistoryQuery, sorting: dict[str, str]) -> Fetch:
        body = {"processDefinitionId": definition_id, "finished": query.finished, **sorting}
        return self._searcher("/query/historic-activity-instances", body, "history_activities")

    async def _activities_in_window(
        self, definition_ids: list[str | None], query: HistoryQuery
    ) -> tuple[list[Item], int]:
        after, before, finished_after = query.started_after, query.started_before, query.finished_after
        walked = "startTime" if finished_after is None else "endTime"
        latest_first = {"sort": walked, "order": "desc"}
        if finished_after is not None:
            query = query.model_copy(update={"finished": True})

        def moment(item: Item, field: str) -> datetime:
            return mapping.moment(item.get(field)) or EPOCH

        def in_window(item: Item) -> bool:
            return (before is None or moment(item, "startTime") < before) and (
                after is None or moment(item, "startTime") >= after
            )

        def past(item: Item) -> bool:
            if finished_after is None:
                return after is not None and moment(item, "startTime") < after
            return moment(item, "endTime") < finished_after

        found: list[Item] = []
        for definition_id in definition_ids:
            found += await collect(self._activity_source(definition_id, query, latest_first), in_window, stop=past)
        field = queries.ACTIVITY_SORT[query.sort or "start_time"]
        descending = query.order.value == "desc"
        ordered = sorted(found, key=lambda item: mapping.moment(item.get(field)) or EPOCH, reverse=descending)
        return ordered[query.offset : query.offset + query.size], len(found)

    async def health(self) -> EngineHealth:
        info = await self._get("/management/engine", "health")
        if info.get("exception"):
            return EngineHealth(status="down", version=info.get("version"), detail=info["exception"])
        return EngineHealth(status="up", version=info.get("version"))

    # ------------------------------------------------------------ change feed
    async def read_changes(self, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
        """What the engine did after `mark`, from its history (adapters/flowable/changes.py)."""
        return await changes.read_changes(self.http, mark, settled_before)

    async def read_assignees(self) -> list[OpenTaskAssignee]:
        """Who holds each open task now (adapters/flowable/changes.py): Flowable's history keeps no assignments."""
        return await changes.read_assignees(self.http)


_NO_MESSAGE_START = "no subscription to message with name"


def _all_of(predicates: list[Callable[[Item], bool]]) -> Callable[[Item], bool] | None:
    if not predicates:
        return None
    return lambda item: all(predicate(item) for predicate in predicates)
