"""Incident Center data: the tables (on the gateway's metadata) and the API models of API.md "Incidents"."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ConfigDict, Field, field_validator

from gateway.db import BigId, JsonColumn, UTCDateTime, metadata
from gateway.schemas import ListQuery, Model, RequestBody, UtcDatetime
from gateway.variables import REQUEST_VARIABLES_DOC

_VARYING_PARTS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # UUIDs
    r"|\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"  # long hex ids and hashes
    r"|\d+(?:\.\d+)?",  # numbers: keys, amounts, counts, times
)


def error_hash(message: str | None) -> str | None:
    """The same error in different instances gets the same 16-hex-digit hash: the message lower-cased, with
    UUIDs, long hex ids and numbers replaced by placeholders and runs of whitespace made one space, SHA-256."""
    if message is None:
        return None
    normalised = " ".join(_VARYING_PARTS.sub("#", message.lower()).split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RETRYING = "retrying"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


UNRESOLVED = tuple(status for status in IncidentStatus if status is not IncidentStatus.RESOLVED)


class IncidentSeverity(StrEnum):
    """Listed from least to most severe."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(IncidentSeverity).index(self)


class ResolutionType(StrEnum):
    MANUAL = "manual"  # a person handled it; the engine is left as it is
    RETRY = "retry"  # the engine incident went away after a retry
    SKIP = "skip"  # the engine dropped the failure without running the work again
    MODIFY = "modify"  # a person changed the instance elsewhere (e.g. in Cockpit)
    ABORT = "abort"  # the instance was terminated
    EXTERNAL = "external"  # the engine incident went away without the gateway (fixed in Cockpit or Operate)


class Action(StrEnum):
    """What happened to an incident; the value is the `action` of its history entry."""

    CREATED = "created"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    COMMENTED = "commented"
    RETRIED = "retried"
    RECURRED = "recurred"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    SEVERITY_CHANGED = "severity_changed"


class OperationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"


class ItemState(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"  # committed before the engine call: found after a restart, it is checked, not re-run
    DONE = "done"
    FAILED = "failed"


# ---------------------------------------------------------------- tables
OPEN_LINK = sa.text("closed_at IS NULL")

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("engine", sa.String(100), nullable=False),
    sa.Column("incident_type", sa.String(100), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("error_hash", sa.String(16)),  # error_hash(message): groups the same error across instances
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("instance_id", sa.String(255)),
    sa.Column("definition_id", sa.String(255)),
    sa.Column("definition_key", sa.String(255)),
    sa.Column("activity_id", sa.String(255)),
    sa.Column("activity_name", sa.String(255)),
    sa.Column("tenant_id", sa.String(100)),
    sa.Column("assignee", sa.String(255)),
    sa.Column("retry_count", sa.Integer, nullable=False),
    sa.Column("auto_retries", sa.Integer, nullable=False),
    sa.Column("next_retry_at", UTCDateTime),  # when the auto-retry policy retries it next; NULL: not scheduled
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("resolution_type", sa.String(20)),
    sa.Column("resolution_message", sa.Text),
    sa.Column("resolved_by", sa.String(255)),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("created", UTCDateTime, nullable=False),  # when the engine recorded the failure
    sa.Column("detected_at", UTCDateTime, nullable=False),  # when the gateway saw it
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("status_changed_at", UTCDateTime, nullable=False),
    sa.Index("ix_incidents_status", "status", "status_changed_at"),
    sa.Index("ix_incidents_place", "engine", "instance_id", "activity_id"),
    sa.Index("ix_incidents_created", "created"),
    sa.Index("ix_incidents_definition_key", "definition_key"),
    sa.Index("ix_incidents_assignee", "assignee"),
    sa.Index("ix_incidents_error_hash", "error_hash", "status"),
)

# One gateway incident, many engine incidents (a failure that recurs gets a new engine id). The primary key is
# the unique (engine, engine_incident_id): two replicas can never record one engine incident twice.
incident_links = sa.Table(
    "incident_links",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("engine_incident_id", sa.String(255), primary_key=True),
    sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("incident_type", sa.String(100), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("created", UTCDateTime),  # the engine's own time
    sa.Column("linked_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),  # NULL while the engine still lists it
    sa.Index("ix_incident_links_incident", "incident_id"),
    sa.Index("ix_incident_links_open", "engine", sqlite_where=OPEN_LINK, postgresql_where=OPEN_LINK),
)

incident_history = sa.Table(
    "incident_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("details", JsonColumn, nullable=False),
    sa.Index("ix_incident_history_incident", "incident_id", "id"),
)

operations = sa.Table(
    "operations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("request", JsonColumn, nullable=False),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("finished", UTCDateTime),
    sa.Index("ix_operations_status", "status", "created"),
)

operation_items = sa.Table(
    "operation_items",
    metadata,
    sa.Column("operation_id", sa.String(36), sa.ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("engine_incident_ids", JsonColumn),  # what the retry targeted, to check after a restart
    sa.Column("detail", sa.Text),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Index("ix_operation_items_state", "operation_id", "state", "position"),
)


# ---------------------------------------------------------------- API models
class IncidentResolution(Model):
    type: ResolutionType
    message: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


class IncidentHistoryEntry(Model):
    timestamp: datetime
    action: str
    message: str | None = None
    user: str
    details: dict[str, Any] = Field(default_factory=dict)


class LinkedEngineIncident(Model):
    id: str
    incident_type: str
    message: str | None = None
    created: datetime | None = None
    linked_at: datetime
    closed_at: datetime | None = None
    open: bool


class Incident(Model):
    id: str
    engine: str
    engine_incident_ids: list[str]
    incident_type: str
    incident_message: str | None = None
    error_hash: str | None = Field(
        None, description="Hash of the normalised message (GET /incidents/statistics/by-error)"
    )
    status: IncidentStatus
    severity: IncidentSeverity
    instance_id: str | None = None
    definition_id: str | None = None
    definition_key: str | None = None
    activity_id: str | None = None
    activity_name: str | None = None
    tenant_id: str | None = None
    created: datetime
    detected_at: datetime
    updated: datetime
    assignee: str | None = None
    retry_count: int
    escalation_level: int
    resolution: IncidentResolution | None = None


class IncidentDetails(Incident):
    history: list[IncidentHistoryEntry]
    engine_incidents: list[LinkedEngineIncident]


class IncidentFilter(Model):
    """The filters of `GET /incidents`, also the selection of a bulk retry."""

    engine: str | None = Field(
        None,
        description="Only this engine's incidents; `*` or left out: every engine's (the Incident Center keeps "
        "them all, so an engine that is down does not shorten the list)",
    )
    status: IncidentStatus | None = None
    instance_id: str | None = None
    definition_key: str | None = None
    incident_type: str | None = None
    assignee: str | None = None
    severity: IncidentSeverity | None = None
    created_after: UtcDatetime | None = None
    error_hash: str | None = Field(None, description="Only incidents with this normalised error (see by-error)")

    @field_validator("engine")
    @classmethod
    def _every_engine(cls, engine: str | None) -> str | None:
        return None if engine == "*" else engine


class IncidentSelection(IncidentFilter):
    """The incidents a bulk operation acts on: the filters of `GET /incidents`, no other field."""

    model_config = ConfigDict(extra="forbid")


class IncidentQuery(ListQuery, IncidentFilter):
    sortable = frozenset({"created", "updated", "severity"})


class IncidentAcknowledgement(RequestBody):
    message: str | None = Field(None, max_length=4000)

    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "Looking into it"}]})


class IncidentAssignment(RequestBody):
    user_id: str = Field(min_length=1, max_length=255)

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "alice"}]})


class IncidentComment(RequestBody):
    message: str = Field(min_length=1, max_length=4000)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "The card gateway was down from 10:02 to 10:07"}]}
    )


class IncidentRetryRequest(RequestBody):
    retries: int = Field(1, ge=1, le=100)
    variables: dict[str, Any] | None = Field(None, **REQUEST_VARIABLES_DOC)

    model_config = ConfigDict(json_schema_extra={"examples": [{"retries": 1, "variables": {"fail": {"value": False}}}]})


class IncidentResolveRequest(RequestBody):
    resolution_type: Literal["manual", "retry", "skip", "modify", "abort"]
    message: str = Field(min_length=1, max_length=4000)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"resolution_type": "manual", "message": "Charged by hand in the PSP"}]}
    )


class IncidentEscalateRequest(RequestBody):
    message: str = Field(min_length=1, max_length=4000)
    level: int | None = Field(None, ge=1, le=10)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "Customer impact; paging payments", "level": 2}]}
    )


class BulkRetryRequest(RequestBody):
    filter: IncidentSelection = Field(default_factory=IncidentSelection)
    retries: int = Field(1, ge=1, le=100)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"filter": {"definition_key": "charging", "status": "open"}, "retries": 1}]}
    )


class OperationAccepted(Model):
    operation_id: str
    total: int


class OperationFailure(Model):
    incident_id: str
    detail: str | None = None


class OperationProgress(Model):
    id: str
    type: str
    status: OperationStatus
    requested_by: str
    total: int
    pending: int
    retrying: int
    done: int
    failed: int
    created: datetime
    updated: datetime
    finished: datetime | None = None
    failures: list[OperationFailure] = Field(default_factory=list)


class ErrorGroup(Model):
    """Open incidents that share one normalised error message (GET /incidents/statistics/by-error)."""

    error_hash: str = Field(description="error_hash of the message; filter GET /incidents with ?error_hash=")
    incident_message: str | None = Field(description="The message of the newest open incident in the group")
    open_count: int = Field(description="Unresolved incidents (open, acknowledged, retrying, escalated) in the group")
    definitions: list[str] = Field(description="Process definition keys the group's incidents belong to, sorted")


class ErrorGroups(Model):
    items: list[ErrorGroup]
    generated_at: datetime = Field(description="When this answer was computed")
    data_as_of: datetime = Field(description="The incident records it reflects are those committed by this time")
