import sqlalchemy as sa

from gateway.db import Database


async def test_migrations_create_every_gateway_table_and_are_idempotent(database: Database) -> None:
    await database.migrate()  # already at head: a second run changes nothing
    async with database.engine.connect() as conn:
        names = set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    assert {"audit_log", "outbox", "idempotency_keys", "engine_object_meta"} <= names
