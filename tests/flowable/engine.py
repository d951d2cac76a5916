"""The in-memory process engine behind the Flowable simulator: what Flowable 7.2 keeps, in small.

Definitions are parsed minimally from the BPMN (process id and name; start and end events, user tasks with
candidates, service tasks with `flowable:async`, `flowable:expression` and `failedJobRetryTimeCycle`), and
an instance moves one token along the sequence flows. A service task's expression fails when it is of the
form `${variable ? ... : ...}` and the variable is true, as a real `${fail ? execution.chargeCardDeclined()
: true}` does. Async service tasks become jobs that the job executor runs (the REST layer runs it before
each request), failing and retrying exactly as Flowable's JobRetryCmd does. Errors are raised as the
Flowable exception classes the REST layer maps to statuses.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from tests.expressions import expression_failure

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
FLOWABLE = "http://flowable.org/bpmn"
REST_USER = "rest-admin"
DEFAULT_RETRIES = 3  # asyncExecutorNumberOfRetries
FAILING_EXPRESSION = re.compile(r"^\$\{\s*(\w+)\s*\?")
# Elements that branch, join or wait for time: the simulator moves one token and refuses them.
# Message and signal catch events and interrupting boundary events are run: the token waits in them.
STRAIGHT_LINES_ONLY = {"parallelGateway", "exclusiveGateway", "inclusiveGateway", "eventBasedGateway", "subProcess"}
RETRY_CYCLE = re.compile(r"^R(\d*)/(.+)$")
NO_TENANT = ""


# ---------------------------------------------------------------- Flowable's exceptions
class FlowableException(Exception):
    """Any other engine exception: the REST layer answers 500."""


class ObjectNotFound(FlowableException):
    pass


class IllegalArgument(FlowableException):
    pass


class ConflictError(FlowableException):
    """FlowableConflictException of the REST layer."""


class TaskAlreadyClaimed(FlowableException):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task '{task_id}' is already claimed by someone else.")


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- model
@dataclass
class Node:
    id: str
    type: str
    name: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    assignee: str | None = None
    form_key: str | None = None
    is_async: bool = False
    expression: str | None = None
    retry_cycle: str | None = None
    message: str | None = None  # what a message start, catch or boundary event waits for
    signal: str | None = None
    attached_to: str | None = None  # a boundary event's activity


@dataclass
class Flow:
    id: str
    target: str


@dataclass
class Deployment:
    id: str
    name: str | None
    tenant_id: str
    time: datetime
    resource_name: str
    resource: bytes


@dataclass
class Definition:
    id: str
    key: str
    name: str | None
    description: str | None
    category: str | None  # the BPMN targetNamespace
    version: int
    deployment: Deployment
    nodes: dict[str, Node]
    flows: dict[str, Flow]  # outgoing flow per node id
    start: str
    suspended: bool = False

    @property
    def tenant_id(self) -> str:
        return self.deployment.tenant_id


@dataclass
class Variable:
    type: str | None  # Flowable's REST type name; None for null
    value: Any


@dataclass
class Instance:
    id: str
    definition: Definition
    business_key: str | None
    tenant_id: str
    start_time: datetime
    variables: dict[str, Variable] = field(default_factory=dict)
    suspended: bool = False
    end_time: datetime | None = None
    delete_reason: str | None = None
    current: str | None = None  # node the token waits in
    start_user: str = REST_USER
    execution_id: str | None = None  # the child execution the token waits in (its event subscriptions)

    @property
    def ended(self) -> bool:
        return self.end_time is not None


@dataclass
class ActivityInstance:
    id: str
    instance: Instance
    activity_id: str
    name: str | None
    type: str
    start_time: datetime
    end_time: datetime | None = None
    task_id: str | None = None
    assignee: str | None = None
    order: int = 0


@dataclass
class TaskEntity:
    id: str
    instance: Instance
    node: Node
    create_time: datetime
    assignee: str | None = None
    owner: str | None = None
    delegation_state: str | None = None
    claim_time: datetime | None = None
    end_time: datetime | None = None
    delete_reason: str | None = None

    @property
    def suspended(self) -> bool:
        return self.instance.suspended

    def __str__(self) -> str:
        return (
            f"Task[id={self.id}, key={self.node.id}, name={self.node.name}, processInstanceId={self.instance.id}, "
            f"executionId={self.instance.id}, processDefinitionId={self.instance.definition.id}]"
        )


@dataclass
class Job:
    id: str
    table: str  # "job" (executable), "timer", "deadletter"
    instance: Instance
    node: Node
    retries: int
    create_time: datetime
    due_date: datetime | None = None
    exception_message: str | None = None
    stacktrace: str | None = None


# ---------------------------------------------------------------- BPMN
def _flowable(element: etree._Element, name: str) -> str | None:
    return element.get(f"{{{FLOWABLE}}}{name}")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@dataclass
class ParsedProcess:
    key: str
    name: str | None
    description: str | None
    category: str | None
    nodes: dict[str, Node]
    flows: dict[str, Flow]
    start: str


def parse_processes(xml: bytes) -> list[ParsedProcess]:
    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise FlowableException(f"Error while reading the BPMN 2.0 XML: {exc.msg}") from None
    seen: set[str] = set()
    for element in root.iter():
        element_id = element.get("id") if isinstance(element.tag, str) else None
        if element_id in seen:
            raise FlowableException(
                "javax.xml.transform.TransformerException: javax.xml.stream.XMLStreamException: "
                f"org.xml.sax.SAXParseException; lineNumber: {element.sourceline}; columnNumber: 1; "
                f"cvc-id.2: There are multiple occurrences of ID value '{element_id}'."
            )
        if element_id:
            seen.add(element_id)
    names = {
        element.get("id"): element.get("name") or element.get("id")
        for kind in ("message", "signal")
        for element in root.iter(f"{{{BPMN}}}{kind}")
    }
    processes = []
    for process in root.iter(f"{{{BPMN}}}process"):
        if process.get("isExecutable", "true").lower() != "true":
            continue
        nodes: dict[str, Node] = {}
        flows: dict[str, Flow] = {}
        for element in process:
            kind = etree.QName(element).localname
            if kind in STRAIGHT_LINES_ONLY or (kind == "sequenceFlow" and element.get("sourceRef") in flows):
                raise NotImplementedError(
                    f"the Flowable simulator runs straight lines only; {kind} '{element.get('id')}' needs the "
                    "real engine (tests/real_engines)"
                )
            if kind == "sequenceFlow":
                flows[element.get("sourceRef")] = Flow(id=element.get("id"), target=element.get("targetRef"))
            elif kind not in ("documentation", "extensionElements", "laneSet") and element.get("id"):
                message = element.find(f"{{{BPMN}}}messageEventDefinition")
                signal = element.find(f"{{{BPMN}}}signalEventDefinition")
                if kind in ("intermediateCatchEvent", "boundaryEvent") and (
                    (message is None and signal is None) or element.get("cancelActivity", "true") != "true"
                ):
                    raise NotImplementedError(
                        f"the Flowable simulator catches messages and signals (interrupting) only; {kind} "
                        f"'{element.get('id')}' needs the real engine (tests/real_engines)"
                    )
                cycle = element.find(f"{{{BPMN}}}extensionElements/{{{FLOWABLE}}}failedJobRetryTimeCycle")
                nodes[element.get("id")] = Node(
                    id=element.get("id"),
                    type=kind,
                    name=element.get("name"),
                    candidate_groups=_split(_flowable(element, "candidateGroups")),
                    candidate_users=_split(_flowable(element, "candidateUsers")),
                    assignee=_flowable(element, "assignee"),
                    form_key=_flowable(element, "formKey"),
                    is_async=(_flowable(element, "async") or "false").lower() == "true",
                    expression=_flowable(element, "expression"),
                    retry_cycle=cycle.text.strip() if cycle is not None and cycle.text else None,
                    message=names.get(message.get("messageRef")) if message is not None else None,
                    signal=names.get(signal.get("signalRef")) if signal is not None else None,
                    attached_to=element.get("attachedToRef"),
                )
        start = next((node.id for node in nodes.values() if node.type == "startEvent"), None)
        if start is None:
            raise FlowableException(
                "Errors while parsing:\n[Validation set: 'flowable-executable-process' | "
                f"Problem: 'No start event' | process {process.get('id')}]"
            )
        documentation = process.find(f"{{{BPMN}}}documentation")
        description = documentation.text if documentation is not None else None
        processes.append(
            ParsedProcess(
                key=process.get("id"),
                name=process.get("name"),
                description=description,
                category=root.get("targetNamespace"),
                nodes=nodes,
                flows=flows,
                start=start,
            )
        )
    return processes


# ---------------------------------------------------------------- the engine
class Engine:
    def __init__(self) -> None:
        self.deployments: dict[str, Deployment] = {}
        self.definitions: dict[str, Definition] = {}
        self.instances: dict[str, Instance] = {}  # runtime and history; ended ones have end_time
        self.activities: list[ActivityInstance] = []
        self.tasks: dict[str, TaskEntity] = {}  # runtime and history; finished ones have end_time
        self.jobs: dict[str, Job] = {}
        self._order = itertools.count()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Like the engine's command context: a command that throws leaves no trace."""
        saved = copy.deepcopy({name: value for name, value in vars(self).items() if name != "_order"})
        try:
            yield
        except FlowableException:
            vars(self).update(saved)
            raise

    # ------------------------------------------------------------ repository
    def deploy(self, resource_name: str, resource: bytes, name: str | None, tenant_id: str | None) -> Deployment:
        deployment = Deployment(
            id=new_id(),
            name=name,
            tenant_id=tenant_id or NO_TENANT,
            time=now(),
            resource_name=resource_name,
            resource=resource,
        )
        for process in parse_processes(resource):
            versions = [
                d.version
                for d in self.definitions.values()
                if d.key == process.key and d.tenant_id == deployment.tenant_id
            ]
            version = max(versions, default=0) + 1
            definition = Definition(
                id=f"{process.key}:{version}:{new_id()}",
                key=process.key,
                name=process.name,
                description=process.description,
                category=process.category,
                version=version,
                deployment=deployment,
                nodes=process.nodes,
                flows=process.flows,
                start=process.start,
            )
            self.definitions[definition.id] = definition
        self.deployments[deployment.id] = deployment
        return deployment

    def deployment(self, deployment_id: str) -> Deployment:
        if deployment_id not in self.deployments:
            raise ObjectNotFound(f"Could not find a deployment with id '{deployment_id}'.")
        return self.deployments[deployment_id]

    def definition(self, definition_id: str) -> Definition:
        if definition_id not in self.definitions:
            raise ObjectNotFound(f"Could not find a process definition with id '{definition_id}'.")
        return self.definitions[definition_id]

    def delete_deployment(self, deployment_id: str, cascade: bool) -> None:
        deployment = self.deployment(deployment_id)
        definitions = [d for d in self.definitions.values() if d.deployment is deployment]
        instances = [i for i in self.instances.values() if i.definition in definitions]
        if not cascade and any(not instance.ended for instance in instances):
            # Without cascade Flowable deletes the definition rows under its running executions.
            raise FlowableException(
                "\n### Error flushing statements.  Cause: org.apache.ibatis.executor.BatchExecutorException: "
                "Referential integrity constraint violation: ACT_FK_EXE_PROCDEF"
            )
        if cascade:
            for instance in instances:
                self._forget(instance)
        for definition in definitions:
            del self.definitions[definition.id]
        del self.deployments[deployment_id]

    def _forget(self, instance: Instance) -> None:
        del self.instances[instance.id]
        self.activities = [a for a in self.activities if a.instance is not instance]
        self.tasks = {k: t for k, t in self.tasks.items() if t.instance is not instance}
        self.jobs = {k: j for k, j in self.jobs.items() if j.instance is not instance}

    def set_definition_suspended(self, definition: Definition, suspended: bool, include_instances: bool) -> None:
        if definition.suspended == suspended:
            state = "suspended" if suspended else "active"
            raise ConflictError(f"Process definition with id '{definition.id} ' is already {state}")
        definition.suspended = suspended
        if include_instances:
            for instance in self.instances.values():
                if instance.definition is definition and not instance.ended:
                    instance.suspended = suspended

    def latest(self, key: str, tenant_id: str | None) -> Definition:
        candidates = [
            d for d in self.definitions.values() if d.key == key and (tenant_id is None or d.tenant_id == tenant_id)
        ]
        if not candidates:
            if tenant_id:
                raise ObjectNotFound(f"Process definition with key '{key}' and tenantId '{tenant_id}' was not found")
            raise ObjectNotFound(f"No process definition found for key '{key}'")
        return max(candidates, key=lambda d: d.version)

    # ------------------------------------------------------------ instances
    def start(self, definition: Definition, business_key: str | None, variables: dict[str, Variable]) -> Instance:
        if definition.suspended:
            raise FlowableException(
                f"Cannot start process instance. Process definition {definition.name} "
                f"(id = {definition.id}) is suspended"
            )
        instance = Instance(
            id=new_id(),
            definition=definition,
            business_key=business_key,
            tenant_id=definition.tenant_id,
            start_time=now(),
            variables=dict(variables),
        )
        self.instances[instance.id] = instance
        self._enter(instance, definition.start)
        return instance

    def instance(self, instance_id: str, *, running: bool = True) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None or (running and instance.ended):
            raise ObjectNotFound(f"Could not find a process instance with id '{instance_id}'.")
        return instance

    def execution(self, execution_id: str) -> Instance:
        instance = self.instances.get(execution_id)
        if instance is None or instance.ended:
            raise ObjectNotFound(f"Could not find an execution with id '{execution_id}'.")
        return instance

    def set_instance_suspended(self, instance: Instance, suspended: bool) -> None:
        if instance.suspended == suspended:
            state = "suspended" if suspended else "active"
            raise ConflictError(f"Process instance with id '{instance.id}' is already {state}.")
        instance.suspended = suspended

    def delete_instance(self, instance: Instance, reason: str | None) -> None:
        reason = reason or "process instance deleted"
        moment = now()
        for task in self.open_tasks(instance):
            task.end_time, task.delete_reason = moment, reason
        for activity in self._open_activities(instance):
            activity.end_time = moment
        self.jobs = {k: j for k, j in self.jobs.items() if j.instance is not instance}
        instance.end_time, instance.delete_reason, instance.current = moment, reason, None

    # ------------------------------------------------------------ token flow
    def _open_activities(self, instance: Instance) -> list[ActivityInstance]:
        return [a for a in self.activities if a.instance is instance and a.end_time is None]

    def _record(
        self, instance: Instance, activity_id: str, name: str | None, kind: str, ended: bool
    ) -> ActivityInstance:
        moment = now()
        record = ActivityInstance(
            id=new_id(),
            instance=instance,
            activity_id=activity_id,
            name=name,
            type=kind,
            start_time=moment,
            end_time=moment if ended else None,
            order=next(self._order),
        )
        self.activities.append(record)
        return record

    def _enter(self, instance: Instance, node_id: str) -> None:
        """Run the token from `node_id` until it waits (user task, async job) or the instance ends."""
        while True:
            node = instance.definition.nodes[node_id]
            record = self._record(instance, node.id, node.name, node.type, ended=False)
            instance.current = node.id
            if node.type == "userTask":
                task = TaskEntity(id=new_id(), instance=instance, node=node, create_time=now(), assignee=node.assignee)
                self.tasks[task.id] = task
                record.task_id, record.assignee = task.id, task.assignee
                instance.execution_id = new_id()
                return
            if node.type == "intermediateCatchEvent":
                instance.execution_id = new_id()
                return
            if node.type == "serviceTask" and node.is_async:
                job = Job(new_id(), "job", instance, node, retries=DEFAULT_RETRIES, create_time=now())
                self.jobs[job.id] = job
                return
            if node.type == "serviceTask":
                self._evaluate(instance, node)
            if not self._leave(instance, record):
                return
            node_id = instance.definition.flows[node.id].target

    def _leave(self, instance: Instance, record: ActivityInstance) -> bool:
        """End the activity and take its outgoing flow; False when the instance ended there."""
        record.end_time = now()
        flow = instance.definition.flows.get(record.activity_id)
        if flow is None:
            instance.end_time, instance.current = now(), None
            return False
        self._record(instance, flow.id, None, "sequenceFlow", ended=True)
        return True

    def _evaluate(self, instance: Instance, node: Node) -> None:
        execution = (
            f"Execution[ id '{instance.id}' ] - definition '{instance.definition.id}' - activity '{node.id}' "
            f"- parent '{instance.id}'"
        )
        failure = expression_failure(node.expression, {name: v.value for name, v in instance.variables.items()})
        if failure is not None:
            what = "Unknown property used in expression" if failure.unknown else "Error while evaluating expression"
            raise FlowableException(f"{what}: {node.expression} with {execution}")
        match = FAILING_EXPRESSION.match(node.expression or "")
        if match is None:
            return
        name = match.group(1)
        if name not in instance.variables:
            raise FlowableException(f"Unknown property used in expression: {node.expression} with {execution}")
        if instance.variables[name].value:
            raise FlowableException(f"Unknown method used in expression: {node.expression} with {execution}")

    def _continue_after(self, instance: Instance, node: Node) -> None:
        (record,) = [a for a in self._open_activities(instance) if a.activity_id == node.id]
        if self._leave(instance, record):
            self._enter(instance, instance.definition.flows[node.id].target)

    # ------------------------------------------------------------ messages, signals, change-state
    def catching(self, kind: str, name: str) -> list[tuple[Instance, Node]]:
        """(instance, catching node) of the running, active instances whose token waits where `kind` `name` is
        caught: a catch event, or an activity with such a boundary event (an event subscription each)."""
        found = []
        for instance in self.instances.values():
            if instance.ended or instance.suspended or instance.current is None:
                continue
            nodes = instance.definition.nodes
            waiting = nodes[instance.current]
            boundaries = [n for n in nodes.values() if n.type == "boundaryEvent" and n.attached_to == waiting.id]
            for node in [waiting, *boundaries]:
                if node.type in ("intermediateCatchEvent", "boundaryEvent") and getattr(node, kind) == name:
                    found.append((instance, node))
                    break
        return found

    def deliver(self, instance: Instance, kind: str, name: str, variables: dict[str, Variable]) -> None:
        """messageEventReceived / signalEventReceived on the instance's waiting execution."""
        match = [node for i, node in self.catching(kind, name) if i is instance]
        if not match:
            what = "message" if kind == "message" else "signal"
            raise FlowableException(
                f"Execution with id '{instance.execution_id}' does not have a subscription to a {what} event with name '{name}'"
            )
        node = match[0]
        instance.variables.update(variables)
        if node.type == "intermediateCatchEvent":
            self._continue_after(instance, node)
            return
        moment = now()
        for task in self.open_tasks(instance):
            task.end_time, task.delete_reason = moment, f"boundary event ({node.id})"
        for activity in self._open_activities(instance):
            activity.end_time = moment
        self._enter(instance, node.id)

    def start_by_message(
        self, name: str, business_key: str | None, variables: dict[str, Variable], tenant_id: str | None
    ) -> Instance:
        latest: dict[str, Definition] = {}
        for definition in self.definitions.values():
            if tenant_id is not None and definition.tenant_id != tenant_id:
                continue
            known = latest.get(definition.key)
            if known is None or known.version < definition.version:
                latest[definition.key] = definition
        for definition in latest.values():
            if definition.nodes[definition.start].message == name:
                return self.start(definition, business_key, variables)
        raise ObjectNotFound(
            f"Cannot start process instance by message: no subscription to message with name '{name}' found."
        )

    def signal(self, name: str, variables: dict[str, Variable], tenant_id: str | None) -> None:
        for instance, _ in self.catching("signal", name):
            if tenant_id is None or instance.tenant_id == tenant_id:
                self.deliver(instance, "signal", name, dict(variables))

    def change_state(self, instance: Instance, cancel: list[str], start: list[str]) -> None:
        """ChangeActivityStateBuilder with one token: cancel the activity it is in, start the given one."""
        if not cancel or not start:
            raise FlowableException("No move execution or activity ids specified")
        if instance.current not in cancel:
            raise FlowableException(f"Active execution not found for activity id {cancel[0]}")
        if len(start) != 1 or start[0] not in instance.definition.nodes:
            raise FlowableException(
                f"Cannot find activity '{start[0]}' in process definition with id '{instance.definition.id}'"
            )
        moment = now()
        for task in self.open_tasks(instance):
            task.end_time, task.delete_reason = moment, "Change activity to " + start[0]
        for activity in self._open_activities(instance):
            activity.end_time = moment
        self.jobs = {k: j for k, j in self.jobs.items() if j.instance is not instance}
        self._enter(instance, start[0])

    def migrate(self, instance: Instance, target: Definition, mappings: dict[str, str]) -> None:
        """ProcessInstanceMigrationManagerImpl.migrateProcessInstance with one token: the activity it waits in goes
        to its mapping, else to the activity of the same id in `target` (auto-mapping); a user task stays the
        same task, its definition key changed (a direct migration)."""
        if instance.tenant_id != target.tenant_id:
            raise FlowableException(
                f"Tenant mismatch between Process Instance ('{instance.tenant_id}') and Process Definition "
                f"('{target.tenant_id}') to migrate to"
            )
        current = instance.current
        if current is not None:
            destination = mappings.get(current, current if current in target.nodes else None)
            if destination is None:
                raise FlowableException(
                    f"Migration Activity mapping missing for activity definition Id:'{current}' or its MI Parent"
                )
            if destination not in target.nodes:
                raise FlowableException(
                    f"Cannot find activity '{destination}' in process definition with id '{target.id}'"
                )
            node = target.nodes[destination]
            for task in self.open_tasks(instance):
                task.node = node
            for activity in self._open_activities(instance):
                activity.activity_id, activity.name = node.id, node.name
            for job in self.jobs.values():
                if job.instance is instance:
                    job.node = node
            instance.current = destination
        instance.definition = target

    # ------------------------------------------------------------ tasks
    def open_tasks(self, instance: Instance | None = None) -> list[TaskEntity]:
        return [t for t in self.tasks.values() if t.end_time is None and (instance is None or t.instance is instance)]

    def task(self, task_id: str) -> TaskEntity:
        task = self.tasks.get(task_id)
        if task is None or task.end_time is not None:
            raise ObjectNotFound(f"Could not find a task with id '{task_id}'.")
        return task

    def historic_task(self, task_id: str) -> TaskEntity:
        if task_id not in self.tasks:
            raise ObjectNotFound(f"Could not find a task instance with id '{task_id}'.")
        return self.tasks[task_id]

    def _active(self, task: TaskEntity, verb: str) -> None:
        if task.suspended:
            raise FlowableException(f"{verb} a suspended {task}")

    def _set_assignee(self, task: TaskEntity, user: str | None) -> None:
        task.assignee = user
        for activity in self._open_activities(task.instance):
            if activity.task_id == task.id:
                activity.assignee = user

    def claim(self, task: TaskEntity, user: str | None) -> None:
        self._active(task, "Cannot execute operation for")
        if user is None:
            task.claim_time = None
            self._set_assignee(task, None)
        elif task.assignee is not None and task.assignee != user:
            raise TaskAlreadyClaimed(task.id)
        else:
            task.claim_time = now()
            self._set_assignee(task, user)

    def delegate(self, task: TaskEntity, user: str) -> None:
        self._active(task, "Cannot execute operation for")
        task.delegation_state = "pending"
        task.owner = task.owner or task.assignee
        self._set_assignee(task, user)

    def resolve(self, task: TaskEntity) -> None:
        """TaskEntity.resolve: the delegate is done; the task goes back to its owner. (The REST "resolve"
        action drops the variables it is sent: flowable-rest 7.2 calls resolveTask(taskId) without them.)"""
        self._active(task, "Cannot resolve")
        task.delegation_state = "resolved"
        self._set_assignee(task, task.owner)

    def update_assignee(self, task: TaskEntity, user: str | None) -> None:
        self._set_assignee(task, user)

    def complete(self, task: TaskEntity, variables: dict[str, Variable]) -> None:
        self._active(task, "Cannot complete")
        if task.delegation_state == "pending":
            raise FlowableException(f"A delegated {task} cannot be completed, but should be resolved instead.")
        task.instance.variables.update(variables)
        task.end_time = now()
        self._continue_after(task.instance, task.node)

    # ------------------------------------------------------------ jobs
    def job(self, table: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.table != table:
            names = {"job": "job", "timer": "timer job", "deadletter": "dead letter job"}
            raise ObjectNotFound(f"Could not find a {names[table]} with id '{job_id}'.")
        return job

    def run_due_jobs(self) -> None:
        """The async executor: run every executable job of an active instance."""
        for job_id in [j.id for j in self.jobs.values() if j.table == "job" and not j.instance.suspended]:
            with contextlib.suppress(FlowableException):  # the failure is recorded on the job
                self.execute(job_id)

    def execute(self, job_id: str) -> None:
        """Run a job in its own transaction; a failure rolls it back and then goes through JobRetryCmd."""
        try:
            with self.transaction():
                job = self.jobs[job_id]
                self._evaluate(job.instance, job.node)
                del self.jobs[job.id]
                self._continue_after(job.instance, job.node)
        except FlowableException as failure:
            self._failed(self.jobs[job_id], failure)
            raise

    def _failed(self, job: Job, failure: FlowableException) -> None:
        """JobRetryCmd: a retry cycle `R<n>/<duration>` gives the first failure n retries; one left dead-letters."""
        retries = job.retries
        match = RETRY_CYCLE.match(job.node.retry_cycle or "")
        if match is not None and job.exception_message is None:
            retries = int(match.group(1)) if match.group(1) else 2**31 - 2
        del self.jobs[job.id]
        moved = Job(
            id=job.id,  # DefaultJobManager.copyJobInfo: a job keeps its id in every table
            table="deadletter" if retries <= 1 else "timer",
            instance=job.instance,
            node=job.node,
            retries=retries - 1,
            create_time=job.create_time,
            due_date=now() + timedelta(seconds=10),
            exception_message=str(failure),
            stacktrace=(
                f"org.flowable.common.engine.api.FlowableException: {failure}\n"
                "\tat org.flowable.common.engine.impl.el.JuelExpression.getValue(JuelExpression.java:56)\n"
                "\tat org.flowable.engine.impl.bpmn.behavior.ServiceTaskExpressionActivityBehavior.execute"
                "(ServiceTaskExpressionActivityBehavior.java:85)\n"
            ),
        )
        self.jobs[moved.id] = moved

    def move_to_executable(self, job: Job) -> None:
        """moveDeadLetterJobToExecutableJob, moveTimerToExecutableJob: the same job id and exception in the
        executable table; dead letters get default retries."""
        del self.jobs[job.id]
        retries = DEFAULT_RETRIES if job.table == "deadletter" else job.retries
        moved = Job(
            id=job.id,
            table="job",
            instance=job.instance,
            node=job.node,
            retries=retries,
            create_time=now(),
            exception_message=job.exception_message,
            stacktrace=job.stacktrace,
        )
        self.jobs[moved.id] = moved
