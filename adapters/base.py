"""The contract every engine adapter implements.

Adapters translate the unified models of `gateway.schemas` to one engine and back. They raise only the
typed errors of `gateway.errors`. Optional operations are declared in `capabilities`; the gateway checks
them in one place (`EngineHandle.require`) so an unsupported operation is a clean 501 before the adapter
is ever called. Register an adapter class under the entry point group `pm_gateway.adapters`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from gateway.errors import GatewayError
from gateway.resilience import default_engine_message
from gateway.schemas import (
    ActivityRecord,
    DefinitionQuery,
    Deployment,
    EngineHealth,
    EngineIncident,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceQuery,
    Page,
    ProcessDefinition,
    ProcessInstance,
    ProcessInstanceDetails,
    StartInstance,
    Task,
    TaskDetails,
    TaskQuery,
)
from gateway.variables import Variables

if TYPE_CHECKING:
    from gateway.db import Database
    from gateway.metadata import MetadataStore
    from gateway.resilience import EngineHttp
    from gateway.settings import EngineConfig, Settings


class Capability(StrEnum):
    """Operations an engine may lack. Everything not listed here every adapter must support."""

    SUSPEND_DEFINITION = "suspend_definition"
    SUSPEND_INSTANCE = "suspend_instance"
    DELEGATE_TASK = "delegate_task"
    ANNOTATE_INCIDENT = "annotate_incident"
    RESOLVE_INCIDENT = "resolve_incident"


CAPABILITY_DESCRIPTIONS: dict[Capability, str] = {
    Capability.SUSPEND_DEFINITION: "suspending or activating a process definition",
    Capability.SUSPEND_INSTANCE: "suspending or activating a process instance",
    Capability.DELEGATE_TASK: "delegating a task",
    Capability.ANNOTATE_INCIDENT: "annotating an incident",
    Capability.RESOLVE_INCIDENT: "resolving an incident without a retry",
}


@dataclass(frozen=True)
class AdapterContext:
    """What the gateway hands an adapter when it builds it."""

    config: EngineConfig
    settings: Settings
    db: Database
    store: MetadataStore
    http: EngineHttp | None = None  # built by the registry, with timeouts, breaker and retries, for HTTP engines


@dataclass(frozen=True)
class EngineChange:
    """One change the engine made, as the event the gateway emits for it.

    `type` is the event type without the `process_manager.` prefix (`task.created`, `task.assigned`,
    `task.completed`, `instance.completed`, `instance.terminated`, `instance.suspended`, `instance.activated`);
    `data` has the fields the embedded engine's event of that type has (task events always `task_id`, and
    `task.assigned` the new `assignee`). `occurred_at` is the engine's time of the change.
    """

    type: str
    instance_id: str
    occurred_at: datetime
    data: dict[str, Any]
    tenant_id: str | None = None


@dataclass
class ChangeBatch:
    """The changes after a high-water mark, oldest first, and the mark to read from next time (JSON-able)."""

    changes: list[EngineChange]
    mark: dict[str, Any] = field(default_factory=dict)


class EngineAdapter(ABC):
    uses_http: ClassVar[bool] = True
    # Whether `read_changes` follows what the engine does on its own (the HTTP engines; the embedded engine
    # emits its events itself, in the transaction that changes it).
    observes_changes: ClassVar[bool] = False
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Capabilities the engine lacks but the gateway emulates; named in GET /engines so nobody is surprised.
    emulated: ClassVar[dict[str, str]] = {}

    def __init__(self, context: AdapterContext) -> None:
        self.context = context
        self.name = context.config.name

    def engine_message(self, response: httpx.Response) -> str | None:
        """The engine's own error text from an error response (HTTP adapters)."""
        return default_engine_message(response)

    def classify_error(self, response: httpx.Response, message: str | None) -> type[GatewayError] | None:
        """Override to map an engine error that its status alone misclassifies (e.g. a 500 that is a conflict)."""
        return None

    async def start(self) -> None:
        """Called once when the gateway starts (background pollers, warm caches)."""

    async def close(self) -> None:
        """Called once when the gateway stops."""

    # ------------------------------------------------------------ definitions
    @abstractmethod
    async def deploy(
        self, bpmn_xml: bytes, *, filename: str, name: str | None, tenant_id: str | None, deployed_by: str
    ) -> Deployment: ...

    @abstractmethod
    async def list_definitions(self, query: DefinitionQuery) -> Page[ProcessDefinition]: ...

    @abstractmethod
    async def get_definition(self, definition_id: str) -> ProcessDefinition: ...

    @abstractmethod
    async def get_definition_xml(self, definition_id: str) -> bytes: ...

    async def set_definition_suspended(
        self, definition_id: str, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        raise NotImplementedError

    @abstractmethod
    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        """Delete one definition; without cascade a definition with running instances is a Conflict."""

    # ------------------------------------------------------------ instances
    @abstractmethod
    async def start_instance(self, request: StartInstance, *, started_by: str) -> ProcessInstance: ...

    @abstractmethod
    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]: ...

    @abstractmethod
    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        """The instance with activities, execution path and the engine's open incidents."""

    @abstractmethod
    async def terminate_instance(self, instance_id: str, reason: str | None) -> None: ...

    async def set_instance_suspended(self, instance_id: str, suspended: bool) -> ProcessInstance:
        raise NotImplementedError

    @abstractmethod
    async def get_variables(self, instance_id: str) -> Variables: ...

    @abstractmethod
    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        """Apply all modifications and deletions, or none; return every variable after the change."""

    # ------------------------------------------------------------ tasks
    @abstractmethod
    async def list_tasks(self, query: TaskQuery) -> Page[Task]: ...

    @abstractmethod
    async def get_task(self, task_id: str) -> TaskDetails: ...

    @abstractmethod
    async def claim_task(self, task_id: str, user_id: str) -> Task:
        """Claim for `user_id`; a task held by another user is a Conflict. Claiming one's own task is fine."""

    @abstractmethod
    async def unclaim_task(self, task_id: str) -> Task: ...

    @abstractmethod
    async def assign_task(self, task_id: str, user_id: str) -> Task: ...

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        raise NotImplementedError

    @abstractmethod
    async def complete_task(self, task_id: str, variables: Variables, *, user_id: str) -> Task:
        """Complete an open task and return it as it was when completed (for the event the gateway writes).

        A completed or unknown task is NotFound, a suspended one a Conflict.
        """

    # ------------------------------------------------------------ engine incidents
    @abstractmethod
    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]: ...

    @abstractmethod
    async def get_engine_incident(self, incident_id: str) -> EngineIncident: ...

    @abstractmethod
    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        """Let the engine run the failed work again (after the caller fixed its cause)."""

    async def resolve_engine_incident(self, incident_id: str) -> None:
        raise NotImplementedError

    async def annotate_engine_incident(self, incident_id: str, annotation: str | None) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ history and health
    @abstractmethod
    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        """Running and finished instances with start, end and duration, for statistics."""

    @abstractmethod
    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]: ...

    @abstractmethod
    async def health(self) -> EngineHealth: ...

    # ------------------------------------------------------------ change feed
    async def read_changes(self, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
        """The engine's changes after `mark` (empty at first: start from now) that happened before
        `settled_before`, oldest first, with the new mark. Only adapters with `observes_changes` implement it."""
        raise NotImplementedError
