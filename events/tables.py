"""The tables of event delivery (created by the `events` Alembic branch in events/migrations)."""

import sqlalchemy as sa

from gateway.db import BigId, JsonColumn, UTCDateTime, metadata

subscriptions = sa.Table(
    "event_subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", JsonColumn, nullable=False),
    sa.Column("filter", JsonColumn, nullable=False),
    sa.Column("format", sa.String(20), nullable=False),
    sa.Column("secret", sa.String(255), nullable=False),
    sa.Column("previous_secret", sa.String(255)),
    sa.Column("previous_secret_until", UTCDateTime),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("failing_since", UTCDateTime),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    # the tenant whose events it receives; None: every tenant's (only a caller of every tenant creates one)
    sa.Column("tenant_id", sa.String(100)),
    sa.Index("ix_event_subscriptions_tenant", "tenant_id"),
)

deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "subscription_id", sa.String(36), sa.ForeignKey("event_subscriptions.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("event_cursor", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("instance_id", sa.String(255)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("response_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
)

relay_positions = sa.Table(
    "event_relay_positions",
    metadata,
    sa.Column("relay", sa.String(50), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

change_marks = sa.Table(
    "engine_change_marks",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("feed", sa.String(50), primary_key=True),
    sa.Column("mark", JsonColumn, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

__all__ = ["BigId", "change_marks", "deliveries", "relay_positions", "subscriptions"]
