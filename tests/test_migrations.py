import sqlalchemy as sa

from gateway.db import Database


async def test_migrations_create_every_gateway_table_and_are_idempotent(database: Database) -> None:
    await database.migrate()  # already at head: a second run changes nothing
    async with database.engine.connect() as conn:
        names = set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    assert {"audit_log", "outbox", "idempotency_keys", "engine_object_meta"} <= names


async def test_a_postgresql_server_on_this_machine_is_connected_without_tls(postgres_test_database: str) -> None:
    """Loopback connections skip TLS (asyncpg `ssl=allow`, README: PM_DATABASE_URL): nothing travels a network,
    and TLS costs CPU on every statement. (asyncpg's default would use TLS whenever the server offers it.)"""
    host = sa.make_url(postgres_test_database).host or ""
    assert host in ("localhost", "::1") or host.startswith("127."), "the test server is on this machine"
    database = Database(postgres_test_database)
    try:
        async with database.engine.connect() as conn:
            query = sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert (await conn.execute(query)).scalar_one() is False
    finally:
        await database.dispose()
