"""journal append in one round trip: a PostgreSQL function that takes the journal lock, then appends the events to
the outbox and the audit row to the hash chain (`gateway.journal.write`)

The lock is held from the append until the transaction commits. Taken by a statement of its own and followed by
the head read and the inserts, it was held across five round trips to the gateway; twenty concurrent claims queued
on it (issue 14: claim-next p95 681 ms). Inside a VOLATILE function each statement takes a fresh snapshot, so the
head read after the lock still sees the previous holder's row, and the lock is held for one round trip and the
COMMIT. The audit row's hash is `sha256(prev_hash || material)`, `material` being the JSON text the gateway
computes (`journal._chain_material`), so it equals the hash `journal._chain_hash` computes.

Revision ID: i14_0006_journal_append
Revises: 0005_audit_tenant
"""

from alembic import op

revision = "i14_0006_journal_append"
down_revision = "0005_audit_tenant"
branch_labels = None
depends_on = None

JOURNAL_APPEND = """
CREATE OR REPLACE FUNCTION pm_journal_append(lock_id bigint, events jsonb, audit jsonb, material text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    prev text;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_id);
    INSERT INTO outbox (event_id, type, occurred_at, engine, tenant_id, actor, instance_id, data)
    SELECT e ->> 'event_id', e ->> 'type', (e ->> 'occurred_at')::timestamptz, e ->> 'engine', e ->> 'tenant_id',
           e ->> 'actor', e ->> 'instance_id', e -> 'data'
    FROM jsonb_array_elements(events) WITH ORDINALITY AS queued(e, n)
    ORDER BY n;
    IF material IS NULL THEN
        RETURN;
    END IF;
    prev := coalesce((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), repeat('0', 64));
    INSERT INTO audit_log (occurred_at, actor, operation, resource_type, resource_id, engine, request, status,
                           outcome, detail, tenant_id, prev_hash, hash)
    VALUES ((audit ->> 'occurred_at')::timestamptz, audit ->> 'actor', audit ->> 'operation',
            audit ->> 'resource_type', audit ->> 'resource_id', audit ->> 'engine', audit -> 'request',
            (audit ->> 'status')::int, audit ->> 'outcome', audit ->> 'detail', audit ->> 'tenant_id', prev,
            encode(sha256(convert_to(prev || material, 'UTF8')), 'hex'));
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(JOURNAL_APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS pm_journal_append(bigint, jsonb, jsonb, text)")
