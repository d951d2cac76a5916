"""The audit chain stays one linear chain under concurrent writers, and the anchors catch what hashes alone cannot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import sqlalchemy as sa

from gateway import journal
from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.journal import AuditDraft, EventDraft, _chain_hash as chain_hash, verify_chain, write_checkpoint
from gateway.tables import audit_checkpoints, audit_log, outbox
from gateway.uow import transaction
from tests.api.conftest import deploy, open_tasks, start


async def test_200_concurrent_mixed_writes_leave_one_linear_chain(
    client: httpx.AsyncClient, database: Database
) -> None:
    """Starts, completes (of real and unknown tasks), variable changes and claims, all at once: no fork."""
    await deploy(client)
    instances = [await start(client) for _ in range(10)]
    tasks = [(await open_tasks(client, i["id"]))[0] for i in instances]

    def call(n: int) -> Any:
        kind = n % 5
        if kind == 0:
            return client.post("/api/processes/instances", json={"definition_key": "approval", "business_key": f"b{n}"})
        if kind == 1:
            return client.post(f"/api/processes/tasks/unknown-{n}/complete", json={})
        if kind == 2:
            instance = instances[n % len(instances)]
            return client.put(f"/api/processes/instances/{instance['id']}/variables", json={"variables": {f"v{n}": n}})
        if kind == 3:
            return client.post(f"/api/processes/tasks/{tasks[n % len(tasks)]['id']}/claim", json={"user_id": f"u{n}"})
        return client.post(f"/api/processes/tasks/{tasks[n % len(tasks)]['id']}/complete", json={})

    responses = await asyncio.gather(*(call(n) for n in range(200)))
    assert all(r.status_code < 500 for r in responses), [r.text for r in responses if r.status_code >= 500]

    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.select(audit_log.c.prev_hash))).scalars().all()
    assert len(rows) >= 1 + 10 + 200  # deploy, the ten starts, every one of the 200 calls (failures too)
    shared = {prev: count for prev, count in Counter(rows).items() if count > 1}
    assert shared == {}, f"{len(shared)} prev_hash values are shared by several rows"
    check = await verify_chain(database)
    assert check.ok, check
    assert check.rows == len(rows)


async def test_appends_take_their_ids_and_chain_links_in_commit_order(database: Database) -> None:
    """The first change appends, then waits while the second appends and commits, then commits: a reader paging the
    outbox by id and the audit chain see them in the order they committed, the audit rows linked in that order. On
    PostgreSQL the second commits first (the journal is appended at commit); on SQLite the single writer holds the
    second back until the first has committed."""
    first_appended, second_committed = asyncio.Event(), asyncio.Event()
    committed: list[str] = []

    async def append(actor: str, *, before_commit: Callable[[], Awaitable[object]] | None = None) -> None:
        async with database.writer(), database.sessionmaker() as session, session.begin():  # as `uow.transaction`
            event = EventDraft("process_manager.task.assigned", "default", {"actor": actor}, actor=actor)
            await journal.write(session, actor, [event], AuditDraft("claim", "task", actor, "default", {}, 200))
            if before_commit is not None:
                await before_commit()
        committed.append(actor)

    async def first() -> None:
        async def second_done() -> None:
            first_appended.set()
            if not database.is_sqlite:  # SQLite: the second waits for our commit
                await asyncio.wait_for(second_committed.wait(), timeout=30)

        await append("first", before_commit=second_done)

    async def second() -> None:
        await first_appended.wait()
        await append("second")
        second_committed.set()

    await asyncio.gather(first(), second())
    async with database.engine.connect() as conn:
        events = (await conn.execute(sa.select(outbox.c.actor).order_by(outbox.c.id))).scalars().all()
        audit = (await conn.execute(sa.select(audit_log).order_by(audit_log.c.id))).mappings().all()
    assert committed == (["first", "second"] if database.is_sqlite else ["second", "first"])
    assert events == [row["actor"] for row in audit] == committed
    assert audit[1]["prev_hash"] == audit[0]["hash"] == chain_hash(audit[0]["prev_hash"], dict(audit[0]))
    assert (await verify_chain(database)).ok


# ------------------------------------------------------------------ anchored chain (signed checkpoints)
KEY = "a-long-random-anchor-key-for-tests"


def verify_audit_cli(database: Database, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PM_DATABASE_URL": database.url}
    env.pop("PM_AUDIT_ANCHOR_KEY", None)
    if key is not None:
        env["PM_AUDIT_ANCHOR_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "verify-audit"], env=env, capture_output=True, text=True, timeout=60
    )


async def anchored_log(make_client: Any) -> None:
    """Deploy and three starts; the gateway's shutdown writes a checkpoint anchoring row 4."""
    async with make_client(audit_anchor_key=KEY, audit_checkpoint_seconds=3600) as client:
        await deploy(client)
        for _ in range(3):
            await start(client)


async def append_rows(database: Database, count: int) -> None:
    for n in range(count):
        async with transaction(database, actor="tester") as uow:
            uow.audit(AuditDraft("claim", "task", f"t{n}", None, {}, 404, "failure"))


async def test_the_gateway_writes_signed_checkpoints_while_it_runs(make_client: Any, database: Database) -> None:
    async with make_client(audit_anchor_key=KEY, audit_checkpoint_seconds=0.05) as client:
        await deploy(client)
        await start(client)

        async def newest() -> Any:
            async with database.engine.connect() as conn:
                return (await conn.execute(sa.select(sa.func.max(audit_checkpoints.c.audit_id)))).scalar()

        assert await eventually(newest, lambda audit_id: audit_id == 2) == 2
    check = await verify_chain(database, anchor_key=KEY.encode())
    assert (check.ok, check.anchored_id, check.rows_after_anchor) == (True, 2, 0)


async def test_tail_truncation_up_to_a_checkpoint_is_detected(make_client: Any, database: Database) -> None:
    await anchored_log(make_client)
    await append_rows(database, 2)
    check = await verify_chain(database, anchor_key=KEY.encode())
    assert (check.ok, check.rows, check.anchored_id, check.rows_after_anchor) == (True, 6, 4, 2)
    report = verify_audit_cli(database)
    assert report.returncode == 0 and "last anchored position: row 4" in report.stdout, report.stdout + report.stderr
    assert "2 rows after it are not anchored yet" in report.stdout

    async with database.engine.begin() as conn:
        await conn.execute(sa.delete(audit_log).where(audit_log.c.id >= 4))
    assert (await verify_chain(database)).ok  # the hash chain alone cannot see it
    check = await verify_chain(database, anchor_key=KEY.encode())
    assert not check.ok and "rows are missing" in check.problem and "row 4" in check.problem
    report = verify_audit_cli(database)
    assert report.returncode == 1 and "BROKEN" in report.stdout and "row 4" in report.stdout


async def test_an_edit_with_every_later_hash_recomputed_is_detected(make_client: Any, database: Database) -> None:
    await anchored_log(make_client)
    async with database.engine.begin() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(sa.select(audit_log).order_by(audit_log.c.id))]
        rows[1]["actor"] = "mallory"
        prev_hash = rows[0]["hash"]
        for row in rows[1:]:
            row["prev_hash"], row["hash"] = prev_hash, chain_hash(prev_hash, row)
            prev_hash = row["hash"]
            await conn.execute(sa.update(audit_log).where(audit_log.c.id == row["id"]).values(**row))
    assert (await verify_chain(database)).ok  # a consistent rewrite fools the hash chain
    check = await verify_chain(database, anchor_key=KEY.encode())
    assert not check.ok and check.first_bad_id == 4 and "checkpoint" in check.problem


async def test_a_forged_or_removed_checkpoint_is_detected(make_client: Any, database: Database) -> None:
    await anchored_log(make_client)
    await append_rows(database, 1)
    assert await write_checkpoint(database, KEY.encode()) is not None
    assert await write_checkpoint(database, KEY.encode()) is None  # nothing new to anchor
    await append_rows(database, 1)
    await write_checkpoint(database, KEY.encode())
    assert (await verify_chain(database, anchor_key=KEY.encode())).ok
    assert not (await verify_chain(database, anchor_key=b"another key")).ok

    async with database.engine.begin() as conn:
        await conn.execute(sa.delete(audit_checkpoints).where(audit_checkpoints.c.audit_id == 5))
    check = await verify_chain(database, anchor_key=KEY.encode())
    assert not check.ok and "does not follow" in check.problem
