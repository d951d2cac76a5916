"""Camunda 8 (Zeebe) through the Orchestration Cluster REST API v2: Camunda 8.8, compatible with 8.9.

Camunda 8 answers every query from secondary storage, which lags behind its writes. After each change the
adapter waits, for a bounded time, until secondary storage shows it, so that callers read their own writes
as on the other engines. What a change returns is built from what was written, never from a search.

What Camunda 8 cannot keep (business keys, starters, declared variable types, delegation owners, deployment
metadata) lives in the gateway's MetadataStore, keyed by the engine's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from lxml import etree

from adapters.zeebe import changes, mapping, queries
from adapters.zeebe.queries import between, eq
from gateway import bpmn
from gateway.bpmn import Assignment, TaskExtensions, split_list
from gateway.conditions import VariableScope
from gateway.engines.http import HttpEngineAdapter
from gateway.engines.port import AdapterContext, Capability, ChangeBatch, OpenTaskAssignee
from gateway.errors import (
    BadRequest,
    Conflict,
    EngineUnavailable,
    InvalidBpmn,
    NotFound,
    NotSupported,
    ValidationFailed,
)
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
from gateway.variables import (
    TypedValue,
    Variables,
    VariableType,
    format_datetime,
    parse_datetime,
    to_plain,
)

T = TypeVar("T")

BUSINESS_KEY_VARIABLE = "businessKey"
LATEST_VERSION = -1
SEARCH_BATCH = 500  # items per search request when the adapter needs every match
VISIBILITY_TIMEOUT = 10.0  # seconds to wait for secondary storage to show a write
MAX_MARKER_NAME = 100  # the MetadataStore's longest name
# How Camunda 8 begins the reason when it refuses the resources themselves (not, say, the tenant).
DEPLOYMENT_REJECTED = "Expected to deploy new resources"

# MetadataStore object types
DEFINITION, INSTANCE, TASK, VARIABLE_TYPES = "definition", "instance", "task", "variable_type"
NO_DELEGATION: dict[str, str | None] = {"owner": None, "delegate": None}


ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"


class ZeebeTaskExtensions(TaskExtensions):
    """Camunda 8 writes assignment and forms as `zeebe:assignmentDefinition` and `zeebe:formDefinition`."""

    def read(self, element: etree._Element) -> Assignment:
        assignment = element.find(f".//{{{ZEEBE_NS}}}assignmentDefinition")
        form = element.find(f".//{{{ZEEBE_NS}}}formDefinition")
        attributes = {} if assignment is None else dict(assignment.attrib)
        return Assignment(
            assignee=attributes.get("assignee"),
            candidate_groups=split_list(attributes.get("candidateGroups")),
            candidate_users=split_list(attributes.get("candidateUsers")),
            form_key=None if form is None else form.get("formKey") or form.get("formId"),
        )


class ZeebeAdapter(HttpEngineAdapter):
    task_extensions = ZeebeTaskExtensions()
    observes_changes = True
    capabilities = frozenset(
        {
            Capability.DELEGATE_TASK,
            Capability.CORRELATE_MESSAGE,
            Capability.BROADCAST_SIGNAL,
            Capability.MODIFY_INSTANCE,
            Capability.MIGRATE_INSTANCE,
        }
    )
    variable_operators = queries.VARIABLE_OPERATORS
    # Business keys are the gateway's (Camunda 8.8 has none) and user task searches cannot sort by assignee.
    unsortable: ClassVar[dict[type[ListQuery], frozenset[str]]] = {
        InstanceQuery: frozenset({"business_key"}),
        TaskQuery: frozenset({"assignee"}),
    }
    emulated: ClassVar[dict[str, str]] = {
        "delegate_task": (
            "Camunda 8 has no delegation: the task is reassigned to the delegate and the gateway keeps the "
            "previous assignee as owner (status delegated) until the task is reassigned, unclaimed or completed."
        ),
        "business_key": (
            "Camunda 8.8 has no business key: the gateway keeps the one given at start (and sets it as the "
            f"variable '{BUSINESS_KEY_VARIABLE}'); filtering by business key looks the instances up in the gateway."
        ),
        "variable_types": (
            "Camunda 8 keeps variables as plain JSON: the gateway remembers declared types that JSON cannot "
            "carry (Date, Long, whole Double, Json strings, typed nulls) and reads values back with them."
        ),
        "start_after": (
            "Camunda 8 activates elements only before they run: start_after X activates the target of X's single "
            "outgoing sequence flow (a 400 when X has several), as on Flowable."
        ),
        "variable_deletion": (
            "Camunda 8 cannot remove a variable: a deleted variable is set to null in the engine and hidden by "
            "the gateway until it is given a value again."
        ),
    }

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        if context.http is None:
            raise ValueError("the Zeebe adapter talks to Camunda 8 over HTTP and needs the engine's client")
        self.http = context.http
        self.store = context.store
        self.visibility_timeout = VISIBILITY_TIMEOUT

    # ------------------------------------------------------------ definitions
    async def deploy(
        self, bpmn_xml: bytes, *, filename: str, name: str | None, tenant_id: str | None, deployed_by: str
    ) -> Deployment:
        names = {process.id: process.name for process in bpmn.validate(bpmn_xml)}
        now = datetime.now(UTC)
        resource = (mapping.resource_name(filename), bpmn_xml, "application/xml")
        try:
            result = await self.http.json(
                "POST",
                "/deployments",
                operation="deploy",
                files=[("resources", resource)],
                data={"tenantId": tenant_id} if tenant_id else None,
            )
        except BadRequest as exc:
            if DEPLOYMENT_REJECTED not in (exc.engine_message or ""):
                raise
            raise exc.restated(InvalidBpmn, exc.detail) from None
        deployment_id = str(result["deploymentKey"])
        deployed_at = format_datetime(now)  # Camunda 8 records no deployment time: the gateway keeps it
        meta: dict[str, str | None] = {
            "deployment_id": deployment_id,
            "deployed_at": deployed_at,
            "deployed_by": deployed_by,
        }
        definitions = [
            mapping.deployed_definition(
                entry["processDefinition"],
                name=names.get(entry["processDefinition"]["processDefinitionId"]),
                engine=self.name,
                meta=meta,
            )
            for entry in result["deployments"]
            if "processDefinition" in entry
        ]
        for definition in definitions:
            await self.store.put(DEFINITION, definition.id, meta)
        for definition in definitions:
            await self._visible(f"/process-definitions/{definition.id}", "get_definition")
        return Deployment(
            deployment_id=deployment_id, name=name, deployed_at=parse_datetime(deployed_at), definitions=definitions
        )

    async def list_definitions(self, query: DefinitionQuery) -> Page[ProcessDefinition]:
        if query.suspended:  # Camunda 8 has no suspended definitions
            return queries.empty_page(query)
        filter = {
            "processDefinitionId": eq(query.key),
            "name": eq(query.name),
            "tenantId": query.tenant_id,
            "isLatestVersion": True if query.latest_only else None,
        }
        if query.latest_only:
            # Camunda 8 ignores `from` when searching latest versions: read up to the page's end and cut.
            sort = queries.sort(query, queries.LATEST_DEFINITION_SORT, "key", "latest definitions")
            body = queries.search(filter, sort=sort, limit=query.offset + query.size)
            result = await self._search("process-definitions", body, "list_definitions")
            items = result["items"][query.offset :]
        else:
            sort = queries.sort(query, queries.DEFINITION_SORT, "key", "definitions")
            body = queries.search(filter, sort=sort, offset=query.offset, limit=query.size)
            result = await self._search("process-definitions", body, "list_definitions")
            items = result["items"]
        metas = await self.store.get_many(DEFINITION, [str(item["processDefinitionKey"]) for item in items])
        definitions = [
            mapping.definition(item, engine=self.name, meta=metas.get(str(item["processDefinitionKey"]), {}))
            for item in items
        ]
        return queries.page(result, definitions, query)

    async def get_definition(self, definition_id: str) -> ProcessDefinition:
        key = self._key(definition_id, "process definition")
        item = await self.http.json("GET", f"/process-definitions/{key}", operation="get_definition")
        if item.get("state") == "DELETED":  # recent releases keep deleted definitions in secondary storage
            raise NotFound(f"Process definition {key} was deleted", engine=self.name)
        return mapping.definition(item, engine=self.name, meta=await self.store.get(DEFINITION, key))

    async def get_definition_xml(self, definition_id: str) -> bytes:
        key = self._key(definition_id, "process definition")
        response = await self.http.request(
            "GET",
            f"/process-definitions/{key}/xml",
            operation="get_definition_xml",
            headers={"Accept": "text/xml, application/problem+json"},
        )
        if response.status_code == 204 or not response.content:
            raise NotFound(f"Process definition {key} has no BPMN XML", engine=self.name)
        return response.content

    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        key = self._key(definition_id, "process definition")
        running = {"processDefinitionKey": eq(key), "state": eq("ACTIVE")}
        if not cascade:
            count = await self._count("process-instances", running, "list_instances")
            if count:
                raise Conflict(
                    f"Process definition {key} has {count} running instance(s); delete it with cascade to cancel them",
                    engine=self.name,
                )
        else:
            # Camunda 8 refuses to delete a definition with running instances: cancel them first.
            for item in await self._search_all("process-instances", running, "list_instances"):
                await self._cancel(str(item["processInstanceKey"]))
            await self._settled(lambda: self._count("process-instances", running, "list_instances"), lambda n: n == 0)
        await self.http.request("POST", f"/resources/{key}/deletion", operation="delete_definition")
        await self._settled(
            lambda: self._find(f"/process-definitions/{key}", "get_definition"),
            lambda item: item is None or item.get("state") == "DELETED",
        )

    # ------------------------------------------------------------ instances
    async def start_instance(self, request: StartInstance, *, started_by: str) -> ProcessInstance:
        variables = dict(request.variables)
        if request.business_key is not None:
            variables[BUSINESS_KEY_VARIABLE] = TypedValue(value=request.business_key, type=VariableType.STRING)
        body: dict[str, Any] = (
            {"processDefinitionKey": self._key(request.definition_id, "process definition")}
            if request.definition_id
            else {"processDefinitionId": request.definition_key, "processDefinitionVersion": LATEST_VERSION}
        )
        body["variables"] = to_plain(variables)
        if request.tenant_id:
            body["tenantId"] = request.tenant_id
        if request.start_message is not None:
            definition_key = body.get("processDefinitionKey") or (await self._latest_key(request))
            xml = await self.get_definition_xml(definition_key)
            process_id = request.definition_key or (await self.get_definition(definition_key)).key
            body["startInstructions"] = [
                {"elementId": bpmn.message_start_event(xml, process_id, request.start_message)}
            ]
        markers = self._marker_changes(variables, [], known={})
        started_at = datetime.now(UTC)
        created = await self.http.json("POST", "/process-instances", operation="start_instance", json=body)
        instance_id = str(created["processInstanceKey"])
        meta = {"business_key": request.business_key, "started_by": started_by}
        await self.store.put(INSTANCE, instance_id, {name: value for name, value in meta.items() if value is not None})
        if markers:
            await self.store.put(VARIABLE_TYPES, instance_id, markers)
        await self._visible(f"/process-instances/{instance_id}", "get_instance")
        return mapping.started_instance(
            created,
            engine=self.name,
            business_key=request.business_key,
            started_by=started_by,
            started_at=started_at,
            variables=variables,
        )

    async def _latest_key(self, request: StartInstance) -> str:
        found = await self.list_definitions(
            DefinitionQuery(key=request.definition_key, tenant_id=request.tenant_id, size=1)
        )
        if not found.items:
            raise NotFound(f"No process definition with key {request.definition_key!r}", engine=self.name)
        return found.items[0].id

    # ------------------------------------------------------------ messages and signals
    async def correlate_message(self, message: MessageCorrelation, *, started_by: str) -> MessageResults:
        """Camunda 8 correlates by one correlation key: the single value of `correlation_keys`, else the business
        key (a process should use `=businessKey`, or a variable holding it, as its subscription's key), else the
        key of the only instance waiting for the message (several: 409). The
        waiting subscriptions are searched first (`POST /message-subscriptions/search`), for the 409 on several
        matches; then `POST /messages/correlation` (one receiver) or, with `all`, `POST /messages/publication`
        with no time-to-live (every waiting instance; what it starts is not reported: `published`).
        BadRequest for what Camunda 8 cannot correlate by (an instance id, several correlation keys)."""
        if message.process_instance_id is not None or len(message.correlation_keys) > 1:
            raise BadRequest(
                "Camunda 8 correlates a message by its name and one correlation key only: give business_key or a "
                "single correlation_keys entry, not process_instance_id",
                engine=self.name,
            )
        correlation_key: str | None = message.business_key
        if message.correlation_keys:
            (typed,) = message.correlation_keys.values()
            correlation_key = "" if typed.value is None else str(typed.value)
        variables = dict(message.variables)
        if message.business_key is not None:
            variables.setdefault(
                BUSINESS_KEY_VARIABLE, TypedValue(value=message.business_key, type=VariableType.STRING)
            )
        tenant = message.tenant_id or self.context.config.tenant_id
        filter = {
            "messageName": eq(message.message_name),
            "correlationKey": eq(correlation_key),  # None: any; the only waiting one's key is then used
            "messageSubscriptionState": eq("CREATED"),
            "tenantId": eq(tenant),
        }
        waiting = {
            str(item["processInstanceKey"]): item
            for item in await self._search_all("message-subscriptions", filter, "list_message_subscriptions")
        }
        if len(waiting) > 1 and not message.all:
            raise Conflict(
                f"Message {message.message_name!r} matches {len(waiting)} waiting instances ({', '.join(waiting)}); "
                "narrow it with business_key or correlation_keys, or give all=true",
                engine=self.name,
            )
        if correlation_key is None:
            correlation_key = next((str(item.get("correlationKey") or "") for item in waiting.values()), "")
        body: dict[str, Any] = {
            "name": message.message_name,
            "correlationKey": correlation_key,
            "variables": to_plain(variables),
        }
        if tenant:
            body["tenantId"] = tenant
        if message.all:
            published = await self.http.json(
                "POST", "/messages/publication", operation="publish_message", json={**body, "timeToLive": 0}
            )
            results = [
                CorrelationResult(type="correlated", instance_id=key, definition_key=item.get("processDefinitionId"))
                for key, item in waiting.items()
            ]
            return MessageResults(results=results, published=True, message_key=str(published.get("messageKey")))
        try:
            correlated = await self.http.json("POST", "/messages/correlation", operation="correlate_message", json=body)
        except NotFound as error:
            raise error.restated(
                NotFound,
                f"No process instance waits for message {message.message_name!r} with correlation key "
                f"{correlation_key!r}, and no process starts with it",
                engine=self.name,
            ) from None
        instance_id = str(correlated["processInstanceKey"])
        if instance_id in waiting:
            key = waiting[instance_id].get("processDefinitionId")
            return MessageResults(
                results=[CorrelationResult(type="correlated", instance_id=instance_id, definition_key=key)]
            )
        meta = {"business_key": message.business_key, "started_by": started_by}
        await self.store.put(INSTANCE, instance_id, {name: value for name, value in meta.items() if value is not None})
        await self._visible(f"/process-instances/{instance_id}", "get_instance")
        started = await self._find(f"/process-instances/{instance_id}", "get_instance")
        key = started.get("processDefinitionId") if started else None
        return MessageResults(results=[CorrelationResult(type="started", instance_id=instance_id, definition_key=key)])

    async def broadcast_signal(self, signal: SignalBroadcast, *, started_by: str) -> SignalResult:
        """`POST /signals/broadcast`; Camunda 8 answers the signal's key, not how many it reached."""
        body: dict[str, Any] = {"signalName": signal.signal_name, "variables": to_plain(signal.variables)}
        tenant = signal.tenant_id or self.context.config.tenant_id
        if tenant:
            body["tenantId"] = tenant
        result = await self.http.json("POST", "/signals/broadcast", operation="broadcast_signal", json=body)
        return SignalResult(signal_name=signal.signal_name, signal_key=str(result.get("signalKey")))

    async def modify_instance(self, instance_id: str, modification: InstanceModification) -> ProcessInstance:
        """`POST /process-instances/{key}/modification`: `start_before X` is an activate instruction for X (its
        variables in the instance's global scope), `start_after X` one for the target of X's single outgoing flow,
        `cancel X` a terminate instruction for each active element instance of X (found with
        `POST /element-instances/search`). Camunda 8 applies them in one command: the activations, then the
        terminations. `skip_listeners` and `annotation` have no Camunda 8 counterpart (the audit log keeps the
        annotation). Errors: NotFound, Conflict (ended), BadRequest (nothing active to cancel; the engine's
        rejection of an element it cannot activate)."""
        key = self._key(instance_id, "process instance")
        instance = await self._running(key, "modify it")
        xml: bytes | None = None
        activate: list[dict[str, Any]] = []
        terminate: list[dict[str, Any]] = []
        for instruction in modification.instructions:
            if instruction.type == "cancel":
                active = await self._active_elements(key, instruction.activity_id)
                if not active:
                    raise BadRequest(
                        f"Activity {instruction.activity_id!r} is not active in process instance {key}: nothing to "
                        "cancel",
                        engine=self.name,
                    )
                terminate += [{"elementInstanceKey": str(e["elementInstanceKey"])} for e in active]
                continue
            element_id = instruction.activity_id
            if instruction.type == "start_after":
                xml = xml or await self.get_definition_xml(str(instance["processDefinitionKey"]))
                element_id = bpmn.single_successor(xml, str(instance["processDefinitionId"]), element_id)
            activation: dict[str, Any] = {"elementId": element_id}
            if instruction.variables:
                activation["variableInstructions"] = [{"variables": to_plain(instruction.variables)}]
            activate.append(activation)
        await self.http.request(
            "POST",
            f"/process-instances/{key}/modification",
            operation="modify_instance",
            json={"activateInstructions": activate, "terminateInstructions": terminate},
        )
        cancelled = {t["elementInstanceKey"] for t in terminate}
        await self._settled(
            lambda: self._search_all("element-instances", {"processInstanceKey": key, "state": eq("ACTIVE")}, "modify"),
            lambda items: not cancelled & {str(item["elementInstanceKey"]) for item in items},
        )
        return await self.get_instance(instance_id)

    async def migrate_instance(self, instance_id: str, migration: InstanceMigration) -> ProcessInstance:
        """`POST /process-instances/{key}/migration` with `targetProcessDefinitionKey` and `mappingInstructions`:
        the `mappings`, plus one for each active element (`POST /element-instances/search`) whose id the target
        definition also has (Camunda 8 maps nothing by itself). Camunda 8 refuses an active element without a
        mapping, or mapped to one of another type, with a 409 INVALID_STATE naming it: a BadRequest here, as the
        request cannot succeed for this instance. Errors: NotFound, Conflict (ended), BadRequest."""
        key = self._key(instance_id, "process instance")
        target = self._key(migration.target_definition_id, "process definition")
        await self._running(key, "migrate it")
        target_ids = bpmn.flow_node_ids(await self.get_definition_xml(target), (await self.get_definition(target)).key)
        mappings = dict(migration.mappings)
        for element in await self._active_elements(key):
            element_id = element["elementId"]
            if element_id not in mappings and element_id in target_ids:
                mappings[element_id] = element_id
        body = {
            "targetProcessDefinitionKey": target,
            "mappingInstructions": [
                {"sourceElementId": source, "targetElementId": destination} for source, destination in mappings.items()
            ],
        }
        try:
            await self.http.request(
                "POST", f"/process-instances/{key}/migration", operation="migrate_instance", json=body
            )
        except Conflict as refused:
            raise refused.restated(BadRequest, refused.detail, engine=self.name) from None
        await self._settled(
            lambda: self._find(f"/process-instances/{key}", "get_instance"),
            lambda item: item is not None and str(item["processDefinitionKey"]) == target,
        )
        return await self.get_instance(instance_id)

    async def _running(self, key: str, action: str) -> dict[str, Any]:
        """The active process instance `key`; NotFound when unknown, Conflict when it has ended."""
        item = await self.http.json("GET", f"/process-instances/{key}", operation="get_instance")
        if item["state"] != "ACTIVE":
            raise Conflict(
                f"Cannot {action}: process instance {key} has already ended ({item['state'].lower()})",
                engine=self.name,
            )
        return dict(item)

    async def _active_elements(self, key: str, element_id: str | None = None) -> list[dict[str, Any]]:
        """The active element instances of process instance `key` (of `element_id` only, when given), without the
        process itself."""
        filter: dict[str, Any] = {"processInstanceKey": key, "state": eq("ACTIVE")}
        if element_id is not None:
            filter["elementId"] = element_id
        items = await self._search_all("element-instances", filter, "get_element_instances")
        return [item for item in items if item.get("type") != "PROCESS"]

    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        if query.status == "suspended":  # Camunda 8 has no suspended instances
            return queries.empty_page(query)
        filter = {
            "processDefinitionId": eq(query.definition_key),
            "processDefinitionKey": eq(query.definition_id),
            "state": eq(mapping.INSTANCE_STATE[query.status]) if query.status else None,
            "startDate": between(query.started_after, query.started_before),
            "hasIncident": query.has_incident,
            "tenantId": eq(query.tenant_id),
            "variables": queries.variable_filters(query.conditions, VariableScope.INSTANCE),
        }
        if query.business_key is not None:
            keys = await self.store.find(INSTANCE, "business_key", query.business_key)
            if not keys:
                return queries.empty_page(query)
            filter["processInstanceKey"] = {"$in": keys}
        return await self._instance_page(filter, query, "list_instances")

    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        key = self._key(instance_id, "process instance")
        item = await self.http.json("GET", f"/process-instances/{key}", operation="get_instance")
        meta = await self.store.get(INSTANCE, key)
        markers = await self.store.get(VARIABLE_TYPES, key)
        elements, incidents, tasks, variables = await asyncio.gather(
            self._search_all(
                "element-instances",
                {"processInstanceKey": key},
                "get_instance",
                sort=[{"field": "startDate", "order": "ASC"}],
            ),
            self._search_all("incidents", {"processInstanceKey": key, "state": "ACTIVE"}, "get_instance"),
            self._search_all("user-tasks", {"processInstanceKey": key}, "get_instance"),
            self._variable_items(key),
        )
        return mapping.instance_details(
            item,
            engine=self.name,
            meta=meta,
            elements=elements,
            incidents=[mapping.incident(incident, engine=self.name) for incident in incidents],
            variables=mapping.variables(variables, markers),
            assignees={str(task["elementInstanceKey"]): task.get("assignee") for task in tasks},
        )

    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        # Camunda 8 records no reason; the gateway's audit log keeps it.
        key = self._key(instance_id, "process instance")
        try:
            await self.http.request("POST", f"/process-instances/{key}/cancellation", operation="terminate_instance")
        except NotFound:
            await self._refuse_if_ended(instance_id, "terminate it")
            raise
        await self._settled(
            lambda: self._find(f"/process-instances/{key}", "get_instance"),
            lambda item: item is None or item["state"] != "ACTIVE",
        )

    async def get_variables(self, instance_id: str) -> Variables:
        variables, _ = await self._read_variables(self._key(instance_id, "process instance"))
        return variables

    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        key = self._key(instance_id, "process instance")
        current, known = await self._read_variables(key)
        deleted = [name for name in deletions if name in current]
        after = {name: typed for name, typed in current.items() if name not in deleted} | modifications
        if not modifications and not deleted:
            return after
        markers = self._marker_changes(modifications, deleted, known)
        # One request sets them all, so the change is applied completely or not at all.
        changes = to_plain(modifications) | dict.fromkeys(deleted)
        await self.http.request(
            "PUT",
            f"/element-instances/{key}/variables",
            operation="update_variables",
            idempotent=True,
            json={"variables": changes},
        )
        if markers:
            await self.store.put(VARIABLE_TYPES, key, markers)

        def shown(seen: tuple[Variables, Any]) -> bool:
            variables, _ = seen
            changed = all(variables.get(name) == typed for name, typed in modifications.items())
            return changed and not any(name in variables for name in deleted)

        await self._settled(lambda: self._read_variables(key), shown)
        return after

    # ------------------------------------------------------------ tasks
    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        """`POST /user-tasks/search`; each task carries `candidateGroups` and `candidateUsers` (`candidates` is not
        needed)."""
        if query.status == "delegated":
            raise NotSupported(
                "Camunda 8 cannot list tasks by delegation, which the gateway emulates", engine=self.name
            )
        if query.assignee is not None:
            assignee: dict[str, Any] | None = eq(query.assignee)
        elif query.unassigned or query.status == "created":
            assignee = {"$exists": False}
        elif query.unassigned is False or query.status == "assigned":
            assignee = {"$exists": True}
        else:
            assignee = None
        states = {"completed": eq("COMPLETED"), "cancelled": eq("CANCELED")}
        filter = {
            "state": states.get(query.status or "", {"$in": mapping.OPEN_TASK_STATES}),
            "assignee": assignee,
            "candidateGroup": eq(query.candidate_group),
            "candidateUser": eq(query.candidate_user),
            "processInstanceKey": query.instance_id,
            "processDefinitionId": query.definition_key,
            "dueDate": between(None, query.due_before),
            "tenantId": eq(query.tenant_id),
            "processInstanceVariables": queries.variable_filters(query.conditions, VariableScope.INSTANCE),
            "localVariables": queries.variable_filters(query.conditions, VariableScope.TASK),
        }
        sort = queries.sort(query, queries.TASK_SORT, "created", "tasks")
        body = queries.search(filter, sort=sort, offset=query.offset, limit=query.size)
        result = await self._search("user-tasks", body, "list_tasks")
        delegations = await self.store.get_many(TASK, [str(item["userTaskKey"]) for item in result["items"]])
        tasks = [
            mapping.task(item, engine=self.name, delegation=delegations.get(str(item["userTaskKey"]), {}))
            for item in result["items"]
        ]
        return queries.page(result, tasks, query)

    async def get_task(self, task_id: str) -> TaskDetails:
        key = self._key(task_id, "task")
        item = await self.http.json("GET", f"/user-tasks/{key}", operation="get_task")
        delegation = await self.store.get(TASK, key)
        variables, _ = await self._read_variables(str(item["processInstanceKey"]))
        return mapping.task_details(item, engine=self.name, delegation=delegation, variables=variables)

    async def claim_task(self, task_id: str, user_id: str) -> Task:
        # Without override Camunda 8 refuses (409) a task that another user holds.
        return await self._assign(task_id, user_id, allow_override=False, action="claim", delegation=NO_DELEGATION)

    async def unclaim_task(self, task_id: str) -> Task:
        key = self._key(task_id, "task")
        await self.http.request("DELETE", f"/user-tasks/{key}/assignee", operation="unclaim_task", idempotent=True)
        await self.store.put(TASK, key, NO_DELEGATION)
        return await self._task_assigned_to(key, None)

    async def assign_task(self, task_id: str, user_id: str) -> Task:
        return await self._assign(task_id, user_id, allow_override=True, action="assign", delegation=NO_DELEGATION)

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        key = self._key(task_id, "task")
        item = await self.http.json("GET", f"/user-tasks/{key}", operation="get_task")
        delegation = await self.store.get(TASK, key)
        # Delegating again keeps the first owner, as a delegation that is still pending returns to them.
        owner = delegation.get("owner") if mapping.is_delegated(item, delegation) else item.get("assignee")
        return await self._assign(
            task_id, user_id, allow_override=True, action="delegate", delegation={"owner": owner, "delegate": user_id}
        )

    async def complete_task(self, task_id: str, variables: Variables, *, user_id: str) -> Task:
        key = self._key(task_id, "task")
        item = await self.http.json("GET", f"/user-tasks/{key}", operation="get_task")
        task = mapping.task(item, engine=self.name, delegation=await self.store.get(TASK, key))
        instance_id, markers = str(item["processInstanceKey"]), {}
        if variables:  # they land in the instance's scope, where their declared types are kept
            markers = self._marker_changes(variables, [], known=await self.store.get(VARIABLE_TYPES, instance_id))
        await self.http.request(
            "POST",
            f"/user-tasks/{key}/completion",
            operation="complete_task",
            json={"variables": to_plain(variables)} if variables else {},
        )
        if markers:
            await self.store.put(VARIABLE_TYPES, instance_id, markers)
        await self._settled(
            lambda: self._find(f"/user-tasks/{key}", "get_task"),
            lambda found: found is None or found.get("state") not in mapping.OPEN_TASK_STATES,
        )
        return task

    # ------------------------------------------------------------ engine incidents
    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]:
        filter = {
            "state": "ACTIVE",
            "processInstanceKey": query.instance_id,
            "processDefinitionId": query.definition_key,
            "errorType": mapping.error_type(query.incident_type) if query.incident_type else None,
        }
        sort = queries.sort(query, queries.INCIDENT_SORT, "created", "incidents", queries.INCIDENT_TIEBREAK)
        body = queries.search(filter, sort=sort, offset=query.offset, limit=query.size)
        result = await self._search("incidents", body, "list_engine_incidents")
        incidents = [mapping.incident(item, engine=self.name) for item in result["items"]]
        return queries.page(result, incidents, query)

    async def get_engine_incident(self, incident_id: str) -> EngineIncident:
        key = self._key(incident_id, "incident")
        item = await self.http.json("GET", f"/incidents/{key}", operation="get_engine_incident")
        return mapping.incident(item, engine=self.name)

    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        key = self._key(incident_id, "incident")
        item = await self.http.json("GET", f"/incidents/{key}", operation="get_engine_incident")
        if item.get("state") != "ACTIVE":
            raise Conflict(f"Incident {key} is not open (state {item.get('state')})", engine=self.name)
        if item.get("jobKey"):  # a failed job runs again only once it has retries
            await self.http.request(
                "PATCH",
                f"/jobs/{item['jobKey']}",
                operation="update_job_retries",
                idempotent=True,
                json={"changeset": {"retries": retries}},
            )
        await self.http.request("POST", f"/incidents/{key}/resolution", operation="resolve_incident")
        await self._settled(
            lambda: self._find(f"/incidents/{key}", "get_engine_incident"),
            lambda found: found is None or found.get("state") != "ACTIVE",
        )

    # ------------------------------------------------------------ history and health
    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        filter = {
            "processDefinitionId": eq(query.definition_key),
            "startDate": between(query.started_after, query.started_before),
            "endDate": between(query.finished_after, None),
            "state": self._finished_filter(query.finished),
        }
        return await self._instance_page(filter, query, "history_instances")

    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]:
        filter = {
            "processDefinitionId": query.definition_key,
            "startDate": between(query.started_after, query.started_before),
            "endDate": between(query.finished_after, None),
            "state": self._finished_filter(query.finished),
        }
        sort = queries.sort(query, queries.ACTIVITY_SORT, "start_time", "activities")
        body = queries.search(filter, sort=sort, offset=query.offset, limit=query.size)
        result = await self._search("element-instances", body, "history_activities")
        return queries.page(result, [mapping.activity_record(item) for item in result["items"]], query)

    async def health(self) -> EngineHealth:
        topology = await self.http.json("GET", "/topology", operation="health")
        version = topology.get("gatewayVersion")
        try:
            await self.http.request("GET", "/status", operation="health")
        except EngineUnavailable:  # /status answers 503 while no partition has a leader
            return EngineHealth(
                status="down", version=version, detail="No partition of the cluster has a healthy leader"
            )
        return EngineHealth(status="up", version=version)

    # ------------------------------------------------------------ change feed
    async def read_changes(self, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
        """What the cluster did after `mark`, from its searches (adapters/zeebe/changes.py)."""
        return await changes.read_changes(self.http, mark, settled_before)

    async def read_assignees(self) -> list[OpenTaskAssignee]:
        """Who holds each open user task now (`POST /user-tasks/search`, state CREATED): Camunda 8 keeps no
        assignment history (adapters/zeebe/changes.py)."""
        created = await self._search_all(
            "user-tasks", {"state": "CREATED"}, "changes_assignees", sort=[{"field": "creationDate", "order": "ASC"}]
        )
        return [changes.open_task_assignee(row) for row in created]

    # ------------------------------------------------------------ helpers
    def _key(self, value: str, what: str) -> str:
        """An id given to the gateway as a Camunda 8 key; what cannot be a key names nothing there."""
        if not mapping.is_key(value):
            raise NotFound(f"No {what} with id {value!r}", engine=self.name)
        return value

    @staticmethod
    def _finished_filter(finished: bool | None) -> dict[str, Any] | None:
        if finished is None:
            return None
        return {"$in": mapping.FINISHED_INSTANCE_STATES} if finished else eq("ACTIVE")

    async def _search(self, resource: str, body: dict[str, Any], operation: str) -> dict[str, Any]:
        return await self.http.json("POST", f"/{resource}/search", operation=operation, idempotent=True, json=body)

    async def _search_all(
        self, resource: str, filter: dict[str, Any], operation: str, *, sort: list[dict[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        """Every match, read page by page with search cursors (`page.after` = the last page's `endCursor`): offsets
        stop at the secondary storage's result window and `totalItems` is capped beyond it (`hasMoreTotalItems`)."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            body = queries.search(filter, sort=sort, limit=SEARCH_BATCH, after=after)
            result = await self._search(resource, body, operation)
            items.extend(result["items"])
            after = result["page"].get("endCursor")
            if len(result["items"]) < SEARCH_BATCH or not after:
                return items

    async def _count(self, resource: str, filter: dict[str, Any], operation: str) -> int:
        result = await self._search(resource, queries.search(filter, limit=1), operation)
        return result["page"]["totalItems"]

    async def _find(self, path: str, operation: str) -> dict[str, Any] | None:
        try:
            return await self.http.json("GET", path, operation=operation)
        except NotFound:
            return None

    async def _visible(self, path: str, operation: str) -> None:
        await self._settled(lambda: self._find(path, operation), lambda item: item is not None)

    async def _settled(self, probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
        """Read with `probe` until `done` says secondary storage shows the write, or the time is up."""
        deadline = time.monotonic() + self.visibility_timeout
        delay = 0.05
        while True:
            seen = await probe()
            if done(seen) or time.monotonic() >= deadline:
                return seen
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _instance_page(
        self, filter: dict[str, Any], query: InstanceQuery | HistoryQuery, operation: str
    ) -> Page[ProcessInstance]:
        sort = queries.sort(query, queries.INSTANCE_SORT, "start_time", "instances", queries.INSTANCE_TIEBREAK)
        body = queries.search(filter, sort=sort, offset=query.offset, limit=query.size)
        result = await self._search("process-instances", body, operation)
        metas = await self.store.get_many(INSTANCE, [str(item["processInstanceKey"]) for item in result["items"]])
        instances = [
            mapping.instance(item, engine=self.name, meta=metas.get(str(item["processInstanceKey"]), {}))
            for item in result["items"]
        ]
        return queries.page(result, instances, query)

    async def _cancel(self, instance_key: str) -> None:
        with contextlib.suppress(NotFound):  # finished meanwhile
            await self.http.request(
                "POST", f"/process-instances/{instance_key}/cancellation", operation="terminate_instance"
            )

    async def _variable_items(self, instance_key: str) -> list[dict[str, Any]]:
        """The instance's own variables (its scope only), with full values where the search truncated them."""
        scope = {"processInstanceKey": eq(instance_key), "scopeKey": eq(instance_key)}
        items = await self._search_all("variables", scope, "get_variables")
        return [await self._full_value(item) if item.get("isTruncated") else item for item in items]

    async def _full_value(self, item: dict[str, Any]) -> dict[str, Any]:
        full = await self.http.json("GET", f"/variables/{item['variableKey']}", operation="get_variable")
        return {**item, "value": full["value"], "isTruncated": False}

    async def _read_variables(self, instance_key: str) -> tuple[Variables, dict[str, str | None]]:
        """The typed variables of an instance and the type markers they were read with."""
        items = await self._variable_items(instance_key)
        if not items:  # a search finds no variables of an unknown instance either: tell them apart
            await self.http.json("GET", f"/process-instances/{instance_key}", operation="get_instance")
        markers = await self.store.get(VARIABLE_TYPES, instance_key)
        return mapping.variables(items, markers), markers

    def _marker_changes(
        self, variables: Variables, deleted: list[str], known: dict[str, str | None]
    ) -> dict[str, str | None]:
        """The type markers to store after writing `variables` and deleting `deleted` (None clears one)."""
        markers = {name: mapping.type_marker(typed) for name, typed in variables.items()}
        markers |= dict.fromkeys(deleted, mapping.DELETED)
        changes = {name: marker for name, marker in markers.items() if marker != known.get(name)}
        too_long = sorted(name for name in changes if len(name) > MAX_MARKER_NAME)
        if too_long:
            raise ValidationFailed(
                f"On Camunda 8 the gateway keeps the type of a variable named with at most {MAX_MARKER_NAME} "
                f"characters; too long: {', '.join(too_long)}",
                errors=[{"loc": ["body", "variables", name], "msg": "name too long for its type"} for name in too_long],
            )
        return changes

    async def _assign(
        self, task_id: str, assignee: str, *, allow_override: bool, action: str, delegation: dict[str, str | None]
    ) -> Task:
        key = self._key(task_id, "task")
        await self.http.request(
            "POST",
            f"/user-tasks/{key}/assignment",
            operation=f"{action}_task",
            idempotent=True,
            json={"assignee": assignee, "allowOverride": allow_override, "action": action},
        )
        await self.store.put(TASK, key, delegation)
        return await self._task_assigned_to(key, assignee)

    async def _task_assigned_to(self, key: str, assignee: str | None) -> Task:
        """The task once secondary storage shows its new assignee (which the engine has accepted anyway)."""
        item = await self._settled(
            lambda: self._find(f"/user-tasks/{key}", "get_task"),
            lambda found: found is not None and (found.get("assignee") or None) == assignee,
        )
        if item is None:
            item = await self.http.json("GET", f"/user-tasks/{key}", operation="get_task")
        delegation = await self.store.get(TASK, key)
        return mapping.task({**item, "assignee": assignee}, engine=self.name, delegation=delegation)
