"""idempotency keys: a lease renewed while the request runs, and the committed outcome of its change

Revision ID: 0003_idempotency_lease
Revises: 0002_change_intents
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision = "0003_idempotency_lease"
down_revision = "0002_change_intents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as table:
        table.add_column(sa.Column("claim_token", sa.String(36)))
        table.add_column(sa.Column("lease_until", UTCDateTime))
        table.add_column(sa.Column("committed_status", sa.Integer))
        table.add_column(sa.Column("committed_resource", sa.String(320)))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as table:
        for column in ("committed_resource", "committed_status", "lease_until", "claim_token"):
            table.drop_column(column)
