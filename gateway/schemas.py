"""Unified domain models: what adapters return and what the API serves (API.md)."""

from __future__ import annotations

from copy import copy
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.conditions import CONDITIONS_DOC, TASK_CONDITIONS_DOC, VariableCondition, VariableScope, parse_conditions
from gateway.variables import TypedValue

T = TypeVar("T")

TaskType = Literal["userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask"]


MAX_PAGE = 10_000_000  # page x size stays far inside a 64-bit OFFSET


def _representable_in_utc(moment: datetime) -> datetime:
    try:
        return moment if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date-time lies outside 0001-01-01..9999-12-31 once moved to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_representable_in_utc)]
"""A date-time filter: refused (422) when it cannot be expressed in UTC (year 1 with a positive offset)."""


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class RequestBody(BaseModel):
    """Base of every JSON request body: a field the API does not know is a 422 naming it, never silently
    dropped (`{"approved": true}` instead of `{"variables": {...}}` must not complete a task without variables)."""

    model_config = ConfigDict(extra="forbid")


class Page(Model, Generic[T]):
    items: list[T]
    total: int = Field(
        description="The number of matches. The embedded engine counts at most 1,000 matches past the requested "
        "page: beyond that `total` is `page × size + 1000`, a lower bound that still shows there is a next page."
    )
    page: int = 1
    size: int = 50


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class ListQuery(Model):
    """Paging and sorting shared by every list query; `sort` is a field name of the listed model."""

    sortable: ClassVar[frozenset[str]] = frozenset()

    page: int = Field(1, ge=1, le=MAX_PAGE)
    size: int = Field(50, ge=1, le=500)
    sort: str | None = None
    order: SortOrder = SortOrder.DESC

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Name each list's sortable fields in the description of its own `sort` parameter (OpenAPI)."""
        super().__pydantic_init_subclass__(**kwargs)
        if cls.sortable:
            described = copy(cls.model_fields["sort"])
            described.description = (
                f"Sort by one of: {', '.join(sorted(cls.sortable))} (in `order`; ties broken by id). "
                "Another field is a 422; a field the engine cannot sort by is a 501 naming it."
            )
            described.examples = [sorted(cls.sortable)[0]]
            cls.model_fields["sort"] = described
            cls.model_rebuild(force=True)

    @model_validator(mode="after")
    def _known_sort_field(self) -> ListQuery:
        if self.sort is not None and self.sort not in self.sortable:
            raise ValueError(f"cannot sort by {self.sort!r}; sortable fields: {', '.join(sorted(self.sortable))}")
        return self

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


# ---------------------------------------------------------------- definitions
class ProcessTask(Model):
    id: str
    name: str | None = None
    type: TaskType
    assignee: str | None = None
    candidate_groups: list[str] = Field(default_factory=list)
    candidate_users: list[str] = Field(default_factory=list)
    form_key: str | None = None
    documentation: str | None = None


class ProcessDefinition(Model):
    id: str
    key: str
    name: str | None = None
    version: int
    category: str | None = None
    description: str | None = None
    deployment_id: str | None = None
    deployed_at: datetime | None = None
    deployed_by: str | None = None
    active: bool = True
    suspended: bool = False
    tenant_id: str | None = None
    engine: str = ""
    instances: int | None = None


class StartForm(Model):
    key: str | None = None
    fields: list[dict[str, Any]] = Field(default_factory=list)


ProcessEventKind = Literal["message", "signal", "timer"]


class ProcessEvent(Model):
    """A start event, or an event that waits for a message or signal (intermediate catch, boundary, receive
    task), as the definition's BPMN declares it."""

    id: str = Field(description="The BPMN element id")
    name: str | None = None
    element_type: str = Field(description="`startEvent`, `intermediateCatchEvent`, `boundaryEvent` or `receiveTask`")
    trigger: ProcessEventKind | None = Field(None, description="What the event waits for; null for a none start event")
    message_name: str | None = Field(None, description="The message's name, to give as `message_name`/`start_message`")
    signal_name: str | None = None
    interrupting: bool | None = Field(
        None, description="Boundary and start events: whether they cancel what they interrupt"
    )
    attached_to: str | None = Field(None, description="A boundary event's activity")


class ProcessDefinitionDetails(ProcessDefinition):
    tasks: list[ProcessTask] = Field(default_factory=list)
    start_form: StartForm | None = None
    start_events: list[ProcessEvent] = Field(default_factory=list, description="The process's start events")
    catch_events: list[ProcessEvent] = Field(
        default_factory=list, description="Where an instance waits for a message or signal"
    )


class Deployment(Model):
    deployment_id: str
    name: str | None = None
    deployed_at: datetime | None = None
    definitions: list[ProcessDefinition]


class DefinitionQuery(ListQuery):
    sortable = frozenset({"key", "name", "version", "deployed_at"})
    key: str | None = None
    name: str | None = None
    latest_only: bool = True
    suspended: bool | None = None
    tenant_id: str | None = None


# ---------------------------------------------------------------- instances
InstanceStatus = Literal["active", "suspended", "completed", "terminated", "externally_terminated"]
ActivityStatus = Literal["active", "waiting", "completed", "failed", "cancelled"]


class CurrentActivity(Model):
    id: str
    name: str | None = None
    type: str
    assignee: str | None = None
    status: ActivityStatus = "active"
    started_at: datetime | None = None


class Activity(Model):
    id: str
    instance_id: str
    name: str | None = None
    type: str
    status: ActivityStatus
    start_time: datetime | None = None
    end_time: datetime | None = None
    assignee: str | None = None


class ExecutionStep(Model):
    activity_id: str
    activity_name: str | None = None
    timestamp: datetime | None = None


class ProcessInstance(Model):
    id: str
    definition_id: str
    definition_key: str
    definition_name: str | None = None
    business_key: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_ms: int | None = None
    status: InstanceStatus
    started_by: str | None = None
    tenant_id: str | None = None
    super_instance_id: str | None = None
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    current_activities: list[CurrentActivity] = Field(default_factory=list)
    engine: str = ""


class EngineIncident(Model):
    """A failure as the engine itself records it (failed job, failed external task, ...)."""

    id: str
    incident_type: str
    message: str | None = None
    instance_id: str | None = None
    definition_id: str | None = None
    definition_key: str | None = None
    activity_id: str | None = None
    activity_name: str | None = None
    created: datetime | None = None
    job_id: str | None = None
    annotation: str | None = None
    detail: str | None = Field(
        None,
        description="The failure's stack trace or error details as the engine keeps them (Camunda 7: the failed "
        "job's stack trace or the external task's error details; Flowable: the job's exception stack trace; the "
        "embedded engine: the failure's chain of causes, never a Python traceback); null when the engine keeps "
        "none.",
    )
    tenant_id: str | None = None
    engine: str = ""
    # Internal to the Incident Center, never serialised: the engine is running the failed work again right now
    # (Flowable: the failed job sits in the executable table, still carrying the exception it failed with
    # before). It is the earlier failure being retried, not a new one; what the run leaves behind decides.
    rerun_pending: bool = Field(default=False, exclude=True)


class ProcessInstanceDetails(ProcessInstance):
    activities: list[Activity] = Field(default_factory=list)
    incidents: list[EngineIncident] = Field(default_factory=list)
    execution_path: list[ExecutionStep] = Field(default_factory=list)
    audit_trail: list[dict[str, Any]] = Field(default_factory=list)


class InstanceQuery(ListQuery):
    sortable = frozenset({"start_time", "end_time", "business_key", "definition_key"})
    definition_key: str | None = None
    definition_id: str | None = None
    business_key: str | None = None
    status: InstanceStatus | None = None
    started_after: UtcDatetime | None = None
    started_before: UtcDatetime | None = None
    has_incident: bool | None = None
    tenant_id: str | None = None
    variable: list[str] = Field(default_factory=list, description=CONDITIONS_DOC)

    @field_validator("variable")
    @classmethod
    def _parsable_conditions(cls, texts: list[str]) -> list[str]:
        parse_conditions(texts, VariableScope.INSTANCE)
        return texts

    @property
    def conditions(self) -> list[VariableCondition]:
        """The `variable` conditions, parsed (they were checked when the query was made)."""
        return parse_conditions(self.variable, VariableScope.INSTANCE)


class StartInstance(Model):
    definition_key: str | None = None
    definition_id: str | None = None
    business_key: str | None = None
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    tenant_id: str | None = None
    start_message: str | None = None  # start at the message start event of this message name


# ---------------------------------------------------------------- messages, signals, modification
class MessageCorrelation(Model):
    """A message to correlate: to the instances waiting for it, or starting those whose start event it is.

    `correlation_keys` match process variables of the waiting instance (Camunda 7 `correlationKeys`; Camunda 8
    takes exactly one value as its `correlationKey`)."""

    message_name: str
    business_key: str | None = None
    correlation_keys: dict[str, TypedValue] = Field(default_factory=dict)
    process_instance_id: str | None = None
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    all: bool = False
    tenant_id: str | None = None


class CorrelationResult(Model):
    type: Literal["started", "correlated"] = Field(
        description="`started`: a new instance at a message start event; `correlated`: a waiting instance moved on"
    )
    instance_id: str
    definition_key: str | None = None


class MessageResults(Model):
    """What a message did; `published` when the engine buffered it (Camunda 8) instead of correlating it now."""

    results: list[CorrelationResult] = Field(default_factory=list)
    published: bool = False
    message_key: str | None = Field(None, description="The engine's key of a buffered message (Camunda 8)")


class SignalBroadcast(Model):
    signal_name: str
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    tenant_id: str | None = None


class SignalResult(Model):
    signal_name: str
    executions: int | None = Field(
        None,
        description=(
            "How many waiting executions and start events it reached, where the engine says: the embedded engine "
            "counts. null on Camunda 7 (`POST /signal` answers 204 without a body), Flowable (`POST "
            "/runtime/signals` answers 204 without a body) and Camunda 8 (it answers the signal's key): the "
            "gateway does not count event subscriptions before the throw, as instances arriving or moving meanwhile "
            "would make that count wrong"
        ),
    )
    signal_key: str | None = Field(None, description="The engine's key of the broadcast (Camunda 8)")


ModificationType = Literal["start_before", "start_after", "cancel"]


class ModificationInstruction(Model):
    type: ModificationType
    activity_id: str
    variables: dict[str, TypedValue] = Field(default_factory=dict)


class InstanceModification(Model):
    instructions: list[ModificationInstruction]
    skip_listeners: bool = False
    annotation: str | None = None


class InstanceMigration(Model):
    target_definition_id: str
    mappings: dict[str, str] = Field(default_factory=dict)  # source activity id -> target activity id


# ---------------------------------------------------------------- tasks
TaskStatus = Literal["created", "assigned", "delegated", "completed", "cancelled"]
FINISHED_TASK_STATUSES: frozenset[TaskStatus] = frozenset({"completed", "cancelled"})  # read from the history


class Task(Model):
    id: str
    name: str | None = None
    description: str | None = None
    instance_id: str | None = None
    definition_id: str | None = None
    definition_key: str | None = None
    task_definition_key: str | None = None
    assignee: str | None = None
    owner: str | None = None
    created: datetime | None = None
    due: datetime | None = None
    follow_up: datetime | None = None
    priority: int = 50
    status: TaskStatus = "created"
    form_key: str | None = None
    tenant_id: str | None = None
    candidate_users: list[str] = Field(default_factory=list)
    candidate_groups: list[str] = Field(default_factory=list)
    engine: str = ""


class TaskDetails(Task):
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    delegation_state: Literal["pending", "resolved"] | None = None
    suspension_state: Literal["active", "suspended"] = "active"


class TaskQuery(ListQuery):
    sortable = frozenset({"created", "due", "follow_up", "priority", "name", "assignee"})
    assignee: str | None = None
    candidate_group: str | None = None
    candidate_user: str | None = None
    unassigned: bool | None = None
    instance_id: str | None = None
    definition_key: str | None = None
    status: TaskStatus | None = None
    due_before: UtcDatetime | None = None
    tenant_id: str | None = None
    variable: list[str] = Field(default_factory=list, description=CONDITIONS_DOC)
    task_variable: list[str] = Field(default_factory=list, description=TASK_CONDITIONS_DOC)

    @field_validator("variable", "task_variable")
    @classmethod
    def _parsable_conditions(cls, texts: list[str]) -> list[str]:
        parse_conditions(texts, VariableScope.INSTANCE)
        return texts

    @property
    def conditions(self) -> list[VariableCondition]:
        """The `variable` (process instance) then `task_variable` (task-local) conditions, parsed."""
        return parse_conditions(self.variable, VariableScope.INSTANCE) + parse_conditions(
            self.task_variable, VariableScope.TASK
        )


# ---------------------------------------------------------------- engine incidents and history
class EngineIncidentQuery(ListQuery):
    sortable = frozenset({"created"})
    instance_id: str | None = None
    definition_key: str | None = None
    incident_type: str | None = None


class HistoryQuery(ListQuery):
    """What the analytics projection reads of an engine's history (`EngineAdapter.history_instances` and
    `history_activities`): runs started in a window, or finished at or after `finished_after` (the runs that
    changed since the last read, with `started_after`: the new ones)."""

    sortable = frozenset({"start_time", "end_time"})
    definition_key: str | None = None
    started_after: UtcDatetime | None = None
    started_before: UtcDatetime | None = None
    finished: bool | None = None
    finished_after: UtcDatetime | None = None


class ActivityRecord(Model):
    """One finished or running activity instance, for statistics and bottlenecks."""

    activity_id: str
    activity_name: str | None = None
    activity_type: str
    instance_id: str
    definition_key: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_ms: int | None = None
    assignee: str | None = None


class EngineHealth(Model):
    status: Literal["up", "down"]
    version: str | None = None
    detail: str | None = None
