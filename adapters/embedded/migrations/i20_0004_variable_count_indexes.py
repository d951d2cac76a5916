"""embedded engine: a list's total and its per-instance variable checks read the variable index alone (issue 20)

- the value indexes (name, value, scope_id) end with the instance id, so that the total of a list of instances with
  variable conditions is counted from them without visiting the instances (`repository._instances_with_variables`:
  1,100 instances matching a `like` cost 3,165 buffers through the instances' primary key, 14 this way);
- an index on (scope_id, name, text_value, number_value) checks a condition on one instance's variable without its
  table row, as when an unselective condition (`region neq "EU"`) is checked on the instances in their sort order;
- on PostgreSQL, statistics of the expression `scope_id = instance_id`, which the count tests `IS TRUE`: without
  them the planner guesses that 1 row in 200 passes (2 rows of `amount gte 49000` instead of 2,000) and plans the
  count's joins for that size.

Revision ID: i20_0004_variable_count_indexes
Revises: i14_0005_history_end_indexes
"""

from alembic import op

revision = "i20_0004_variable_count_indexes"
down_revision = "i14_0005_history_end_indexes"
branch_labels = None
depends_on = None

TABLE = "embedded_variable_index"
STATISTICS = "st_embedded_variable_index_instance_variable"


def upgrade() -> None:
    for kind in ("number", "text"):
        op.drop_index(f"ix_embedded_variable_index_{kind}", TABLE)
        op.create_index(
            f"ix_embedded_variable_index_{kind}", TABLE, ["name", f"{kind}_value", "scope_id", "instance_id"]
        )
    op.create_index(
        "ix_embedded_variable_index_scope_values", TABLE, ["scope_id", "name", "text_value", "number_value"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE STATISTICS {STATISTICS} ON ((scope_id = instance_id)) FROM {TABLE}")
        op.execute(f"ANALYZE {TABLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
    op.drop_index("ix_embedded_variable_index_scope_values", TABLE)
    for kind in ("number", "text"):
        op.drop_index(f"ix_embedded_variable_index_{kind}", TABLE)
        op.create_index(f"ix_embedded_variable_index_{kind}", TABLE, ["name", f"{kind}_value", "scope_id"])
