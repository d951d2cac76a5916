"""journal appended at commit: on PostgreSQL a change stages its events and audit row in `journal_pending`; a
deferred constraint trigger appends them to the outbox and the audit chain when the transaction commits

The journal lock (`gateway.journal.JOURNAL_LOCK_ID`) serialises appends from the append until the commit. Taken
by a statement of its own and followed by the head read and the inserts, it was held across five round trips to
the gateway and the COMMIT; twenty concurrent claims queued on it (issue 14: claim-next p95 681 ms). Taken in a
trigger deferred to the commit, it is held while PostgreSQL appends and flushes the commit, and no round trip to
the gateway. Inside a VOLATILE function each statement takes a fresh snapshot, so the head read after the lock
sees the previous holder's row. The audit row's hash is `sha256(prev_hash || material)`, `material` being the JSON
text the gateway computes (`journal._chain_material`), so it equals `journal._chain_hash`. SQLite gets the table
only (its appends stay statement by statement under the gateway's single writer).

Revision ID: i14_0006_journal_append
Revises: 0005_audit_tenant
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import BigId, JsonColumn

revision = "i14_0006_journal_append"
down_revision = "0005_audit_tenant"
branch_labels = None
depends_on = None

JOURNAL_LOCK_ID = 7_301_002  # gateway.journal.JOURNAL_LOCK_ID

APPEND = f"""
CREATE OR REPLACE FUNCTION pm_journal_append() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    prev text;
BEGIN
    PERFORM pg_advisory_xact_lock({JOURNAL_LOCK_ID});
    INSERT INTO outbox (event_id, type, occurred_at, engine, tenant_id, actor, instance_id, data)
    SELECT e ->> 'event_id', e ->> 'type', (e ->> 'occurred_at')::timestamptz, e ->> 'engine', e ->> 'tenant_id',
           e ->> 'actor', e ->> 'instance_id', e -> 'data'
    FROM jsonb_array_elements(NEW.events) WITH ORDINALITY AS queued(e, n)
    ORDER BY n;
    IF NEW.material IS NOT NULL THEN
        prev := coalesce((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), repeat('0', 64));
        INSERT INTO audit_log (occurred_at, actor, operation, resource_type, resource_id, engine, request, status,
                               outcome, detail, tenant_id, prev_hash, hash)
        SELECT (a ->> 'occurred_at')::timestamptz, a ->> 'actor', a ->> 'operation', a ->> 'resource_type',
               a ->> 'resource_id', a ->> 'engine', a -> 'request', (a ->> 'status')::int, a ->> 'outcome',
               a ->> 'detail', a ->> 'tenant_id', prev, encode(sha256(convert_to(prev || NEW.material, 'UTF8')), 'hex')
        FROM (SELECT NEW.audit AS a) AS staged;
    END IF;
    DELETE FROM journal_pending WHERE id = NEW.id;
    RETURN NULL;
END
$$
"""
TRIGGER = """
CREATE CONSTRAINT TRIGGER journal_pending_append AFTER INSERT ON journal_pending
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pm_journal_append()
"""


def upgrade() -> None:
    op.create_table(
        "journal_pending",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("events", JsonColumn, nullable=False),
        sa.Column("audit", JsonColumn),
        sa.Column("material", sa.Text),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND)
        op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS journal_pending_append ON journal_pending")
        op.execute("DROP FUNCTION IF EXISTS pm_journal_append()")
    op.drop_table("journal_pending")
