"""events: the tenant of a webhook subscription, so that it receives only that tenant's events

Revision ID: i19_0001_subscription_tenant
Revises: events_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "i19_0001_subscription_tenant"
down_revision = "events_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing subscriptions keep receiving every tenant's events (tenant_id NULL), as they did before.
    with op.batch_alter_table("event_subscriptions") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(100)))
    op.create_index("ix_event_subscriptions_tenant", "event_subscriptions", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_event_subscriptions_tenant", "event_subscriptions")
    with op.batch_alter_table("event_subscriptions") as batch:
        batch.drop_column("tenant_id")
