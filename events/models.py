"""Shapes of the event delivery API (API.md "Events": subscriptions, deliveries, the SSE stream)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from gateway.journal import known_event_types
from gateway.schemas import UtcDatetime


class PayloadFormat(StrEnum):
    STANDARD = "standard"  # the event envelope as JSON
    CLOUDEVENTS = "cloudevents"  # CloudEvents 1.0 structured mode, the envelope in `data`


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first or next attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # dead-lettered: every attempt failed, or the receiver answered 410


class EventFilter(BaseModel):
    """Only events that match every field given here are delivered."""

    model_config = ConfigDict(extra="forbid")

    engine: str | None = Field(None, description="Configured engine name")
    instance_id: str | None = Field(None, description="One process instance")
    definition_key: str | None = Field(None, description="Process definition key (from the event's data)")


def _standard_webhooks_secret(secret: str | None) -> str | None:
    """A `whsec_` secret must be base64 after the prefix (Standard Webhooks): receivers' libraries decode it, and a
    key they cannot decode would make every signature unverifiable."""
    if secret is not None and secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise ValueError("a secret starting with 'whsec_' must be base64 after the prefix") from None
        if not key:
            raise ValueError("a secret starting with 'whsec_' needs a key after the prefix")
    return secret


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="Where events are POSTed (http or https; at most 2,083 characters)")
    event_types: list[str] = Field(
        default_factory=list, description="Event types, with or without the `process_manager.` prefix; empty: all"
    )
    filter: EventFilter = Field(default_factory=EventFilter)
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=255,
        description="Signing secret; `whsec_<base64>` (Standard Webhooks) or any string of 16+ characters. "
        "Generated and returned once when omitted.",
    )
    active: bool = Field(True, strict=True)
    format: PayloadFormat = Field(PayloadFormat.STANDARD, description="`cloudevents`: CloudEvents 1.0 structured")
    tenant_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="The tenant whose events it receives. Default: the caller's only tenant; a caller of several "
        "tenants must name one of theirs (400 when none is named, 403 when it is not theirs). A caller of every "
        "tenant may omit it: the subscription then receives every tenant's events.",
    )

    @field_validator("event_types")
    @classmethod
    def _prefixed(cls, value: list[str]) -> list[str]:
        return known_event_types(value)

    _secret = field_validator("secret")(_standard_webhooks_secret)


class SubscriptionUpdate(BaseModel):
    """Fields to change; an omitted field keeps its value, and none may be null (a subscription has no empty URL,
    types or secret). A new `secret` starts a rotation: the old one keeps signing for the overlap too."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None = None
    event_types: list[str] | None = None
    filter: EventFilter | None = None
    secret: str | None = Field(None, min_length=16, max_length=255)
    active: bool | None = Field(None, strict=True, description="true re-enables a subscription the gateway disabled")
    format: PayloadFormat | None = None

    @field_validator("event_types")
    @classmethod
    def _prefixed(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else known_event_types(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> SubscriptionUpdate:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null; omit a field to keep its value")
        return self

    _secret = field_validator("secret")(_standard_webhooks_secret)


class Subscription(BaseModel):
    id: str
    url: str
    event_types: list[str]
    filter: EventFilter
    format: PayloadFormat
    tenant_id: str | None = Field(
        None, description="The tenant whose events it receives (fixed at creation); null: every tenant's"
    )
    active: bool
    disabled_reason: str | None = Field(None, description="Why the gateway disabled it (410, failing for too long)")
    failing_since: datetime | None = Field(None, description="First failed attempt since the last success")
    previous_secret_until: datetime | None = Field(None, description="Until then the previous secret also signs")
    secret: str | None = Field(None, description="Only in the answer that created or rotated it")
    created_by: str
    created: datetime
    updated: datetime


class Delivery(BaseModel):
    id: str
    subscription_id: str
    event_id: str = Field(description="Also the `webhook-id` header: stable across retries, for deduplication")
    event_cursor: str
    event_type: str
    instance_id: str | None = None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(None, description="When a pending delivery is tried next")
    last_attempt_at: datetime | None = None
    response_status: int | None = Field(None, description="HTTP status of the last answer")
    last_error: str | None = None
    created: datetime
    delivered_at: datetime | None = None


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: UtcDatetime = Field(description="Replay events that occurred at or after this time")
    until: UtcDatetime | None = Field(None, description="... and before this time; default now")


class RecoverAccepted(BaseModel):
    deliveries: int = Field(description="Deliveries queued for the window")


class TestDeliveryResult(BaseModel):
    delivered: bool
    response_status: int | None = None
    error: str | None = None
    duration_ms: int


def event_json(document: dict[str, Any]) -> bytes:
    """`document` as compact UTF-8 JSON: orjson (the relays encode every event, several times faster than `json`),
    `json` for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready event envelope `{id, cursor, type, occurred_at, engine, tenant_id, actor, instance_id, data}`."""
    occurred_at = event["occurred_at"]
    return {**event, "occurred_at": occurred_at.isoformat().replace("+00:00", "Z")}


def delivered_to(event: dict[str, Any], subscription: Any) -> bool:
    """Whether an event goes to a webhook subscription (a row of `event_subscriptions`): the subscription's
    types and filter match, and a subscription of a tenant receives only that tenant's events (one without a
    tenant receives every event)."""
    tenant = subscription["tenant_id"]
    return (tenant is None or event["tenant_id"] == tenant) and matches(
        event, subscription["event_types"], subscription["filter"]
    )


def matches(event: dict[str, Any], event_types: list[str], event_filter: dict[str, Any]) -> bool:
    """Whether an event (as `journal.list_events` returns it) passes a type list (empty: all) and a filter."""
    if event_types and event["type"] not in event_types:
        return False
    if event_filter.get("engine") and event["engine"] != event_filter["engine"]:
        return False
    if event_filter.get("instance_id") and event["instance_id"] != event_filter["instance_id"]:
        return False
    wanted_key = event_filter.get("definition_key")
    return not wanted_key or (event.get("data") or {}).get("definition_key") == wanted_key
