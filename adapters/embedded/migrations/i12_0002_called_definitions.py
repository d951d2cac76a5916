"""embedded engine: the definitions an instance's call activities call, resolved when it starts, so that a newly
deployed version of a called process is used by the next instance without a restart, and a running instance
keeps the version it runs

Revision ID: i12_0002_called_definitions
Revises: i12_0001_start_timers
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import JsonColumn

revision = "i12_0002_called_definitions"
down_revision = "i12_0001_start_timers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("embedded_instances", sa.Column("called_definitions", JsonColumn))


def downgrade() -> None:
    op.drop_column("embedded_instances", "called_definitions")
