"""The audit chain stays one linear chain under concurrent writers, and the anchors catch what hashes alone cannot."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import sqlalchemy as sa

from gateway.db import Database
from gateway.journal import verify_chain
from gateway.tables import audit_log
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
