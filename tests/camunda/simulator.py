"""A stateful in-memory Camunda Platform 7.23 `engine-rest`, served as an httpx transport for tests.

It keeps deployments, process definitions parsed from their BPMN (a linear chain of flow nodes from the start
event), process instances moving their token along that chain, user tasks with candidate identity links,
asynchronous service-task jobs run by a job executor, failed-job incidents, variables and history.

Every route names the operation of the official OpenAPI document it serves (operationId, "METHOD path") and
answers with the bodies and statuses that engine-rest 7.23 gives: `ExceptionDto {type, message, code}` errors
with the engine's own messages, and its status quirks (a claim conflict, a suspended task or an unknown task
is a 500; an unknown incident annotation is a 400).

Where the real engine and its spec disagree, the simulator answers what the spec declares for the case, with
the engine's message: GET /process-definition/{id} and GET /task/{id}/identity-links answer 400 for an unknown
id (the engine: 404 and 500), GET /process-instance/{id}/activity-instances answers 500 (the engine: 404). For
two cases the spec declares no answer at all; there the simulator answers like the engine:
POST /process-definition/key/{key}/start for an unknown key (404) and DELETE /process-definition/{id} without
cascade while instances run (500, ENGINE-03076). Fields the engine sends as null where the spec allows no null
(a task's `delegationState` and `camundaFormRef`) are left out.

Dates are written in the engine's format `yyyy-MM-dd'T'HH:mm:ss.SSSZ` (`2026-11-22T10:00:00.250+0000`), which
its spec declares as `format: date-time` although it is not RFC 3339.

The job executor runs due jobs before each request. A service task fails while the instance variable `fail`
is true, as the harness's `${execution.getVariable('fail') == true ? cardGateway.charge() : true}` does on a
real engine (there is no bean `cardGateway`); its failed-job retry cycle decides when the incident appears.
Each request is one transaction: a failure inside it rolls every change back, as the engine's does.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote
from xml.etree import ElementTree

import httpx

from tests.expressions import expression_failure

VERSION = "7.24.0"
BASE_PATH = "/engine-rest"
ENGINE_NAME = "default"  # also served under /engine-rest/engine/default, as a named engine
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
FAILING_VARIABLE = "fail"
# Elements that branch, join or wait for time: the simulator runs one straight line and refuses them.
# Message and signal catch events (intermediate, and boundary events whose path is a straight line) it runs.
STRAIGHT_LINES_ONLY = {"parallelGateway", "exclusiveGateway", "inclusiveGateway", "eventBasedGateway", "subProcess"}
DEPLOYMENT_FIELDS = (
    "deployment-name",
    "deployment-source",
    "tenant-id",
    "enable-duplicate-filtering",
    "deploy-changed-only",
)
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

# Flow node types the token passes through; anything else in a chain is treated like a none task.
ACTIVITY_TYPES = {"startEvent": "startEvent", "endEvent": "noneEndEvent"}


class CamundaError(Exception):
    """An error answer: `ExceptionDto` (code only when an engine exception caused it, as in engine-rest)."""

    def __init__(self, status: int, kind: str, message: str, *, code: int | None = 0, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.code, self.extra = status, kind, message, code, extra

    def response(self) -> httpx.Response:
        body: dict[str, Any] = {"type": self.kind, "message": self.message, **self.extra}
        if self.code is not None:
            body["code"] = self.code
        return httpx.Response(self.status, json=body)


def not_null(message: str) -> CamundaError:
    """What EnsureUtil.ensureNotNull throws: a NullValueException, which engine-rest answers with 500."""
    return CamundaError(500, "NullValueException", message)


# ---------------------------------------------------------------- the model
@dataclass
class FlowNode:
    id: str
    name: str | None
    kind: str  # the BPMN element name: startEvent, userTask, serviceTask, endEvent, ...
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    assignee: str | None = None
    async_before: bool = False
    expression: str | None = None
    retry_cycle: str | None = None
    message: str | None = None  # the message name a message start, catch or boundary event waits for
    signal: str | None = None
    attached_to: str | None = None  # a boundary event's activity
    interrupting: bool = True

    @property
    def activity_type(self) -> str:
        trigger = "Message" if self.message else "Signal"
        if self.kind == "intermediateCatchEvent":
            return f"intermediate{trigger}Catch"
        if self.kind == "boundaryEvent":
            return f"boundary{trigger}"
        if self.kind == "startEvent" and (self.message or self.signal):
            return f"{trigger.lower()}StartEvent"
        return ACTIVITY_TYPES.get(self.kind, self.kind)


@dataclass
class Deployment:
    id: str
    name: str | None
    source: str | None
    tenant_id: str | None
    time: datetime
    resources: dict[str, bytes]


@dataclass
class Definition:
    id: str
    key: str
    name: str | None
    version: int
    deployment_id: str
    resource: str
    tenant_id: str | None
    category: str | None
    description: str | None
    version_tag: str | None
    history_ttl: int | None
    xml: str
    nodes: list[FlowNode]
    suspended: bool = False
    branches: dict[str, list[FlowNode]] = field(default_factory=dict)  # boundary event id -> its path, from it


@dataclass
class Variable:
    type: str
    value: Any  # Python value; a Date is a datetime
    info: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None


@dataclass
class Instance:
    id: str
    definition_id: str
    definition_key: str
    business_key: str | None
    tenant_id: str | None
    start: datetime
    variables: dict[str, Variable]
    position: int = 0
    state: str = "ACTIVE"
    suspended: bool = False
    end: datetime | None = None
    delete_reason: str | None = None
    open_run: str | None = None  # the historic activity instance of the activity the token waits in
    branch: str | None = None  # the boundary event whose path the token follows (None: the main path)


@dataclass
class ActivityRun:
    """A historic activity instance."""

    id: str
    node: FlowNode
    instance_id: str
    definition_id: str
    definition_key: str
    tenant_id: str | None
    start: datetime
    sequence: int
    end: datetime | None = None
    canceled: bool = False
    task_id: str | None = None
    assignee: str | None = None


@dataclass
class UserTask:
    id: str
    node: FlowNode
    instance_id: str
    definition_id: str
    definition_key: str
    tenant_id: str | None
    run_id: str
    created: datetime
    assignee: str | None = None
    owner: str | None = None
    delegation_state: str | None = None
    suspended: bool = False
    state: str = "Created"
    end: datetime | None = None
    delete_reason: str | None = None


@dataclass
class Job:
    id: str
    node: FlowNode
    instance_id: str
    definition_id: str
    definition_key: str
    tenant_id: str | None
    job_definition_id: str
    created: datetime
    due: datetime
    retries: int = 3
    exception_message: str | None = None
    stacktrace: str | None = None
    suspended: bool = False


@dataclass
class Incident:
    id: str
    kind: str
    message: str | None
    created: datetime
    instance_id: str
    activity_id: str
    definition_id: str
    definition_key: str
    configuration: str
    job_definition_id: str
    tenant_id: str | None
    annotation: str | None = None
    end: datetime | None = None
    state: str = "open"  # open, resolved, deleted


@dataclass
class EngineState:
    deployments: dict[str, Deployment] = field(default_factory=dict)
    definitions: dict[str, Definition] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    runs: dict[str, ActivityRun] = field(default_factory=dict)
    tasks: dict[str, UserTask] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    identity_link_log: list[dict[str, Any]] = field(default_factory=list)  # HistoricIdentityLinkLogDto rows
    user_operations: list[dict[str, Any]] = field(default_factory=list)  # UserOperationLogEntryDto rows
    sequence: int = 0


# ---------------------------------------------------------------- dates and variables
def format_date(moment: datetime | None) -> str | None:
    """engine-rest's date format, `yyyy-MM-dd'T'HH:mm:ss.SSSZ`."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def parse_date(text: str) -> datetime:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}", text):
        raise ValueError(text)
    return datetime.strptime(text, DATE_FORMAT)


INT_RANGES = {"Short": (-(2**15), 2**15 - 1), "Integer": (-(2**31), 2**31 - 1), "Long": (-(2**63), 2**63 - 1)}
JAVA_TYPES = {
    "Boolean": "java.lang.Boolean",
    "String": "java.lang.String",
    "Short": "java.lang.Short",
    "Integer": "java.lang.Integer",
    "Long": "java.lang.Long",
    "Double": "java.lang.Double",
    "Date": "java.util.Date",
}


def read_variable(dto: dict[str, Any]) -> Variable:
    """VariableValueDto.toTypedValue: a variable sent to the engine, validated and converted as it does."""
    kind, value, info = dto.get("type"), dto.get("value"), dto.get("valueInfo") or {}
    if kind is None:
        raise CamundaError(400, "InvalidRequestException", "Untyped values are not supported by this simulator")

    def unconvertible() -> CamundaError:
        return CamundaError(
            400,
            "InvalidRequestException",
            f"Cannot convert value '{value}' of type '{kind}' to java type {JAVA_TYPES[kind]}",
        )

    if kind == "Null":
        return Variable("Null", None)
    if kind in ("Json", "Xml", "Object"):
        if value is not None and not isinstance(value, str):
            raise CamundaError(
                400,
                "InvalidRequestException",
                f"Must provide 'null' or String value for value of SerializableValue type '{kind}'.",
            )
        return Variable(kind, value, dict(info))
    if kind not in JAVA_TYPES:
        raise CamundaError(400, "RestException", f"Unsupported value type '{kind}'", code=None)
    if value is None:
        return Variable(kind, None)
    if kind == "Boolean":
        if not isinstance(value, bool):
            raise unconvertible()
    elif kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise unconvertible()
    elif kind == "Double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise unconvertible()
        value = float(value)
    elif kind == "Date":
        try:
            value = parse_date(value)
        except (TypeError, ValueError):
            raise unconvertible() from None
    elif not isinstance(value, str):
        value = json.dumps(value)
    return Variable(kind, value)


def read_variables(raw: dict[str, Any] | None, wrap: str) -> dict[str, Variable]:
    try:
        return {name: read_variable(dto) for name, dto in (raw or {}).items()}
    except CamundaError as error:
        raise CamundaError(error.status, "InvalidRequestException", f"{wrap}: {error.message}", code=None) from None


def write_variable(variable: Variable) -> dict[str, Any]:
    """VariableValueDto.fromTypedValue with serialized values preferred (deserializeValues=false)."""
    value = format_date(variable.value) if variable.type == "Date" else variable.value
    return {"type": variable.type, "value": value, "valueInfo": dict(variable.info)}


# ---------------------------------------------------------------- BPMN
class BpmnProblem(Exception):
    def __init__(self, message: str, line: int = 0, column: int = 0, element: str | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.element = message, line, column, element


def parse_bpmn(xml: bytes) -> tuple[str | None, list[dict[str, Any]]]:
    """(targetNamespace, executable processes) of a BPMN resource, as far as the simulator runs them."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        line, column = error.position
        raise BpmnProblem(str(error).split(":")[0], line, column + 1) from None
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise BpmnProblem(f"cvc-elt.1.a: Cannot find the declaration of element '{root.tag.split('}')[-1]}'.", 1, 1)
    seen: set[str] = set()
    for element in root.iter():
        element_id = element.get("id")
        if element_id in seen:
            raise BpmnProblem(f"cvc-id.2: There are multiple occurrences of ID value '{element_id}'.")
        if element_id:
            seen.add(element_id)
    processes = []
    names = {
        element.get("id"): element.get("name") or element.get("id")
        for kind in ("message", "signal")
        for element in root.findall(f"{{{BPMN_NS}}}{kind}")
    }
    for process in root.findall(f"{{{BPMN_NS}}}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        processes.append(_process(process, names))
    return root.get("targetNamespace"), processes


def _process(process: ElementTree.Element, names: dict[str | None, str | None]) -> dict[str, Any]:
    key = process.get("id") or ""
    ttl = process.get(f"{{{CAMUNDA_NS}}}historyTimeToLive")
    if ttl is None:
        raise BpmnProblem(
            "ENGINE-12018 History Time To Live (TTL) cannot be null. TTL is necessary for the History Cleanup to work. "
            "The following options are possible:\n* Set historyTimeToLive in the model\n* Set a default "
            "historyTimeToLive as a global process engine configuration\n* (Not recommended) Deactivate the "
            "enforceTTL config to disable this check",
            element=key,
        )
    nodes: dict[str, FlowNode] = {}
    outgoing: dict[str, str] = {}
    start = None
    for element in process:
        kind = element.tag.split("}")[-1]
        if kind in STRAIGHT_LINES_ONLY or (kind == "sequenceFlow" and element.get("sourceRef", "") in outgoing):
            raise NotImplementedError(
                f"the Camunda simulator runs straight lines only; {kind} '{element.get('id')}' needs the real "
                "engine (tests/real_engines)"
            )
        if kind == "sequenceFlow":
            outgoing[element.get("sourceRef", "")] = element.get("targetRef", "")
            continue
        if kind in ("extensionElements", "documentation", "laneSet") or element.get("id") is None:
            continue
        message = element.find(f"{{{BPMN_NS}}}messageEventDefinition")
        signal = element.find(f"{{{BPMN_NS}}}signalEventDefinition")
        if kind in ("intermediateCatchEvent", "boundaryEvent") and message is None and signal is None:
            raise NotImplementedError(
                f"the Camunda simulator catches messages and signals only; {kind} '{element.get('id')}' needs the "
                "real engine (tests/real_engines)"
            )
        node = FlowNode(
            id=element.get("id", ""),
            name=element.get("name"),
            kind=kind,
            candidate_groups=_list(element.get(f"{{{CAMUNDA_NS}}}candidateGroups")),
            candidate_users=_list(element.get(f"{{{CAMUNDA_NS}}}candidateUsers")),
            assignee=element.get(f"{{{CAMUNDA_NS}}}assignee"),
            async_before=element.get(f"{{{CAMUNDA_NS}}}asyncBefore") == "true",
            expression=element.get(f"{{{CAMUNDA_NS}}}expression"),
            retry_cycle=element.findtext(f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}failedJobRetryTimeCycle"),
            message=names.get(message.get("messageRef")) if message is not None else None,
            signal=names.get(signal.get("signalRef")) if signal is not None else None,
            attached_to=element.get("attachedToRef"),
            interrupting=element.get("cancelActivity", "true") == "true",
        )
        nodes[node.id] = node
        if kind == "startEvent":
            start = node
    if start is None:
        raise BpmnProblem(f"Process '{key}' has no start event", element=key)

    def path(first: FlowNode | None) -> list[FlowNode]:
        chain: list[FlowNode] = []
        current = first
        while current is not None and current not in chain:
            chain.append(current)
            current = nodes.get(outgoing.get(current.id, ""))
        return chain

    branches = {node.id: path(node) for node in nodes.values() if node.kind == "boundaryEvent"}
    if any(not node.interrupting for node in nodes.values() if node.kind == "boundaryEvent"):
        raise NotImplementedError(
            "the Camunda simulator runs one token: non-interrupting boundary events need the real engine"
        )
    documentation = process.findtext(f"{{{BPMN_NS}}}documentation")
    return {
        "key": key,
        "name": process.get("name"),
        "description": documentation.strip() if documentation else None,
        "version_tag": process.get(f"{{{CAMUNDA_NS}}}versionTag"),
        "history_ttl": int(ttl.removeprefix("P").removesuffix("D")),
        "nodes": path(start),
        "branches": branches,
    }


def _list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def retries_of(cycle: str | None) -> int | None:
    """The retries a failedJobRetryTimeCycle `R<n>/<interval>` grants (ParseUtil.parseRetryIntervals)."""
    match = re.fullmatch(r"R(\d+)/PT(\d+)S", cycle or "")
    return int(match[1]) if match else None


def interval_of(cycle: str | None) -> timedelta:
    match = re.fullmatch(r"R\d+/PT(\d+)S", cycle or "")
    return timedelta(seconds=int(match[1])) if match else timedelta(minutes=5)


# ---------------------------------------------------------------- requests
def invalid_parameter(name: str, value: str | None) -> CamundaError:
    message = f"Cannot set query parameter '{name}' to value '{value}'"
    return CamundaError(400, "InvalidRequestException", message, code=None)


@dataclass
class Call:
    request: httpx.Request
    params: dict[str, str]

    def body(self) -> Any:
        return json.loads(self.request.content) if self.request.content else {}

    def flag(self, name: str) -> bool | None:
        value = self.params.get(name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise invalid_parameter(name, value)
        return value == "true"

    def date(self, name: str) -> datetime | None:
        value = self.params.get(name)
        if value is None:
            return None
        try:
            return parse_date(value)
        except ValueError:
            raise invalid_parameter(name, value) from None


@dataclass
class Text:
    body: str | None


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]


def paged(call: Call, rows: list[Any], sort_keys: dict[str, Callable[[Any], Any]]) -> list[Any]:
    """sortBy/sortOrder and firstResult/maxResults, validated as engine-rest does."""
    sort_by, sort_order = call.params.get("sortBy"), call.params.get("sortOrder")
    if (sort_by is None) != (sort_order is None):
        message = "Only a single sorting parameter specified. sortBy and sortOrder required"
        raise CamundaError(400, "InvalidRequestException", message, code=None)
    if sort_by is not None:
        if sort_by not in sort_keys:
            raise invalid_parameter("sortBy", sort_by)
        if sort_order not in ("asc", "desc"):
            raise invalid_parameter("sortOrder", sort_order)
        key = sort_keys[sort_by]
        present = sorted((row for row in rows if key(row) is not None), key=key, reverse=sort_order == "desc")
        missing = [row for row in rows if key(row) is None]
        rows = present + missing if sort_order == "asc" else missing + present
    first = int(call.params.get("firstResult", 0))
    limit = call.params.get("maxResults")
    return rows[first : first + int(limit)] if limit is not None else rows[first:]


def count(rows: Iterable[Any]) -> dict[str, int]:
    return {"count": len(list(rows))}


# ---------------------------------------------------------------- POST query bodies (TaskQueryDto, ...)
VARIABLE_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "like": lambda a, b: re.fullmatch(re.escape(b).replace("%", ".*").replace("_", "."), a) is not None,
}


def query_call(call: Call, variable_fields: set[str]) -> Call:
    """A POST query as the GET query it mirrors: body filters as parameters (arrays comma-separated), `sorting`
    kept for `sort_query`, paging from the URL."""
    body = call.body()
    if not isinstance(body, dict):
        raise CamundaError(400, "InvalidRequestException", "The query body is not a JSON object", code=None)
    params = dict(call.params)
    for name, value in body.items():
        if name in variable_fields or name == "sorting" or value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, list):
            params[name] = ",".join(str(item) for item in value)
        else:
            params[name] = str(value)
    return Call(call.request, params)


def variable_conditions(body: dict[str, Any], field: str) -> list[tuple[str, str, Any]]:
    conditions = []
    for item in body.get(field) or []:
        operator = item.get("operator")
        if operator not in VARIABLE_TESTS:
            message = f"Invalid variable comparator specified: {operator}"
            raise CamundaError(400, "InvalidRequestException", message, code=None)
        if operator == "like" and not isinstance(item.get("value"), str):
            raise CamundaError(400, "ProcessEngineException", "Booleans and null cannot be used in 'like' condition")
        conditions.append((item["name"], operator, item.get("value")))
    return conditions


def meets(variables: dict[str, Any], conditions: list[tuple[str, str, Any]]) -> bool:
    """The engine compares a condition with variables of the value's type only (a number with numbers)."""
    for name, operator, expected in conditions:
        variable = variables.get(name)
        actual = None if variable is None else variable.value
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, expected))
        same = numbers or (type(actual) is type(expected) and actual is not None)
        if not same or not VARIABLE_TESTS[operator](actual, expected):
            return False
    return True


def sort_query(call: Call, rows: list[Any], sort_keys: dict[str, Callable[[Any], Any]]) -> list[Any]:
    """`sorting` of the body (the first criterion first, nulls as `paged` puts them), then paging."""
    for criterion in reversed(call.body().get("sorting") or []):
        sort_by, order = criterion.get("sortBy"), criterion.get("sortOrder")
        if sort_by not in sort_keys or order not in ("asc", "desc"):
            raise invalid_parameter("sortBy", str(sort_by))
        key = sort_keys[sort_by]
        present = sorted((row for row in rows if key(row) is not None), key=key, reverse=order == "desc")
        missing = [row for row in rows if key(row) is None]
        rows = present + missing if order == "asc" else missing + present
    first = int(call.params.get("firstResult", 0))
    limit = call.params.get("maxResults")
    return rows[first : first + int(limit)] if limit is not None else rows[first:]


class CamundaSimulator:
    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials  # basic auth, as Camunda Run enforces it when enabled
        self.state = EngineState()
        self.transport = httpx.MockTransport(self.handle)
        self.routes = [Route(method, re.compile(f"^{path}$"), handler) for method, path, handler in self._routes()]

    @staticmethod
    def now() -> datetime:
        """The engine's clock: Java dates keep milliseconds."""
        moment = datetime.now(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        segment = r"(?P<{}>[^/]+)"
        id_ = segment.format("id")
        return [
            ("GET", "/version", self.get_version),
            ("GET", "/engine", self.get_engines),
            ("POST", "/deployment/create", self.create_deployment),
            ("GET", f"/deployment/{id_}", self.get_deployment),
            ("GET", "/process-definition", self.get_definitions),
            ("GET", "/process-definition/count", self.count_definitions),
            ("POST", f"/process-definition/key/{segment.format('key')}/start", self.start_by_key),
            (
                "POST",
                f"/process-definition/key/{segment.format('key')}/tenant-id/{segment.format('tenant')}/start",
                self.start_by_key_and_tenant,
            ),
            ("GET", f"/process-definition/{id_}", self.get_definition),
            ("DELETE", f"/process-definition/{id_}", self.delete_definition),
            ("GET", f"/process-definition/{id_}/xml", self.get_definition_xml),
            ("PUT", f"/process-definition/{id_}/suspended", self.suspend_definition),
            ("POST", f"/process-definition/{id_}/start", self.start_by_id),
            ("GET", "/process-instance/count", self.count_instances),
            ("GET", f"/process-instance/{id_}", self.get_instance),
            ("DELETE", f"/process-instance/{id_}", self.delete_instance),
            ("GET", f"/process-instance/{id_}/activity-instances", self.get_activity_tree),
            ("GET", f"/process-instance/{id_}/variables", self.get_instance_variables),
            ("POST", f"/process-instance/{id_}/variables", self.modify_instance_variables),
            ("PUT", f"/process-instance/{id_}/suspended", self.suspend_instance),
            ("POST", f"/process-instance/{id_}/modification", self.modify_instance),
            ("POST", "/migration/generate", self.generate_migration_plan),
            ("POST", "/migration/execute", self.execute_migration_plan),
            ("POST", "/message", self.deliver_message),
            ("POST", "/signal", self.throw_signal),
            ("GET", "/history/process-instance", self.get_historic_instances),
            ("POST", "/history/process-instance", self.query_historic_instances),
            ("GET", "/history/process-instance/count", self.count_historic_instances),
            ("POST", "/history/process-instance/count", self.query_historic_instances_count),
            ("GET", f"/history/process-instance/{id_}", self.get_historic_instance),
            ("GET", "/history/activity-instance", self.get_historic_activities),
            ("GET", "/history/activity-instance/count", self.count_historic_activities),
            ("GET", "/history/variable-instance", self.get_historic_variables),
            ("GET", "/history/task", self.get_historic_tasks),
            ("GET", "/history/task/count", self.count_historic_tasks),
            ("GET", "/history/incident", self.get_historic_incidents),
            ("GET", "/history/identity-link-log", self.get_identity_link_log),
            ("GET", "/history/user-operation", self.get_user_operations),
            ("GET", "/task", self.get_tasks),
            ("POST", "/task", self.query_tasks),
            ("GET", "/task/count", self.count_tasks),
            ("POST", "/task/count", self.query_tasks_count),
            ("GET", f"/task/{id_}", self.get_task),
            ("GET", f"/task/{id_}/identity-links", self.get_identity_links),
            ("GET", f"/task/{id_}/variables", self.get_task_variables),
            ("POST", f"/task/{id_}/claim", self.claim),
            ("POST", f"/task/{id_}/unclaim", self.unclaim),
            ("POST", f"/task/{id_}/assignee", self.set_assignee),
            ("POST", f"/task/{id_}/delegate", self.delegate),
            ("POST", f"/task/{id_}/complete", self.complete),
            ("POST", f"/task/{id_}/resolve", self.resolve),
            ("GET", "/incident", self.get_incidents),
            ("GET", "/incident/count", self.count_incidents),
            ("GET", f"/incident/{id_}", self.get_incident),
            ("PUT", f"/incident/{id_}/annotation", self.set_annotation),
            ("DELETE", f"/incident/{id_}/annotation", self.clear_annotation),
            ("GET", f"/job/{id_}/stacktrace", self.get_stacktrace),
            ("PUT", f"/job/{id_}/retries", self.set_job_retries),
        ]

    # ------------------------------------------------------------ dispatch
    async def handle(self, request: httpx.Request) -> httpx.Response:
        if not self._authenticated(request):
            return httpx.Response(401, headers={"WWW-Authenticate": f'Basic realm="{ENGINE_NAME}"'})
        path = request.url.path
        if not path.startswith(BASE_PATH + "/"):
            return httpx.Response(404)
        path = path.removeprefix(BASE_PATH)
        if path.startswith(f"/engine/{ENGINE_NAME}/"):
            path = path.removeprefix(f"/engine/{ENGINE_NAME}")
        self.run_due_jobs()
        for route in self.routes:
            match = route.pattern.match(path)
            if match is None or route.method != request.method:
                continue
            call = Call(request, dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)))
            arguments = {name: unquote(value) for name, value in match.groupdict().items()}
            work = functools.partial(route.handler, call, **arguments)
            reading = request.method == "GET" or route.handler.__name__.startswith("query_")  # POST /task: a query
            return self._transaction(work, reading=reading)
        return httpx.Response(404)

    def _authenticated(self, request: httpx.Request) -> bool:
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        return request.headers.get("Authorization") == expected

    def _transaction(self, work: Callable[[], Any], *, reading: bool) -> httpx.Response:
        # A read (every GET handler, and the query_ ones behind POST /task and the like) changes nothing, so it
        # needs no snapshot to roll back to: copying the whole state on every request made each read cost as much
        # as the state is big (a page of tasks is 50 identity-link reads).
        snapshot = None if reading else copy.deepcopy(self.state)
        try:
            result = work()
        except CamundaError as error:
            if snapshot is not None:
                self.state = snapshot
            return error.response()
        if result is None:
            return httpx.Response(204)
        if isinstance(result, Text):
            if result.body is None:
                return httpx.Response(204)
            return httpx.Response(200, text=result.body, headers={"Content-Type": "text/plain"})
        return httpx.Response(200, json=result)

    # ------------------------------------------------------------ engine
    def _new_id(self) -> str:
        return str(uuid.uuid4())

    def _next_sequence(self) -> int:
        self.state.sequence += 1
        return self.state.sequence

    def _definition(self, definition_id: str) -> Definition:
        return self.state.definitions[definition_id]

    def deploy(
        self, name: str | None, source: str | None, tenant_id: str | None, resources: dict[str, bytes]
    ) -> Deployment:
        deployment = Deployment(self._new_id(), name, source, tenant_id, self.now(), resources)
        parsed = []
        for resource, content in resources.items():
            if not resource.endswith((".bpmn", ".bpmn20.xml")):
                continue
            try:
                parsed.append((resource, content, *parse_bpmn(content)))
            except BpmnProblem as problem:
                raise self._parse_error(resource, problem) from None
        self.state.deployments[deployment.id] = deployment
        for resource, content, namespace, processes in parsed:
            for process in processes:
                latest = self._latest(process["key"], tenant_id)
                version = latest.version + 1 if latest else 1
                definition_id = f"{process['key']}:{version}:{self._new_id()}"
                if len(definition_id) > 64:
                    definition_id = self._new_id()
                self.state.definitions[definition_id] = Definition(
                    id=definition_id,
                    key=process["key"],
                    name=process["name"],
                    version=version,
                    deployment_id=deployment.id,
                    resource=resource,
                    tenant_id=tenant_id,
                    category=namespace,
                    description=process["description"],
                    version_tag=process["version_tag"],
                    history_ttl=process["history_ttl"],
                    xml=content.decode("utf-8"),
                    nodes=process["nodes"],
                    branches=process["branches"],
                )
        return deployment

    @staticmethod
    def _parse_error(resource: str, problem: BpmnProblem) -> CamundaError:
        # ProblemImpl.toString: only the positions that are known
        where = f" | line {problem.line}" if problem.line else ""
        where += f" | column {problem.column}" if problem.column else ""
        report = {
            "message": problem.message,
            "line": problem.line,
            "column": problem.column,
            "mainElementId": problem.element,
            "elementIds": [problem.element] if problem.element else [],
        }
        return CamundaError(
            400,
            "ParseException",
            f"ENGINE-09005 Could not parse BPMN process. Errors: \n* {problem.message} | resource {resource}{where}",
            details={resource: {"errors": [report], "warnings": []}},
        )

    def start_instance(
        self,
        definition: Definition,
        business_key: str | None,
        variables: dict[str, Variable],
        start_instructions: list[dict[str, Any]] | None = None,
    ) -> Instance:
        if definition.suspended:
            raise CamundaError(
                500,
                "RestException",
                f"Cannot instantiate process definition {definition.id}: "
                f"ENGINE-03043 Process Definition with id '{definition.id}' is suspended.",
            )
        now = self.now()
        for variable in variables.values():
            variable.created = now
        instance = Instance(
            self._new_id(), definition.id, definition.key, business_key, definition.tenant_id, now, variables
        )
        self.state.instances[instance.id] = instance
        for instruction in start_instructions or []:  # the simulator starts one token: before a main-path element
            ids = [node.id for node in definition.nodes]
            if instruction.get("type") != "startBeforeActivity" or instruction.get("activityId") not in ids:
                raise NotImplementedError("the Camunda simulator starts before an element of the main path only")
            instance.position = ids.index(instruction["activityId"])
        self._advance(instance)
        return instance

    def _advance(self, instance: Instance, *, continuing_job: bool = False) -> None:
        """Move the token along the chain until it waits (user task, asynchronous job) or the instance ends.

        `continuing_job`: the job executor runs the asynchronous continuation the token waits at.
        """
        definition = self._definition(instance.definition_id)
        nodes = self._path(instance)
        while instance.position < len(nodes):
            node = nodes[instance.position]
            if node.async_before and not continuing_job:
                self._create_job(instance, definition, node)
                return
            continuing_job = False
            run = self._enter(instance, definition, node)
            if node.kind in ("userTask", "intermediateCatchEvent"):
                if node.kind == "userTask":
                    self._create_task(instance, definition, node, run)
                return
            if node.kind == "serviceTask":
                self._execute_service_task(instance, node)
            run.end = self.now()
            instance.open_run = None
            instance.position += 1
        self._end(instance, "COMPLETED", None)

    def _path(self, instance: Instance) -> list[FlowNode]:
        definition = self._definition(instance.definition_id)
        return definition.nodes if instance.branch is None else definition.branches[instance.branch]

    def _waiting_node(self, instance: Instance) -> FlowNode | None:
        """The activity the token waits in (a user task or catch event), None while it waits for a job or ended."""
        return None if instance.open_run is None else self.state.runs[instance.open_run].node

    def _move_on(self, instance: Instance, variables: dict[str, Variable]) -> None:
        """The waiting catch event caught its message or signal: set `variables`, leave it, advance."""
        self._set_variables(instance, variables)
        self.state.runs[instance.open_run].end = self.now()
        instance.open_run = None
        instance.position += 1
        self._advance(instance)

    def _interrupt(self, instance: Instance, boundary: FlowNode, variables: dict[str, Variable]) -> None:
        """An interrupting boundary event fired: cancel its activity (and task), follow the boundary's path."""
        now = self.now()
        run = self.state.runs[instance.open_run]
        run.end, run.canceled = now, True
        for task in self._open_tasks(instance.id):
            task.end, task.delete_reason, task.state = now, "deleted", "Deleted"
        self._set_variables(instance, variables)
        instance.open_run, instance.branch, instance.position = None, boundary.id, 0
        self._advance(instance)

    def _set_variables(self, instance: Instance, variables: dict[str, Variable]) -> None:
        now = self.now()
        for name, variable in variables.items():
            existing = instance.variables.get(name)
            variable.created = existing.created if existing else now
            instance.variables[name] = variable

    def _enter(self, instance: Instance, definition: Definition, node: FlowNode) -> ActivityRun:
        run = ActivityRun(
            id=f"{node.id}:{self._new_id()}",
            node=node,
            instance_id=instance.id,
            definition_id=definition.id,
            definition_key=definition.key,
            tenant_id=instance.tenant_id,
            start=self.now(),
            sequence=self._next_sequence(),
        )
        self.state.runs[run.id] = run
        instance.open_run = run.id
        return run

    def _execute_service_task(self, instance: Instance, node: FlowNode) -> None:
        failure = expression_failure(node.expression, {name: v.value for name, v in instance.variables.items()})
        if failure is not None:
            what = "Unknown property used in expression" if failure.unknown else "Error while evaluating expression"
            raise CamundaError(500, "ProcessEngineException", f"{what}: {node.expression}. Cause: {failure.cause}")
        flag = instance.variables.get(FAILING_VARIABLE)
        if flag is not None and flag.type == "Boolean" and flag.value is True:
            bean = re.search(r"\?\s*(\w+)\.", node.expression or "")
            identifier = bean[1] if bean else "unknown"
            raise CamundaError(
                500,
                "ProcessEngineException",
                f"Unknown property used in expression: {node.expression}. "
                f"Cause: Cannot resolve identifier '{identifier}'",
            )

    def _create_task(self, instance: Instance, definition: Definition, node: FlowNode, run: ActivityRun) -> None:
        task = UserTask(
            id=self._new_id(),
            node=node,
            instance_id=instance.id,
            definition_id=definition.id,
            definition_key=definition.key,
            tenant_id=instance.tenant_id,
            run_id=run.id,
            created=self.now(),
            assignee=node.assignee,
            suspended=instance.suspended,
        )
        run.task_id, run.assignee = task.id, task.assignee
        self.state.tasks[task.id] = task
        if task.assignee is not None:
            self._log_assignee(task, "add", task.assignee, task.created)

    def _create_job(self, instance: Instance, definition: Definition, node: FlowNode) -> None:
        now = self.now()
        job = Job(
            id=self._new_id(),
            node=node,
            instance_id=instance.id,
            definition_id=definition.id,
            definition_key=definition.key,
            tenant_id=instance.tenant_id,
            job_definition_id=f"job-definition:{definition.id}:{node.id}",
            created=now,
            due=now,
            suspended=instance.suspended,
        )
        self.state.jobs[job.id] = job

    def _end(self, instance: Instance, state: str, reason: str | None) -> None:
        now = self.now()
        instance.state, instance.end, instance.delete_reason = state, now, reason
        for run in self.state.runs.values():
            if run.instance_id == instance.id and run.end is None:
                run.end, run.canceled = now, True
        for task in self._open_tasks(instance.id):
            task.end, task.delete_reason, task.state = now, reason or "deleted", "Deleted"
        for job in [job for job in self.state.jobs.values() if job.instance_id == instance.id]:
            del self.state.jobs[job.id]
        for incident in self.state.incidents.values():
            if incident.instance_id == instance.id and incident.state == "open":
                incident.state, incident.end = "deleted", now

    def _open_tasks(self, instance_id: str | None = None) -> list[UserTask]:
        return [
            task
            for task in self.state.tasks.values()
            if task.end is None and (instance_id is None or task.instance_id == instance_id)
        ]

    def run_due_jobs(self) -> None:
        """The job executor: runs each due job in a transaction of its own."""
        now = self.now()
        due = [job.id for job in self.state.jobs.values() if job.retries > 0 and not job.suspended and job.due <= now]
        for job_id in due:
            snapshot = copy.deepcopy(self.state)
            job = self.state.jobs.pop(job_id)
            try:
                self._advance(self.state.instances[job.instance_id], continuing_job=True)
            except CamundaError as failure:
                self.state = snapshot
                self._fail_job(self.state.jobs[job_id], failure.message)

    def _fail_job(self, job: Job, message: str) -> None:
        """DefaultJobRetryCmd with a retry cycle: the first failure grants the cycle's retries, then one is used."""
        first_failure = job.exception_message is None
        job.exception_message = message
        job.stacktrace = (
            f"org.camunda.bpm.engine.ProcessEngineException: {message}\n"
            "\tat org.camunda.bpm.engine.impl.el.JuelExpression.getValue(JuelExpression.java:63)\n"
            "\tat org.camunda.bpm.engine.impl.bpmn.behavior.ServiceTaskExpressionActivityBehavior.performExecution"
            "(ServiceTaskExpressionActivityBehavior.java:57)\n"
        )
        job.due = self.now() + interval_of(job.node.retry_cycle)
        granted = retries_of(job.node.retry_cycle)
        if first_failure and granted is not None:
            self._set_retries(job, granted)
        self._set_retries(job, job.retries - 1)

    def _set_retries(self, job: Job, retries: int) -> None:
        """JobEntity.setRetries: reaching 0 raises a failedJob incident, leaving 0 resolves it."""
        retries = max(retries, 0)
        if job.retries == 0 and retries > 0:
            for incident in self.state.incidents.values():
                if incident.configuration == job.id and incident.state == "open":
                    incident.state, incident.end = "resolved", self.now()
        if retries == 0 and job.retries > 0:
            incident = Incident(
                id=self._new_id(),
                kind="failedJob",
                message=job.exception_message,
                created=self.now(),
                instance_id=job.instance_id,
                activity_id=job.node.id,
                definition_id=job.definition_id,
                definition_key=job.definition_key,
                configuration=job.id,
                job_definition_id=job.job_definition_id,
                tenant_id=job.tenant_id,
            )
            self.state.incidents[incident.id] = incident
        job.retries = retries

    # ------------------------------------------------------------ lookups (with the engine's not-found answers)
    def _running(self, instance_id: str, error: CamundaError) -> Instance:
        instance = self.state.instances.get(instance_id)
        if instance is None or instance.end is not None:
            raise error
        return instance

    def _open_task(self, task_id: str, error: CamundaError) -> UserTask:
        task = self.state.tasks.get(task_id)
        if task is None or task.end is not None:
            raise error
        return task

    def _latest(self, key: str, tenant_id: str | None) -> Definition | None:
        candidates = [d for d in self.state.definitions.values() if d.key == key and d.tenant_id == tenant_id]
        return max(candidates, key=lambda d: d.version, default=None)

    # ------------------------------------------------------------ DTOs
    def _definition_dto(self, definition: Definition) -> dict[str, Any]:
        return {
            "id": definition.id,
            "key": definition.key,
            "category": definition.category,
            "description": definition.description,
            "name": definition.name,
            "version": definition.version,
            "resource": definition.resource,
            "deploymentId": definition.deployment_id,
            "diagram": None,
            "suspended": definition.suspended,
            "tenantId": definition.tenant_id,
            "versionTag": definition.version_tag,
            "historyTimeToLive": definition.history_ttl,
            "startableInTasklist": True,
        }

    def _deployment_dto(self, deployment: Deployment) -> dict[str, Any]:
        return {
            "links": [],
            "id": deployment.id,
            "tenantId": deployment.tenant_id,
            "deploymentTime": format_date(deployment.time),
            "source": deployment.source,
            "name": deployment.name,
        }

    def _instance_dto(self, instance: Instance) -> dict[str, Any]:
        return {
            "links": [],
            "id": instance.id,
            "definitionId": instance.definition_id,
            "definitionKey": instance.definition_key,
            "businessKey": instance.business_key,
            "caseInstanceId": None,
            "ended": instance.end is not None,
            "suspended": instance.suspended,
            "tenantId": instance.tenant_id,
        }

    def _historic_instance_dto(self, instance: Instance) -> dict[str, Any]:
        definition = self._definition(instance.definition_id)
        duration = None if instance.end is None else int((instance.end - instance.start).total_seconds() * 1000)
        return {
            "id": instance.id,
            "rootProcessInstanceId": instance.id,
            "superProcessInstanceId": None,
            "superCaseInstanceId": None,
            "caseInstanceId": None,
            "processDefinitionName": definition.name,
            "processDefinitionKey": definition.key,
            "processDefinitionVersion": definition.version,
            "processDefinitionId": definition.id,
            "businessKey": instance.business_key,
            "startTime": format_date(instance.start),
            "endTime": format_date(instance.end),
            "removalTime": None,
            "durationInMillis": duration,
            "startUserId": None,
            "startActivityId": definition.nodes[0].id,
            "deleteReason": instance.delete_reason,
            "tenantId": instance.tenant_id,
            "state": "SUSPENDED" if instance.suspended and instance.end is None else instance.state,
            "restartedProcessInstanceId": None,
        }

    def _run_dto(self, run: ActivityRun) -> dict[str, Any]:
        duration = None if run.end is None else int((run.end - run.start).total_seconds() * 1000)
        return {
            "id": run.id,
            "parentActivityInstanceId": run.instance_id,
            "activityId": run.node.id,
            "activityName": run.node.name,
            "activityType": run.node.activity_type,
            "processDefinitionKey": run.definition_key,
            "processDefinitionId": run.definition_id,
            "processInstanceId": run.instance_id,
            "executionId": run.instance_id,
            "taskId": run.task_id,
            "assignee": run.assignee,
            "calledProcessInstanceId": None,
            "calledCaseInstanceId": None,
            "startTime": format_date(run.start),
            "endTime": format_date(run.end),
            "durationInMillis": duration,
            "canceled": run.canceled,
            "completeScope": run.node.kind == "endEvent",
            "tenantId": run.tenant_id,
            "removalTime": None,
            "rootProcessInstanceId": run.instance_id,
        }

    def _task_dto(self, task: UserTask) -> dict[str, Any]:
        dto = {
            "id": task.id,
            "name": task.node.name,
            "assignee": task.assignee,
            "owner": task.owner,
            "created": format_date(task.created),
            "lastUpdated": None,
            "due": None,
            "followUp": None,
            "delegationState": task.delegation_state,
            "description": None,
            "executionId": task.instance_id,
            "parentTaskId": None,
            "priority": 50,
            "processDefinitionId": task.definition_id,
            "processInstanceId": task.instance_id,
            "caseExecutionId": None,
            "caseDefinitionId": None,
            "caseInstanceId": None,
            "taskDefinitionKey": task.node.id,
            "suspended": task.suspended,
            "formKey": None,
            "tenantId": task.tenant_id,
            "taskState": task.state,
            "attachment": False,
            "comment": False,
        }
        if task.delegation_state is None:  # the engine sends null, which the spec's enum does not allow
            del dto["delegationState"]
        return dto

    def _historic_task_dto(self, task: UserTask) -> dict[str, Any]:
        duration = None if task.end is None else int((task.end - task.created).total_seconds() * 1000)
        return {
            "id": task.id,
            "processDefinitionKey": task.definition_key,
            "processDefinitionId": task.definition_id,
            "processInstanceId": task.instance_id,
            "executionId": task.instance_id,
            "caseDefinitionKey": None,
            "caseDefinitionId": None,
            "caseInstanceId": None,
            "caseExecutionId": None,
            "activityInstanceId": task.run_id,
            "name": task.node.name,
            "description": None,
            "deleteReason": task.delete_reason,
            "owner": task.owner,
            "assignee": task.assignee,
            "startTime": format_date(task.created),
            "endTime": format_date(task.end),
            "duration": duration,
            "taskDefinitionKey": task.node.id,
            "priority": 50,
            "due": None,
            "parentTaskId": None,
            "followUp": None,
            "tenantId": task.tenant_id,
            "removalTime": None,
            "rootProcessInstanceId": task.instance_id,
            "taskState": task.state,
        }

    def _incident_dto(self, incident: Incident) -> dict[str, Any]:
        return {
            "id": incident.id,
            "processDefinitionId": incident.definition_id,
            "processInstanceId": incident.instance_id,
            "executionId": incident.instance_id,
            "incidentTimestamp": format_date(incident.created),
            "incidentType": incident.kind,
            "activityId": incident.activity_id,
            "failedActivityId": incident.activity_id,
            "causeIncidentId": incident.id,
            "rootCauseIncidentId": incident.id,
            "configuration": incident.configuration,
            "tenantId": incident.tenant_id,
            "incidentMessage": incident.message,
            "jobDefinitionId": incident.job_definition_id,
            "annotation": incident.annotation,
        }

    def _historic_incident_dto(self, incident: Incident) -> dict[str, Any]:
        return {
            "id": incident.id,
            "processDefinitionKey": incident.definition_key,
            "processDefinitionId": incident.definition_id,
            "processInstanceId": incident.instance_id,
            "executionId": incident.instance_id,
            "rootProcessInstanceId": incident.instance_id,
            "createTime": format_date(incident.created),
            "endTime": format_date(incident.end),
            "removalTime": None,
            "incidentType": incident.kind,
            "activityId": incident.activity_id,
            "failedActivityId": incident.activity_id,
            "causeIncidentId": incident.id,
            "rootCauseIncidentId": incident.id,
            "configuration": incident.configuration,
            "historyConfiguration": None,
            "incidentMessage": incident.message,
            "tenantId": incident.tenant_id,
            "jobDefinitionId": incident.job_definition_id,
            "open": incident.state == "open",
            "deleted": incident.state == "deleted",
            "resolved": incident.state == "resolved",
            "annotation": incident.annotation,
        }

    # ------------------------------------------------------------ version and engines
    def get_version(self, call: Call) -> Any:  # getRestAPIVersion: GET /version
        return {"version": VERSION}

    def get_engines(self, call: Call) -> Any:  # getProcessEngineNames: GET /engine
        return [{"name": ENGINE_NAME}]

    # ------------------------------------------------------------ deployments and definitions
    def create_deployment(self, call: Call) -> Any:  # createDeployment: POST /deployment/create
        content_type = call.request.headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + call.request.content
        )
        fields: dict[str, str] = {}
        resources: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if name in DEPLOYMENT_FIELDS:
                fields[name] = payload.decode()
            elif part.get_filename() is None:
                raise CamundaError(
                    400,
                    "InvalidRequestException",
                    "No file name found in the deployment resource described by form parameter 'null'.",
                    code=None,
                )
            else:
                resources[part.get_filename()] = payload
        if not resources:
            message = "No deployment resources contained in the form upload."
            raise CamundaError(400, "InvalidRequestException", message, code=None)
        if fields.get("enable-duplicate-filtering") == "true":
            raise CamundaError(400, "InvalidRequestException", "Duplicate filtering is not simulated", code=None)
        deployment = self.deploy(
            fields.get("deployment-name"), fields.get("deployment-source"), fields.get("tenant-id"), resources
        )
        definitions = {
            d.id: self._definition_dto(d) for d in self.state.definitions.values() if d.deployment_id == deployment.id
        }
        return {
            **self._deployment_dto(deployment),
            "deployedProcessDefinitions": definitions or None,
            "deployedCaseDefinitions": None,
            "deployedDecisionDefinitions": None,
            "deployedDecisionRequirementsDefinitions": None,
        }

    def get_deployment(self, call: Call, id: str) -> Any:  # getDeployment: GET /deployment/{id}
        deployment = self.state.deployments.get(id)
        if deployment is None:
            raise CamundaError(404, "InvalidRequestException", f"Deployment with id '{id}' does not exist", code=None)
        return self._deployment_dto(deployment)

    def _definitions(self, call: Call) -> list[Definition]:
        rows = list(self.state.definitions.values())
        if call.flag("latestVersion"):
            rows = [d for d in rows if self._latest(d.key, d.tenant_id) is d]
        key, name, ids, tenants = (call.params.get(p) for p in ("key", "name", "processDefinitionIdIn", "tenantIdIn"))
        if key is not None:
            rows = [d for d in rows if d.key == key]
        if name is not None:
            rows = [d for d in rows if d.name == name]
        if ids is not None:
            rows = [d for d in rows if d.id in ids.split(",")]
        if tenants is not None:
            rows = [d for d in rows if d.tenant_id in tenants.split(",")]
        if call.flag("suspended"):
            rows = [d for d in rows if d.suspended]
        if call.flag("active"):
            rows = [d for d in rows if not d.suspended]
        return rows

    DEFINITION_SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "id": lambda d: d.id,
        "key": lambda d: d.key,
        "name": lambda d: d.name,
        "version": lambda d: d.version,
        "category": lambda d: d.category,
        "deploymentId": lambda d: d.deployment_id,
    }

    def get_definitions(self, call: Call) -> Any:  # getProcessDefinitions: GET /process-definition
        sort = {**self.DEFINITION_SORT, "deployTime": lambda d: self.state.deployments[d.deployment_id].time}
        return [self._definition_dto(d) for d in paged(call, self._definitions(call), sort)]

    def count_definitions(self, call: Call) -> Any:  # getProcessDefinitionsCount: GET /process-definition/count
        return count(self._definitions(call))

    def _definition_or(self, definition_id: str, status: int, message: str) -> Definition:
        definition = self.state.definitions.get(definition_id)
        if definition is None:
            raise CamundaError(status, "InvalidRequestException", message)
        return definition

    def get_definition(self, call: Call, id: str) -> Any:  # getProcessDefinition: GET /process-definition/{id}
        return self._definition_dto(self._definition_or(id, 400, f"No matching definition with id {id}"))

    def get_definition_xml(self, call: Call, id: str) -> Any:  # getProcessDefinitionBpmn20Xml: GET .../{id}/xml
        definition = self._definition_or(id, 404, f"No matching definition with id {id}")
        return {"id": definition.id, "bpmn20Xml": definition.xml}

    def suspend_definition(self, call: Call, id: str) -> Any:  # updateProcessDefinitionSuspensionStateById
        body = call.body()
        definition = self.state.definitions.get(id)
        if definition is None and self.credentials is not None:  # 7.24 with an authenticated user (recorded)
            raise CamundaError(
                500,
                "NullPointerException",
                'Cannot invoke "org.camunda.bpm.engine.impl.persistence.entity.ProcessDefinitionEntity.getId()" '
                'because "processDefinition" is null',
                code=None,
            )
        if definition is None:  # without one, the engine's command does nothing for an unknown id
            return None
        definition.suspended = bool(body.get("suspended"))
        if body.get("includeProcessInstances"):
            for instance in self.state.instances.values():
                if instance.definition_id == id and instance.end is None:
                    self._suspend(instance, definition.suspended)
        return None

    def delete_definition(self, call: Call, id: str) -> Any:  # deleteProcessDefinition: DELETE /process-definition/{id}
        definition = self.state.definitions.get(id)
        if definition is None:
            raise CamundaError(
                404, "InvalidRequestException", f"No process definition found with id '{id}': processDefinition is null"
            )
        instances = [i for i in self.state.instances.values() if i.definition_id == id]
        running = [i for i in instances if i.end is None]
        if running and not call.flag("cascade"):
            raise CamundaError(
                500,
                "ProcessEngineException",
                "ENGINE-03076 Deletion of process definition without cascading failed. Process definition with id: "
                f"{id} can't be deleted, because there are {len(running)} dependent process instances.",
            )
        for instance in instances:  # cascading removes runtime and history alike
            for collection in (self.state.runs, self.state.tasks, self.state.jobs, self.state.incidents):
                for key in [k for k, v in collection.items() if v.instance_id == instance.id]:
                    del collection[key]
            del self.state.instances[instance.id]
        del self.state.definitions[id]
        return None

    # ------------------------------------------------------------ starting instances
    def _start(self, call: Call, definition: Definition) -> Any:
        body = call.body()
        variables = read_variables(body.get("variables"), f"Cannot instantiate process definition {definition.id}")
        try:
            instance = self.start_instance(
                definition, body.get("businessKey"), variables, body.get("startInstructions")
            )
        except CamundaError as error:
            if error.kind in ("RestException", "InvalidRequestException"):
                raise
            raise CamundaError(
                500, "RestException", f"Cannot instantiate process definition {definition.id}: {error.message}"
            ) from None
        return {**self._instance_dto(instance), "variables": None}

    def start_by_id(self, call: Call, id: str) -> Any:  # startProcessInstance: POST /process-definition/{id}/start
        definition = self.state.definitions.get(id)
        if definition is None:
            raise CamundaError(
                500,
                "RestException",
                f"Cannot instantiate process definition {id}: no deployed process definition found with id '{id}': "
                "processDefinition is null",
            )
        return self._start(call, definition)

    def start_by_key(self, call: Call, key: str) -> Any:  # startProcessInstanceByKey: POST .../key/{key}/start
        definition = self._latest(key, None)
        if definition is None:  # not in the spec; engine-rest's key lookup answers 404
            message = f"No matching process definition with key: {key} and no tenant-id"
            raise CamundaError(404, "RestException", message, code=None)
        return self._start(call, definition)

    def start_by_key_and_tenant(self, call: Call, key: str, tenant: str) -> Any:
        # startProcessInstanceByKeyAndTenantId: POST /process-definition/key/{key}/tenant-id/{tenant-id}/start
        definition = self._latest(key, tenant)
        if definition is None:
            message = f"No matching process definition with key: {key} and tenant-id: {tenant}"
            raise CamundaError(404, "RestException", message, code=None)
        return self._start(call, definition)

    # ------------------------------------------------------------ messages and signals
    def _catching(self, kind: str, name: str) -> list[tuple[Instance, FlowNode]]:
        """(instance, catching event) for every active instance whose token waits where `kind` `name` is caught:
        at a catch event, or in an activity with such a boundary event."""
        found = []
        for instance in self.state.instances.values():
            if instance.end is not None or instance.suspended:
                continue
            waiting = self._waiting_node(instance)
            if waiting is None:
                continue
            definition = self._definition(instance.definition_id)
            boundaries = [path[0] for path in definition.branches.values() if path[0].attached_to == waiting.id]
            for node in [waiting, *boundaries]:
                if node.kind in ("intermediateCatchEvent", "boundaryEvent") and getattr(node, kind) == name:
                    found.append((instance, node))
                    break
        return found

    def _catch(self, instance: Instance, node: FlowNode, variables: dict[str, Variable]) -> None:
        if node.kind == "boundaryEvent":
            self._interrupt(instance, node, variables)
        else:
            self._move_on(instance, variables)

    def deliver_message(self, call: Call) -> Any:  # deliverMessage: POST /message
        body = call.body()
        name = body.get("messageName")
        if not name:
            raise CamundaError(400, "InvalidRequestException", "No message name supplied", code=None)
        keys = read_variables(body.get("correlationKeys"), f"Cannot correlate message '{name}'")
        variables = read_variables(body.get("processVariables"), f"Cannot correlate message '{name}'")
        business_key, instance_id, tenant = body.get("businessKey"), body.get("processInstanceId"), body.get("tenantId")
        executions = [
            (instance, node)
            for instance, node in self._catching("message", name)
            if (business_key is None or instance.business_key == business_key)
            and (instance_id is None or instance.id == instance_id)
            and (tenant is None or instance.tenant_id == tenant)
            and all(
                key in instance.variables and instance.variables[key].value == value.value
                for key, value in keys.items()
            )
        ]
        starts = []
        if instance_id is None and not keys and (body.get("all") or not executions):
            latest: dict[tuple[str, str | None], Definition] = {}
            for definition in self.state.definitions.values():
                if tenant is not None and definition.tenant_id != tenant:
                    continue
                known = latest.get((definition.key, definition.tenant_id))
                if known is None or known.version < definition.version:
                    latest[(definition.key, definition.tenant_id)] = definition
            starts = [d for d in latest.values() if d.nodes[0].message == name and not d.suspended]
        if not executions and not starts:
            reason = f"Cannot correlate message '{name}': No process definition or execution matches the parameters"
            raise CamundaError(400, "RestException", f"Cannot correlate message '{name}': {reason}")
        if not body.get("all") and len(executions) > 1:
            reason = (
                f"ENGINE-13031 Cannot correlate a message with name '{name}' to a single execution. "
                f"{len(executions)} executions match the correlation keys: CorrelationSet [businessKey={business_key}]"
            )
            raise CamundaError(400, "RestException", f"Cannot correlate message '{name}': {reason}")
        if not body.get("all") and len(starts) > 1:
            reason = f"Cannot correlate message '{name}': {len(starts)} process definitions match"
            raise CamundaError(400, "RestException", f"Cannot correlate message '{name}': {reason}")
        results = []
        for instance, node in executions:
            self._catch(instance, node, copy.deepcopy(variables))
            execution = {
                "id": instance.id,
                "processInstanceId": instance.id,
                "ended": instance.end is not None,
                "tenantId": instance.tenant_id,
            }
            results.append({"resultType": "Execution", "execution": execution, "processInstance": None})
        for definition in starts:
            instance = self.start_instance(definition, business_key, copy.deepcopy(variables))
            results.append(
                {"resultType": "ProcessDefinition", "execution": None, "processInstance": self._instance_dto(instance)}
            )
        return results if body.get("resultEnabled") else None

    def throw_signal(self, call: Call) -> Any:  # throwSignal: POST /signal
        body = call.body()
        name = body.get("name")
        if not name:
            raise CamundaError(400, "InvalidRequestException", "No signal name given", code=None)
        variables = read_variables(body.get("variables"), f"Cannot throw signal '{name}'")
        tenant = body.get("tenantId")
        for instance, node in self._catching("signal", name):
            if tenant is None or instance.tenant_id == tenant:
                self._catch(instance, node, copy.deepcopy(variables))
        for definition in list(self.state.definitions.values()):
            if (
                definition.nodes[0].signal == name
                and not definition.suspended
                and self._latest(definition.key, definition.tenant_id) is definition
            ):
                self.start_instance(definition, None, copy.deepcopy(variables))
        return None

    # ------------------------------------------------------------ modification
    def modify_instance(self, call: Call, id: str) -> Any:  # modifyProcessInstance: POST .../{id}/modification
        body = call.body()
        instance = self._running(
            id, CamundaError(400, "InvalidRequestException", f"Process instance with id {id} does not exist", code=None)
        )
        definition = self._definition(instance.definition_id)
        for instruction in body.get("instructions") or []:
            kind, activity_id = instruction.get("type"), instruction.get("activityId")
            if kind not in ("cancel", "startBeforeActivity", "startAfterActivity") or not activity_id:
                raise CamundaError(
                    400, "InvalidRequestException", f"'activityId' must be set for instruction type {kind}", code=None
                )
            where = next(
                (
                    (branch, path.index(node))
                    for branch, path in [(None, definition.nodes), *definition.branches.items()]
                    for node in path
                    if node.id == activity_id
                ),
                None,
            )
            if where is None:
                raise CamundaError(
                    500,
                    "ProcessEngineException",
                    f"ENGINE-13033 Cannot perform instruction: {kind} '{activity_id}'; Element '{activity_id}' does not exist in process '{definition.id}'",
                )
            variables = read_variables(instruction.get("variables"), "Cannot modify process instance")
            self._set_variables(instance, variables)
            if kind == "cancel":
                self._cancel_activity(instance, activity_id)
                continue
            if instance.open_run is not None or any(job.instance_id == instance.id for job in self.state.jobs.values()):
                raise NotImplementedError("the Camunda simulator runs one token: cancel the current activity first")
            instance.branch, instance.position = where[0], where[1] + (1 if kind == "startAfterActivity" else 0)
            self._advance(instance)
        if (
            instance.end is None
            and instance.open_run is None
            and not any(job.instance_id == instance.id for job in self.state.jobs.values())
        ):
            self._end(instance, "EXTERNALLY_TERMINATED", body.get("annotation"))
        return None

    def _cancel_activity(self, instance: Instance, activity_id: str) -> None:
        now = self.now()
        if instance.open_run is not None and self.state.runs[instance.open_run].node.id == activity_id:
            run = self.state.runs[instance.open_run]
            run.end, run.canceled = now, True
            for task in self._open_tasks(instance.id):
                task.end, task.delete_reason, task.state = now, "deleted", "Deleted"
            instance.open_run = None
        for job in [j for j in self.state.jobs.values() if j.instance_id == instance.id and j.node.id == activity_id]:
            del self.state.jobs[job.id]
            for incident in self.state.incidents.values():
                if incident.configuration == job.id and incident.state == "open":
                    incident.state, incident.end = "deleted", now

    # ------------------------------------------------------------ migration
    def _plan_definitions(self, plan: dict[str, Any]) -> tuple[Definition, Definition]:
        found = []
        for field_name in ("sourceProcessDefinitionId", "targetProcessDefinitionId"):
            definition_id = plan.get(field_name)
            if definition_id not in self.state.definitions:
                raise CamundaError(
                    400, "BadUserRequestException", f"Process definition with id '{definition_id}' does not exist"
                )
            found.append(self.state.definitions[definition_id])
        return found[0], found[1]

    @staticmethod
    def _node(definition: Definition, activity_id: str) -> FlowNode | None:
        paths = [definition.nodes, *definition.branches.values()]
        return next((node for path in paths for node in path if node.id == activity_id), None)

    def generate_migration_plan(self, call: Call) -> Any:  # generateMigrationPlan: POST /migration/generate
        """Instructions for the activities (not start or end events) with the same id and type in both versions."""
        body = call.body()
        source, target = self._plan_definitions(body)
        instructions = []
        for path in [source.nodes, *source.branches.values()]:
            for node in path:
                twin = self._node(target, node.id)
                if node.kind not in ("startEvent", "endEvent") and twin is not None and twin.kind == node.kind:
                    instructions.append(
                        {"sourceActivityIds": [node.id], "targetActivityIds": [node.id], "updateEventTrigger": False}
                    )
        return {
            "sourceProcessDefinitionId": source.id,
            "targetProcessDefinitionId": target.id,
            "instructions": instructions,
            "variables": None,
        }

    def execute_migration_plan(self, call: Call) -> Any:  # executeMigrationPlan: POST /migration/execute
        """Validate the plan (MigrationPlanValidationException), then each instance against it
        (MigratingProcessInstanceValidationException: an activity the token waits in without an instruction), then
        move the instances: their activity instances, tasks, jobs and incidents follow the instructions."""
        body = call.body()
        plan = body.get("migrationPlan") or {}
        source, target = self._plan_definitions(plan)
        mapped: dict[str, FlowNode] = {}
        reports = []
        for instruction in plan.get("instructions") or []:
            sources, targets = instruction.get("sourceActivityIds") or [], instruction.get("targetActivityIds") or []
            failures = []
            if len(sources) != 1 or len(targets) != 1:
                failures.append("Only one-to-one mappings are supported")
            else:
                old, new = self._node(source, sources[0]), self._node(target, targets[0])
                if old is None:
                    failures.append(f"Source activity '{sources[0]}' does not exist")
                if new is None:
                    failures.append(f"Target activity '{targets[0]}' does not exist")
                if old is not None and new is not None and old.kind != new.kind:
                    failures.append("Activities have incompatible types")
                if not failures and new is not None:
                    mapped[sources[0]] = new
            if failures:
                reports.append({"instruction": instruction, "failures": failures})
        if reports:
            lines = "".join(
                f"\t Migration instruction {r['instruction']} is not valid:\n"
                + "".join(f"\t\t{f}\n" for f in r["failures"])
                for r in reports
            )
            raise CamundaError(
                400,
                "MigrationPlanValidationException",
                f"ENGINE-23001 Migration plan for process definition '{source.id}' to '{target.id}' is not valid:\n"
                + lines,
                validationReport={"instructionReports": reports, "variableReports": {}},
            )
        instances = []
        for instance_id in body.get("processInstanceIds") or []:
            instance = self._running(
                instance_id,
                CamundaError(400, "BadUserRequestException", f"Process instance with id {instance_id} does not exist"),
            )
            waiting = self._waiting_activity(instance)
            if instance.definition_id != source.id or (waiting is not None and waiting[1].id not in mapped):
                run_id, node = waiting if waiting is not None else (instance.id, None)
                failure = "There is no migration instruction for this instance's activity"
                raise CamundaError(
                    400,
                    "MigratingProcessInstanceValidationException",
                    f"ENGINE-23004 Cannot migrate process instance '{instance.id}':\n"
                    f"\tCannot migrate activity instance '{run_id}':\n\t\t{failure}\n",
                    validationReport={
                        "processInstanceId": instance.id,
                        "failures": [],
                        "activityInstanceValidationReports": [
                            {
                                "migrationInstruction": None,
                                "activityInstanceId": run_id,
                                "sourceScopeId": node.id if node else None,
                                "failures": [failure],
                            }
                        ],
                        "transitionInstanceValidationReports": [],
                    },
                )
            instances.append(instance)
        for instance in instances:
            self._migrate(instance, target, mapped)
        return None

    def _waiting_activity(self, instance: Instance) -> tuple[str, FlowNode] | None:
        """(activity instance id, activity) the token is in: an open activity instance or a job's activity."""
        if instance.open_run is not None:
            run = self.state.runs[instance.open_run]
            return run.id, run.node
        job = next((j for j in self.state.jobs.values() if j.instance_id == instance.id), None)
        return (f"{job.node.id}:{job.id}", job.node) if job is not None else None

    def _migrate(self, instance: Instance, target: Definition, mapped: dict[str, FlowNode]) -> None:
        instance.definition_id, instance.definition_key = target.id, target.key
        waiting = self._waiting_activity(instance)
        if waiting is not None:
            new = mapped[waiting[1].id]
            instance.branch, instance.position = next(
                (branch, path.index(new))
                for branch, path in [(None, target.nodes), *target.branches.items()]
                if new in path
            )
        rows: list[Any] = [
            *(r for r in self.state.runs.values() if r.instance_id == instance.id and r.end is None),
            *(t for t in self.state.tasks.values() if t.instance_id == instance.id and t.end is None),
            *(j for j in self.state.jobs.values() if j.instance_id == instance.id),
        ]
        for row in rows:
            row.node = mapped.get(row.node.id, row.node)
            row.definition_id, row.definition_key = target.id, target.key
        for incident in self.state.incidents.values():
            if incident.instance_id == instance.id and incident.state == "open":
                incident.definition_id, incident.definition_key = target.id, target.key
                if incident.activity_id in mapped:
                    incident.activity_id = mapped[incident.activity_id].id

    # ------------------------------------------------------------ runtime instances
    def count_instances(self, call: Call) -> Any:  # getProcessInstancesCount: GET /process-instance/count
        rows = [i for i in self.state.instances.values() if i.end is None]
        if "processDefinitionId" in call.params:
            rows = [i for i in rows if i.definition_id == call.params["processDefinitionId"]]
        return count(rows)

    def get_instance(self, call: Call, id: str) -> Any:  # getProcessInstance: GET /process-instance/{id}
        error = CamundaError(404, "InvalidRequestException", f"Process instance with id {id} does not exist", code=None)
        return self._instance_dto(self._running(id, error))

    def delete_instance(self, call: Call, id: str) -> Any:  # deleteProcessInstance: DELETE /process-instance/{id}
        instance = self.state.instances.get(id)
        if instance is None or instance.end is not None:
            if call.flag("failIfNotExists") is False:
                return None
            raise CamundaError(
                404, "InvalidRequestException", f"No process instance found for id '{id}': processInstance is null"
            )
        self._end(instance, "EXTERNALLY_TERMINATED", None)
        return None

    def get_activity_tree(self, call: Call, id: str) -> Any:  # getActivityInstanceTree: GET .../activity-instances
        error = CamundaError(500, "InvalidRequestException", f"Process instance with id {id} does not exist", code=None)
        instance = self._running(id, error)
        definition = self._definition(instance.definition_id)
        activities, transitions = [], []
        if instance.open_run is not None:
            run = self.state.runs[instance.open_run]
            activities.append(
                {
                    "id": run.id,
                    "parentActivityInstanceId": instance.id,
                    "activityId": run.node.id,
                    "activityType": run.node.activity_type,
                    "processInstanceId": instance.id,
                    "processDefinitionId": definition.id,
                    "childActivityInstances": [],
                    "childTransitionInstances": [],
                    "executionIds": [instance.id],
                    "activityName": run.node.name,
                    "incidentIds": [],
                    "incidents": [],
                    "name": run.node.name,
                }
            )
        for job in self.state.jobs.values():
            if job.instance_id != instance.id:
                continue
            incidents = [i for i in self.state.incidents.values() if i.configuration == job.id and i.state == "open"]
            transitions.append(
                {
                    "id": instance.id,
                    "parentActivityInstanceId": instance.id,
                    "activityId": job.node.id,
                    "activityName": job.node.name,
                    "activityType": job.node.activity_type,
                    "processInstanceId": instance.id,
                    "processDefinitionId": definition.id,
                    "executionId": instance.id,
                    "incidentIds": [i.id for i in incidents],
                    "incidents": [{"id": i.id, "activityId": i.activity_id} for i in incidents],
                }
            )
        return {
            "id": instance.id,
            "parentActivityInstanceId": None,
            "activityId": definition.id,
            "activityType": "processDefinition",
            "processInstanceId": instance.id,
            "processDefinitionId": definition.id,
            "childActivityInstances": activities,
            "childTransitionInstances": transitions,
            "executionIds": [instance.id],
            "activityName": definition.name,
            "incidentIds": [],
            "incidents": [],
            "name": definition.name,
        }

    def get_instance_variables(self, call: Call, id: str) -> Any:  # getProcessInstanceVariables
        instance = self._running(id, not_null(f"execution {id} doesn't exist: execution is null"))
        return {name: write_variable(variable) for name, variable in instance.variables.items()}

    def modify_instance_variables(self, call: Call, id: str) -> Any:  # modifyProcessInstanceVariables
        body = call.body()
        modifications = read_variables(body.get("modifications"), "Cannot modify variables for process instance")
        instance = self.state.instances.get(id)
        if instance is None or instance.end is not None:
            raise CamundaError(
                500,
                "RestException",
                f"Cannot modify variables for process instance {id}: execution {id} doesn't exist: execution is null",
            )
        now = self.now()
        for name, variable in modifications.items():
            existing = instance.variables.get(name)
            variable.created = existing.created if existing else now
            instance.variables[name] = variable
        for name in body.get("deletions") or []:
            instance.variables.pop(name, None)
        return None

    def suspend_instance(self, call: Call, id: str) -> Any:  # updateSuspensionStateById: PUT .../{id}/suspended
        instance = self.state.instances.get(id)
        if instance is not None and instance.end is None:  # the engine's command does nothing for an unknown id
            suspended = bool(call.body().get("suspended"))
            self._suspend(instance, suspended)
            self._log_operation("Suspend" if suspended else "Activate", instance, "suspensionState")
        return None

    def _log_operation(self, operation: str, instance: Instance, changed: str) -> None:
        """A user operation log entry, as engine-rest writes it for an authenticated user (the simulator's
        callers always are)."""
        self.state.user_operations.append(
            {
                "id": self._new_id(),
                "userId": self.credentials[0] if self.credentials else "demo",
                "timestamp": format_date(self.now()),
                "operationId": self._new_id(),
                "operationType": operation,
                "entityType": "ProcessInstance",
                "category": "Operator",
                "property": changed,
                "processDefinitionId": instance.definition_id,
                "processDefinitionKey": instance.definition_key,
                "processInstanceId": instance.id,
                "taskId": None,
                "rootProcessInstanceId": instance.id,
            }
        )

    def _suspend(self, instance: Instance, suspended: bool) -> None:
        instance.suspended = suspended
        for task in self._open_tasks(instance.id):
            task.suspended = suspended
        for job in self.state.jobs.values():
            if job.instance_id == instance.id:
                job.suspended = suspended

    # ------------------------------------------------------------ history
    HISTORIC_INSTANCE_SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "instanceId": lambda i: i.id,
        "definitionKey": lambda i: i.definition_key,
        "businessKey": lambda i: i.business_key,
        "startTime": lambda i: i.start,
        "endTime": lambda i: i.end,
        "duration": lambda i: None if i.end is None else i.end - i.start,
        "tenantId": lambda i: i.tenant_id,
        "definitionId": lambda i: i.definition_id,
    }

    def _historic_instances(self, call: Call) -> list[Instance]:
        rows = list(self.state.instances.values())
        p = call.params
        filters: list[tuple[str, Callable[[Instance, str], bool]]] = [
            ("processInstanceId", lambda i, v: i.id == v),
            ("processDefinitionId", lambda i, v: i.definition_id == v),
            ("processDefinitionKey", lambda i, v: i.definition_key == v),
            ("processInstanceBusinessKey", lambda i, v: i.business_key == v),
            ("tenantIdIn", lambda i, v: i.tenant_id in v.split(",")),
        ]
        for name, test in filters:
            if name in p:
                rows = [i for i in rows if test(i, p[name])]
        states = {
            "active": lambda i: i.end is None and not i.suspended,
            "suspended": lambda i: i.end is None and i.suspended,
            "completed": lambda i: i.state == "COMPLETED",
            "externallyTerminated": lambda i: i.state == "EXTERNALLY_TERMINATED",
            "internallyTerminated": lambda i: i.state == "INTERNALLY_TERMINATED",
            "finished": lambda i: i.end is not None,
            "unfinished": lambda i: i.end is None,
            "withIncidents": lambda i: any(
                x.instance_id == i.id and x.state == "open" for x in self.state.incidents.values()
            ),
        }
        for name, test in states.items():
            if call.flag(name):
                rows = [i for i in rows if test(i)]
        after, before = call.date("startedAfter"), call.date("startedBefore")
        if after is not None:
            rows = [i for i in rows if i.start > after]
        if before is not None:
            rows = [i for i in rows if i.start < before]
        finished_after, finished_before = call.date("finishedAfter"), call.date("finishedBefore")
        if finished_after is not None:
            rows = [i for i in rows if i.end is not None and i.end > finished_after]
        if finished_before is not None:
            rows = [i for i in rows if i.end is not None and i.end < finished_before]
        return rows

    def get_historic_instances(self, call: Call) -> Any:  # getHistoricProcessInstances: GET /history/process-instance
        rows = paged(call, self._historic_instances(call), self.HISTORIC_INSTANCE_SORT)
        return [self._historic_instance_dto(i) for i in rows]

    def count_historic_instances(self, call: Call) -> Any:  # getHistoricProcessInstancesCount
        return count(self._historic_instances(call))

    def _queried_instances(self, call: Call) -> tuple[Call, list[Instance]]:
        query = query_call(call, {"variables"})
        conditions = variable_conditions(call.body(), "variables")
        rows = [i for i in self._historic_instances(query) if meets(i.variables, conditions)]
        return query, rows

    def query_historic_instances(
        self, call: Call
    ) -> Any:  # queryHistoricProcessInstances: POST /history/process-instance
        query, rows = self._queried_instances(call)
        return [self._historic_instance_dto(i) for i in sort_query(query, rows, self.HISTORIC_INSTANCE_SORT)]

    def query_historic_instances_count(self, call: Call) -> Any:  # queryHistoricProcessInstancesCount
        return count(self._queried_instances(call)[1])

    def get_historic_instance(self, call: Call, id: str) -> Any:  # getHistoricProcessInstance
        instance = self.state.instances.get(id)
        if instance is None:
            message = f"Historic process instance with id {id} does not exist"
            raise CamundaError(404, "InvalidRequestException", message, code=None)
        return self._historic_instance_dto(instance)

    RUN_SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "activityInstanceId": lambda r: r.id,
        "instanceId": lambda r: r.instance_id,
        "activityId": lambda r: r.node.id,
        "activityName": lambda r: r.node.name,
        "activityType": lambda r: r.node.activity_type,
        "startTime": lambda r: r.start,
        "endTime": lambda r: r.end,
        "duration": lambda r: None if r.end is None else r.end - r.start,
        "definitionId": lambda r: r.definition_id,
        "occurrence": lambda r: r.sequence,
    }

    def _historic_activities(self, call: Call) -> list[ActivityRun]:
        rows = sorted(self.state.runs.values(), key=lambda r: r.sequence)
        p = call.params
        if "processInstanceId" in p:
            rows = [r for r in rows if r.instance_id == p["processInstanceId"]]
        if "processDefinitionId" in p:
            rows = [r for r in rows if r.definition_id == p["processDefinitionId"]]
        if call.flag("finished"):
            rows = [r for r in rows if r.end is not None]
        if call.flag("unfinished"):
            rows = [r for r in rows if r.end is None]
        after, before = call.date("startedAfter"), call.date("startedBefore")
        if after is not None:
            rows = [r for r in rows if r.start > after]
        if before is not None:
            rows = [r for r in rows if r.start < before]
        finished_after = call.date("finishedAfter")
        if finished_after is not None:
            rows = [r for r in rows if r.end is not None and r.end > finished_after]
        return rows

    def get_historic_activities(self, call: Call) -> Any:  # getHistoricActivityInstances
        return [self._run_dto(r) for r in paged(call, self._historic_activities(call), self.RUN_SORT)]

    def count_historic_activities(self, call: Call) -> Any:  # getHistoricActivityInstancesCount
        return count(self._historic_activities(call))

    def get_historic_variables(self, call: Call) -> Any:  # getHistoricVariableInstances: GET /history/variable-instance
        instance_id = call.params.get("processInstanceId")
        instances = [i for i in self.state.instances.values() if instance_id is None or i.id == instance_id]
        rows = []
        for instance in instances:
            definition = self._definition(instance.definition_id)
            for name, variable in instance.variables.items():
                rows.append(
                    {
                        **write_variable(variable),
                        "id": f"{instance.id}:{name}",
                        "name": name,
                        "processDefinitionKey": definition.key,
                        "processDefinitionId": definition.id,
                        "processInstanceId": instance.id,
                        "executionId": instance.id,
                        "activityInstanceId": instance.id,
                        "caseDefinitionKey": None,
                        "caseDefinitionId": None,
                        "caseInstanceId": None,
                        "caseExecutionId": None,
                        "taskId": None,
                        "tenantId": instance.tenant_id,
                        "errorMessage": None,
                        "state": "CREATED",
                        "createTime": format_date(variable.created),
                        "removalTime": None,
                        "rootProcessInstanceId": instance.id,
                    }
                )
        return paged(call, rows, {})

    HISTORIC_TASK_SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "taskId": lambda t: t.id,
        "startTime": lambda t: t.created,
        "endTime": lambda t: t.end,
        "assignee": lambda t: t.assignee,
        "taskName": lambda t: t.node.name,
        "priority": lambda t: 50,
        "dueDate": lambda t: None,
        "processInstanceId": lambda t: t.instance_id,
        "taskDefinitionKey": lambda t: t.node.id,
    }

    def _historic_tasks(self, call: Call) -> list[UserTask]:
        rows = list(self.state.tasks.values())
        p = call.params
        tests: dict[str, Callable[[UserTask, str], bool]] = {
            "taskId": lambda t, v: t.id == v,
            "processInstanceId": lambda t, v: t.instance_id == v,
            "processDefinitionKey": lambda t, v: t.definition_key == v,
            "taskAssignee": lambda t, v: t.assignee == v,
            "taskDeleteReason": lambda t, v: t.delete_reason == v,
            "taskHadCandidateGroup": lambda t, v: v in t.node.candidate_groups,
            "taskHadCandidateUser": lambda t, v: v in t.node.candidate_users,
            "tenantIdIn": lambda t, v: t.tenant_id in v.split(","),
        }
        for name, test in tests.items():
            if name in p:
                rows = [t for t in rows if test(t, p[name])]
        flags: dict[str, Callable[[UserTask], bool]] = {
            "finished": lambda t: t.end is not None,
            "unfinished": lambda t: t.end is None,
            "assigned": lambda t: t.assignee is not None,
            "unassigned": lambda t: t.assignee is None,
        }
        for name, test in flags.items():
            if call.flag(name):
                rows = [t for t in rows if test(t)]
        bounds: dict[str, Callable[[UserTask, datetime], bool]] = {
            "startedAfter": lambda t, d: t.created > d,
            "startedBefore": lambda t, d: t.created < d,
            "finishedAfter": lambda t, d: t.end is not None and t.end > d,
            "finishedBefore": lambda t, d: t.end is not None and t.end < d,
        }
        for name, test in bounds.items():
            moment = call.date(name)
            if moment is not None:
                rows = [t for t in rows if test(t, moment)]
        return rows

    def get_historic_tasks(self, call: Call) -> Any:  # getHistoricTaskInstances: GET /history/task
        return [self._historic_task_dto(t) for t in paged(call, self._historic_tasks(call), self.HISTORIC_TASK_SORT)]

    def count_historic_tasks(self, call: Call) -> Any:  # getHistoricTaskInstancesCount: GET /history/task/count
        return count(self._historic_tasks(call))

    def get_historic_incidents(self, call: Call) -> Any:  # getHistoricIncidents: GET /history/incident
        rows = list(self.state.incidents.values())
        for name, attribute in (("incidentId", "id"), ("processInstanceId", "instance_id")):
            if name in call.params:
                rows = [i for i in rows if getattr(i, attribute) == call.params[name]]
        return [self._historic_incident_dto(i) for i in paged(call, rows, {"createTime": lambda i: i.created})]

    def get_identity_link_log(self, call: Call) -> Any:  # getHistoricIdentityLinks: GET /history/identity-link-log
        rows = list(self.state.identity_link_log)
        for name in ("type", "userId", "taskId", "operationType", "processDefinitionKey"):
            if name in call.params:
                rows = [row for row in rows if row[name] == call.params[name]]
        after, before = call.date("dateAfter"), call.date("dateBefore")
        if after is not None:
            rows = [row for row in rows if parse_date(row["time"]) > after]
        if before is not None:
            rows = [row for row in rows if parse_date(row["time"]) < before]
        return paged(call, rows, {"time": lambda row: parse_date(row["time"]), "taskId": lambda row: row["taskId"]})

    def get_user_operations(self, call: Call) -> Any:  # queryUserOperationEntries: GET /history/user-operation
        rows = list(self.state.user_operations)
        for name in ("entityType", "operationType", "processInstanceId", "processDefinitionKey", "userId"):
            if name in call.params:
                rows = [row for row in rows if row[name] == call.params[name]]
        after, before = call.date("afterTimestamp"), call.date("beforeTimestamp")
        if after is not None:
            rows = [row for row in rows if parse_date(row["timestamp"]) > after]
        if before is not None:
            rows = [row for row in rows if parse_date(row["timestamp"]) < before]
        return paged(call, rows, {"timestamp": lambda row: parse_date(row["timestamp"])})

    # ------------------------------------------------------------ tasks
    TASK_SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "id": lambda t: t.id,
        "name": lambda t: t.node.name,
        "assignee": lambda t: t.assignee,
        "created": lambda t: t.created,
        "instanceId": lambda t: t.instance_id,
        "priority": lambda t: 50,
        "dueDate": lambda t: None,
        "followUpDate": lambda t: None,
        "description": lambda t: None,
    }

    def _tasks(self, call: Call) -> list[UserTask]:
        rows = sorted(self._open_tasks(), key=lambda t: t.created)
        p = call.params
        tests: dict[str, Callable[[UserTask, str], bool]] = {
            "processInstanceId": lambda t, v: t.instance_id == v,
            "processDefinitionKey": lambda t, v: t.definition_key == v,
            "assignee": lambda t, v: t.assignee == v,
            "candidateGroup": lambda t, v: v in t.node.candidate_groups,
            "candidateUser": lambda t, v: v in t.node.candidate_users,
            "delegationState": lambda t, v: t.delegation_state == v,
            "tenantIdIn": lambda t, v: t.tenant_id in v.split(","),
            "dueBefore": lambda t, v: False,  # simulated tasks have no due date
        }
        for name, test in tests.items():
            if name in p:
                rows = [t for t in rows if test(t, p[name])]
        candidate_query = "candidateGroup" in p or "candidateUser" in p
        if candidate_query and not call.flag("includeAssignedTasks"):
            rows = [t for t in rows if t.assignee is None]
        if call.flag("unassigned"):
            rows = [t for t in rows if t.assignee is None]
        if call.flag("assigned"):
            rows = [t for t in rows if t.assignee is not None]
        return rows

    def get_tasks(self, call: Call) -> Any:  # getTasks: GET /task
        return [self._task_dto(t) for t in paged(call, self._tasks(call), self.TASK_SORT)]

    def count_tasks(self, call: Call) -> Any:  # getTasksCount: GET /task/count
        return count(self._tasks(call))

    def _queried_tasks(self, call: Call) -> tuple[Call, list[UserTask]]:
        query = query_call(call, {"processVariables", "taskVariables"})
        body = call.body()
        by_instance, local = variable_conditions(body, "processVariables"), variable_conditions(body, "taskVariables")
        rows = [
            t
            for t in self._tasks(query)
            if meets(self.state.instances[t.instance_id].variables, by_instance) and meets({}, local)
        ]
        return query, rows

    def query_tasks(self, call: Call) -> Any:  # queryTasks: POST /task
        query, rows = self._queried_tasks(call)
        return [self._task_dto(t) for t in sort_query(query, rows, self.TASK_SORT)]

    def query_tasks_count(self, call: Call) -> Any:  # queryTasksCount: POST /task/count
        return count(self._queried_tasks(call)[1])

    def get_task(self, call: Call, id: str) -> Any:  # getTask: GET /task/{id}
        error = CamundaError(404, "InvalidRequestException", f"No matching task with id {id}", code=None)
        return self._task_dto(self._open_task(id, error))

    def get_identity_links(self, call: Call, id: str) -> Any:  # getIdentityLinks: GET /task/{id}/identity-links
        unknown = CamundaError(400, "NullValueException", f"Cannot find task with id {id}: task is null")
        task = self._open_task(id, unknown)
        links = [{"userId": None, "groupId": group, "type": "candidate"} for group in task.node.candidate_groups]
        links += [{"userId": user, "groupId": None, "type": "candidate"} for user in task.node.candidate_users]
        if task.assignee:
            links.append({"userId": task.assignee, "groupId": None, "type": "assignee"})
        if task.owner:
            links.append({"userId": task.owner, "groupId": None, "type": "owner"})
        return links

    def get_task_variables(self, call: Call, id: str) -> Any:  # getTaskVariables: GET /task/{id}/variables
        task = self._open_task(id, not_null(f"task {id} doesn't exist: task is null"))
        return {name: write_variable(v) for name, v in self.state.instances[task.instance_id].variables.items()}

    def _workable_task(self, task_id: str) -> UserTask:
        task = self._open_task(task_id, not_null(f"Cannot find task with id {task_id}: task is null"))
        if task.suspended:
            message = f"ENGINE-03043 task with id '{task_id}' is suspended."
            raise CamundaError(500, "SuspendedEntityInteractionException", message)
        return task

    def _assign(self, task: UserTask, user_id: str | None) -> None:
        now = self.now()
        if task.assignee is not None and task.assignee != user_id:
            self._log_assignee(task, "delete", task.assignee, now)
        if user_id is not None and task.assignee != user_id:
            self._log_assignee(task, "add", user_id, now)
        task.assignee, task.state = user_id, "Updated"
        self.state.runs[task.run_id].assignee = user_id

    def _log_assignee(self, task: UserTask, operation: str, user_id: str, at: datetime) -> None:
        self.state.identity_link_log.append(
            {
                "id": self._new_id(),
                "time": format_date(at),
                "type": "assignee",
                "userId": user_id,
                "groupId": None,
                "taskId": task.id,
                "processDefinitionId": task.definition_id,
                "processDefinitionKey": task.definition_key,
                "operationType": operation,
                "assignerId": None,
                "tenantId": task.tenant_id,
                "removalTime": None,
                "rootProcessInstanceId": task.instance_id,
            }
        )

    def claim(self, call: Call, id: str) -> Any:  # claim: POST /task/{id}/claim
        user_id = call.body().get("userId")
        task = self._workable_task(id)
        if user_id is not None and task.assignee is not None and task.assignee != user_id:
            raise CamundaError(500, "TaskAlreadyClaimedException", f"Task '{id}' is already claimed by someone else.")
        self._assign(task, user_id)
        return None

    def unclaim(self, call: Call, id: str) -> Any:  # unclaim: POST /task/{id}/unclaim
        self._assign(self._workable_task(id), None)
        return None

    def set_assignee(self, call: Call, id: str) -> Any:  # setAssignee: POST /task/{id}/assignee
        self._assign(self._workable_task(id), call.body().get("userId"))
        return None

    def delegate(self, call: Call, id: str) -> Any:  # delegateTask: POST /task/{id}/delegate
        task = self._workable_task(id)
        task.delegation_state = "PENDING"
        if task.owner is None:
            task.owner = task.assignee
        self._assign(task, call.body().get("userId"))
        return None

    def complete(self, call: Call, id: str) -> Any:  # complete: POST /task/{id}/complete
        body = call.body()
        variables = read_variables(body.get("variables"), f"Cannot complete task {id}")
        try:
            task = self._workable_task(id)
            if task.delegation_state == "PENDING":
                raise CamundaError(
                    500,
                    "ProcessEngineException",
                    "A delegated task cannot be completed, but should be resolved instead.",
                )
            instance = self.state.instances[task.instance_id]
            now = self.now()
            for name, variable in variables.items():
                existing = instance.variables.get(name)
                variable.created = existing.created if existing else now
                instance.variables[name] = variable
            task.end, task.delete_reason, task.state = now, "completed", "Completed"
            self.state.runs[task.run_id].end = now
            instance.open_run = None
            instance.position += 1
            self._advance(instance)
        except CamundaError as error:
            raise CamundaError(500, "RestException", f"Cannot complete task {id}: {error.message}") from None
        return None

    def resolve(self, call: Call, id: str) -> Any:  # resolve: POST /task/{id}/resolve (204)
        variables = read_variables(call.body().get("variables"), f"Cannot resolve task {id}")
        task = self._workable_task(id)
        instance = self.state.instances[task.instance_id]
        for name, variable in variables.items():
            existing = instance.variables.get(name)
            variable.created = existing.created if existing else self.now()
            instance.variables[name] = variable
        task.delegation_state = "RESOLVED"
        self._assign(task, task.owner)
        return None

    # ------------------------------------------------------------ incidents and jobs
    def _incidents(self, call: Call) -> list[Incident]:
        rows = [i for i in self.state.incidents.values() if i.state == "open"]
        p = call.params
        tests: dict[str, Callable[[Incident, str], bool]] = {
            "incidentId": lambda i, v: i.id == v,
            "processInstanceId": lambda i, v: i.instance_id == v,
            "processDefinitionKeyIn": lambda i, v: i.definition_key in v.split(","),
            "incidentType": lambda i, v: i.kind == v,
        }
        for name, test in tests.items():
            if name in p:
                rows = [i for i in rows if test(i, p[name])]
        return rows

    INCIDENT_SORT: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "incidentId": lambda i: i.id,
        "incidentTimestamp": lambda i: i.created,
        "incidentType": lambda i: i.kind,
        "processInstanceId": lambda i: i.instance_id,
        "activityId": lambda i: i.activity_id,
    }

    def get_incidents(self, call: Call) -> Any:  # getIncidents: GET /incident
        return [self._incident_dto(i) for i in paged(call, self._incidents(call), self.INCIDENT_SORT)]

    def count_incidents(self, call: Call) -> Any:  # getIncidentsCount: GET /incident/count
        return count(self._incidents(call))

    def _open_incident(self, incident_id: str, error: CamundaError) -> Incident:
        incident = self.state.incidents.get(incident_id)
        if incident is None or incident.state != "open":
            raise error
        return incident

    def get_incident(self, call: Call, id: str) -> Any:  # getIncident: GET /incident/{id}
        error = CamundaError(404, "InvalidRequestException", f"No matching incident with id {id}", code=None)
        return self._incident_dto(self._open_incident(id, error))

    def _annotated_incident(self, incident_id: str) -> Incident:
        # SetAnnotationForIncidentCmd: ensureNotNull(BadUserRequestException.class, "incident", incident)
        return self._open_incident(incident_id, CamundaError(400, "BadUserRequestException", "incident is null"))

    def set_annotation(self, call: Call, id: str) -> Any:  # setIncidentAnnotation: PUT /incident/{id}/annotation
        self._annotated_incident(id).annotation = call.body().get("annotation")
        return None

    def clear_annotation(self, call: Call, id: str) -> Any:  # clearIncidentAnnotation: DELETE /incident/{id}/annotation
        self._annotated_incident(id).annotation = None
        return None

    def get_stacktrace(self, call: Call, id: str) -> Any:  # getStacktrace: GET /job/{id}/stacktrace
        job = self.state.jobs.get(id)
        if job is None:
            raise CamundaError(404, "InvalidRequestException", f"No job found with id '{id}'.", code=None)
        return Text(job.stacktrace)

    def set_job_retries(self, call: Call, id: str) -> Any:  # setJobRetries: PUT /job/{id}/retries
        job = self.state.jobs.get(id)
        if job is None:
            raise CamundaError(500, "InvalidRequestException", f"ENGINE-13053 No job found with id '{id}'.'", code=None)
        self._set_retries(job, int(call.body()["retries"]))
        return None
