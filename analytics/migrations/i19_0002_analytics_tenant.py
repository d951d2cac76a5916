"""analytics: the tenant of activity runs and user tasks, for statistics over one's own tenants

Revision ID: i19_0002_analytics_tenant
Revises: analytics_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "i19_0002_analytics_tenant"
down_revision = "analytics_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("analytics_activities", "analytics_tasks"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tenant_id", sa.String(100)))
    # Rows projected before take their instance's tenant.
    op.execute(
        "UPDATE analytics_activities SET tenant_id = (SELECT i.tenant_id FROM analytics_instances i "
        "WHERE i.engine = analytics_activities.engine AND i.instance_id = analytics_activities.instance_id)"
    )
    op.execute(
        "UPDATE analytics_tasks SET tenant_id = (SELECT i.tenant_id FROM analytics_instances i "
        "WHERE i.engine = analytics_tasks.engine AND i.instance_id = analytics_tasks.instance_id)"
    )


def downgrade() -> None:
    for table in ("analytics_activities", "analytics_tasks"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant_id")
