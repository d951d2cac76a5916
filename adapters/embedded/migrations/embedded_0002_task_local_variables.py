"""embedded engine: a task's own variables (a multi-instance element variable), shown with the task

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


def downgrade() -> None:
    op.drop_column("embedded_tasks", "local_variables")
