"""The engine port: the contract every engine adapter implements, owned by the core.

Adapters translate the unified models of `gateway.schemas` to one engine and back, and raise only the typed
errors of `gateway.errors` (the port's error contract, the same on every engine):

- an unknown id or key: `NotFound` (404);
- a suspended definition, instance or task, a task held by another user, a definition with running
  instances deleted without cascade: `Conflict` (409);
- a lost optimistic-locking race: `ConcurrentModification` (409);
- input the engine refuses (bad BPMN, wrong variable types): `BadRequest` / `InvalidBpmn` (400) or
  `ValidationFailed` (422), with the engine's own message in `engine_message`;
- an engine that is down, slow or wrong: `EngineUnavailable` (503), `EngineTimeout` (504), `EngineError` (502).

Optional operations are declared in `capabilities`; the gateway checks them in one place
(`EngineHandle.require`) so an unsupported operation is a clean 501 before the adapter is ever called.
Register an adapter class under the entry point group `pm_gateway.adapters`; prove it with the conformance
suite shipped in `gateway.engines.testing`, whose tests state this contract rule by rule (`suite.py`, section
"the error contract"). Adapters that talk HTTP derive from
`gateway.engines.http.HttpEngineAdapter`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from gateway.bpmn import TaskExtensions
from gateway.conditions import VariableOperator
from gateway.schemas import (
    ActivityRecord,
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
from gateway.errors import Conflict, NotFound
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
    CORRELATE_MESSAGE = "correlate_message"
    BROADCAST_SIGNAL = "broadcast_signal"
    MODIFY_INSTANCE = "modify_instance"
    MIGRATE_INSTANCE = "migrate_instance"


CAPABILITY_DESCRIPTIONS: dict[Capability, str] = {
    Capability.SUSPEND_DEFINITION: "suspending or activating a process definition",
    Capability.SUSPEND_INSTANCE: "suspending or activating a process instance",
    Capability.DELEGATE_TASK: "delegating a task",
    Capability.ANNOTATE_INCIDENT: "annotating an incident",
    Capability.RESOLVE_INCIDENT: "resolving an incident without a retry",
    Capability.CORRELATE_MESSAGE: "correlating messages",
    Capability.BROADCAST_SIGNAL: "broadcasting signals",
    Capability.MODIFY_INSTANCE: "modifying a process instance (moving its tokens)",
    Capability.MIGRATE_INSTANCE: "migrating a process instance to another definition",
}


class NoOptions(BaseModel):
    """The options of an adapter that has none: any key given is refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AdapterContext:
    """What the gateway hands an adapter when it builds it.

    `options` is the adapter's own `options_schema`, validated from the engine's `options` in the
    configuration; `http` is the engine client (timeouts, circuit breaker, retries) for HTTP adapters.
    """

    config: EngineConfig
    settings: Settings
    db: Database
    store: MetadataStore
    options: BaseModel
    http: EngineHttp | None = None


CLAIM_NEXT_BATCH = 50  # candidates read per query by the default claim_next
CLAIM_NEXT_ROUNDS = 5  # queries before claim_next gives up under heavy contention


@dataclass(frozen=True)
class EngineChange:
    """One change the engine made, as the event the gateway emits for it (`EngineAdapter.read_changes`).

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


@dataclass(frozen=True)
class OpenTaskAssignee:
    """An open task and who holds it now (`EngineAdapter.read_assignees`); `assignee` None when nobody does.

    `created_at` is the engine's creation time of the task, `task_name` its name.
    """

    task_id: str
    instance_id: str
    assignee: str | None
    created_at: datetime
    task_name: str | None = None
    tenant_id: str | None = None


@dataclass
class ChangeBatch:
    """The changes after a high-water mark, oldest first, and the mark to read from next time (JSON-able)."""

    changes: list[EngineChange]
    mark: dict[str, Any] = field(default_factory=dict)


class EngineAdapter(ABC):
    """One engine behind the unified API (see the module docstring for the error contract)."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Capabilities the engine lacks but the gateway emulates; named in GET /engines so nobody is surprised.
    emulated: ClassVar[dict[str, str]] = {}
    # The adapter's own settings (Dispatch's `configuration_schema`), validated at start from the engine's
    # `options`; a pydantic-settings class may also read its own environment variables.
    options_schema: ClassVar[type[BaseModel]] = NoOptions
    # Whether the engine is reached at `url` (HTTP adapters); an engine configured without one is refused at start.
    needs_url: ClassVar[bool] = False
    # Whether the engine's state lives in the gateway's database. A transactional adapter joins the unit of work
    # of the change that calls it (`gateway.uow.transaction`), so its state, events and audit row commit
    # together; a remote engine is called outside any database transaction.
    transactional: ClassVar[bool] = False
    # Where the engine reads a task's assignee, candidates and form in BPMN (for GET /definitions/{id}).
    task_extensions: ClassVar[TaskExtensions] = TaskExtensions()
    # Whether `read_changes` follows what the engine does on its own (the HTTP engines; a transactional engine
    # emits its events itself, in the transaction that changes it).
    observes_changes: ClassVar[bool] = False
    # The operators of variable conditions (`gateway.conditions`) the engine's own queries filter by; a
    # condition with another operator is a 501 naming the engine and the operator (never filtered after reading).
    variable_operators: ClassVar[frozenset[VariableOperator]] = frozenset()
    # Per list query class, the unified sort fields the engine cannot sort by (a 501 naming the field).
    unsortable: ClassVar[dict[type[ListQuery], frozenset[str]]] = {}

    def __init__(self, context: AdapterContext) -> None:
        self.context = context
        self.name = context.config.name

    async def start(self) -> None:
        """Called once when the gateway starts (background pollers, warm caches)."""

    async def close(self) -> None:
        """Called once when the gateway stops."""

    # ------------------------------------------------------------ definitions
    @abstractmethod
    async def deploy(
        self, bpmn_xml: bytes, *, filename: str, name: str | None, tenant_id: str | None, deployed_by: str
    ) -> Deployment:
        """Deploy one BPMN file (already checked by `gateway.bpmn.validate`); a new version per process key.

        Returns the deployment with every definition it created. Errors: `InvalidBpmn` / `BadRequest` (400)
        when the engine refuses the model, with its message. Camunda 7 `POST /deployment/create`, Flowable
        `POST /repository/deployments`, Camunda 8 `POST /deployments`.
        """

    @abstractmethod
    async def list_definitions(self, query: DefinitionQuery) -> Page[ProcessDefinition]:
        """One page of definitions matching `query` (latest version per key unless `latest_only=False`).

        Camunda 7 `GET /process-definition` + `/count`, Flowable `GET /repository/process-definitions`,
        Camunda 8 `POST /process-definitions/search`.
        """

    @abstractmethod
    async def get_definition(self, definition_id: str) -> ProcessDefinition:
        """One definition by id. Errors: `NotFound`. Camunda 7 `GET /process-definition/{id}`, Flowable
        `GET /repository/process-definitions/{id}`, Camunda 8 `GET /process-definitions/{key}`.
        """

    @abstractmethod
    async def get_definition_xml(self, definition_id: str) -> bytes:
        """The BPMN XML as deployed. Errors: `NotFound`. Camunda 7 `GET /process-definition/{id}/xml`,
        Flowable `GET /repository/process-definitions/{id}/resourcedata`, Camunda 8 `GET .../xml`.
        """

    async def set_definition_suspended(
        self, definition_id: str, suspended: bool, include_instances: bool
    ) -> ProcessDefinition:
        """Suspend (`suspended=True`) or activate a definition, and its instances when `include_instances`.

        Capability `SUSPEND_DEFINITION`. Returns the definition after the change. Errors: `NotFound`.
        Camunda 7 `PUT /process-definition/{id}/suspended`, Flowable `PUT /repository/process-definitions/{id}`.
        """
        raise NotImplementedError

    @abstractmethod
    async def delete_definition(self, definition_id: str, cascade: bool) -> None:
        """Delete one definition; with `cascade` its instances too.

        Errors: `NotFound`; `Conflict` when it has running instances and `cascade` is false.
        Camunda 7 `DELETE /process-definition/{id}?cascade=`, Flowable deletes its deployment,
        Camunda 8 `POST /resources/{key}/deletion`.
        """

    # ------------------------------------------------------------ instances
    @abstractmethod
    async def start_instance(self, request: StartInstance, *, started_by: str) -> ProcessInstance:
        """Start the latest version of `definition_key` (for the tenant) or exactly `definition_id`.

        Returns the instance as it stands after the engine's first wait state. Errors: `NotFound` (no such
        definition), `Conflict` (definition suspended), `BadRequest`/`ValidationFailed` (variables refused).
        Camunda 7 `POST /process-definition/{id|key/..}/start`, Flowable `POST /runtime/process-instances`,
        Camunda 8 `POST /process-instances`.
        """

    @abstractmethod
    async def list_instances(self, query: InstanceQuery) -> Page[ProcessInstance]:
        """One page of instances (running and finished, filtered by `query.status`).

        Camunda 7 `GET /history/process-instance`, Flowable `POST /query/historic-process-instances`,
        Camunda 8 `POST /process-instances/search`.
        """

    @abstractmethod
    async def get_instance(self, instance_id: str) -> ProcessInstanceDetails:
        """The instance with variables, activities, execution path and the engine's open incidents.

        Errors: `NotFound`.
        """

    @abstractmethod
    async def terminate_instance(self, instance_id: str, reason: str | None) -> None:
        """End a running instance now (`reason` kept where the engine keeps one).

        Errors: `NotFound` (unknown), `Conflict` ("has already ended") for an instance that ended, on every
        engine (HTTP adapters read the history when the runtime no longer knows it). Camunda 7 `DELETE /process-instance/{id}`,
        Flowable `DELETE /runtime/process-instances/{id}`, Camunda 8 `POST /process-instances/{key}/cancellation`.
        """

    async def set_instance_suspended(self, instance_id: str, suspended: bool) -> ProcessInstance:
        """Suspend or activate one instance; capability `SUSPEND_INSTANCE`. Returns it after the change.

        Errors: `NotFound`. Camunda 7 `PUT /process-instance/{id}/suspended`, Flowable
        `PUT /runtime/process-instances/{id}` with `action`.
        """
        raise NotImplementedError

    @abstractmethod
    async def get_variables(self, instance_id: str) -> Variables:
        """The instance's variables as typed values. Errors: `NotFound`."""

    @abstractmethod
    async def update_variables(self, instance_id: str, modifications: Variables, deletions: list[str]) -> Variables:
        """Apply all modifications and deletions, or none; return every variable after the change.

        Errors: `NotFound`, `ValidationFailed` (a value the engine cannot store). Camunda 7
        `POST /process-instance/{id}/variables`, Flowable `PUT/DELETE .../variables`, Camunda 8
        `PUT /element-instances/{key}/variables`.
        """

    # ------------------------------------------------------------ messages, signals, modification
    async def correlate_message(self, message: MessageCorrelation, *, started_by: str) -> MessageResults:
        """Deliver a message; capability `CORRELATE_MESSAGE`.

        Correlates to the instances waiting for `message_name` (intermediate catch, boundary event, receive task)
        that match `business_key`, `correlation_keys` (process variables) and `process_instance_id`, or starts
        an instance at the message start event of that name. Several matches without `all`: `Conflict` (nothing
        delivered). No match: `NotFound`, unless the engine buffers the message (`published=True`).
        Camunda 7 `POST /message`, Flowable `PUT /runtime/executions/{id}` `messageEventReceived` and
        `POST /runtime/process-instances` with `message`, Camunda 8 `POST /messages/correlation` or
        `/messages/publication`.
        """
        raise NotImplementedError

    async def broadcast_signal(self, signal: SignalBroadcast, *, started_by: str) -> SignalResult:
        """Throw a signal to every catching event and signal start event; capability `BROADCAST_SIGNAL`.

        Camunda 7 `POST /signal`, Flowable `POST /runtime/signals`, Camunda 8 `POST /signals/broadcast`.
        """
        raise NotImplementedError

    async def modify_instance(self, instance_id: str, modification: InstanceModification) -> ProcessInstance:
        """Start before/after or cancel activities of a running instance, in order; capability `MODIFY_INSTANCE`.
        Returns the instance after the change. Errors: `NotFound` (instance), `BadRequest` naming an
        unknown or inapplicable activity id, `Conflict` (ended or suspended).
        Camunda 7 `POST /process-instance/{id}/modification`, Flowable
        `POST /runtime/process-instances/{id}/change-state`, Camunda 8 `POST /process-instances/{key}/modification`.
        """
        raise NotImplementedError

    async def migrate_instance(self, instance_id: str, migration: InstanceMigration) -> ProcessInstance:
        """Move a running instance to another definition (activities mapped by id, plus `mappings`); capability
        `MIGRATE_INSTANCE`. Camunda 7 `POST /migration/execute`, Flowable
        `POST /runtime/process-instances/{id}/migrate`, Camunda 8 `POST /process-instances/{key}/migration`.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ tasks
    @abstractmethod
    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        """One page of open user tasks (inbox filters: assignee, candidate group/user, unassigned, due ...).

        With `candidates=False` an engine whose task query does not return candidate users and groups (Camunda 7,
        Flowable: one identity-link request per task) leaves them empty: for a caller that shows only some of the
        tasks (the merged inbox) and adds theirs with `with_candidates`. Engines whose query returns them ignore it.
        Camunda 7 `POST /task`, Flowable `POST /query/tasks`, Camunda 8 `POST /user-tasks/search`.
        """

    async def with_candidates(self, tasks: list[Task]) -> list[Task]:
        """`tasks` of `list_tasks(..., candidates=False)`, same order, with their candidate users and groups.

        Default: as they are (the engine's task query returned them: embedded, Camunda 8). Camunda 7
        `GET /task/{id}/identity-links`, Flowable `GET /runtime/tasks/{id}/identitylinks` (finished tasks:
        `/history/historic-task-instances/{id}/identitylinks`): one request per task, as neither engine reads the
        identity links of several tasks at once. A task finished meanwhile gets none.
        """
        return tasks

    @abstractmethod
    async def get_task(self, task_id: str) -> TaskDetails:
        """One task with its variables: an open one, or a completed one from the engine's history (status
        `completed`). Errors: `NotFound` (unknown). Camunda 7 `GET /task/{id}` (else `GET /history/task`),
        Flowable `GET /runtime/tasks/{id}` (else `GET /history/historic-task-instances/{id}`), Camunda 8
        `GET /user-tasks/{key}`.
        """

    @abstractmethod
    async def claim_task(self, task_id: str, user_id: str) -> Task:
        """Claim for `user_id` and return the task after the change.

        Errors: `NotFound`; `Conflict` when another user holds it (claiming one's own task is fine) or it is
        suspended.
        Camunda 7 `POST /task/{id}/claim`, Flowable `POST /runtime/tasks/{id}` `claim`, Camunda 8
        `POST /user-tasks/{key}/assignment` with `allowOverride: false`.
        """

    @abstractmethod
    async def unclaim_task(self, task_id: str) -> Task:
        """Give the task back (no assignee). Errors: `NotFound`."""

    @abstractmethod
    async def assign_task(self, task_id: str, user_id: str) -> Task:
        """Set the assignee, whoever held it. Errors: `NotFound`."""

    async def delegate_task(self, task_id: str, user_id: str) -> Task:
        """Delegate to `user_id`; the assignee becomes owner. Capability `DELEGATE_TASK`. Errors: `NotFound`."""
        raise NotImplementedError

    @abstractmethod
    async def complete_task(self, task_id: str, variables: Variables, *, user_id: str) -> Task:
        """Complete an open task with `variables` and return it as it was when completed (for its event).

        A delegated task is resolved first, so complete means the same on every engine. Errors: `NotFound`
        (completed or unknown), `Conflict` (suspended). Camunda 7 `POST /task/{id}/complete`, Flowable
        `POST /runtime/tasks/{id}` `complete`, Camunda 8 `POST /user-tasks/{key}/completion`.
        """

    async def claim_next(
        self,
        user_id: str,
        candidate_groups: list[str] | None,
        definition_key: str | None,
        tenant_ids: list[str] | None = None,
    ) -> Task | None:
        """Claim for `user_id` the highest-priority, oldest unassigned open task offered to one of
        `candidate_groups` or to the user by name (any unassigned task when `candidate_groups` is None), of one of
        `tenant_ids` (any tenant when None); None when there is none. Query then claim: a task another caller claimed first (Conflict) or finished
        (NotFound) is skipped and the next is tried; the query runs again until a claim succeeds or nothing is
        left. Among the `CLAIM_NEXT_BATCH` highest priorities the engine returns, the oldest is taken first.
        Adapters whose store can pick and claim in one statement override this (the embedded engine)."""
        for _ in range(CLAIM_NEXT_ROUNDS):
            candidates = await self._claimable(user_id, candidate_groups, definition_key, tenant_ids)
            if not candidates:
                return None
            for task in candidates:
                try:
                    claimed = await self.claim_task(task.id, user_id)
                except (Conflict, NotFound):
                    continue
                return claimed
        return None

    async def _claimable(
        self, user_id: str, candidate_groups: list[str] | None, definition_key: str | None, tenant_ids: list[str] | None
    ) -> list[Task]:
        def query(**offered: str) -> TaskQuery:
            return TaskQuery(
                unassigned=True, definition_key=definition_key, sort="priority", size=CLAIM_NEXT_BATCH, **offered
            )

        if candidate_groups is None:
            offers: list[dict[str, str]] = [{}]
        else:
            offers = [{"candidate_group": group} for group in candidate_groups] + [{"candidate_user": user_id}]
        if tenant_ids is not None:
            offers = [{**offer, "tenant_id": tenant} for offer in offers for tenant in tenant_ids]
        queries = [query(**offer) for offer in offers]
        found: dict[str, Task] = {}
        for one in queries:
            for task in (await self.list_tasks(one, candidates=False)).items:
                if task.assignee is None:
                    found[task.id] = task
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(found.values(), key=lambda t: (-t.priority, t.created or epoch, t.id))

    # ------------------------------------------------------------ engine incidents
    @abstractmethod
    async def list_engine_incidents(self, query: EngineIncidentQuery) -> Page[EngineIncident]:
        """One page of the engine's own open incidents (failed jobs / external tasks / expressions)."""

    @abstractmethod
    async def get_engine_incident(self, incident_id: str) -> EngineIncident:
        """One engine incident with its detail (stack trace where the engine keeps one). Errors: `NotFound`."""

    @abstractmethod
    async def retry_engine_incident(self, incident_id: str, retries: int = 1) -> None:
        """Let the engine run the failed work again (after the caller fixed its cause). Errors: `NotFound`.

        Camunda 7 `PUT /job/{id}/retries` or `PUT /external-task/{id}/retries`, Flowable
        `POST /management/deadletter-jobs/{id}` `move`, Camunda 8 `PATCH /incidents/{key}/resolution`.
        """

    async def resolve_engine_incident(self, incident_id: str) -> None:
        """Resolve an incident without running its work again; capability `RESOLVE_INCIDENT`.

        Afterwards the incident is no longer listed by `list_engine_incidents`. Errors: `NotFound`.
        """
        raise NotImplementedError

    async def annotate_engine_incident(self, incident_id: str, annotation: str | None) -> None:
        """Set (or with None clear) the incident's annotation; capability `ANNOTATE_INCIDENT`.

        `get_engine_incident` returns it afterwards. Errors: `NotFound`. Camunda 7 `PUT /incident/{id}/annotation`.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ history and health
    @abstractmethod
    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        """Running and finished instances with start, end and duration, for statistics."""

    @abstractmethod
    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]:
        """Activity instances (start, end, duration, canceled) for statistics."""

    @abstractmethod
    async def health(self) -> EngineHealth:
        """Whether the engine answers, its version, and a detail when it does not (never raises for "down")."""

    # ------------------------------------------------------------ change feed
    async def read_changes(self, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
        """The engine's changes after `mark` (empty at first: start from `settled_before`) that happened before
        `settled_before`, oldest first, with the new mark. Only adapters with `observes_changes` implement it;
        the gateway's change feed (events/feeds.py) calls it on the leader replica."""
        raise NotImplementedError

    async def read_assignees(self) -> list[OpenTaskAssignee] | None:
        """Every open task of a process instance with its current assignee, for engines whose history keeps no
        assignments (Flowable, Camunda 8): the change feed compares them round by round and emits `task.assigned`
        for each change. None (the default) where `read_changes` reports assignments itself."""
        return None
