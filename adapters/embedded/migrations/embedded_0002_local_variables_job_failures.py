"""embedded engine: a task's own variables (a multi-instance element variable); failed background attempts of a job

Revision ID: embedded_0002
Revises: embedded_0001
"""

import sqlalchemy as sa
from alembic import op

from gateway.db import JsonColumn

revision = "embedded_0002"
down_revision = "embedded_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("embedded_tasks", sa.Column("local_variables", JsonColumn))
    op.add_column("embedded_jobs", sa.Column("failures", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("embedded_jobs", "failures")
    op.drop_column("embedded_tasks", "local_variables")
