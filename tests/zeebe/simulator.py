"""A stateful, in-memory Camunda 8.8 serving the Orchestration Cluster REST API (`/v2`) to the adapter tests.

It answers with the paths, statuses and bodies of the official 8.8 spec (each route names its operationId)
and behaves like the real engine where the spec is silent:
- errors are RFC 9457 problems `{type, title, status, detail, instance}`; a broker rejection reads
  "Command 'X' rejected with code 'Y': ..." with the rejection type as title and NOT_FOUND 404,
  INVALID_STATE 409, INVALID_ARGUMENT 400, as Camunda's REST gateway maps them. The spec leaves some of
  these statuses out (404 of createProcessInstance and createElementInstanceVariables, 409 of
  deleteResource and resolveIncident), but a real 8.8 answers them;
- request bodies with unknown properties are rejected (400), and so is an advanced filter
  (`{"$eq": ...}`) on a field that only takes a plain value;
- a resource deployed again with the same name and content is a duplicate of its latest version;
- a definition with running instances cannot be deleted (409); a job incident cannot be resolved while
  the job has no retries (409);
- a process runs as a straight line of flow nodes: Camunda user tasks (`zeebe:userTask`) wait, service
  tasks create jobs. Unless `job_worker=False`, a built-in job worker handles jobs of type `charge`: it
  fails them without retries while the variable `fail` is true (incident JOB_NO_RETRIES) and completes
  them otherwise. Other jobs wait for a worker using the job endpoints;
- secondary storage (searches and gets) shows every write at once, without Camunda's lag.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from xml.etree import ElementTree

import httpx

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
ZEEBE = "{http://camunda.org/schema/zeebe/1.0}"
DEFAULT_TENANT = "<default>"
GATEWAY_VERSION = "8.8.0"
# Keys of partition 4 and up exceed 2^53 on a real cluster; starting there catches keys parsed as floats.
FIRST_KEY = 2**53 + 1
CHARGE_JOB_TYPE = "charge"
NOT_A_DOCUMENT = "Property 'variables' is invalid: Expected document to be a root level object"
OPEN_TASK = "CREATED"
JOB_TASKS = {"SERVICE_TASK", "SEND_TASK", "SCRIPT_TASK", "BUSINESS_RULE_TASK"}


# ------------------------------------------------------------------ errors
class Rejected(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def rejection(status: int, kind: str, intent: str, reason: str) -> Rejected:
    """A broker rejection worded as Camunda's REST gateway words it."""
    return Rejected(status, kind, f"Command '{intent}' rejected with code '{kind}': {reason}")


def not_found(intent: str, reason: str) -> Rejected:
    return rejection(404, "NOT_FOUND", intent, reason)


def invalid_state(intent: str, reason: str) -> Rejected:
    return rejection(409, "INVALID_STATE", intent, reason)


def invalid_argument(intent: str, reason: str) -> Rejected:
    return rejection(400, "INVALID_ARGUMENT", intent, reason)


def bad_request(detail: str) -> Rejected:
    return Rejected(400, "Bad Request", detail)


def unparsable(name: str) -> Rejected:
    return bad_request(f"Request property [{name}] cannot be parsed")


def missing(what: str, key: int) -> Rejected:
    """A get from secondary storage that finds nothing."""
    return Rejected(404, "NOT_FOUND", f"{what} with key '{key}' not found")


# ------------------------------------------------------------------ model
@dataclass
class Node:
    id: str
    name: str | None
    type: str  # BPMN element type as Camunda 8 names it, e.g. USER_TASK
    job_type: str | None = None
    retries: int = 3
    user_task: bool = False
    assignee: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    message: str | None = None  # what a message start, catch or boundary event waits for
    correlation_key: str | None = None  # its subscription's correlationKey expression, `=variable`
    signal: str | None = None
    attached_to: str | None = None  # a boundary event's activity


@dataclass
class Subscription:
    """A message or signal subscription of a waiting element (a catch event, or a boundary event's activity)."""

    key: int
    kind: str  # "message" or "signal"
    name: str
    correlation_key: str
    element: Element
    node: Node  # the catching node: the catch event itself or a boundary event
    state: str = "CREATED"


@dataclass
class Definition:
    key: int
    process_id: str
    name: str | None
    version: int
    resource_name: str
    xml: bytes
    checksum: str
    tenant_id: str
    nodes: list[Node]


@dataclass
class Instance:
    key: int
    definition: Definition
    start: datetime
    tenant_id: str
    state: str = "ACTIVE"
    end: datetime | None = None


@dataclass
class Element:
    key: int
    instance: Instance
    node: Node
    position: int
    start: datetime
    state: str = "ACTIVE"
    end: datetime | None = None
    incident_key: int | None = None


@dataclass
class Variable:
    key: int
    name: str
    value: Any
    scope_key: int
    instance: Instance


@dataclass
class UserTask:
    key: int
    element: Element
    created: datetime
    assignee: str | None
    state: str = OPEN_TASK
    completed: datetime | None = None


@dataclass
class Job:
    key: int
    element: Element
    type: str
    retries: int
    state: str = "ACTIVATABLE"  # ACTIVATABLE, ACTIVATED, FAILED (incident), COMPLETED, CANCELED
    worker: str | None = None
    deadline: datetime | None = None


@dataclass
class Incident:
    key: int
    element: Element
    job: Job | None
    error_type: str
    message: str
    created: datetime
    state: str = "ACTIVE"


# ------------------------------------------------------------------ searching
# Filter fields of each search as the 8.8 spec types them: "plain" takes only a value, "property" also an
# advanced filter object, "date" is a date-time property. Fields absent from the result items are listed
# in SPECIAL_FILTERS when the simulator supports them; any other is refused as unsupported.
FILTERS: dict[str, dict[str, str]] = {
    "process-definitions": {
        "name": "property",
        "isLatestVersion": "plain",
        "resourceName": "plain",
        "version": "plain",
        "versionTag": "plain",
        "processDefinitionId": "property",
        "tenantId": "plain",
        "processDefinitionKey": "plain",
        "hasStartForm": "plain",
        "state": "plain",
    },
    "process-instances": {
        "startDate": "date",
        "endDate": "date",
        "state": "property",
        "hasIncident": "plain",
        "tenantId": "property",
        "variables": "plain",
        "processInstanceKey": "property",
        "parentProcessInstanceKey": "property",
        "parentElementInstanceKey": "property",
        "batchOperationId": "property",
        "batchOperationKey": "property",
        "errorMessage": "property",
        "hasRetriesLeft": "plain",
        "elementInstanceState": "property",
        "elementId": "property",
        "hasElementInstanceIncident": "plain",
        "incidentErrorHashCode": "property",
        "tags": "plain",
        "processDefinitionId": "property",
        "processDefinitionName": "property",
        "processDefinitionVersion": "property",
        "processDefinitionVersionTag": "property",
        "processDefinitionKey": "property",
        "$or": "plain",
    },
    "element-instances": {
        "processDefinitionId": "plain",
        "state": "property",
        "type": "plain",
        "elementId": "plain",
        "elementName": "plain",
        "hasIncident": "plain",
        "tenantId": "plain",
        "elementInstanceKey": "plain",
        "processInstanceKey": "plain",
        "processDefinitionKey": "plain",
        "incidentKey": "plain",
        "startDate": "date",
        "endDate": "date",
        "elementInstanceScopeKey": "plain",
    },
    "user-tasks": {
        "state": "property",
        "assignee": "property",
        "priority": "property",
        "elementId": "plain",
        "name": "plain",
        "candidateGroup": "property",
        "candidateUser": "property",
        "tenantId": "property",
        "processDefinitionId": "plain",
        "creationDate": "date",
        "completionDate": "date",
        "followUpDate": "date",
        "dueDate": "date",
        "processInstanceVariables": "plain",
        "localVariables": "plain",
        "userTaskKey": "plain",
        "processDefinitionKey": "plain",
        "processInstanceKey": "plain",
        "elementInstanceKey": "plain",
    },
    "variables": {
        "name": "property",
        "value": "property",
        "tenantId": "plain",
        "isTruncated": "plain",
        "variableKey": "property",
        "scopeKey": "property",
        "processInstanceKey": "property",
    },
    "message-subscriptions": {
        "messageSubscriptionKey": "property",
        "processDefinitionId": "property",
        "processInstanceKey": "property",
        "elementId": "property",
        "elementInstanceKey": "property",
        "messageSubscriptionState": "property",
        "lastUpdatedDate": "date",
        "messageName": "property",
        "correlationKey": "property",
        "tenantId": "property",
    },
    "incidents": {
        "processDefinitionId": "plain",
        "errorType": "plain",
        "errorMessage": "plain",
        "elementId": "plain",
        "creationTime": "date",
        "state": "plain",
        "tenantId": "plain",
        "incidentKey": "plain",
        "processDefinitionKey": "plain",
        "processInstanceKey": "plain",
        "elementInstanceKey": "plain",
        "jobKey": "plain",
    },
}
SORTS: dict[str, set[str]] = {
    "process-definitions": {
        "processDefinitionKey",
        "name",
        "resourceName",
        "version",
        "versionTag",
        "processDefinitionId",
        "tenantId",
    },
    "process-instances": {
        "processInstanceKey",
        "processDefinitionId",
        "processDefinitionName",
        "processDefinitionVersion",
        "processDefinitionVersionTag",
        "processDefinitionKey",
        "parentProcessInstanceKey",
        "parentElementInstanceKey",
        "startDate",
        "endDate",
        "state",
        "hasIncident",
        "tenantId",
    },
    "element-instances": {
        "elementInstanceKey",
        "processInstanceKey",
        "processDefinitionKey",
        "processDefinitionId",
        "startDate",
        "endDate",
        "elementId",
        "elementName",
        "type",
        "state",
        "incidentKey",
        "tenantId",
    },
    "user-tasks": {"creationDate", "completionDate", "followUpDate", "dueDate", "priority", "name"},
    "variables": {"value", "name", "tenantId", "variableKey", "scopeKey", "processInstanceKey"},
    "message-subscriptions": {"messageSubscriptionKey", "processInstanceKey", "messageName", "correlationKey"},
    "incidents": {
        "incidentKey",
        "processDefinitionKey",
        "processDefinitionId",
        "processInstanceKey",
        "errorType",
        "errorMessage",
        "elementId",
        "elementInstanceKey",
        "creationTime",
        "state",
        "jobKey",
        "tenantId",
    },
}
ITEM_KEYS = {
    "process-definitions": "processDefinitionKey",
    "process-instances": "processInstanceKey",
    "element-instances": "elementInstanceKey",
    "user-tasks": "userTaskKey",
    "variables": "variableKey",
    "incidents": "incidentKey",
    "message-subscriptions": "messageSubscriptionKey",
}
SPECIAL_FILTERS: dict[str, Callable[[dict[str, Any], Any, str], bool]] = {
    "candidateGroup": lambda item, condition, kind: any(
        _matches(group, condition, kind, "candidateGroup") for group in item["candidateGroups"]
    ),
    "candidateUser": lambda item, condition, kind: any(
        _matches(user, condition, kind, "candidateUser") for user in item["candidateUsers"]
    ),
}


def _names(value: str | None) -> list[str]:
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _instant(text: Any) -> datetime:
    if not isinstance(text, str):
        raise bad_request(f"Expected a date-time, got {text!r}")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _like(pattern: str) -> re.Pattern[str]:
    parts, escaped = [], False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            parts.append({"*": ".*", "?": "."}.get(char, re.escape(char)))
    return re.compile("".join(parts))


def _equal(actual: Any, expected: Any, kind: str) -> bool:
    if kind == "date":
        return actual is not None and _instant(actual) == _instant(expected)
    return actual == expected


def _compare(actual: Any, bound: Any, kind: str, operator: str) -> bool:
    if actual is None:
        return False
    left, right = (_instant(actual), _instant(bound)) if kind == "date" else (actual, bound)
    return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[operator]


def _matches(actual: Any, condition: Any, kind: str, name: str) -> bool:
    if not isinstance(condition, dict):
        return _equal(actual, condition, kind)
    if kind == "plain":
        raise unparsable(f"filter.{name}")
    for operator, argument in condition.items():
        match operator:
            case "$eq":
                ok = _equal(actual, argument, kind)
            case "$neq":
                ok = not _equal(actual, argument, kind)
            case "$exists":
                ok = (actual is not None) == argument
            case "$in" | "$notIn":
                if not isinstance(argument, list):
                    raise unparsable(f"filter.{name}.{operator}")
                found = any(_equal(actual, value, kind) for value in argument)
                ok = found if operator == "$in" else not found
            case "$gt" | "$gte" | "$lt" | "$lte":
                ok = _compare(actual, argument, kind, operator)
            case "$like":
                ok = actual is not None and _like(argument).fullmatch(str(actual)) is not None
            case _:
                raise unparsable(f"filter.{name}.{operator}")
        if not ok:
            return False
    return True


# ------------------------------------------------------------------ the simulator
class Simulator:
    def __init__(self, *, job_worker: bool = True, truncate_at: int = 8191, total_items_cap: int = 10_000) -> None:
        self.job_worker = job_worker
        self.truncate_at = truncate_at
        # Secondary storage counts at most this many matches (`hasMoreTotalItems` beyond) and pages by offset only
        # within that window; cursors (`after`) reach past it.
        self.total_items_cap = total_items_cap
        self.healthy = True
        self.transport = httpx.MockTransport(self.handle)
        self._keys = itertools.count(FIRST_KEY)
        self.definitions: dict[int, Definition] = {}
        self.last_versions: dict[tuple[str, str], int] = {}  # versions are never reused, even after deletion
        self.instances: dict[int, Instance] = {}
        self.elements: dict[int, Element] = {}
        self.variables: dict[int, Variable] = {}
        self.user_tasks: dict[int, UserTask] = {}
        self.jobs: dict[int, Job] = {}
        self.incidents: dict[int, Incident] = {}
        self.subscriptions: dict[int, Subscription] = {}
        # (method, path, handler), each commented with the spec's operationId
        routes: list[tuple[str, str, Callable[..., httpx.Response]]] = [
            ("GET", "/topology", self.get_topology),  # getTopology
            ("GET", "/status", self.get_status),  # getStatus
            ("POST", "/deployments", self.create_deployment),  # createDeployment
            ("POST", "/resources/{resourceKey}/deletion", self.delete_resource),  # deleteResource
            ("POST", "/process-definitions/search", self.search_process_definitions),  # searchProcessDefinitions
            ("GET", "/process-definitions/{processDefinitionKey}", self.get_process_definition),  # getProcessDefinition
            # getProcessDefinitionXML
            ("GET", "/process-definitions/{processDefinitionKey}/xml", self.get_process_definition_xml),
            ("POST", "/process-instances", self.create_process_instance),  # createProcessInstance
            ("POST", "/process-instances/search", self.search_process_instances),  # searchProcessInstances
            ("GET", "/process-instances/{processInstanceKey}", self.get_process_instance),  # getProcessInstance
            # cancelProcessInstance
            ("POST", "/process-instances/{processInstanceKey}/cancellation", self.cancel_process_instance),
            # modifyProcessInstance
            ("POST", "/process-instances/{processInstanceKey}/modification", self.modify_process_instance),
            # migrateProcessInstance
            ("POST", "/process-instances/{processInstanceKey}/migration", self.migrate_process_instance),
            ("POST", "/element-instances/search", self.search_element_instances),  # searchElementInstances
            # createElementInstanceVariables
            ("PUT", "/element-instances/{elementInstanceKey}/variables", self.set_variables),
            ("POST", "/variables/search", self.search_variables),  # searchVariables
            ("GET", "/variables/{variableKey}", self.get_variable),  # getVariable
            ("POST", "/user-tasks/search", self.search_user_tasks),  # searchUserTasks
            ("GET", "/user-tasks/{userTaskKey}", self.get_user_task),  # getUserTask
            ("POST", "/user-tasks/{userTaskKey}/assignment", self.assign_user_task),  # assignUserTask
            ("DELETE", "/user-tasks/{userTaskKey}/assignee", self.unassign_user_task),  # unassignUserTask
            ("POST", "/user-tasks/{userTaskKey}/completion", self.complete_user_task),  # completeUserTask
            ("POST", "/incidents/search", self.search_incidents),  # searchIncidents
            ("GET", "/incidents/{incidentKey}", self.get_incident),  # getIncident
            ("POST", "/incidents/{incidentKey}/resolution", self.resolve_incident),  # resolveIncident
            ("POST", "/jobs/activation", self.activate_jobs),  # activateJobs
            ("PATCH", "/jobs/{jobKey}", self.update_job),  # updateJob
            ("POST", "/jobs/{jobKey}/failure", self.fail_job),  # failJob
            ("POST", "/jobs/{jobKey}/completion", self.complete_job),  # completeJob
            ("POST", "/messages/correlation", self.correlate_message),  # correlateMessage
            ("POST", "/messages/publication", self.publish_message),  # publishMessage
            ("POST", "/signals/broadcast", self.broadcast_signal),  # broadcastSignal
            ("POST", "/message-subscriptions/search", self.search_message_subscriptions),  # searchMessageSubscriptions
        ]
        self._routes = [
            (method, re.compile("^/v2" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), handler)
            for method, path, handler in routes
        ]

    # ------------------------------------------------------------ transport
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and method == request.method:
                try:
                    keys = {name: self._key_param(name, value) for name, value in match.groupdict().items()}
                    return handler(request, **keys)
                except Rejected as problem:
                    return self._problem(problem, path)
        return self._problem(Rejected(404, "Not Found", f"No endpoint {request.method} {path}."), path)

    @staticmethod
    def _problem(problem: Rejected, path: str) -> httpx.Response:
        body = {
            "type": "about:blank",
            "title": problem.title,
            "status": problem.status,
            "detail": problem.detail,
            "instance": path,
        }
        return httpx.Response(
            problem.status, content=json.dumps(body).encode(), headers={"Content-Type": "application/problem+json"}
        )

    @staticmethod
    def _json(body: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    @staticmethod
    def _present(result: dict[str, Any]) -> dict[str, Any]:
        """A result without its empty fields: Camunda 8.8 leaves them out (8.9 sends nulls)."""
        return {name: value for name, value in result.items() if value is not None}

    @staticmethod
    def _key_param(name: str, value: str) -> int:
        if not re.fullmatch(r"-?[0-9]{1,19}", value):
            raise bad_request(f"Failed to convert '{name}' with value: '{value}'")
        return int(value)

    @staticmethod
    def _body(request: httpx.Request, allowed: set[str], *, required: bool = False) -> dict[str, Any]:
        if not request.content:
            if required:
                raise bad_request("Required request body is missing")
            return {}
        try:
            body = json.loads(request.content)
        except ValueError:
            raise bad_request("Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        for name in body:
            if name not in allowed:
                raise unparsable(name)
        return body

    def _next_key(self) -> int:
        return next(self._keys)

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    # ------------------------------------------------------------ cluster
    def get_topology(self, request: httpx.Request) -> httpx.Response:
        partition = {"partitionId": 1, "role": "leader", "health": "healthy" if self.healthy else "unhealthy"}
        broker = {"nodeId": 0, "host": "zeebe", "port": 26501, "partitions": [partition], "version": GATEWAY_VERSION}
        return self._json(
            {
                "brokers": [broker],
                "clusterSize": 1,
                "partitionsCount": 1,
                "replicationFactor": 1,
                "gatewayVersion": GATEWAY_VERSION,
                "lastCompletedChangeId": "-1",
            }
        )

    def get_status(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(204 if self.healthy else 503)

    # ------------------------------------------------------------ deployments and definitions
    def create_deployment(self, request: httpx.Request) -> httpx.Response:
        resources, fields = self._multipart(request)
        tenant_id = fields.get("tenantId") or DEFAULT_TENANT
        self._check_tenant(tenant_id, "Deploy Resources")
        if not resources:
            raise invalid_argument("CREATE", "Expected to deploy at least one resource, but none given")
        parsed, errors = [], []
        for resource, content in resources:  # the deployment is atomic: check every resource first
            try:
                parsed.extend((resource, content, *process) for process in self._parse_bpmn(resource, content))
            except ValueError as exc:
                errors.append(f"'{resource}': {exc}")
        if errors:
            reason = "Expected to deploy new resources, but encountered the following errors:\n" + "\n".join(errors)
            raise invalid_argument("CREATE", reason)
        deployed = [
            self._deploy_process(resource, content, tenant_id, *process) for resource, content, *process in parsed
        ]
        return self._json(
            {
                "tenantId": tenant_id,
                "deploymentKey": str(self._next_key()),
                "deployments": [
                    {
                        "processDefinition": {
                            "processDefinitionId": definition.process_id,
                            "processDefinitionVersion": definition.version,
                            "resourceName": definition.resource_name,
                            "tenantId": definition.tenant_id,
                            "processDefinitionKey": str(definition.key),
                        }
                    }
                    for definition in deployed
                ],
            }
        )

    @staticmethod
    def _multipart(request: httpx.Request) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise Rejected(415, "Unsupported Media Type", f"Content-Type '{content_type}' is not supported.")
        header = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + request.content)
        resources, fields = [], {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                resources.append((filename, payload))
            elif name == "tenantId":
                fields["tenantId"] = payload.decode()
            else:
                raise unparsable(str(name))
        return resources, fields

    @staticmethod
    def _check_tenant(tenant_id: str, request_name: str) -> None:
        if tenant_id != DEFAULT_TENANT:
            raise invalid_argument(
                "CREATE",
                f"Expected to handle request {request_name} with tenant identifier '{tenant_id}', "
                "but multi-tenancy is disabled",
            )

    @staticmethod
    def _parse_bpmn(name: str, content: bytes) -> list[tuple[str, str | None, list[Node]]]:
        """The executable processes of a resource as (id, name, nodes in execution order)."""
        if not name.endswith((".bpmn", ".xml")):
            raise ValueError("unknown resource type; expected a .bpmn or .xml file")
        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError as exc:
            raise ValueError(f"invalid XML: {exc}") from None
        processes = [p for p in root.iter(f"{BPMN}process") if p.get("isExecutable") == "true"]
        if not processes:
            raise ValueError("must contain at least one executable process")
        names = {}
        for kind in ("message", "signal"):
            for element in root.iter(f"{BPMN}{kind}"):
                subscription = element.find(f".//{ZEEBE}subscription")
                key = subscription.get("correlationKey") if subscription is not None else None
                names[element.get("id")] = (element.get("name") or element.get("id"), key)
        return [(process.get("id", ""), process.get("name"), Simulator._nodes(process, names)) for process in processes]

    @staticmethod
    def _nodes(process: ElementTree.Element, names: dict[str | None, tuple[str, str | None]]) -> list[Node]:
        """The main path from the start event, then each boundary event's path (a boundary event leads to an end)."""
        flows: dict[str, list[str]] = {}
        for flow in process.iter(f"{BPMN}sequenceFlow"):
            flows.setdefault(flow.get("sourceRef", ""), []).append(flow.get("targetRef", ""))
        elements = {child.get("id", ""): child for child in process if child.tag != f"{BPMN}sequenceFlow"}
        starts = [element for element in elements.values() if element.tag == f"{BPMN}startEvent"]
        if len(starts) != 1:
            raise ValueError(f"process '{process.get('id')}' must have exactly one none start event")
        nodes: list[Node] = []
        boundaries = [element for element in elements.values() if element.tag == f"{BPMN}boundaryEvent"]
        for first in [starts[0], *boundaries]:
            current = first
            while current is not None and len(nodes) < len(elements):
                nodes.append(Simulator._node(current, names))
                targets = flows.get(current.get("id", ""), [])
                current = elements.get(targets[0]) if targets else None
        return nodes

    @staticmethod
    def _node(element: ElementTree.Element, names: dict[str | None, tuple[str, str | None]]) -> Node:
        tag = element.tag.removeprefix(BPMN)
        element_type = re.sub(r"(?<!^)(?=[A-Z])", "_", tag).upper()  # userTask -> USER_TASK
        node = Node(id=element.get("id", ""), name=element.get("name"), type=element_type)
        message = element.find(f"{BPMN}messageEventDefinition")
        signal = element.find(f"{BPMN}signalEventDefinition")
        if message is not None:
            node.message, node.correlation_key = names.get(message.get("messageRef"), (None, None))
        if signal is not None:
            node.signal = names.get(signal.get("signalRef"), (None, None))[0]
        node.attached_to = element.get("attachedToRef")
        if node.type in ("INTERMEDIATE_CATCH_EVENT", "BOUNDARY_EVENT") and node.message is None and node.signal is None:
            raise ValueError(f"the simulator catches messages and signals only; {tag} '{node.id}' needs a real engine")
        task_definition = element.find(f".//{ZEEBE}taskDefinition")
        if node.type == "USER_TASK":
            assignment = element.find(f".//{ZEEBE}assignmentDefinition")
            if assignment is not None:
                node.assignee = assignment.get("assignee")
                node.candidate_groups = _names(assignment.get("candidateGroups"))
                node.candidate_users = _names(assignment.get("candidateUsers"))
            node.user_task = element.find(f".//{ZEEBE}userTask") is not None
            if not node.user_task:  # a job-based user task (deprecated)
                node.job_type = "io.camunda.zeebe:userTask"
        elif node.type in JOB_TASKS:
            if task_definition is None or not task_definition.get("type"):
                raise ValueError(
                    f"- Element: {node.id}\n    - ERROR: Must have exactly one 'zeebe:taskDefinition' extension element"
                )
            node.job_type = task_definition.get("type")
            node.retries = int(task_definition.get("retries") or 3)
        return node

    def _deploy_process(
        self, resource_name: str, content: bytes, tenant_id: str, process_id: str, name: str | None, nodes: list[Node]
    ) -> Definition:
        checksum = hashlib.md5(content).hexdigest()  # a content fingerprint, as Zeebe keeps it
        latest = self._latest(process_id, tenant_id)
        if latest is not None and latest.checksum == checksum and latest.resource_name == resource_name:
            return latest  # a duplicate: Camunda 8 answers with the latest version
        version = self.last_versions.get((process_id, tenant_id), 0) + 1
        self.last_versions[(process_id, tenant_id)] = version
        definition = Definition(
            self._next_key(), process_id, name, version, resource_name, content, checksum, tenant_id, nodes
        )
        self.definitions[definition.key] = definition
        return definition

    def _latest(self, process_id: str, tenant_id: str) -> Definition | None:
        versions = [d for d in self.definitions.values() if d.process_id == process_id and d.tenant_id == tenant_id]
        return max(versions, key=lambda d: d.version, default=None)

    def delete_resource(self, request: httpx.Request, resourceKey: int) -> httpx.Response:
        self._body(request, {"operationReference"})
        definition = self.definitions.get(resourceKey)
        if definition is None:
            raise not_found("DELETE", f"Expected to delete resource but no resource found with key `{resourceKey}`")
        if any(i.definition is definition and i.state == "ACTIVE" for i in self.instances.values()):
            raise invalid_state(
                "DELETE", f"Expected to delete resource with key `{resourceKey}` but there are still running instances"
            )
        del self.definitions[resourceKey]
        return httpx.Response(200)

    def search_process_definitions(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        items = [self._definition_result(d) for d in self.definitions.values()]
        if (body.get("filter") or {}).get("isLatestVersion"):
            by_version = sorted(self.definitions.values(), key=lambda d: d.version)
            latest = {(d.process_id, d.tenant_id): str(d.key) for d in by_version}.values()
            items = [item for item in items if item["processDefinitionKey"] in latest]
            sort_fields = {c.get("field") for c in body.get("sort") or []}
            if not sort_fields <= {"processDefinitionId", "tenantId"}:
                raise bad_request("Searching latest versions sorts by processDefinitionId and tenantId only")
            page = body.get("page") or {}
            body = {**body, "page": page if "after" in page else {**page, "from": 0}}  # `from` is ignored here
        return self._search("process-definitions", body, items, skip=frozenset({"isLatestVersion"}))

    def get_process_definition(self, request: httpx.Request, processDefinitionKey: int) -> httpx.Response:
        return self._json(self._present(self._definition_result(self._definition(processDefinitionKey))))

    def get_process_definition_xml(self, request: httpx.Request, processDefinitionKey: int) -> httpx.Response:
        definition = self._definition(processDefinitionKey)
        return httpx.Response(200, content=definition.xml, headers={"Content-Type": "text/xml"})

    def _definition(self, key: int) -> Definition:
        if key not in self.definitions:
            raise missing("Process definition", key)
        return self.definitions[key]

    @staticmethod
    def _definition_result(definition: Definition) -> dict[str, Any]:
        return {
            "name": definition.name,
            "resourceName": definition.resource_name,
            "version": definition.version,
            "processDefinitionId": definition.process_id,
            "tenantId": definition.tenant_id,
            "processDefinitionKey": str(definition.key),
            "hasStartForm": False,
            "state": "ACTIVE",
        }

    # ------------------------------------------------------------ process instances
    def create_process_instance(self, request: httpx.Request) -> httpx.Response:
        common = {
            "variables",
            "tenantId",
            "operationReference",
            "startInstructions",
            "runtimeInstructions",
            "awaitCompletion",
            "fetchVariables",
            "requestTimeout",
            "tags",
        }
        by_id = {"processDefinitionId", "processDefinitionVersion"}
        body = self._body(request, common | by_id | {"processDefinitionKey"}, required=True)
        by_key = "processDefinitionKey" in body
        if by_key and body.keys() & by_id:  # the request takes a key or an id, never both
            raise unparsable("processDefinitionId")
        tenant_id = body.get("tenantId") or DEFAULT_TENANT
        self._check_tenant(tenant_id, "Create Process Instance")
        if by_key:
            key = self._key_param("processDefinitionKey", str(body["processDefinitionKey"]))
            definition = self.definitions.get(key)
            if definition is None:
                raise not_found("CREATE", f"Expected to find process definition with key '{key}', but none found")
        elif "processDefinitionId" in body:
            process_id, version = body["processDefinitionId"], body.get("processDefinitionVersion", -1)
            candidates = [
                d
                for d in self.definitions.values()
                if d.process_id == process_id and d.tenant_id == tenant_id and version in (-1, d.version)
            ]
            definition = max(candidates, key=lambda d: d.version, default=None)
            if definition is None:
                raise not_found(
                    "CREATE", f"Expected to find process definition with process ID '{process_id}', but none found"
                )
        else:
            raise invalid_argument("CREATE", "No processDefinitionId or processDefinitionKey provided.")
        options = ("runtimeInstructions", "awaitCompletion", "fetchVariables")
        if any(body.get(option) for option in options):
            raise bad_request("The simulator starts instances at the start event, without waiting or fetching")
        instructions = body.get("startInstructions") or []
        ids = [node.id for node in definition.nodes]
        if len(instructions) > 1 or any(i.get("elementId") not in ids for i in instructions):
            raise bad_request("The simulator starts before one element of the process only")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise invalid_argument("CREATE", NOT_A_DOCUMENT)
        instance = Instance(self._next_key(), definition, self._now(), definition.tenant_id)
        self.instances[instance.key] = instance
        for name, value in variables.items():
            self._set_variable(instance, instance.key, name, value)
        self._activate(instance, ids.index(instructions[0]["elementId"]) if instructions else 0)
        return self._json(
            {
                "processDefinitionId": definition.process_id,
                "processDefinitionKey": str(definition.key),
                "processDefinitionVersion": definition.version,
                "tenantId": definition.tenant_id,
                "variables": {},
                "processInstanceKey": str(instance.key),
                "tags": [],
            }
        )

    def search_process_instances(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        items = [self._instance_result(i) for i in self.instances.values()]
        special = {
            "variables": lambda item, condition, kind: self._variables_match(item["processInstanceKey"], condition)
        }
        return self._search("process-instances", body, items, special=special)

    def _variables_match(self, scope_key: str | None, conditions: Any) -> bool:
        """VariableValueFilterProperty items (`{name, value}`) against the JSON text of the scope's variables."""
        if not isinstance(conditions, list):
            raise unparsable("filter.variables")
        for condition in conditions:
            if not isinstance(condition, dict) or set(condition) != {"name", "value"}:
                raise unparsable("filter.variables")
            found = next(
                (v for v in self.variables.values() if str(v.scope_key) == scope_key and v.name == condition["name"]),
                None,
            )
            if found is None:  # only instances that have the variable match, whatever the operator
                return False
            text = json.dumps(found.value, separators=(",", ":"), ensure_ascii=False)
            if not _matches(text, condition["value"], "property", "variables.value"):
                return False
        return True

    def get_process_instance(self, request: httpx.Request, processInstanceKey: int) -> httpx.Response:
        if processInstanceKey not in self.instances:
            raise missing("Process instance", processInstanceKey)
        return self._json(self._present(self._instance_result(self.instances[processInstanceKey])))

    def cancel_process_instance(self, request: httpx.Request, processInstanceKey: int) -> httpx.Response:
        self._body(request, {"operationReference"})
        instance = self.instances.get(processInstanceKey)
        if instance is None or instance.state != "ACTIVE":
            key = processInstanceKey
            reason = f"Expected to cancel a process instance with key '{key}', but no such process was found"
            raise not_found("CANCEL", reason)
        now = self._now()
        for element in self._elements_of(instance):
            if element.state == "ACTIVE":
                element.state, element.end = "TERMINATED", now
        for task in self.user_tasks.values():
            if task.element.instance is instance and task.state == OPEN_TASK:
                task.state = "CANCELED"
        for job in self.jobs.values():
            if job.element.instance is instance and job.state not in ("COMPLETED", "CANCELED"):
                job.state = "CANCELED"
        for incident in self.incidents.values():
            if incident.element.instance is instance:
                incident.state = "RESOLVED"
        for subscription in self.subscriptions.values():
            if subscription.element.instance is instance and subscription.state == "CREATED":
                subscription.state = "DELETED"
        instance.state, instance.end = "TERMINATED", now
        return httpx.Response(204)

    def _instance_result(self, instance: Instance) -> dict[str, Any]:
        definition = instance.definition
        return {
            "processDefinitionId": definition.process_id,
            "processDefinitionName": definition.name or definition.process_id,
            "processDefinitionVersion": definition.version,
            "startDate": iso(instance.start),
            "endDate": iso(instance.end),
            "state": instance.state,
            "hasIncident": any(i.element.instance is instance and i.state == "ACTIVE" for i in self.incidents.values()),
            "tenantId": instance.tenant_id,
            "processInstanceKey": str(instance.key),
            "processDefinitionKey": str(definition.key),
            "tags": [],
        }

    # ------------------------------------------------------------ modification and migration
    def _active_instance(self, key: int, intent: str, verb: str) -> Instance:
        instance = self.instances.get(key)
        if instance is None or instance.state != "ACTIVE":
            raise not_found(
                intent, f"Expected to {verb} process instance but no process instance found with key '{key}'"
            )
        return instance

    def modify_process_instance(self, request: httpx.Request, processInstanceKey: int) -> httpx.Response:
        """Validate every instruction, then activate (variables in the global scope), then terminate; an instance
        left without an active element is terminated, as Zeebe does."""
        body = self._body(request, {"activateInstructions", "terminateInstructions", "operationReference"})
        instance = self._active_instance(processInstanceKey, "MODIFY", "modify")
        process_id = instance.definition.process_id
        positions = {node.id: index for index, node in enumerate(instance.definition.nodes)}
        activations = body.get("activateInstructions") or []
        for activation in activations:
            element_id = activation.get("elementId")
            if element_id not in positions:
                raise invalid_argument(
                    "MODIFY",
                    f"Expected to modify instance of process '{process_id}' but it contains one or more activate "
                    f"instructions with an element that could not be found: '{element_id}'",
                )
            kind = instance.definition.nodes[positions[element_id]].type
            if kind in ("START_EVENT", "BOUNDARY_EVENT"):
                raise invalid_argument(
                    "MODIFY",
                    f"Expected to modify instance of process '{process_id}' but it contains one or more activate "
                    f"instructions for elements that are unsupported: '{element_id}'. The activation of elements "
                    f"with type '{kind}' is not supported.",
                )
        terminations = []
        for termination in body.get("terminateInstructions") or []:
            element = self.elements.get(int(termination.get("elementInstanceKey", 0)))
            if element is None or element.instance is not instance or element.state != "ACTIVE":
                raise invalid_argument(
                    "MODIFY",
                    f"Expected to modify instance of process '{process_id}' but it contains one or more terminate "
                    "instructions with an element instance that could not be found: "
                    f"'{termination.get('elementInstanceKey')}'",
                )
            terminations.append(element)
        for activation in activations:
            for instruction in activation.get("variableInstructions") or []:
                for name, value in (instruction.get("variables") or {}).items():
                    self._set_variable(instance, instance.key, name, value)
            self._activate(instance, positions[activation["elementId"]])
        now = self._now()
        for element in terminations:
            self._terminate(element, now)
        if instance.state == "ACTIVE" and not any(e.state == "ACTIVE" for e in self._elements_of(instance)):
            instance.state, instance.end = "TERMINATED", now
        return httpx.Response(204)

    def _terminate(self, element: Element, now: datetime) -> None:
        element.state, element.end = "TERMINATED", now
        self._unsubscribe(element)
        for task in self.user_tasks.values():
            if task.element is element and task.state == OPEN_TASK:
                task.state = "CANCELED"
        for job in self.jobs.values():
            if job.element is element and job.state not in ("COMPLETED", "CANCELED"):
                job.state = "CANCELED"
        for incident in self.incidents.values():
            if incident.element is element and incident.state == "ACTIVE":
                incident.state = "RESOLVED"

    def migrate_process_instance(self, request: httpx.Request, processInstanceKey: int) -> httpx.Response:
        """Every active element needs a mapping to an element of the same type (Zeebe maps nothing by itself)."""
        body = self._body(
            request, {"targetProcessDefinitionKey", "mappingInstructions", "operationReference"}, required=True
        )
        instance = self._active_instance(processInstanceKey, "MIGRATE", "migrate")
        target_key = self._key_param("targetProcessDefinitionKey", str(body.get("targetProcessDefinitionKey")))
        target = self.definitions.get(target_key)
        if target is None:
            raise not_found(
                "MIGRATE",
                "Expected to migrate process instance to process definition but no process definition found with "
                f"key '{target_key}'",
            )
        key = instance.key
        sources = {node.id: node for node in instance.definition.nodes}
        targets = {node.id: node for node in target.nodes}
        mappings: dict[str, str] = {}
        for instruction in body.get("mappingInstructions") or []:
            source_id, target_id = instruction.get("sourceElementId"), instruction.get("targetElementId")
            for side, element_id, known in (("source", source_id, sources), ("target", target_id, targets)):
                if element_id not in known:
                    raise invalid_argument(
                        "MIGRATE",
                        f"Expected to migrate process instance '{key}' but mapping instructions contain a "
                        f"non-existing {side} element id '{element_id}'. Elements provided in mapping instructions "
                        f"must exist in the {side} process definition.",
                    )
            mappings[source_id] = target_id
        active = [e for e in self._elements_of(instance) if e.state == "ACTIVE"]
        for element in active:
            if element.node.id not in mappings:
                raise invalid_state(
                    "MIGRATE",
                    f"Expected to migrate process instance '{key}' but no mapping instruction defined for active "
                    f"element with id '{element.node.id}'. Elements cannot be migrated without a mapping.",
                )
            new = targets[mappings[element.node.id]]
            if new.type != element.node.type:
                raise invalid_state(
                    "MIGRATE",
                    f"Expected to migrate process instance '{key}' but active element with id '{element.node.id}' "
                    f"and type '{element.node.type}' is mapped to an element with id '{new.id}' and different type "
                    f"'{new.type}'. Elements must be mapped to elements of the same type.",
                )
        for element in active:
            new = targets[mappings[element.node.id]]
            for subscription in self.subscriptions.values():
                if subscription.element is element and subscription.node is element.node:
                    subscription.node = new
            element.node, element.position = new, target.nodes.index(new)
        instance.definition = target
        return httpx.Response(204)

    # ------------------------------------------------------------ running a process
    def _activate(self, instance: Instance, position: int) -> None:
        node = instance.definition.nodes[position]
        element = Element(self._next_key(), instance, node, position, self._now())
        self.elements[element.key] = element
        catching = [node] if node.type == "INTERMEDIATE_CATCH_EVENT" else []
        catching += [n for n in instance.definition.nodes if n.type == "BOUNDARY_EVENT" and n.attached_to == node.id]
        for catcher in catching:
            self._subscribe(element, catcher)
        if node.type == "INTERMEDIATE_CATCH_EVENT":
            return  # waits for its message or signal
        if node.user_task:
            task = UserTask(self._next_key(), element, self._now(), node.assignee)
            self.user_tasks[task.key] = task
        elif node.job_type is not None:
            job = Job(self._next_key(), element, node.job_type, node.retries)
            self.jobs[job.key] = job
            self._work(job)
        else:
            self._complete_element(element)

    def _complete_element(self, element: Element) -> None:
        element.state, element.end = "COMPLETED", self._now()
        self._unsubscribe(element)
        instance = element.instance
        if element.node.type != "END_EVENT" and element.position + 1 < len(instance.definition.nodes):
            self._activate(instance, element.position + 1)
        else:
            instance.state, instance.end = "COMPLETED", self._now()

    def _work(self, job: Job) -> None:
        """The built-in job worker for jobs of type `charge`."""
        if not self.job_worker or job.type != CHARGE_JOB_TYPE:
            return
        if self._scope_values(job.element.instance).get("fail"):
            self._fail(job, 0, "Card declined: the variable 'fail' is true")
        else:
            self._complete_job(job, {})

    def _fail(self, job: Job, retries: int, message: str) -> None:
        job.retries, job.worker, job.deadline = retries, None, None
        if retries > 0:
            job.state = "ACTIVATABLE"
            return
        job.state = "FAILED"
        incident = Incident(self._next_key(), job.element, job, "JOB_NO_RETRIES", message, self._now())
        self.incidents[incident.key] = incident
        job.element.incident_key = incident.key

    def _complete_job(self, job: Job, variables: dict[str, Any]) -> None:
        job.state = "COMPLETED"
        for name, value in variables.items():
            self._set_variable(job.element.instance, job.element.instance.key, name, value)
        self._complete_element(job.element)

    # ------------------------------------------------------------ messages and signals
    def _subscribe(self, element: Element, catcher: Node) -> None:
        kind, name = ("message", catcher.message) if catcher.message else ("signal", catcher.signal)
        expression = catcher.correlation_key or ""
        key = str(self._scope_values(element.instance).get(expression.removeprefix("="), "")) if expression else ""
        subscription = Subscription(self._next_key(), kind, name or "", key, element, catcher)
        self.subscriptions[subscription.key] = subscription

    def _unsubscribe(self, element: Element) -> None:
        for subscription in self.subscriptions.values():
            if subscription.element is element and subscription.state == "CREATED":
                subscription.state = "DELETED"

    def _waiting(self, kind: str, name: str, correlation_key: str | None, tenant_id: str) -> list[Subscription]:
        return [
            s
            for s in self.subscriptions.values()
            if s.state == "CREATED"
            and s.kind == kind
            and s.name == name
            and s.element.instance.tenant_id == tenant_id
            and (correlation_key is None or s.correlation_key == correlation_key)
        ]

    def _trigger(self, subscription: Subscription, variables: dict[str, Any]) -> None:
        """The subscription's element catches: a catch event completes; a boundary event interrupts its activity."""
        element, instance = subscription.element, subscription.element.instance
        for name, value in variables.items():
            self._set_variable(instance, instance.key, name, value)
        subscription.state = "CORRELATED"
        if subscription.node is element.node:
            self._complete_element(element)
            return
        self._unsubscribe(element)
        element.state, element.end = "TERMINATED", self._now()
        for task in self.user_tasks.values():
            if task.element is element and task.state == OPEN_TASK:
                task.state = "CANCELED"
        self._activate(instance, instance.definition.nodes.index(subscription.node))

    def _start_by(self, kind: str, name: str, tenant_id: str, variables: dict[str, Any]) -> list[Instance]:
        started = []
        for process_id in sorted({d.process_id for d in self.definitions.values() if d.tenant_id == tenant_id}):
            definition = self._latest(process_id, tenant_id)
            start = definition.nodes[0] if definition is not None else None
            if start is not None and getattr(start, kind) == name:
                instance = Instance(self._next_key(), definition, self._now(), definition.tenant_id)
                self.instances[instance.key] = instance
                for variable, value in variables.items():
                    self._set_variable(instance, instance.key, variable, value)
                self._activate(instance, 0)
                started.append(instance)
        return started

    def correlate_message(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"name", "correlationKey", "variables", "tenantId"}, required=True)
        name, key = body.get("name") or "", body.get("correlationKey") or ""
        tenant_id = body.get("tenantId") or DEFAULT_TENANT
        variables = body.get("variables") or {}
        waiting = self._waiting("message", name, key, tenant_id)
        if waiting:
            self._trigger(waiting[0], variables)
            instance = waiting[0].element.instance
        else:
            started = self._start_by("message", name, tenant_id, variables)
            if not started:
                raise not_found(
                    "CORRELATE",
                    f"Expected to find subscription for message with name '{name}' and correlation key '{key}', "
                    "but none was found.",
                )
            instance = started[0]
        result = {"tenantId": tenant_id, "messageKey": str(self._next_key()), "processInstanceKey": str(instance.key)}
        return self._json(result)

    def publish_message(self, request: httpx.Request) -> httpx.Response:
        body = self._body(
            request, {"name", "correlationKey", "timeToLive", "messageId", "variables", "tenantId"}, required=True
        )
        if body.get("timeToLive"):
            raise bad_request("The simulator publishes messages without buffering them (timeToLive 0)")
        name, key = body.get("name") or "", body.get("correlationKey") or ""
        tenant_id = body.get("tenantId") or DEFAULT_TENANT
        variables = body.get("variables") or {}
        reached = {s.element.instance.key: s for s in self._waiting("message", name, key, tenant_id)}
        for subscription in reached.values():
            self._trigger(subscription, variables)
        self._start_by("message", name, tenant_id, variables)
        return self._json({"tenantId": tenant_id, "messageKey": str(self._next_key())})

    def broadcast_signal(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"signalName", "variables", "tenantId"}, required=True)
        name, tenant_id = body.get("signalName") or "", body.get("tenantId") or DEFAULT_TENANT
        variables = body.get("variables") or {}
        for subscription in self._waiting("signal", name, None, tenant_id):
            if subscription.state == "CREATED":
                self._trigger(subscription, variables)
        self._start_by("signal", name, tenant_id, variables)
        return self._json({"tenantId": tenant_id, "signalKey": str(self._next_key())})

    def search_message_subscriptions(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        items = [
            {
                "messageSubscriptionKey": str(s.key),
                "processDefinitionId": s.element.instance.definition.process_id,
                "processDefinitionKey": str(s.element.instance.definition.key),
                "processInstanceKey": str(s.element.instance.key),
                "elementId": s.node.id,
                "elementInstanceKey": str(s.element.key),
                "messageSubscriptionState": s.state,
                "lastUpdatedDate": iso(s.element.start),
                "messageName": s.name,
                "correlationKey": s.correlation_key,
                "tenantId": s.element.instance.tenant_id,
            }
            for s in self.subscriptions.values()
            if s.kind == "message"
        ]
        return self._search("message-subscriptions", body, items)

    def _elements_of(self, instance: Instance) -> list[Element]:
        return [element for element in self.elements.values() if element.instance is instance]

    # ------------------------------------------------------------ element instances and variables
    def search_element_instances(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        return self._search("element-instances", body, [self._element_result(e) for e in self.elements.values()])

    def _element_result(self, element: Element) -> dict[str, Any]:
        definition = element.instance.definition
        return {
            "processDefinitionId": definition.process_id,
            "startDate": iso(element.start),
            "endDate": iso(element.end),
            "elementId": element.node.id,
            "elementName": element.node.name or element.node.id,
            "type": element.node.type,
            "state": element.state,
            "hasIncident": element.incident_key is not None,
            "tenantId": element.instance.tenant_id,
            "elementInstanceKey": str(element.key),
            "processInstanceKey": str(element.instance.key),
            "processDefinitionKey": str(definition.key),
            "incidentKey": None if element.incident_key is None else str(element.incident_key),
        }

    def set_variables(self, request: httpx.Request, elementInstanceKey: int) -> httpx.Response:
        body = self._body(request, {"variables", "local", "operationReference"}, required=True)
        if not isinstance(body.get("variables"), dict):
            raise invalid_argument("UPDATE", NOT_A_DOCUMENT)
        instance = self.instances.get(elementInstanceKey)
        element = self.elements.get(elementInstanceKey)
        if instance is not None and instance.state == "ACTIVE":
            scope, owner = instance.key, instance
        elif element is not None and element.state == "ACTIVE":
            scope = element.key if body.get("local") else element.instance.key
            owner = element.instance
        else:
            key = elementInstanceKey
            reason = f"Expected to update variables for element with key '{key}', but no such element was found"
            raise not_found("UPDATE", reason)
        for name, value in body["variables"].items():
            self._set_variable(owner, scope, name, value)
        return httpx.Response(204)

    def _set_variable(self, instance: Instance, scope_key: int, name: str, value: Any) -> None:
        existing = next((v for v in self.variables.values() if v.scope_key == scope_key and v.name == name), None)
        if existing is not None:
            existing.value = value
        else:
            variable = Variable(self._next_key(), name, value, scope_key, instance)
            self.variables[variable.key] = variable

    def _scope_values(self, instance: Instance) -> dict[str, Any]:
        return {v.name: v.value for v in self.variables.values() if v.scope_key == instance.key}

    def search_variables(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        items = [self._variable_result(v) for v in self.variables.values()]
        if request.url.params.get("truncateValues", "true") == "false":
            return self._search("variables", body, items)
        return self._search("variables", body, items, shape=self._truncated)

    def _truncated(self, item: dict[str, Any]) -> dict[str, Any]:
        if len(item["value"]) <= self.truncate_at:
            return item
        return {**item, "value": item["value"][: self.truncate_at], "isTruncated": True}

    def get_variable(self, request: httpx.Request, variableKey: int) -> httpx.Response:
        if variableKey not in self.variables:
            raise missing("Variable", variableKey)
        result = self._variable_result(self.variables[variableKey])
        del result["isTruncated"]
        return self._json(result)

    @staticmethod
    def _variable_result(variable: Variable) -> dict[str, Any]:
        return {
            "name": variable.name,
            "tenantId": variable.instance.tenant_id,
            "variableKey": str(variable.key),
            "scopeKey": str(variable.scope_key),
            "processInstanceKey": str(variable.instance.key),
            "value": json.dumps(variable.value, separators=(",", ":"), ensure_ascii=False),
            "isTruncated": False,
        }

    # ------------------------------------------------------------ user tasks
    def search_user_tasks(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        items = [self._user_task_result(t) for t in self.user_tasks.values()]
        special = {
            **SPECIAL_FILTERS,
            "processInstanceVariables": lambda item, condition, kind: self._variables_match(
                item["processInstanceKey"], condition
            ),
            "localVariables": lambda item, condition, kind: self._variables_match(
                item["elementInstanceKey"], condition
            ),
        }
        return self._search("user-tasks", body, items, special=special)

    def get_user_task(self, request: httpx.Request, userTaskKey: int) -> httpx.Response:
        if userTaskKey not in self.user_tasks:
            raise missing("User task", userTaskKey)
        return self._json(self._present(self._user_task_result(self.user_tasks[userTaskKey])))

    def assign_user_task(self, request: httpx.Request, userTaskKey: int) -> httpx.Response:
        body = self._body(request, {"assignee", "allowOverride", "action"}, required=True)
        assignee = body.get("assignee")
        if not isinstance(assignee, str) or not assignee:
            raise invalid_argument("ASSIGN", "No assignee provided.")
        claim = body.get("allowOverride") is False
        intent = "CLAIM" if claim else "ASSIGN"
        task = self._open_task(userTaskKey, intent.lower(), intent)
        if claim and task.assignee not in (None, assignee):
            reason = f"Expected to claim user task with key '{userTaskKey}', but it has already been assigned"
            raise invalid_state(intent, reason)
        task.assignee = assignee
        return httpx.Response(204)

    def unassign_user_task(self, request: httpx.Request, userTaskKey: int) -> httpx.Response:
        self._open_task(userTaskKey, "unassign", "ASSIGN").assignee = None
        return httpx.Response(204)

    def complete_user_task(self, request: httpx.Request, userTaskKey: int) -> httpx.Response:
        body = self._body(request, {"variables", "action"})
        task = self._open_task(userTaskKey, "complete", "COMPLETE")
        instance = task.element.instance
        for name, value in (body.get("variables") or {}).items():
            self._set_variable(instance, instance.key, name, value)
        task.state, task.completed = "COMPLETED", self._now()
        self._complete_element(task.element)
        return httpx.Response(204)

    def _open_task(self, key: int, verb: str, intent: str) -> UserTask:
        task = self.user_tasks.get(key)
        if task is None or task.state != OPEN_TASK:  # finished tasks are gone from the engine's runtime state
            raise not_found(intent, f"Expected to {verb} user task with key '{key}', but no such user task was found")
        return task

    @staticmethod
    def _user_task_result(task: UserTask) -> dict[str, Any]:
        element, node = task.element, task.element.node
        definition = element.instance.definition
        return {
            "name": node.name or node.id,
            "state": task.state,
            "assignee": task.assignee,
            "elementId": node.id,
            "candidateGroups": node.candidate_groups,
            "candidateUsers": node.candidate_users,
            "processDefinitionId": definition.process_id,
            "creationDate": iso(task.created),
            "completionDate": iso(task.completed),
            "tenantId": element.instance.tenant_id,
            "processDefinitionVersion": definition.version,
            "customHeaders": {},
            "priority": 50,
            "userTaskKey": str(task.key),
            "elementInstanceKey": str(element.key),
            "processName": definition.name or definition.process_id,
            "processDefinitionKey": str(definition.key),
            "processInstanceKey": str(element.instance.key),
        }

    # ------------------------------------------------------------ incidents
    def search_incidents(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request, {"filter", "sort", "page"})
        return self._search("incidents", body, [self._incident_result(i) for i in self.incidents.values()])

    def get_incident(self, request: httpx.Request, incidentKey: int) -> httpx.Response:
        if incidentKey not in self.incidents:
            raise missing("Incident", incidentKey)
        return self._json(self._present(self._incident_result(self.incidents[incidentKey])))

    def resolve_incident(self, request: httpx.Request, incidentKey: int) -> httpx.Response:
        self._body(request, {"operationReference"})
        incident = self.incidents.get(incidentKey)
        if incident is None or incident.state != "ACTIVE":
            reason = f"Expected to resolve incident with key '{incidentKey}', but no such incident was found"
            raise not_found("RESOLVE", reason)
        job = incident.job
        if job is not None and job.retries <= 0:
            raise invalid_state(
                "RESOLVE",
                f"Expected to resolve incident with key '{incidentKey}', but job with key '{job.key}' has no retries "
                "left. Please update the job retries and retry resolving the incident",
            )
        incident.state, incident.element.incident_key = "RESOLVED", None
        if job is not None:
            job.state = "ACTIVATABLE"
            self._work(job)
        return httpx.Response(204)

    @staticmethod
    def _incident_result(incident: Incident) -> dict[str, Any]:
        element = incident.element
        definition = element.instance.definition
        return {
            "processDefinitionId": definition.process_id,
            "errorType": incident.error_type,
            "errorMessage": incident.message,
            "elementId": element.node.id,
            "creationTime": iso(incident.created),
            "state": incident.state,
            "tenantId": element.instance.tenant_id,
            "incidentKey": str(incident.key),
            "processDefinitionKey": str(definition.key),
            "processInstanceKey": str(element.instance.key),
            "elementInstanceKey": str(element.key),
            "jobKey": None if incident.job is None else str(incident.job.key),
        }

    # ------------------------------------------------------------ jobs
    def activate_jobs(self, request: httpx.Request) -> httpx.Response:
        allowed = {"type", "worker", "timeout", "maxJobsToActivate", "fetchVariable", "requestTimeout", "tenantIds"}
        body = self._body(request, allowed, required=True)
        for name in ("type", "timeout", "maxJobsToActivate"):
            if name not in body:
                raise invalid_argument("ACTIVATE", f"No {name} provided.")
        now = self._now()

        def activatable(job: Job) -> bool:  # a job whose worker timed out is activatable again
            timed_out = job.state == "ACTIVATED" and job.deadline is not None and job.deadline < now
            return job.type == body["type"] and (job.state == "ACTIVATABLE" or timed_out)

        jobs = []
        for job in [job for job in self.jobs.values() if activatable(job)][: body["maxJobsToActivate"]]:
            job.state, job.worker = "ACTIVATED", body.get("worker") or "default"
            job.deadline = now + timedelta(milliseconds=body["timeout"])
            element = job.element
            definition = element.instance.definition
            jobs.append(
                {
                    "type": job.type,
                    "processDefinitionId": definition.process_id,
                    "processDefinitionVersion": definition.version,
                    "elementId": element.node.id,
                    "customHeaders": {},
                    "worker": job.worker,
                    "retries": job.retries,
                    "deadline": int(job.deadline.timestamp() * 1000),
                    "variables": self._scope_values(element.instance),
                    "tenantId": element.instance.tenant_id,
                    "jobKey": str(job.key),
                    "processInstanceKey": str(element.instance.key),
                    "processDefinitionKey": str(definition.key),
                    "elementInstanceKey": str(element.key),
                    "kind": "BPMN_ELEMENT",
                    "listenerEventType": "UNSPECIFIED",
                }
            )
        return self._json({"jobs": jobs})

    def update_job(self, request: httpx.Request, jobKey: int) -> httpx.Response:
        body = self._body(request, {"changeset", "operationReference"}, required=True)
        changeset = body.get("changeset")
        if not isinstance(changeset, dict) or not set(changeset) <= {"retries", "timeout"}:
            raise unparsable("changeset")
        job = self.jobs.get(jobKey)
        if job is None or job.state in ("COMPLETED", "CANCELED"):
            raise not_found("UPDATE", f"Expected to update job with key '{jobKey}', but no such job was found")
        retries = changeset.get("retries")
        if retries is not None:
            if retries < 1:
                raise invalid_argument(
                    "UPDATE_RETRIES",
                    f"Expected to update retries for job with key '{jobKey}' with a positive amount of retries, "
                    f"but the amount given was '{retries}'",
                )
            job.retries = retries
        return httpx.Response(204)

    def fail_job(self, request: httpx.Request, jobKey: int) -> httpx.Response:
        body = self._body(request, {"retries", "errorMessage", "retryBackOff", "variables"})
        job = self._activated_job(jobKey, "fail", "FAIL")
        self._fail(job, body.get("retries", 0), body.get("errorMessage") or "")
        return httpx.Response(204)

    def complete_job(self, request: httpx.Request, jobKey: int) -> httpx.Response:
        body = self._body(request, {"variables", "result"})
        self._complete_job(self._activated_job(jobKey, "complete", "COMPLETE"), body.get("variables") or {})
        return httpx.Response(204)

    def _activated_job(self, key: int, verb: str, intent: str) -> Job:
        job = self.jobs.get(key)
        if job is None or job.state in ("COMPLETED", "CANCELED"):
            raise not_found(intent, f"Expected to {verb} activated job with key '{key}', but no such job was found")
        if job.state != "ACTIVATED":
            reason = f"Expected to {verb} activated job with key '{key}', but it is in state '{job.state}'"
            raise invalid_state(intent, reason)
        return job

    # ------------------------------------------------------------ search
    def _search(
        self,
        resource: str,
        body: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        skip: frozenset[str] = frozenset(),
        special: dict[str, Callable[[dict[str, Any], Any, str], bool]] | None = None,
        shape: Callable[[dict[str, Any]], dict[str, Any]] = lambda item: item,
    ) -> httpx.Response:
        """Filter, sort and page result items as a search endpoint does.

        `skip` names filters the caller applied already, `special` matches filters on fields the items lack,
        and `shape` turns a matching item into what the response shows.
        """
        fields, special = FILTERS[resource], special or {}
        conditions = body.get("filter") or {}
        for name, condition in conditions.items():
            if name not in fields:
                raise unparsable(f"filter.{name}")
            if name in skip:
                continue
            if name in special:
                items = [item for item in items if special[name](item, condition, fields[name])]
            elif items and name not in items[0]:
                raise bad_request(f"The simulator does not support the filter [filter.{name}]")
            else:
                items = [item for item in items if _matches(item.get(name), condition, fields[name], name)]
        items = self._sorted(resource, items, body.get("sort") or [])
        page = body.get("page") or {}
        if not set(page) <= {"from", "limit"} and not set(page) <= {"after", "limit"}:
            raise bad_request("The simulator pages by offset (from, limit) or forward by cursor (after, limit)")
        limit = page.get("limit", 100)
        offset = _cursor_offset(page["after"]) if "after" in page else page.get("from", 0)
        if not isinstance(offset, int) or not isinstance(limit, int) or offset < 0 or limit < 1:
            raise unparsable("page")
        if "after" not in page and offset + limit > self.total_items_cap:
            raise bad_request(f"Offset pages reach at most {self.total_items_cap} items; page with `after`")
        shown = items[offset : offset + limit]
        cursors = {"startCursor": _cursor(offset), "endCursor": _cursor(offset + len(shown))} if shown else {}
        return self._json(
            {
                "items": [self._present(shape(item)) for item in shown],
                "page": {
                    "totalItems": min(len(items), self.total_items_cap),
                    "hasMoreTotalItems": len(items) > self.total_items_cap,
                    **cursors,
                },
            }
        )

    @staticmethod
    def _sorted(resource: str, items: list[dict[str, Any]], sort: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = sorted(items, key=lambda item: int(item[ITEM_KEYS[resource]]))  # ties in key order
        for criterion in reversed(sort):
            name, order = criterion.get("field"), criterion.get("order", "ASC")
            if name not in SORTS[resource] or order not in ("ASC", "DESC") or not set(criterion) <= {"field", "order"}:
                raise unparsable("sort")
            present = [item for item in items if item.get(name) is not None]
            absent = [item for item in items if item.get(name) is None]
            items = sorted(present, key=lambda item: item[name], reverse=order == "DESC") + absent
        return items


def _cursor(offset: int) -> str:
    """An opaque search cursor (the simulator's: the position in the sorted matches)."""
    return base64.urlsafe_b64encode(json.dumps({"at": offset}).encode()).decode()


def _cursor_offset(cursor: Any) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor))["at"])
    except (TypeError, ValueError, KeyError):
        raise unparsable("page.after") from None
