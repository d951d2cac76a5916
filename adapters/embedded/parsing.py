"""BPMN XML to SpiffWorkflow specs, keeping the Camunda attributes the stock parser drops.

What the parser adds to SpiffWorkflow's:
- user tasks keep `camunda:assignee`, `candidateUsers`, `candidateGroups`, `formKey`, `priority`, `dueDate`
  and `followUpDate` in `spec.extensions`;
- service and business rule tasks are external work: they wait until the handler registered for their
  topic (`camunda:topic`, else the task id) has run; `spec.extensions["topic"]`;
- plain and manual tasks pass straight through, as in Camunda (SpiffWorkflow would wait on them);
- gateway conditions and timer definitions are checked at deployment, so a bad one is a 400, not an incident.

Specs are parsed once per definition and shared by all its instances (see `SpecCache`); nothing here keeps
per-instance state on them.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.parser.node_parser import DEFAULT_NSMAP
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway, InclusiveGateway, NoneTask, ServiceTask, UserTask
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException

from adapters.embedded.expressions import ExpressionError, compile_expression, is_timer_literal
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


TOO_LONG_A_CHAIN = (
    "Invalid BPMN: a sequence flow chain is longer than the embedded engine's parser can follow "
    "(about 450 elements in a row); split it with a call activity or an embedded subprocess"
)


def parse_bpmn(xml: bytes, filename: str | None = None) -> list[ParsedProcess]:
    """Every executable process of a BPMN document; InvalidBpmn with the parser's message and line otherwise."""
    root = _read_xml(xml)
    parser = _Parser(namespaces=NAMESPACES, validator=_validator())
    try:
        parser.add_bpmn_xml(root, filename)
        keys = parser.get_process_ids()  # before parsing: embedded subprocesses register as processes too
        if not keys:
            raise InvalidBpmn('The BPMN contains no executable process (a process with isExecutable="true")')
        nodes = _flow_nodes(root)
        return [_parsed_process(parser, root, key, nodes) for key in keys]
    except RecursionError:
        raise InvalidBpmn(TOO_LONG_A_CHAIN) from None
    except ValidationException as exc:
        if isinstance(exc.__context__, RecursionError):  # the parser wraps what it meets in its own exception
            raise InvalidBpmn(f"{TOO_LONG_A_CHAIN} ({_validation_message(exc, root).rpartition('(')[2]}") from None
        raise InvalidBpmn(_validation_message(exc, root)) from None
    except SpiffWorkflowException as exc:
        raise InvalidBpmn(f"Invalid BPMN: {exc.args[0] if exc.args else exc}") from None


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


def _parsed_process(parser: _Parser, root: etree._Element, key: str, nodes: dict[str, FlowNode]) -> ParsedProcess:
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
            definition = getattr(task_spec, "event_definition", None)
            if isinstance(definition, TimerEventDefinition):
                _check_timer(definition, task_spec.bpmn_id)
    return process


def _check_timer(definition: TimerEventDefinition, bpmn_id: str) -> None:
    """A literal timer (`PT5M`, `R3/PT1H`, a date-time) must parse; anything else must be a valid expression."""
    text = (definition.expression or "").strip()
    try:
        if not is_timer_literal(text):
            compile_expression(text)
        elif isinstance(definition, CycleTimerEventDefinition):
            TimerEventDefinition.parse_iso_recurring_interval(text)
        else:
            TimerEventDefinition.parse_time_or_duration(text)
    except Exception as exc:  # noqa: BLE001 - SpiffWorkflow's ISO 8601 parsers raise bare Exceptions
        raise ValidationException(
            f"Invalid timer {text!r}: {exc}", id=bpmn_id, tag="bpmn:timerEventDefinition"
        ) from None


def _flow_nodes(root: etree._Element) -> dict[str, FlowNode]:
    tags = [f"{{{BPMN_NS}}}{name}" for name in FLOW_NODE_TYPES]
    return {
        element.get("id"): FlowNode(type=etree.QName(element).localname, name=element.get("name"))
        for element in root.iter(*tags)
        if element.get("id")
    }


def _validation_message(exc: ValidationException, root: etree._Element) -> str:
    message = " ".join([str(exc.args[0]) if exc.args else "invalid", *exc.notes]).strip()
    line = exc.line_number or _line_of(root, exc.id)
    where = [f"{exc.tag} {exc.id!r}" if exc.id else exc.tag, f"line {line}" if line else ""]
    located = ", ".join(part for part in where if part)
    return f"Invalid BPMN: {message}" + (f" ({located})" if located else "")


def _line_of(root: etree._Element, element_id: str) -> int | None:
    if not element_id:
        return None
    found = root.xpath("//*[@id=$id]", id=element_id)
    return found[0].sourceline if found else None


class SpecCache:
    """Parsed definitions by id, so a running instance never re-parses its BPMN (least recently used go first).

    Bounded by `capacity_bytes` of BPMN source (the size of the XML each entry was parsed from, a proxy for
    the parsed spec, which takes some 10-30 times more); a definition larger than the whole budget is parsed
    for each use and never kept.
    """

    def __init__(self, capacity_bytes: int = 16 * 1024 * 1024) -> None:
        self.capacity_bytes = capacity_bytes
        self.size = 0
        self._entries: OrderedDict[str, tuple[ParsedProcess, int]] = OrderedDict()

    def get(self, definition_id: str) -> ParsedProcess | None:
        entry = self._entries.get(definition_id)
        if entry is None:
            return None
        self._entries.move_to_end(definition_id)
        return entry[0]

    def put(self, definition_id: str, process: ParsedProcess, size: int) -> None:
        self.discard(definition_id)
        if size > self.capacity_bytes:
            return
        self._entries[definition_id] = (process, size)
        self.size += size
        while self.size > self.capacity_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.size -= evicted

    def discard(self, definition_id: str) -> None:
        entry = self._entries.pop(definition_id, None)
        if entry is not None:
            self.size -= entry[1]
