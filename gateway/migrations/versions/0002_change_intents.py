"""change intents: changes sent to a remote engine whose outcome is not yet recorded

Revision ID: 0002_change_intents
Revises: 0001_gateway_core
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import JsonColumn, UTCDateTime

revision = "0002_change_intents"
down_revision = "0001_gateway_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_intents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("engine", sa.String(100)),
        sa.Column("audit", JsonColumn, nullable=False),
    )
    op.create_index("ix_change_intents_started_at", "change_intents", ["started_at"])


def downgrade() -> None:
    op.drop_table("change_intents")
