"""Real-world BPMN as SpiffWorkflow can run it: rewrites of the XML tree before SpiffWorkflow parses it.

Modelling tools and engines accept constructs SpiffWorkflow's parser refuses or misreads; each rewrite here
keeps the model's meaning (as Camunda and Flowable run it) and records what it did in `Rewrites`, so the
parsed specs can report the author's ids again:
- ids that collide with SpiffWorkflow's internal task names (`Start`, `End`, `Root`, `*.EndJoin`,
  `*.BoundaryEventSplit`, `*.BoundaryEventJoin`) get a private name; their specs keep the author's id;
- an activity or event with several outgoing flows (BPMN's implicit split) gets an implicit gateway after
  it: parallel when no flow has a condition, inclusive otherwise (Camunda's conditional flows);
- a flow from an element back to itself passes through an implicit exclusive gateway;
- a gateway's outgoing flow without a condition that is not its default is always taken (Camunda's reading);
- `camunda:collection` / `camunda:elementVariable` (and `flowable:`, `activiti:`) become the BPMN
  `loopDataInputRef` / `inputDataItem` of the multi-instance loop;
- a process without `isExecutable` is executable (as in Flowable); only `isExecutable="false"` is not.

- a subprocess without an end event ends where its paths end (an implicit end event joins them);
- data stores and their associations are documentation only and are dropped.

- an errorRef that names no <error> is the error code itself (Camunda's and Flowable's reading).

Refused here, with the element named: a boundary event on an event subprocess or without an event
definition, a messageRef, signalRef or escalationRef that names nothing in the file, compensation, and a
multi-instance loop without collection or cardinality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.parser.node_parser import DEFAULT_NSMAP

from gateway.errors import InvalidBpmn

BPMN_NS = DEFAULT_NSMAP["bpmn"]
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
VENDOR_NAMESPACES = (CAMUNDA_NS, "http://flowable.org/bpmn", "http://activiti.org/bpmn")
INTERNAL_NAMES = re.compile(r"^(Start|End|Root)$|\.(EndJoin|BoundaryEventSplit|BoundaryEventJoin)$")
REFERENCE_ATTRIBUTES = ("sourceRef", "targetRef", "attachedToRef", "default", "bpmnElement")
# Elements SpiffWorkflow lets have one outgoing flow only.
SINGLE_EXIT = {
    "startEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent", "task", "userTask",
    "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask", "callActivity",
    "subProcess", "transaction",
}  # fmt: skip
GATEWAYS = {"parallelGateway", "exclusiveGateway", "inclusiveGateway"}  # a path may end at a join


@dataclass
class Rewrites:
    """What `normalize` changed: private spec names by the author's id, and the implicit gateways it added."""

    renamed: dict[str, str] = field(default_factory=dict)  # private name -> author's id
    implicit: set[str] = field(default_factory=set)  # ids of the gateways and flows added


def normalize(root: etree._Element) -> Rewrites:
    """Rewrite the document in place (see the module docstring); InvalidBpmn for what cannot be run."""
    rewrites = Rewrites()
    ids = {element.get("id") for element in root.iter() if isinstance(element.tag, str) and element.get("id")}
    _name_anonymous_elements(root, ids, rewrites)
    _executable_by_default(root)
    _refuse_boundaries_on_event_subprocesses(root)
    _check_event_references(root)
    _refuse_boundaries_without_definition(root)
    _refuse_compensation_and_undefined_multi_instance(root)
    _refuse_event_subprocesses_without_trigger(root)
    _drop_data_stores(root)
    _rename_internal_names(root, ids, rewrites)
    for container in _containers(root):
        _end_implicitly(container, ids, rewrites)
        _route_self_loops(container, ids, rewrites)
        _split_implicitly(container, ids, rewrites)
        _unconditioned_flows_always_taken(container)
    _vendor_multi_instance(root)
    return rewrites


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _containers(root: etree._Element) -> list[etree._Element]:
    return [*root.iter(_tag("process")), *root.iter(_tag("subProcess"), _tag("transaction"), _tag("adHocSubProcess"))]


def _unique(wanted: str, ids: set[str]) -> str:
    candidate, number = wanted, 1
    while candidate in ids:
        number += 1
        candidate = f"{wanted}_{number}"
    ids.add(candidate)
    return candidate


def _executable_by_default(root: etree._Element) -> None:
    for process in root.iter(_tag("process")):
        if process.get("isExecutable") is None:
            process.set("isExecutable", "true")


def _refuse_boundaries_on_event_subprocesses(root: etree._Element) -> None:
    event_subprocesses = {
        element.get("id") for element in root.iter(_tag("subProcess")) if element.get("triggeredByEvent") == "true"
    }
    for boundary in root.iter(_tag("boundaryEvent")):
        if boundary.get("attachedToRef") in event_subprocesses:
            raise InvalidBpmn(
                f"Boundary event {boundary.get('id')!r} is attached to event subprocess "
                f"{boundary.get('attachedToRef')!r}; BPMN allows no boundary events on an event subprocess "
                f"(line {boundary.sourceline})"
            )


# Event definitions and the top-level element their reference must name.
EVENT_REFERENCES = {
    "errorEventDefinition": ("errorRef", "error"),
    "escalationEventDefinition": ("escalationRef", "escalation"),
    "messageEventDefinition": ("messageRef", "message"),
    "signalEventDefinition": ("signalRef", "signal"),
}
EVENT_NAMES = {
    "startEvent": "start event", "endEvent": "end event", "boundaryEvent": "boundary event",
    "intermediateCatchEvent": "intermediate catch event", "intermediateThrowEvent": "intermediate throw event",
}  # fmt: skip


def _check_event_references(root: etree._Element) -> None:
    """An event's messageRef (signalRef, escalationRef) must name such an element of the file. An errorRef that
    names no <error> is the error code itself, as Camunda and Flowable read it: an <error> with that code is
    added."""
    for element in root.iter(_tag("message"), _tag("signal")):
        if not element.get("name") and element.get("id"):
            element.set("name", element.get("id"))  # a message or signal is known by its name: the id will do
    for definition_name, (attribute, target) in EVENT_REFERENCES.items():
        known = {element.get("id") for element in root.iter(_tag(target))}
        for definition in root.iter(_tag(definition_name)):
            reference = definition.get(attribute)
            if reference is None and target in ("message", "signal"):
                event = definition.getparent()
                kind = EVENT_NAMES.get(_local(event), _local(event))
                raise InvalidBpmn(
                    f"The {target} event of {kind} {event.get('id')!r} names no <{target}> ({attribute} is missing) "
                    f"(line {definition.sourceline})"
                )
            if reference is None or reference in known:
                continue
            if target == "error" and re.fullmatch(r"[A-Za-z_][\w.-]*", reference):
                anchor = root.find(_tag("process"))
                error = etree.Element(_tag("error"), id=reference, errorCode=reference)
                if anchor is not None:
                    anchor.addprevious(error)  # among the root elements, where the schema wants it
                known.add(reference)
                continue
            event = definition.getparent()
            kind = EVENT_NAMES.get(_local(event), _local(event))
            raise InvalidBpmn(
                f"{attribute} {reference!r} of {kind} {event.get('id')!r} names no <{target}> in this file "
                f"(line {definition.sourceline})"
            )


def _name_anonymous_elements(root: etree._Element, ids: set[str], rewrites: Rewrites) -> None:
    """Flows and subprocesses written without an id (Flowable allows it) get one; the engine needs ids."""
    for element in root.iter(_tag("sequenceFlow"), _tag("subProcess")):
        if not element.get("id"):
            element.set("id", _unique(f"{_local(element)}_line_{element.sourceline}", ids))
            rewrites.implicit.add(element.get("id"))


def _refuse_event_subprocesses_without_trigger(root: etree._Element) -> None:
    for subprocess in root.iter(_tag("subProcess")):
        if subprocess.get("triggeredByEvent") != "true":
            continue
        for start in subprocess.findall(_tag("startEvent")):
            if not any(_local(child).endswith("EventDefinition") for child in start):
                raise InvalidBpmn(
                    f"Start event {start.get('id')!r} of event subprocess {subprocess.get('id')!r} has no event "
                    "definition the embedded engine knows (timer, message, signal, error, escalation, conditional) "
                    f"(line {start.sourceline})"
                )


def _refuse_compensation_and_undefined_multi_instance(root: etree._Element) -> None:
    for definition in root.iter(_tag("compensateEventDefinition")):
        event = definition.getparent()
        raise InvalidBpmn(
            f"{EVENT_NAMES.get(_local(event), _local(event)).capitalize()} {event.get('id')!r} uses compensation, "
            f"which the embedded engine does not support (line {definition.sourceline})"
        )
    for loop in root.iter(_tag("multiInstanceLoopCharacteristics")):
        named = {_local(child) for child in loop} & {"loopCardinality", "loopDataInputRef"}
        vendor = any(loop.get(f"{{{namespace}}}collection") for namespace in VENDOR_NAMESPACES)
        if not named and not vendor:
            activity = loop.getparent()
            raise InvalidBpmn(
                f"Multi-instance {_local(activity)} {activity.get('id')!r} names neither a collection "
                "(loopDataInputRef or camunda:collection) nor a loopCardinality, so the engine cannot tell how many "
                f"instances to run (line {loop.sourceline})"
            )


def _refuse_boundaries_without_definition(root: etree._Element) -> None:
    for boundary in root.iter(_tag("boundaryEvent")):
        if not any(_local(child).endswith("EventDefinition") for child in boundary):
            raise InvalidBpmn(
                f"Boundary event {boundary.get('id')!r} has no event definition the embedded engine knows "
                "(timer, message, signal, error, escalation, conditional, cancel, compensation) "
                f"(line {boundary.sourceline})"
            )


def _drop_data_stores(root: etree._Element) -> None:
    """Data stores document where data lives; the engine keeps none: their references and associations go, and
    so do associations with an end that names nothing the task's data can hold (Camunda ignores them too)."""
    references = {element.get("id") for element in root.iter(_tag("dataStoreReference"))}
    holders = {
        element.get("id")
        for element in root.iter(_tag("dataObjectReference"), _tag("dataObject"), _tag("property"), _tag("dataInput"),
                                 _tag("dataOutput"))
    }  # fmt: skip
    for association in [*root.iter(_tag("dataInputAssociation"), _tag("dataOutputAssociation"))]:
        ends = {(child.text or "").strip() for child in association if _local(child) in ("sourceRef", "targetRef")}
        if ends & references or not ends <= holders:
            association.getparent().remove(association)
    for element in [*root.iter(_tag("dataStoreReference"), _tag("dataStore"))]:
        element.getparent().remove(element)


def _end_implicitly(container: etree._Element, ids: set[str], rewrites: Rewrites) -> None:
    """A subprocess without an end event ends where its paths end (BPMN's implicit end), as in Camunda."""
    if _local(container) == "process" or container.find(_tag("endEvent")) is not None:
        return
    sources = {flow.get("sourceRef") for flow in _flows(container)}
    end_id = _unique(f"{container.get('id')}_end", ids)
    ends = [
        node
        for node in container
        if (_local(node) in SINGLE_EXIT or _local(node) in GATEWAYS)
        and _local(node) != "boundaryEvent"
        and node.get("id") not in sources
        and node.get("triggeredByEvent") != "true"
    ]
    if not ends:
        return
    end = _add_after(ends[-1], "endEvent", id=end_id)
    rewrites.implicit.add(end_id)
    for node in ends:
        flow = _add_after(end, "sequenceFlow", id=_unique(f"{node.get('id')}_to_end", ids), sourceRef=node.get("id"))
        flow.set("targetRef", end_id)
        rewrites.implicit.add(flow.get("id"))


def _rename_internal_names(root: etree._Element, ids: set[str], rewrites: Rewrites) -> None:
    names = {old: _unique(f"{old}_", ids) for old in sorted(ids) if INTERNAL_NAMES.search(old)}
    if not names:
        return
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.get("id") in names and _local(element) not in ("process", "definitions"):
            element.set("id", names[element.get("id")])
        for attribute in REFERENCE_ATTRIBUTES:
            if element.get(attribute) in names:
                element.set(attribute, names[element.get(attribute)])
        if _local(element) in ("incoming", "outgoing") and (element.text or "").strip() in names:
            element.text = names[element.text.strip()]
    rewrites.renamed.update({new: old for old, new in names.items()})


def _flows(container: etree._Element) -> list[etree._Element]:
    return container.findall(_tag("sequenceFlow"))


def _add_after(anchor: etree._Element, name: str, **attributes: str) -> etree._Element:
    """A new flow element next to `anchor`, where the schema allows flow elements."""
    element = etree.Element(_tag(name), **attributes)
    anchor.addnext(element)
    return element


def _route_self_loops(container: etree._Element, ids: set[str], rewrites: Rewrites) -> None:
    for flow in _flows(container):
        node = flow.get("sourceRef")
        if node != flow.get("targetRef"):
            continue
        gateway_id = _unique(f"{node}_loop", ids)
        _add_after(flow, "exclusiveGateway", id=gateway_id)
        flow.set("targetRef", gateway_id)
        back = _add_after(
            flow, "sequenceFlow", id=_unique(f"{node}_loop_back", ids), sourceRef=gateway_id, targetRef=node
        )
        rewrites.implicit.update({gateway_id, back.get("id")})


def _split_implicitly(container: etree._Element, ids: set[str], rewrites: Rewrites) -> None:
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in _flows(container):
        if (source := flow.get("sourceRef")) is not None:
            outgoing.setdefault(source, []).append(flow)
    for node in list(container):
        node_id = node.get("id") if isinstance(node.tag, str) else None
        if node_id is None:
            continue
        flows = outgoing.get(node_id, [])
        if _local(node) not in SINGLE_EXIT or len(flows) < 2:
            continue
        conditional = any(flow.find(_tag("conditionExpression")) is not None for flow in flows)
        gateway_id = _unique(f"{node_id}_split", ids)
        gateway = _add_after(node, "inclusiveGateway" if conditional else "parallelGateway", id=gateway_id)
        if node.get("default") is not None:
            gateway.set("default", node.attrib.pop("default"))
        for flow in flows:
            flow.set("sourceRef", gateway_id)
        into = _add_after(gateway, "sequenceFlow", id=_unique(f"{node_id}_to_split", ids), sourceRef=node_id)
        into.set("targetRef", gateway_id)
        for child in node.findall(_tag("outgoing")):
            node.remove(child)
        rewrites.implicit.update({gateway_id, into.get("id")})


def _unconditioned_flows_always_taken(container: etree._Element) -> None:
    """A gateway's outgoing flow without a condition (and not its default) is taken as if its condition held,
    as in Camunda; SpiffWorkflow refuses such flows. Exclusive gateways still take the first that holds."""
    gateways = {
        element.get("id"): element.get("default")
        for element in container
        if _local(element) in ("exclusiveGateway", "inclusiveGateway")
    }
    for flow in _flows(container):
        source = flow.get("sourceRef")
        if source not in gateways or flow.get("id") == gateways[source]:
            continue
        condition = flow.find(_tag("conditionExpression"))
        if condition is None:
            condition = etree.SubElement(flow, _tag("conditionExpression"))
        if not (condition.text or "").strip():  # an empty condition is no condition
            condition.text = "${true}"


def _vendor_multi_instance(root: etree._Element) -> None:
    """`camunda:collection="${items}"` becomes `<loopDataInputRef>items</...>`, `elementVariable="item"` an
    `<inputDataItem name="item"/>`. The collection must name a variable."""
    for loop in root.iter(_tag("multiInstanceLoopCharacteristics")):
        for namespace in VENDOR_NAMESPACES:
            collection = loop.get(f"{{{namespace}}}collection")
            if collection is None or loop.find(_tag("loopDataInputRef")) is not None:
                continue
            activity = loop.getparent().get("id")
            name = _variable_name(collection)
            if name is None:
                raise InvalidBpmn(
                    f"The multi-instance collection {collection!r} of activity {activity!r} is not a variable name: "
                    "the embedded engine takes the collection from a variable, e.g. ${items}"
                )
            position = sum(1 for child in loop if _local(child) in ("documentation", "extensionElements"))
            source = etree.Element(_tag("loopDataInputRef"))
            source.text = name
            loop.insert(position, source)
            element_variable = loop.get(f"{{{namespace}}}elementVariable")
            if element_variable:
                output = loop.find(_tag("loopDataOutputRef"))
                item = etree.Element(_tag("inputDataItem"), id=element_variable, name=element_variable)
                (output if output is not None else source).addnext(item)


def _variable_name(expression: str) -> str | None:
    match = re.fullmatch(r"\s*(?:[$#]\{\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\}?\s*", expression)
    return match.group(1) if match else None
