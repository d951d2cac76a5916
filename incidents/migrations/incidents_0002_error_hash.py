"""incidents: error_hash, the normalised error message that groups the same failure across instances

Revision ID: incidents_0002
Revises: incidents_0001
"""

import sqlalchemy as sa
from alembic import op

from incidents.models import error_hash

revision = "incidents_0002"
down_revision = "incidents_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("error_hash", sa.String(16)))
    op.create_index("ix_incidents_error_hash", "incidents", ["error_hash", "status"])
    table = sa.table(
        "incidents", sa.column("id", sa.String), sa.column("message", sa.Text), sa.column("error_hash", sa.String)
    )
    connection = op.get_bind()
    for incident_id, message in connection.execute(sa.select(table.c.id, table.c.message)).all():
        connection.execute(table.update().where(table.c.id == incident_id).values(error_hash=error_hash(message)))


def downgrade() -> None:
    op.drop_index("ix_incidents_error_hash", "incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("error_hash")
