"""The embedded engine's migration creates exactly the tables and indexes its code uses."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from adapters.embedded import EmbeddedAdapter, tables
from gateway.db import Database, alembic_config
from gateway.schemas import TaskQuery
from tests.embedded.conftest import bpmn, deploy, flow, start

EMBEDDED_TABLES = [t for t in (getattr(tables, name) for name in dir(tables)) if isinstance(t, sa.Table)]


async def test_the_migrated_schema_matches_the_table_definitions(database: Database) -> None:
    await database.migrate()  # already at head: running again changes nothing

    def index_names(sync: sa.Connection, table: str) -> set[str]:
        if sync.dialect.name == "sqlite":  # SQLAlchemy does not reflect SQLite's expression indexes
            query = sa.text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL")
            return set(sync.execute(query, {"t": table}).scalars())
        return {index["name"] for index in sa.inspect(sync).get_indexes(table)}

    def inspect(sync: sa.Connection) -> dict[str, tuple[set[str], set[str]]]:
        inspector = sa.inspect(sync)
        return {
            table.name: (
                {column["name"] for column in inspector.get_columns(table.name)},
                index_names(sync, table.name),
            )
            for table in EMBEDDED_TABLES
        }

    async with database.engine.connect() as conn:
        migrated = await conn.run_sync(inspect)
    assert len(EMBEDDED_TABLES) == 12
    for table in EMBEDDED_TABLES:
        columns, indexes = migrated[table.name]
        assert columns == {column.name for column in table.columns}, table.name
        assert indexes == {index.name for index in table.indexes}, table.name


async def test_the_task_inbox_migration_fills_the_inbox_from_the_open_tasks(
    adapter: EmbeddedAdapter, database: Database
) -> None:
    """Open tasks of a database migrated before the inbox existed are listed after the migration (i18_0001)."""

    def migrate(connection: sa.Connection, step: str) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if step == "down":
            command.downgrade(config, "i18_0001_task_inbox@-1")
        else:
            command.upgrade(config, "heads")

    review = '<bpmn:userTask id="review" name="Review" camunda:candidateGroups="sales"/>'
    xml = bpmn("p", '<bpmn:startEvent id="start"/>' + flow("start", "review") + review)
    await deploy(adapter, xml)
    instance_id = await start(adapter, "p")
    async with database.engine.begin() as conn:
        await conn.run_sync(migrate, "down")
    async with database.engine.begin() as conn:
        await conn.run_sync(migrate, "up")
    page = await adapter.list_tasks(TaskQuery(candidate_group="sales", unassigned=True))
    assert ([task.instance_id for task in page.items], page.total) == ([instance_id], 1)
