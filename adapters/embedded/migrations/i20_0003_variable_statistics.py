"""embedded engine: multi-column statistics of the variable index on PostgreSQL, so that the planner knows how many
rows a condition like `region = 'EU'` matches (issue 20)

Without them PostgreSQL multiplies the selectivity of `name = 'region'` by that of `text_value = 'EU'` over every
variable, as if the two were independent: it guessed 5,964 rows where 25,000 match (100,000 instances), and so
planned a join of two conditions, or the count of a page, for the wrong sizes. Other databases: nothing to do.

Revision ID: i20_0003_variable_statistics
Revises: i18_0003_task_list_indexes
"""

from alembic import op

revision = "i20_0003_variable_statistics"
down_revision = "i18_0003_task_list_indexes"
branch_labels = None
depends_on = None

STATISTICS = {
    "st_embedded_variable_index_text": "name, text_value",
    "st_embedded_variable_index_number": "name, number_value",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, columns in STATISTICS.items():
        op.execute(f"CREATE STATISTICS {name} (mcv, dependencies) ON {columns} FROM embedded_variable_index")
    op.execute("ANALYZE embedded_variable_index")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {name}")
