"""Engine-neutral reading of BPMN 2.0 XML: a first validation, and the tasks a definition contains.

Every upload is checked here before any engine sees it, so malformed XML or a file without an executable
process is the same 400 (with the line) on every engine. Where a task's assignment and form are written is
engine vocabulary: each adapter declares it as its `task_extensions` (see `TaskExtensions`).
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass, field

from lxml import etree

from gateway.errors import BadRequest, InvalidBpmn
from gateway.schemas import ProcessEvent, ProcessTask, StartForm

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
TASK_TYPES = ("userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask")
MAX_ELEMENTS = 10_000  # default of PM_MAX_BPMN_ELEMENTS
MAX_ID_LENGTH = 255  # process, element and definition ids and names, as the engines store them

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class ProcessSummary:
    id: str
    name: str | None
    executable: bool


def parse(xml: bytes) -> etree._Element:
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or exc.position[0]
        raise InvalidBpmn(f"Malformed XML at line {line}: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise InvalidBpmn(
            "The BPMN file has a DOCTYPE declaration; BPMN 2.0 needs none, and DTDs and entities are refused"
        )
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise InvalidBpmn(
            f"Not a BPMN 2.0 document: the root element is {etree.QName(root).localname!r}, "
            f"expected 'definitions' in namespace {BPMN_NS} (line {root.sourceline})"
        )
    return root


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def encode_text(xml: str) -> bytes:
    """BPMN sent as text (JSON `bpmn_xml`) as bytes in the encoding its XML declaration names (UTF-8 without
    one), so the parser decodes it as written. InvalidBpmn when that encoding is unknown or cannot hold it."""
    head = xml[:200].encode("utf-8", errors="replace")
    declared = _DECLARED_ENCODING.match(head)
    encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        return xml.encode(codecs.lookup(encoding).name)
    except LookupError:
        raise InvalidBpmn(f"The XML declaration names the unknown encoding {encoding!r}") from None
    except UnicodeEncodeError as exc:
        raise InvalidBpmn(
            f"The BPMN text holds {exc.object[exc.start]!r} at offset {exc.start}, which the encoding its XML "
            f"declaration names ({encoding}) cannot represent"
        ) from None


def _check_element_count(xml: bytes, limit: int) -> None:
    """Count elements while streaming (nothing is kept), stopping at the first one over the limit."""
    count = 0
    try:
        for _, element in etree.iterparse(
            io.BytesIO(xml), events=("end",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        ):
            count += 1
            if count > limit:
                raise InvalidBpmn(
                    f"The BPMN file has more than {limit} XML elements; the limit is {limit} (PM_MAX_BPMN_ELEMENTS)"
                )
            element.clear(keep_tail=True)  # only ever at "end": clearing at "start" corrupts lxml's tree
    except etree.XMLSyntaxError:
        return  # `parse` reports it with its line


def validate(xml: bytes, *, max_elements: int = MAX_ELEMENTS) -> list[ProcessSummary]:
    """The processes of a deployable BPMN file; at least one must be executable. A file with more than
    `max_elements` XML elements is refused before it is built in memory (InvalidBpmn naming the limit)."""
    _check_element_count(xml, max_elements)
    root = parse(xml)
    processes = [
        ProcessSummary(
            id=element.get("id", ""),
            name=element.get("name"),
            # Without the attribute a process is executable, as Camunda 7 and Flowable read it; each adapter
            # may still refuse what its engine cannot run.
            executable=element.get("isExecutable", "true").lower() == "true",
        )
        for element in root.iter(f"{{{BPMN_NS}}}process")
    ]
    if not any(process.executable for process in processes):
        raise InvalidBpmn('The BPMN file contains no executable process (every <process> has isExecutable="false")')
    missing_id = next((p for p in processes if not p.id), None)
    if missing_id is not None:
        raise InvalidBpmn("Every <process> needs an id")
    _check_lengths(root)
    return processes


def _check_lengths(root: etree._Element) -> None:
    """Ids and names longer than the engines' columns (255) are a 400 naming the element, not a failed insert."""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for attribute in ("id", "name"):
            value = element.get(attribute)
            if value is not None and len(value) > MAX_ID_LENGTH:
                raise InvalidBpmn(
                    f"The {attribute} of <{etree.QName(element).localname}> at line {element.sourceline} is "
                    f"{len(value)} characters long; the limit is {MAX_ID_LENGTH}"
                )


@dataclass(frozen=True)
class Assignment:
    """Who a task is for and which form it shows, as the engine reads them from the BPMN."""

    assignee: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    form_key: str | None = None


@dataclass(frozen=True)
class TaskExtensions:
    """How an engine writes assignment and forms in BPMN: as attributes `assignee`, `candidateGroups`,
    `candidateUsers`, `formKey` in its extension `namespaces`, looked up in order (Camunda 7, Flowable).
    An engine that writes them otherwise (Camunda 8's `zeebe:assignmentDefinition`) overrides `read`."""

    namespaces: tuple[str, ...] = ()

    def attribute(self, element: etree._Element, name: str) -> str | None:
        for namespace in self.namespaces:
            value = element.get(f"{{{namespace}}}{name}")
            if value is not None:
                return value
        return None

    def read(self, element: etree._Element) -> Assignment:
        """The assignment of a task element, or the form of a start event (only `form_key` set)."""
        return Assignment(
            assignee=self.attribute(element, "assignee"),
            candidate_groups=split_list(self.attribute(element, "candidateGroups")),
            candidate_users=split_list(self.attribute(element, "candidateUsers")),
            form_key=self.attribute(element, "formKey"),
        )


def split_list(value: str | None) -> list[str]:
    """`"a, b,,c"` → `["a", "b", "c"]`: the comma-separated lists of BPMN extension attributes."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _task(element: etree._Element, extensions: TaskExtensions) -> ProcessTask:
    kind = etree.QName(element).localname
    documentation = element.find(f"{{{BPMN_NS}}}documentation")
    assignment = extensions.read(element)
    return ProcessTask(
        id=element.get("id", ""),
        name=element.get("name"),
        type=kind,
        assignee=assignment.assignee,
        candidate_groups=assignment.candidate_groups,
        candidate_users=assignment.candidate_users,
        form_key=assignment.form_key,
        documentation=(documentation.text or "").strip() or None if documentation is not None else None,
    )


def describe_process(
    xml: bytes, process_id: str, extensions: TaskExtensions
) -> tuple[list[ProcessTask], StartForm | None]:
    """The tasks of one process (subprocesses included) and its start form, if any, read as the engine
    (`extensions`) reads them. An unknown `process_id` has neither."""
    root = parse(xml)
    process = next((p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id") == process_id), None)
    if process is None:
        return [], None
    tasks = [
        _task(element, extensions)
        for element in process.iter()
        if isinstance(element.tag, str) and element.tag in {f"{{{BPMN_NS}}}{kind}" for kind in TASK_TYPES}
    ]
    start_form = None
    for start in process.iter(f"{{{BPMN_NS}}}startEvent"):
        form_key = extensions.read(start).form_key
        if form_key:
            start_form = StartForm(key=form_key)
            break
    return tasks, start_form


def describe_events(xml: bytes, process_id: str) -> tuple[list[ProcessEvent], list[ProcessEvent]]:
    """The start events of one process (its own, not its event subprocesses') and the events inside it that
    wait for a message or signal (intermediate catch, boundary, receive task, event subprocess start), with
    the message and signal names the `<message>`/`<signal>` elements give them. Unknown `process_id`: none."""
    root = parse(xml)
    process = next((p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id") == process_id), None)
    if process is None:
        return [], []
    names = {
        kind: {
            element.get("id"): element.get("name") or element.get("id") for element in root.iter(f"{{{BPMN_NS}}}{kind}")
        }
        for kind in ("message", "signal")
    }
    starts = [_event(element, names) for element in process.findall(f"{{{BPMN_NS}}}startEvent")]
    catches = []
    for element in process.iter():
        if not isinstance(element.tag, str) or (element.getparent() is process and element.tag.endswith("}startEvent")):
            continue
        kind = etree.QName(element).localname
        if kind in ("startEvent", "intermediateCatchEvent", "boundaryEvent", "receiveTask"):
            event = _event(element, names)
            if event.trigger in ("message", "signal"):
                catches.append(event)
    return starts, catches


def _event(element: etree._Element, names: dict[str, dict[str | None, str | None]]) -> ProcessEvent:
    kind = etree.QName(element).localname
    message = element.find(f"{{{BPMN_NS}}}messageEventDefinition")
    signal = element.find(f"{{{BPMN_NS}}}signalEventDefinition")
    timer = element.find(f"{{{BPMN_NS}}}timerEventDefinition")
    message_ref = (
        element.get("messageRef")
        if kind == "receiveTask"
        else (message.get("messageRef") if message is not None else None)
    )
    trigger = None
    if message is not None or message_ref is not None:
        trigger = "message"
    elif signal is not None:
        trigger = "signal"
    elif timer is not None:
        trigger = "timer"
    interrupting = None
    if kind == "boundaryEvent":
        interrupting = element.get("cancelActivity", "true").lower() == "true"
    elif kind == "startEvent":
        interrupting = element.get("isInterrupting", "true").lower() == "true"
    return ProcessEvent(
        id=element.get("id", ""),
        name=element.get("name"),
        element_type=kind,
        trigger=trigger,
        message_name=names["message"].get(message_ref, message_ref) if message_ref else None,
        signal_name=names["signal"].get(signal.get("signalRef"), signal.get("signalRef"))
        if signal is not None
        else None,
        interrupting=interrupting,
        attached_to=element.get("attachedToRef"),
    )


def message_start_event(xml: bytes, process_id: str, message_name: str) -> str:
    """The id of the process's start event for message `message_name` (for engines that start "before" an
    element); BadRequest naming the start events the process has when none catches that message."""
    starts, _ = describe_events(xml, process_id)
    for start in starts:
        if start.message_name == message_name:
            return start.id
    known = ", ".join(
        f"{s.id!r} ({s.trigger or 'none'}{f' {s.message_name!r}' if s.message_name else ''})" for s in starts
    )
    raise BadRequest(
        f"Process {process_id!r} has no start event for message {message_name!r}; its start events: {known}"
    )


def flow_node_ids(xml: bytes, process_id: str) -> set[str]:
    """The ids of every flow node of one process, its subprocesses included (what modification may name)."""
    root = parse(xml)
    process = next((p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id") == process_id), None)
    if process is None:
        return set()
    skipped = {
        "sequenceFlow",
        "extensionElements",
        "documentation",
        "laneSet",
        "lane",
        "flowNodeRef",
        "incoming",
        "outgoing",
        "conditionExpression",
        "multiInstanceLoopCharacteristics",
        "textAnnotation",
        "association",
        "dataObject",
        "dataObjectReference",
        "dataStoreReference",
        "ioSpecification",
        "property",
    }
    return {
        element.get("id")
        for element in process.iter()
        if element is not process
        and isinstance(element.tag, str)
        and element.tag.startswith(f"{{{BPMN_NS}}}")
        and etree.QName(element).localname not in skipped
        and not etree.QName(element).localname.endswith("EventDefinition")
        and element.get("id")
    }


def single_successor(xml: bytes, process_id: str, activity_id: str) -> str:
    """The target of the single sequence flow leaving `activity_id` (what "start after" an activity starts, for
    engines that can only start before one). BadRequest when it has none or several."""
    root = parse(xml)
    process = next((p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id") == process_id), None)
    targets = (
        []
        if process is None
        else [
            flow.get("targetRef")
            for flow in process.iter(f"{{{BPMN_NS}}}sequenceFlow")
            if flow.get("sourceRef") == activity_id
        ]
    )
    if len(targets) != 1:
        raise BadRequest(
            f"Activity {activity_id!r} has {len(targets)} outgoing sequence flows; start_after needs exactly one "
            "(start_before the activity to go to instead)"
        )
    return targets[0] or ""
