"""embedded engine: indexed variable values of instances and tasks, for variable conditions on list queries
(issue 20); filled from the variables already stored

Revision ID: i20_0001
Revises: i15_0001_event_subscriptions
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "i20_0001"
down_revision = "i15_0001_event_subscriptions"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    from adapters.embedded.variables import index_rows  # the one mapping of a stored value to its indexed columns

    index = op.create_table(
        "embedded_variable_index",
        sa.Column("scope_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("instance_id", sa.String(36), nullable=False),
        # byte order ("C") on PostgreSQL, so that a `like` with a fixed prefix is a range scan of the index
        sa.Column("text_value", sa.String(1000).with_variant(sa.String(1000, collation="C"), "postgresql")),
        sa.Column("number_value", sa.Float(precision=53)),
    )
    op.create_index(
        "ix_embedded_variable_index_number", "embedded_variable_index", ["name", "number_value", "scope_id"]
    )
    op.create_index("ix_embedded_variable_index_text", "embedded_variable_index", ["name", "text_value", "scope_id"])
    op.create_index("ix_embedded_variable_index_instance", "embedded_variable_index", ["instance_id"])
    bind = op.get_bind()
    owners = [
        sa.text("SELECT id, id, variables FROM embedded_instances"),
        sa.text("SELECT id, instance_id, local_variables FROM embedded_tasks WHERE local_variables IS NOT NULL"),
    ]
    for statement in owners:
        rows: list[dict] = []
        for scope_id, instance_id, variables in bind.execute(statement):
            if isinstance(variables, str):
                variables = json.loads(variables)
            rows += index_rows(instance_id, scope_id, variables or {})
            if len(rows) >= BATCH:
                bind.execute(index.insert(), rows)
                rows = []
        if rows:
            bind.execute(index.insert(), rows)


def downgrade() -> None:
    op.drop_table("embedded_variable_index")
