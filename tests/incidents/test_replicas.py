"""Two gateway replicas on one PostgreSQL database: one leader, exactly one record per engine incident."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from incidents.center import IncidentCenter
from incidents.models import incident_links, incidents
from tests.incidents.fake_engine import FakeWorld
from tests.incidents.helpers import count


@pytest.fixture
async def replicas(make_center: Callable[..., Any], database: Database) -> AsyncIterator[list[IncidentCenter]]:
    """Two Incident Centers with their own connection pools, neither started nor leader yet."""
    if database.is_sqlite:
        pytest.skip("a SQLite deployment is one process; replicas need PostgreSQL")
    async with AsyncExitStack() as stack:
        centers = []
        for _ in range(2):
            db = Database(database.url)
            stack.push_async_callback(db.dispose)
            centers.append(await stack.enter_async_context(make_center(db=db, lead=False, poll_interval=0.05)))
        yield centers


async def test_only_one_replica_leads_and_the_other_takes_over(replicas: list[IncidentCenter]) -> None:
    first, second = replicas
    assert await first.leadership.refresh()
    assert not await second.leadership.refresh()
    assert await first.leadership.refresh()  # keeps it
    await first.leadership.release()
    assert await second.leadership.refresh()
    assert not await first.leadership.refresh()


async def test_two_running_replicas_record_each_engine_incident_once(
    replicas: list[IncidentCenter], world: FakeWorld, database: Database
) -> None:
    for center in replicas:
        await center.start()
    for n in range(20):
        world.fail(f"pi-{n}")
    assert await eventually(lambda: count(database, incidents), lambda found: found == 20) == 20
    await asyncio.sleep(0.2)  # several more rounds of both replicas
    assert await count(database, incidents) == 20
    assert await count(database, incident_links) == 20
    assert [center.leadership.held for center in replicas].count(True) == 1


async def test_replicas_syncing_at_the_same_moment_still_create_one_record_each(
    replicas: list[IncidentCenter], world: FakeWorld, database: Database
) -> None:
    """Should two replicas ever sync at once, the unique engine incident link settles the race."""
    for round_ in range(3):
        for n in range(10):
            world.fail(f"pi-{round_}-{n}")
        await asyncio.gather(*(center.syncs["fake"].run_once() for center in replicas))
    assert await count(database, incidents) == 30
    assert await count(database, incident_links) == 30
