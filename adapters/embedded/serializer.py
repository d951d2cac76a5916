"""User data in SpiffWorkflow's serialized state, kept apart from the serializer's own markers.

SpiffWorkflow's registry restores any dict with a `typename` key as one of its objects. Task and workflow
data are user data (process variables), so a variable named `typename`, or a Json value holding that key,
broke every later resume of the instance. These converters escape user-data dict keys on the way out
(`typename` and anything starting with the escape mark get the mark in front) and unescape them on the way
back, so any JSON round-trips exactly and no user dict is ever read as a serializer object.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnSubWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.task import Task, TaskState
from SpiffWorkflow.util.deep_merge import DeepMerge

MARK = "~"


def escape(value: Any) -> Any:
    """User data with every dict key that is `typename` or starts with MARK prefixed by MARK."""
    if isinstance(value, dict):
        return {
            (MARK + key if isinstance(key, str) and (key == "typename" or key.startswith(MARK)) else key): escape(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [escape(item) for item in value]
    return value


def unescape(value: Any) -> Any:
    """The inverse of `escape`."""
    if isinstance(value, dict):
        return {
            (key[len(MARK) :] if isinstance(key, str) and key.startswith(MARK) else key): unescape(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [unescape(item) for item in value]
    return value


def data_to_dict(registry: Any, data: dict[str, Any]) -> Any:
    """Workflow data as the serializer keeps it, user keys escaped."""
    return registry.convert(registry.clean(escape(data)))


class UserDataTaskConverter(TaskConverter):
    """SpiffWorkflow's task converter (data kept as a delta against the parent), with user data escaped."""

    def to_dict(self, task: Task) -> dict[str, Any]:
        dct = super().to_dict(task)
        if task.parent is None:
            dct["data"] = escape(task.data)
        else:
            dct["delta"]["updates"] = escape(dct["delta"]["updates"])
        return dct

    def from_dict(self, dct: dict[str, Any], workflow: Any) -> Task:
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, task_spec, state=dct["state"], id=UUID(dct["id"]))
        task._parent = UUID(dct["parent"]) if dct["parent"] is not None else None
        task._children = [UUID(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        task.internal_data = self.registry.restore(dct["internal_data"])
        if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            task.workflow.top_workflow.event_manager.add_task(task)
        delta = dct.get("delta")
        if delta and task.parent is not None:
            data = DeepMerge.merge({}, task.parent.data)
            data.update(unescape(self.registry.restore(delta.get("updates", {}))))
            for key in delta.get("deletions", {}):
                data.pop(key, None)
        else:
            data = unescape(self.registry.restore(dct["data"]))
        task.data = data
        return task


class UserDataWorkflowMixin:
    """For workflow converters: `data` (filled when a process ends) is user data too."""

    registry: Any

    def set_default_attributes(self, workflow: Any, dct: dict[str, Any]) -> None:
        super().set_default_attributes(workflow, dct)  # type: ignore[misc]
        workflow.data = unescape(workflow.data)


class UserDataSubWorkflowConverter(UserDataWorkflowMixin, BpmnSubWorkflowConverter):
    def to_dict(self, workflow: Any) -> dict[str, Any]:
        dct = super().to_dict(workflow)
        dct["data"] = data_to_dict(self.registry, workflow.data)
        return dct


USER_DATA_CONVERTERS = {Task: UserDataTaskConverter, BpmnSubWorkflow: UserDataSubWorkflowConverter}
