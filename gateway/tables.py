"""The gateway-owned tables (engine-independent). Schema changes go through Alembic migrations."""

import sqlalchemy as sa

from gateway.db import BigId, JsonColumn, UTCDateTime, metadata

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("operation", sa.String(100), nullable=False),
    sa.Column("resource_type", sa.String(50), nullable=False),
    sa.Column("resource_id", sa.String(255)),
    sa.Column("engine", sa.String(100)),
    sa.Column("request", JsonColumn, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("tenant_id", sa.String(100)),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_resource", "resource_type", "resource_id"),
    sa.Index("ix_audit_actor", "actor"),
    sa.Index("ix_audit_occurred_at", "occurred_at"),
    sa.Index("ix_audit_tenant", "tenant_id"),
)

# A change's journal (events and audit row) staged on PostgreSQL, appended to the outbox and the audit chain when
# the change commits, and deleted, by a deferred trigger (migration i14_0006; `journal.write`). Always empty between
# transactions.
journal_pending = sa.Table(
    "journal_pending",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("events", JsonColumn, nullable=False),  # outbox rows, in order; timestamps as ISO 8601 text
    sa.Column("audit", JsonColumn),  # the audit row but prev_hash and hash
    sa.Column("material", sa.Text),  # the audit row's hashed text (`journal._chain_material`)
)

# Signed anchors of the audit chain (journal.write_checkpoint): what verify-audit holds the chain against.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("audit_id", sa.BigInteger, nullable=False),  # the newest audit row when the checkpoint was taken
    sa.Column("audit_hash", sa.String(64), nullable=False),  # its hash
    sa.Column("rows", sa.BigInteger, nullable=False),  # audit rows up to and including it
    sa.Column("prev_mac", sa.String(64), nullable=False),  # the previous checkpoint's mac: checkpoints chain too
    sa.Column("mac", sa.String(64), nullable=False),  # HMAC-SHA256 over the fields above, key PM_AUDIT_ANCHOR_KEY
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("engine", sa.String(100)),
    sa.Column("tenant_id", sa.String(100)),
    sa.Column("actor", sa.String(255)),
    sa.Column("instance_id", sa.String(255)),
    sa.Column("data", JsonColumn, nullable=False),
    sa.Index("ix_outbox_type", "type"),
    sa.Index("ix_outbox_instance", "instance_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(400), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("response_status", sa.Integer),
    sa.Column("response_headers", JsonColumn),
    sa.Column("response_body", sa.LargeBinary),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The request holding the key renews its lease while it runs; a key whose lease lapsed was left by a
    # request that died. Its change, if it committed, stamped committed_status/_resource in its transaction.
    sa.Column("claim_token", sa.String(36)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("committed_status", sa.Integer),
    sa.Column("committed_resource", sa.String(320)),
    sa.Index("ix_idempotency_created_at", "created_at"),
)

engine_object_meta = sa.Table(
    "engine_object_meta",
    metadata,
    sa.Column("engine", sa.String(100), primary_key=True),
    sa.Column("object_type", sa.String(50), primary_key=True),
    sa.Column("object_id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Index("ix_engine_object_meta_value", "engine", "object_type", "name", "value"),
)

# A change sent to a remote engine whose outcome is not yet recorded (see gateway.changes).
change_intents = sa.Table(
    "change_intents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("engine", sa.String(100)),
    sa.Column("audit", JsonColumn, nullable=False),
    sa.Index("ix_change_intents_started_at", "started_at"),
)
