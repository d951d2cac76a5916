"""audit tenant: the tenant of the changed object, so that each tenant reads only its own audit rows

Revision ID: 0005_audit_tenant
Revises: 0002_change_intents
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_audit_tenant"
down_revision = "0004_audit_checkpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(100)))
    op.create_index("ix_audit_tenant", "audit_log", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_tenant", "audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("tenant_id")
