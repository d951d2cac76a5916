"""events: PostgreSQL notifies channel `pm_outbox` when a transaction that wrote events commits

A statement-level trigger on the outbox calls `pg_notify('pm_outbox', '')`; PostgreSQL delivers it at commit, once
per transaction (identical notifications of one transaction are folded). Each replica's `OutboxWatch` listens, so
the relays and SSE streams look at the outbox at once instead of at their next poll. SQLite has no notifications:
one process, which polls.

Revision ID: i13_0001_outbox_notify
Revises: i19_0001_subscription_tenant
"""

from alembic import op

revision = "i13_0001_outbox_notify"
down_revision = "i19_0001_subscription_tenant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION pm_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('pm_outbox', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION pm_outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS pm_outbox_notify()")
