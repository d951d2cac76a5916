"""audit checkpoints: HMAC-signed anchors of the audit chain's head

Revision ID: 0004_audit_checkpoints
Revises: 0003_idempotency_lease
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import BigId, UTCDateTime

revision = "0004_audit_checkpoints"
down_revision = "0003_idempotency_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("audit_id", sa.BigInteger, nullable=False),
        sa.Column("audit_hash", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("prev_mac", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
