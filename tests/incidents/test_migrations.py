"""The Incident Center's migration creates exactly the tables `incidents.models` declares."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.db import Database, metadata
from incidents.models import incident_history, incident_links, incidents, operation_items, operations

TABLES = {table.name for table in (incidents, incident_links, incident_history, operations, operation_items)}


def _table_name(difference: Any) -> str | None:
    """The table an Alembic autogenerate difference is about."""
    if isinstance(difference, list):  # column modifications: [("modify_type", schema, table, column, ...)]
        return difference[0][2]
    for part in difference[1:]:
        if isinstance(part, sa.Table):
            return part.name
        if isinstance(part, sa.Index | sa.Constraint) and part.table is not None:
            return part.table.name
        if isinstance(part, str) and part in TABLES:
            return part
    return None


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection", "ignore:autogenerate skipping")  # embedded index
async def test_the_migrated_schema_matches_the_models(database: Database) -> None:
    def differences(connection: sa.Connection) -> list[Any]:
        found = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
        return [difference for difference in found if _table_name(difference) in TABLES]

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
