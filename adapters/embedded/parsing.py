"""BPMN XML to SpiffWorkflow specs, keeping the Camunda attributes the stock parser drops.

What the parser adds to SpiffWorkflow's:
- user tasks keep `camunda:assignee`, `candidateUsers`, `candidateGroups`, `formKey`, `priority`, `dueDate`
  and `followUpDate` in `spec.extensions`;
- service and business rule tasks are external work: they wait until the handler registered for their
  topic (`camunda:topic`, else the task id) has run; `spec.extensions["topic"]`;
- plain and manual tasks pass straight through, as in Camunda (SpiffWorkflow would wait on them);
- gateway conditions and timer definitions are checked at deployment, so a bad one is a 400, not an incident.

Specs are parsed once per definition and kept pickled (see `SpecCache`): each change of an instance works on a
copy of its own.
"""

from __future__ import annotations

import asyncio
import functools
import pickle
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.parser.event_parsers import EventBasedGatewayParser
from SpiffWorkflow.bpmn.parser.node_parser import DEFAULT_NSMAP
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser, GatewayParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import (
    EventBasedGateway,
    ExclusiveGateway,
    InclusiveGateway,
    NoneTask,
    ParallelGateway,
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
    ServiceTask,
    StartEvent,
    UserTask,
)
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from adapters.embedded.expressions import ExpressionError, compile_expression, is_timer_literal
from adapters.embedded.normalize import Rewrites, normalize
from gateway.errors import InvalidBpmn

BPMN_NS = DEFAULT_NSMAP["bpmn"]
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
NAMESPACES = {**DEFAULT_NSMAP, "camunda": CAMUNDA_NS}
USER_TASK_ATTRIBUTES = (
    "assignee",
    "candidateUsers",
    "candidateGroups",
    "formKey",
    "priority",
    "dueDate",
    "followUpDate",
)
FLOW_NODE_TYPES = (
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask",
    "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
)  # fmt: skip

# Uploaded XML is untrusted: no entity expansion (XXE), no DTD, no network.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class ExternalTask(ServiceTask):
    """Work done outside the engine by the handler of `topic`; the task waits (STARTED) until it has run."""

    @property
    def topic(self) -> str:
        return self.extensions["topic"]


class PassThroughTask(NoneTask):
    """A plain or manual task: nothing for the engine to wait for."""

    def __init__(self, wf_spec: Any, bpmn_id: str, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False


class EventGatewayEvents(MultipleEventDefinition):
    """What an event-based gateway waits for: the first of its events wins, alone.

    SpiffWorkflow's own version keeps one due time for all the gateway's timers (the first one worked out), so
    every timer fired with the earliest; here each timer keeps its own due time (`timer_due`, by position) and
    only the earliest one that is due counts.
    """

    def has_fired(self, my_task: Any) -> bool:
        if my_task.internal_data.get("seen_events"):
            return True  # a message or signal was caught
        due = dict(my_task.internal_data.get("timer_due", {}))
        now = datetime.now(UTC)
        for index, definition in enumerate(self.event_definitions):
            if isinstance(definition, TimerEventDefinition) and str(index) not in due:
                due[str(index)] = first_due(definition, my_task, now).isoformat()
        my_task.internal_data["timer_due"] = due
        passed = [(datetime.fromisoformat(when), int(index)) for index, when in due.items()]
        passed = [entry for entry in passed if entry[0] <= now]
        if not passed:
            return False
        _, index = min(passed)
        my_task.internal_data["seen_events"] = [BpmnEvent(self.event_definitions[index])]
        return True

    def next_due(self, my_task: Any) -> datetime | None:
        """The earliest due time of the gateway's timers, once worked out."""
        due = my_task.internal_data.get("timer_due") or {}
        return min((datetime.fromisoformat(when) for when in due.values()), default=None)

    def reset(self, my_task: Any) -> None:
        my_task.internal_data.pop("timer_due", None)
        super().reset(my_task)


class EventGateway(EventBasedGateway):
    """An event-based gateway whose timers keep apart (see `EventGatewayEvents`)."""

    def connect(self, child: Any) -> None:
        definition = child.event_definition
        super().connect(child)
        if isinstance(definition, TimerEventDefinition):
            definition.name = child.bpmn_id  # timers compare by name: two named alike must not be taken for one


class _EventGatewayParser(EventBasedGatewayParser):
    def create_task(self) -> Any:
        return self._create_task(EventGatewayEvents())


def first_due(definition: TimerEventDefinition, my_task: Any, now: datetime) -> datetime:
    """When a timer (date, duration or cycle) first fires, counted from `now`; its expression evaluated first."""
    text = str(my_task.workflow.script_engine.evaluate(my_task, definition.expression)).strip()
    if isinstance(definition, CycleTimerEventDefinition):
        _cycles, begin, _duration = TimerEventDefinition.parse_iso_recurring_interval(text)
        return begin
    parsed = TimerEventDefinition.parse_time_or_duration(text)
    if isinstance(parsed, datetime):
        return parsed
    return now + TimerEventDefinition.get_timedelta_from_start(parsed, now)


class LoopSafeParallelGateway(ParallelGateway):
    """A parallel join that also waits for every branch when it sits in a loop.

    SpiffWorkflow counted the branches that reached the join in earlier rounds (join tasks cancelled when
    that round's join fired) as arrived, so from the second round on it fired after one branch. A join task
    belongs to an earlier round when it does not descend from the join that fired last before this one.
    """

    def _check_threshold_unstructured(self, my_task: Any) -> bool:
        waiting_inputs = set(self.inputs)

        def remove_ancestor(task: Any) -> None:
            if task.task_spec in waiting_inputs:
                waiting_inputs.remove(task.task_spec)
            elif task.parent is not None:
                remove_ancestor(task.parent)

        joins = my_task.workflow.get_tasks(spec_name=self.name)
        fired_before = [t for t in joins if t.state == TaskState.COMPLETED and my_task.is_descendant_of(t)]
        for task in joins:
            if task.is_descendant_of(my_task):
                remove_ancestor(task)  # a first round: the loop back will not reach this join before it fires
            elif my_task.is_descendant_of(task) or any(not task.is_descendant_of(t) for t in fired_before):
                continue  # a join of an earlier round
            elif task.parent.state == TaskState.COMPLETED and task.parent.task_spec in waiting_inputs:
                waiting_inputs.remove(task.parent.task_spec)
        return not waiting_inputs


def _check_collection(spec: Any, my_task: Any) -> None:
    """The input collection of a multi-instance activity must be set and be a list or map: else an incident on it."""
    if spec.data_input is None:
        return
    name = spec.data_input.bpmn_id
    if not spec.data_input.exists(my_task) or spec.data_input.get(my_task) is None:
        raise WorkflowTaskException(
            f"The collection variable {name!r} of multi-instance activity {spec.bpmn_id!r} is not set", task=my_task
        )
    value = spec.data_input.get(my_task)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise WorkflowTaskException(
            f"The collection variable {name!r} of multi-instance activity {spec.bpmn_id!r} is a "
            f"{type(value).__name__}, not a list or a map",
            task=my_task,
        )


class OrderedParallelMultiInstance(ParallelMultiInstanceTask):
    """A parallel multi-instance whose output collection follows the input order, not the completion order."""

    def create_children(self, my_task: Any) -> None:
        _check_collection(self, my_task)
        super().create_children(my_task)

    def merge_child(self, workflow: Any, child: Any) -> None:
        my_task = child.parent
        has_output = self.data_output is not None and self.data_output.exists(my_task)
        output = self.data_output.get(my_task) if has_output else None
        before = len(output) if isinstance(output, list) else None
        super().merge_child(workflow, child)
        index = child.internal_data.get("key_or_index")
        if isinstance(output, list) and before is not None and len(output) == before + 1 and isinstance(index, int):
            order = my_task.internal_data.setdefault("output_order", [])
            order.append(index)
            output[:] = [item for _, item in sorted(zip(order, output, strict=True), key=lambda pair: pair[0])]
            order.sort()


class CheckedSequentialMultiInstance(SequentialMultiInstanceTask):
    """A sequential multi-instance whose missing collection is an incident on the activity itself."""

    def init_remaining_items(self, my_task: Any) -> list[Any]:
        _check_collection(self, my_task)
        return super().init_remaining_items(my_task)


def _with_our_multi_instance(parser_class: type) -> type:
    return type(
        parser_class.__name__,
        (parser_class,),
        {"PARALLEL_MI_CLASS": OrderedParallelMultiInstance, "SEQUENTIAL_MI_CLASS": CheckedSequentialMultiInstance},
    )


class _UserTaskParser(TaskParser):
    def parse_extensions(self, node: Any = None) -> dict[str, str]:
        attributes = {name: self.attribute(name, "camunda") for name in USER_TASK_ATTRIBUTES}
        return {name: value for name, value in attributes.items() if value is not None}


class _ExternalTaskParser(TaskParser):
    def parse_extensions(self, node: Any = None) -> dict[str, str]:
        return {"topic": self.attribute("topic", "camunda") or self.bpmn_id}


class _CheckedConditionsParser(ConditionalGatewayParser):
    def parse_condition(self, sequence_flow: Any) -> str | None:
        condition = super().parse_condition(sequence_flow)
        if condition is not None:
            try:
                compile_expression(condition)
            except ExpressionError as exc:
                raise ValidationException(str(exc), node=sequence_flow, file_name=self.filename) from None
        return condition


class _Parser(BpmnParser):
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type, type]]] = {
        full_tag("userTask"): (_UserTaskParser, UserTask),
        full_tag("serviceTask"): (_ExternalTaskParser, ExternalTask),
        full_tag("businessRuleTask"): (_ExternalTaskParser, ExternalTask),
        full_tag("task"): (TaskParser, PassThroughTask),
        full_tag("manualTask"): (TaskParser, PassThroughTask),
        full_tag("exclusiveGateway"): (_CheckedConditionsParser, ExclusiveGateway),
        full_tag("inclusiveGateway"): (_CheckedConditionsParser, InclusiveGateway),
        full_tag("eventBasedGateway"): (_EventGatewayParser, EventGateway),
        full_tag("parallelGateway"): (GatewayParser, LoopSafeParallelGateway),
    }


# Every element that may carry multi-instance characteristics gets ours (see OrderedParallelMultiInstance).
_Parser.OVERRIDE_PARSER_CLASSES = {
    tag: (_with_our_multi_instance(parser_class), spec_class)
    for tag, (parser_class, spec_class) in {**BpmnParser.PARSER_CLASSES, **_Parser.OVERRIDE_PARSER_CLASSES}.items()
}


@dataclass(frozen=True)
class FlowNode:
    type: str  # the BPMN element name, e.g. "userTask"
    name: str | None


@dataclass(frozen=True)
class ParsedProcess:
    key: str
    name: str | None
    description: str | None
    category: str | None
    spec: BpmnProcessSpec
    subprocess_specs: dict[str, BpmnProcessSpec]
    nodes: dict[str, FlowNode]  # every flow node of the document, by BPMN id

    def node(self, bpmn_id: str) -> FlowNode:
        return self.nodes.get(bpmn_id, FlowNode(type="task", name=None))

    @property
    def start_triggers(self) -> set[tuple[str, str]]:
        """("message" | "signal", name) of the process's own message and signal start events."""
        triggers = set()
        for spec in self.spec.task_specs.values():
            if isinstance(spec, StartEvent):
                if isinstance(spec.event_definition, MessageEventDefinition):
                    triggers.add(("message", spec.event_definition.name))
                elif isinstance(spec.event_definition, SignalEventDefinition):
                    triggers.add(("signal", spec.event_definition.name))
        return triggers


TOO_LONG_A_CHAIN = (
    "Invalid BPMN: a sequence flow chain is longer than the embedded engine's parser can follow "
    "(about 450 elements in a row); split it with a call activity or an embedded subprocess"
)


@dataclass(frozen=True)
class CalledElement:
    """A call activity's `calledElement` that its own document does not define (Camunda's binding attributes)."""

    activity_id: str
    key: str
    version: int | None  # camunda:calledElementBinding="version": this version; else the latest


def called_elements(xml: bytes) -> list[CalledElement]:
    """The processes a document calls but does not define; InvalidBpmn for a call by expression or binding
    the embedded engine cannot resolve."""
    root = _read_xml(xml)
    defined = {process.get("id") for process in root.iter(f"{{{BPMN_NS}}}process")}
    called = []
    for activity in root.iter(f"{{{BPMN_NS}}}callActivity"):
        key = (activity.get("calledElement") or "").strip()
        if not key or key in defined:
            continue
        if "{" in key:
            raise InvalidBpmn(
                f"Call activity {activity.get('id')!r} names the process it calls by an expression ({key!r}); "
                "the embedded engine needs the process id"
            )
        binding = activity.get(f"{{{CAMUNDA_NS}}}calledElementBinding") or "latest"
        version_text = activity.get(f"{{{CAMUNDA_NS}}}calledElementVersion")
        version = None
        if binding == "version":
            if not (version_text or "").strip().isdigit():
                raise InvalidBpmn(
                    f"Call activity {activity.get('id')!r} binds version {version_text!r} of {key!r}: "
                    "camunda:calledElementVersion must be a version number"
                )
            version = int(version_text)
        called.append(CalledElement(activity.get("id"), key, version))
    return called


def parse_bpmn(xml: bytes, filename: str | None = None, called: Sequence[bytes] = ()) -> list[ParsedProcess]:
    """Every executable process of a BPMN document; InvalidBpmn with the parser's message and line otherwise.

    `called` are the deployed documents holding the processes its call activities call (see `called_elements`);
    their processes are available to call, not definitions of this document."""
    root = _read_xml(xml)
    nodes = _flow_nodes(root)  # by the author's ids, before `normalize` adds and renames
    rewrites = normalize(root)
    parser = _Parser(namespaces=NAMESPACES, validator=_validator())
    try:
        parser.add_bpmn_xml(root, filename)
        keys = parser.get_process_ids()  # before parsing: embedded subprocesses register as processes too
        if not keys:
            raise InvalidBpmn('The BPMN contains no executable process (only isExecutable="false" ones)')
        documents = [root]
        for document in called:
            other = _read_xml(document)
            documents.append(other)
            nodes = {**_flow_nodes(other), **nodes}  # the called processes' activities, typed too
            normalize(other)
            if not {p.get("id") for p in other.iter(f"{{{BPMN_NS}}}process")} & set(parser.get_process_ids()):
                parser.add_bpmn_xml(other, None)
        _refuse_endless_calls(documents, keys)
        return [_parsed_process(parser, root, key, nodes, rewrites) for key in keys]
    except RecursionError:
        raise InvalidBpmn(TOO_LONG_A_CHAIN) from None
    except ValidationException as exc:
        if isinstance(exc.__context__, RecursionError):  # the parser wraps what it meets in its own exception
            raise InvalidBpmn(f"{TOO_LONG_A_CHAIN} ({_validation_message(exc, root).rpartition('(')[2]}") from None
        raise InvalidBpmn(_validation_message(exc, root)) from None
    except SpiffWorkflowException as exc:
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        spec = getattr(exc, "task_spec", None)
        worded = _in_bpmn_terms(message, None, getattr(spec, "bpmn_id", None))
        raise InvalidBpmn(worded or f"Invalid BPMN: {message}") from None


def _read_xml(xml: bytes) -> etree._Element:
    try:
        root = etree.fromstring(xml, _XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidBpmn(f"Malformed XML at line {exc.lineno}: {exc.msg}") from None
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise InvalidBpmn(f"Not a BPMN 2.0 document: the root element is {etree.QName(root).localname!r} (line 1)")
    return root


@functools.cache
def _validator() -> BpmnValidator:
    return BpmnValidator()  # loading the BPMN 2.0 XML schema takes a while: once per process


def load_schema() -> None:
    """Load the BPMN 2.0 XML schema now (about a second, holding the interpreter), not at the first deploy."""
    _validator()


def _parsed_process(
    parser: _Parser, root: etree._Element, key: str, nodes: dict[str, FlowNode], rewrites: Rewrites
) -> ParsedProcess:
    element = next((e for e in root.iter(f"{{{BPMN_NS}}}process") if e.get("id") == key), None)
    documentation = element.find(f"{{{BPMN_NS}}}documentation") if element is not None else None
    process = ParsedProcess(
        key=key,
        name=element.get("name") if element is not None else None,
        description=documentation.text.strip() if documentation is not None and documentation.text else None,
        category=root.get("targetNamespace"),
        spec=parser.get_spec(key),
        subprocess_specs=parser.get_subprocess_specs(key),
        nodes=nodes,
    )
    for spec in (process.spec, *process.subprocess_specs.values()):
        for task_spec in spec.task_specs.values():
            if task_spec.bpmn_id in rewrites.renamed:
                task_spec.bpmn_id = rewrites.renamed[task_spec.bpmn_id]  # the author's id again
            elif task_spec.bpmn_id in rewrites.implicit:
                task_spec.bpmn_id = None  # an implicit gateway is the engine's bookkeeping, not an activity
            if isinstance(task_spec, LoopTask):  # as SpiffWorkflow's spec deserializer does: not left to the first run
                child = spec.task_specs[task_spec.task_spec]
                if not child.completed_event.is_connected(task_spec.merge_child):
                    child.completed_event.connect(task_spec.merge_child)
            definition = getattr(task_spec, "event_definition", None)
            if isinstance(definition, TimerEventDefinition):
                _check_timer(definition, task_spec.bpmn_id)
            elif isinstance(definition, EventGatewayEvents):
                for timer in definition.event_definitions:
                    if isinstance(timer, TimerEventDefinition):
                        _check_timer(timer, timer.name)  # its name is its event's id (see EventGateway)
    return process


def _check_timer(definition: TimerEventDefinition, bpmn_id: str) -> None:
    """A literal timer must parse (and is stored in the form SpiffWorkflow reads); anything else must be a valid
    expression. Camunda's forms: a date-time (any offset), a duration, or a repeating interval `R[n]/duration`,
    `R[n]/start/duration`, `R[n]/duration/end` or `R[n]/start/end`. Cron cycles are refused."""
    kind = _TIMER_KINDS[type(definition).__name__]
    text = (definition.expression or "").strip()
    if not text:
        raise InvalidBpmn(f"The {kind} of timer event {bpmn_id!r} is empty")
    if not is_timer_literal(text) and not _LOOKS_ISO.match(text):
        if len(text.split()) in (5, 6, 7) and not text.startswith(("${", "#{")):
            raise InvalidBpmn(
                f"The {kind} {text!r} of timer event {bpmn_id!r} is a cron expression, which the embedded engine "
                "does not support: use an ISO 8601 repeating interval such as R/PT5M"
            )
        try:
            compile_expression(text)
        except ExpressionError as exc:
            raise InvalidBpmn(f"The {kind} of timer event {bpmn_id!r} is not a valid expression: {exc}") from None
        return
    try:
        definition.expression = _timer_literal(text.upper(), cycle=isinstance(definition, CycleTimerEventDefinition))
    except Exception:  # SpiffWorkflow's ISO 8601 parsers raise bare Exceptions
        expected = (
            "a repeating interval such as R3/PT1H" if kind == "timeCycle" else "an ISO 8601 date-time or duration"
        )
        raise InvalidBpmn(f"The {kind} {text!r} of timer event {bpmn_id!r} is not {expected}") from None


_LOOKS_ISO = re.compile(r"^(R\d*/|PT?\d|\d{4}-?\d\d)", re.IGNORECASE)  # meant as a literal, whatever follows
_TIMER_KINDS = {
    "TimeDateEventDefinition": "timeDate",
    "DurationTimerEventDefinition": "timeDuration",
    "CycleTimerEventDefinition": "timeCycle",
}


def _timer_literal(text: str, *, cycle: bool) -> str:
    """The timer text as SpiffWorkflow reads it; `R[n]/start/end` becomes `R[n]/start/duration`."""
    if not cycle:
        TimerEventDefinition.parse_time_or_duration(text)
        return text
    parts = text.split("/")
    if len(parts) == 3 and not parts[1].startswith("P") and not parts[2].startswith("P"):
        start, end = (TimerEventDefinition.parse_time_or_duration(part) for part in parts[1:])
        seconds = (end - start).total_seconds()
        if seconds <= 0:
            raise ValueError("the end of the interval is not after its start")
        text = f"{parts[0]}/{parts[1]}/PT{int(seconds) if seconds.is_integer() else seconds}S"
    TimerEventDefinition.parse_iso_recurring_interval(text)
    return text


# Elements a token passes straight through, without waiting or choosing.
_PASS_THROUGH = {"startEvent", "task", "manualTask", "scriptTask", "parallelGateway", "intermediateThrowEvent"}


def _refuse_endless_calls(documents: Sequence[etree._Element], keys: Iterable[str]) -> None:
    """Call activities that call their own process on every run, directly (A calls A) or through other
    processes (A calls B calls A), would recurse without end: refuse them, naming each call of the cycle.

    A process calls another on every run when a none start event reaches the call activity through elements
    that neither wait nor choose and flows without a condition. A call behind a gateway condition, a user task
    or an event stays allowed (recursion that ends), and the call depth limit at run time catches what this
    cannot see. `documents` come first the deploying one, then the deployed ones it calls (see `parse_bpmn`).
    """
    always: dict[str, list[tuple[str, str]]] = {}  # process -> [(call activity, process it calls every run)]
    for root in documents:
        for process in root.iter(f"{{{BPMN_NS}}}process"):
            always.setdefault(process.get("id"), _calls_on_every_run(process))
    for key in keys:
        cycle = _call_cycle(key, always)
        if cycle is None:
            continue
        if len(cycle) == 1:
            ((_, activity, _),) = cycle
            raise InvalidBpmn(
                f"Call activity {activity!r} calls its own process {key!r} every time the process runs: "
                "it would call itself without end (put the call behind a condition)"
            )
        chain = ", whose ".join(
            f"call activity {activity!r} of process {caller!r} calls {called!r}" for caller, activity, called in cycle
        )
        raise InvalidBpmn(
            f"Process {key!r} calls itself through other processes on every run ({chain}): they would call each "
            "other without end (put one of the calls behind a condition)"
        )


def _call_cycle(key: str, always: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str, str]] | None:
    """The calls (caller, call activity, called) that lead from `key` back to `key` on every run, if any."""
    visited: set[str] = set()
    pending: list[tuple[str, list[tuple[str, str, str]]]] = [(key, [])]
    while pending:
        caller, path = pending.pop()
        for activity, called in always.get(caller, []):
            step = [*path, (caller, activity, called)]
            if called == key:
                return step
            if called not in visited:
                visited.add(called)
                pending.append((called, step))
    return None


def _calls_on_every_run(process: etree._Element) -> list[tuple[str, str]]:
    """(call activity id, called process) for each call activity a none start event reaches unconditionally."""
    outgoing: dict[str, list[etree._Element]] = {}
    for sequence_flow in process.findall(f"{{{BPMN_NS}}}sequenceFlow"):
        outgoing.setdefault(sequence_flow.get("sourceRef"), []).append(sequence_flow)
    elements = {child.get("id"): child for child in process if isinstance(child.tag, str)}
    kinds = {node: etree.QName(element).localname for node, element in elements.items()}
    starts = [
        child.get("id")
        for child in process.findall(f"{{{BPMN_NS}}}startEvent")
        if not any(isinstance(c.tag, str) and c.tag.endswith("EventDefinition") for c in child)
    ]
    calls = []
    seen, pending = set(starts), list(starts)
    while pending:
        node = pending.pop()
        if kinds.get(node) == "callActivity" and (elements[node].get("calledElement") or "").strip():
            calls.append((node, elements[node].get("calledElement").strip()))
        if kinds.get(node) not in _PASS_THROUGH:
            continue
        for sequence_flow in outgoing.get(node, []):
            if sequence_flow.find(f"{{{BPMN_NS}}}conditionExpression") is not None:
                continue
            target = sequence_flow.get("targetRef")
            if target not in seen and (kinds.get(target) in _PASS_THROUGH or kinds.get(target) == "callActivity"):
                seen.add(target)
                pending.append(target)
    return calls


def _flow_nodes(root: etree._Element) -> dict[str, FlowNode]:
    tags = [f"{{{BPMN_NS}}}{name}" for name in FLOW_NODE_TYPES]
    return {
        element.get("id"): FlowNode(type=etree.QName(element).localname, name=element.get("name"))
        for element in root.iter(*tags)
        if element.get("id")
    }


def _validation_message(exc: ValidationException, root: etree._Element) -> str:
    message = " ".join([str(exc.args[0]) if exc.args else "invalid", *exc.notes]).strip()
    message = re.sub(r"\{[^{}\s]+\}", lambda m: "bpmn:" if m.group(0) == f"{{{BPMN_NS}}}" else "", message)
    message = re.sub(r"<Element (\S+) at 0x[0-9a-f]+>", r"(its \1)", message)  # never a Python repr
    line = exc.line_number or _line_of(root, exc.id)
    worded = _in_bpmn_terms(message, exc.tag, exc.id)
    if worded is not None:
        return worded + (f" (line {line})" if line else "")
    where = [f"{exc.tag} {exc.id!r}" if exc.id else exc.tag, f"line {line}" if line else ""]
    located = ", ".join(part for part in where if part)
    return f"Invalid BPMN: {message}" + (f" ({located})" if located else "")


# SpiffWorkflow's own phrases for what it refuses, and what they mean in BPMN terms ({element}: the element
# named by its type and id, e.g. "complex gateway 'c'"; {Element}: the same, capitalised).
_SPIFF_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"There is no support implemented for this task type"),
        "{Element} is an element the embedded engine does not run",
    ),
    (
        re.compile(r"Exactly one start event is required in a SubWorkflow Task; found (?P<count>\d+)"),
        "{Element} has {count} start events; a subprocess needs exactly one, without an event definition",
    ),
    (
        re.compile(r"Time Specification Error|Unknown Time Specification"),
        "{Element} has a timer event definition without a timeDate, timeDuration or timeCycle",
    ),
    (re.compile(r"No start event found"), "{Element} has no start event"),
    (
        re.compile(r'No "calledElement" attribute for Call Activity'),
        "{Element} names no process to call: give it a calledElement",
    ),
    (
        re.compile(r"Invalid Script Task"),
        "{Element} has no inline script (the embedded engine runs no script loaded from a resource)",
    ),
    (
        re.compile(r"^Invalid expression (?P<expression>.*): (?P<reason>[^:]*)$"),
        "{Element} has the expression {expression}, which the embedded engine cannot evaluate: {reason}",
    ),
    (
        re.compile(r"Cannot resolve (?P<kind>dataInputAssociation|dataOutputAssociation) \(its bpmn:(?P<end>\w+)\)"),
        "{Element} has a {kind} whose {end} is no data object or property of its scope (the embedded engine maps no "
        "data to or from a process's ioSpecification)",
    ),
    (re.compile(r"A SubWorkflow Must contain an End event"), "{Element} has no end event"),
    (
        re.compile(r"Ad hoc subprocesses may not contain start or end events"),
        "{Element} contains start or end events, which an ad-hoc subprocess may not",
    ),
    (
        re.compile(r"Sequential ordering for ad hoc subprocesses not supported"),
        "{Element} orders its activities sequentially, which the embedded engine does not run",
    ),
    (
        re.compile(r"Non-default exclusive outgoing sequence flow without condition"),
        "{Element} has an outgoing flow that is neither its default nor conditional",
    ),
    (
        re.compile(r"(?P<kind>Error|Escalation|Message|Signal|Correlation) identifier is missing"),
        "This file has an element <{kind_lower}> without an id",
    ),
    (
        re.compile(
            r"Element 'bpmn:(?P<tag>\w+)', attribute 'id': '(?P<value>[^']*)' is not a valid value of the atomic "
            r"type 'xs:ID'"
        ),
        "The id {value!r} (of a {tag}) is used by more than one element of this file, or is not a valid XML id",
    ),
    (
        re.compile(r"When looking for a task spec, we found two items.*\((?P<target>[^()]*)\)"),
        "A sequence flow from {element} leads to {target!r}, which is no element of the same process",
    ),
    (
        re.compile(r"The process '(?P<key>[^']*)' was not found"),
        "{Element} calls process {key!r}, which is neither in this file nor deployed",
    ),
]
_ELEMENT_WORDS = {"subProcess": "subprocess", "adHocSubProcess": "ad-hoc subprocess", "process": "process"}


def _in_bpmn_terms(message: str, tag: str | None, element_id: str | None) -> str | None:
    """SpiffWorkflow's message in BPMN terms, naming the element; None when it is not one of its known phrases."""
    for pattern, wording in _SPIFF_PHRASES:
        found = pattern.search(message)
        if found is None:
            continue
        kind = (tag or "element").removeprefix("bpmn:")
        words = _ELEMENT_WORDS.get(kind) or re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), kind)
        element = f"{words} {element_id!r}" if element_id else f"a {words}"
        groups = found.groupdict()
        extra = {"kind_lower": groups["kind"].lower()} if "kind" in groups else {}
        return wording.format(element=element, Element=element[0].upper() + element[1:], **groups, **extra)
    return None


def _line_of(root: etree._Element, element_id: str) -> int | None:
    if not element_id:
        return None
    found = root.xpath("//*[@id=$id]", id=element_id)
    return found[0].sourceline if found else None


class SpecCache:
    """Parsed definitions by id, so a running instance never re-parses its BPMN (least recently used go first).

    Entries are kept pickled: bytes are nothing the garbage collector walks, while a parsed spec is thousands of
    objects (6,000 for 400 user tasks) that every full collection would visit while holding the event loop; the
    specs of 1,400 cached definitions made collections of 100-190 ms. Each `get` unpickles a copy of its own in a
    worker thread (0.3 ms for a typical definition, 14 ms for 400 user tasks; parsing takes 20 times longer).

    Bounded by `capacity_bytes` of pickled specs (about 1.5 times their BPMN source); a definition larger than the
    whole budget is parsed for each use and never kept.
    """

    def __init__(self, capacity_bytes: int = 16 * 1024 * 1024) -> None:
        self.capacity_bytes = capacity_bytes
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    async def get(self, definition_id: str) -> ParsedProcess | None:
        """A copy of the cached definition, or None when it is not cached."""
        entry = self._entries.get(definition_id)
        if entry is None:
            return None
        self._entries.move_to_end(definition_id)
        process: ParsedProcess = await asyncio.to_thread(pickle.loads, entry)
        return process

    async def put(self, definition_id: str, process: ParsedProcess) -> None:
        """Keep `process` (pickled in a worker thread), evicting the least recently used past the budget."""
        entry = await asyncio.to_thread(pickle.dumps, process, pickle.HIGHEST_PROTOCOL)
        replaced = self._entries.pop(definition_id, None)
        if replaced is not None:
            self.size -= len(replaced)
        if len(entry) > self.capacity_bytes:
            return
        self._entries[definition_id] = entry
        self.size += len(entry)
        while self.size > self.capacity_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)

    def discard(self, definition_id: str) -> None:
        """Forget the definition, also as parsed with each set of called definitions (keys `id|called|...`)."""
        for key in [key for key in self._entries if key == definition_id or key.startswith(definition_id + "|")]:
            self.size -= len(self._entries.pop(key))
