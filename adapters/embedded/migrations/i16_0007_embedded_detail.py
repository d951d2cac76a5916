"""embedded engine: incidents keep no Python traceback: the `detail` written before (traceback.format_exception output)
is cleared

The embedded engine's incident detail is now the chain of the failure's causes (`runtime.failure_report`), served
by `GET /incidents/{id}/engine-incidents/{engine_incident_id}`; a Python traceback must never reach a user. Every
detail written before this revision was such a traceback. The downgrade keeps the cleared values cleared.

Revision ID: i16_0007_embedded_detail
Revises: i20_0004_variable_count_indexes
"""

from alembic import op

revision = "i16_0007_embedded_detail"
down_revision = "i20_0004_variable_count_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE embedded_incidents SET detail = NULL WHERE detail IS NOT NULL")


def downgrade() -> None:
    pass
