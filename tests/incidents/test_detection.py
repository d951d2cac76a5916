"""Detection: engine incidents become records, recurrences link to them, vanished ones resolve them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.db import Database
from gateway.errors import EngineUnavailable
from gateway.uow import reading
from gateway.variables import parse_request_variables
from incidents.actions import perform
from incidents.center import IncidentCenter
from incidents.models import IncidentDetails, ResolutionType, incident_links, incidents
from incidents.repository import incident_details
from tests.incidents.fake_engine import FakeWorld
from tests.incidents.helpers import count, incident_audit, incident_events


async def details(center: IncidentCenter, incident_id: str) -> IncidentDetails:
    async with reading(center.db) as session:
        return await incident_details(session, incident_id)


async def only_incident(center: IncidentCenter) -> IncidentDetails:
    async with reading(center.db) as session:
        ids = [row[0] for row in await session.execute(sa.select(incidents.c.id))]
    assert len(ids) == 1, ids
    return await details(center, ids[0])


async def retry(center: IncidentCenter, incident_id: str, **variables: Any) -> None:
    await perform(
        center.db,
        actor="alice",
        operation="retry",
        incident_id=incident_id,
        request={},
        change=lambda uow: center.service.retry(uow, incident_id, variables=parse_request_variables(variables)),
    )


async def test_a_new_engine_incident_becomes_an_open_record_with_history_event_and_audit(
    center: IncidentCenter, world: FakeWorld
) -> None:
    failure = world.fail("pi-1", message="Card gateway timed out")
    await center.syncs["fake"].run_once()

    record = await only_incident(center)
    assert (record.engine, record.status, record.severity) == ("fake", "open", "medium")
    assert (record.instance_id, record.activity_id, record.definition_key) == ("pi-1", "charge", "charging")
    assert (record.incident_type, record.incident_message) == ("failedJob", "Card gateway timed out")
    assert record.engine_incident_ids == [failure.id]
    assert record.created == failure.created and record.detected_at >= failure.created
    assert [(h.action, h.user) for h in record.history] == [("created", "system")]

    (event,) = await incident_events(center.db)
    assert event["type"] == "process_manager.incident.created"
    assert (event["engine"], event["instance_id"], event["data"]["incident_id"]) == ("fake", "pi-1", record.id)
    (audit,) = await incident_audit(center.db)
    assert (audit["operation"], audit["resource_id"], audit["actor"]) == ("detect", record.id, "system")

    await center.syncs["fake"].run_once()  # seen again: nothing changes
    assert await count(center.db, incidents) == 1
    assert len(await incident_events(center.db)) == 1


async def test_an_engine_incident_fixed_outside_the_gateway_is_resolved_as_external(
    center: IncidentCenter, world: FakeWorld
) -> None:
    failure = world.fail("pi-1")
    await center.syncs["fake"].run_once()
    world.fix(failure.id)
    await center.syncs["fake"].run_once()

    record = await only_incident(center)
    assert record.status == "resolved"
    assert record.resolution is not None and record.resolution.type is ResolutionType.EXTERNAL
    assert [h.action for h in record.history] == ["created", "resolved"]
    assert [link.open for link in record.engine_incidents] == [False]
    assert [e["type"] for e in await incident_events(center.db)][-1] == "process_manager.incident.resolved"


async def test_a_failure_that_recurs_after_a_retry_reopens_the_same_record(
    center: IncidentCenter, world: FakeWorld
) -> None:
    first = world.fail("pi-1")
    await center.syncs["fake"].run_once()
    record = await only_incident(center)

    await retry(center, record.id)  # `fail` is still true: the engine fails again at once
    assert (await details(center, record.id)).status == "retrying"
    await center.syncs["fake"].run_once()

    reopened = await only_incident(center)
    assert reopened.status == "open"
    assert [h.action for h in reopened.history] == ["created", "retried", "recurred"]
    assert reopened.engine_incident_ids[0] == first.id and len(reopened.engine_incident_ids) == 2
    assert [link.open for link in reopened.engine_incidents] == [False, True]
    assert reopened.retry_count == 1

    await retry(center, record.id, fail=False)
    await center.syncs["fake"].run_once()
    fixed = await only_incident(center)
    assert fixed.status == "resolved" and fixed.resolution is not None
    assert fixed.resolution.type is ResolutionType.RETRY
    assert world.incidents == {}
    assert world.variables["pi-1"]["fail"].value is False


async def test_a_retry_whose_engine_incident_is_gone_resolves_as_retry(
    center: IncidentCenter, world: FakeWorld
) -> None:
    world.fail("pi-1")
    world.variables["pi-1"] = {}  # nothing makes the work fail any more
    await center.syncs["fake"].run_once()
    record = await only_incident(center)
    await retry(center, record.id)
    await center.syncs["fake"].run_once()
    resolved = await only_incident(center)
    assert resolved.status == "resolved" and resolved.resolution and resolved.resolution.type == "retry"
    assert resolved.resolution.resolved_by == "system"


async def test_a_retried_job_the_engine_lists_again_before_running_it_resolves_as_retry(
    center: IncidentCenter, world: FakeWorld
) -> None:
    # Flowable: the retry moves the dead-letter job to the executable jobs with its old exception; a detection
    # round that sees it there must not take it for a new failure, or the record ends `external`.
    world.queues_reruns = True
    world.fail("pi-1")
    await center.syncs["fake"].run_once()
    record = await only_incident(center)

    await retry(center, record.id, fail=False)
    await center.syncs["fake"].run_once()  # the engine lists the queued re-run, not yet run
    in_flight = await details(center, record.id)
    assert in_flight.status == "retrying"
    assert [h.action for h in in_flight.history] == ["created", "retried"]
    assert [e["data"]["action"] for e in await incident_events(center.db)] == ["created", "retried"]

    world.run_pending_reruns()
    await center.syncs["fake"].run_once()
    resolved = await details(center, record.id)
    assert resolved.status == "resolved" and resolved.resolution is not None
    assert resolved.resolution.type is ResolutionType.RETRY
    assert [h.action for h in resolved.history] == ["created", "retried", "resolved"]


async def test_a_retried_job_that_fails_again_when_the_engine_runs_it_reopens_the_record(
    center: IncidentCenter, world: FakeWorld
) -> None:
    world.queues_reruns = True
    world.fail("pi-1")
    await center.syncs["fake"].run_once()
    record = await only_incident(center)

    await retry(center, record.id)  # `fail` is still true
    await center.syncs["fake"].run_once()
    assert (await details(center, record.id)).status == "retrying"
    world.run_pending_reruns()
    await center.syncs["fake"].run_once()

    reopened = await details(center, record.id)
    assert reopened.status == "open" and reopened.resolution is None
    assert [h.action for h in reopened.history] == ["created", "retried", "recurred"]
    assert [link.open for link in reopened.engine_incidents] == [False, False, True]


async def test_the_same_place_failing_after_an_external_fix_reopens_with_recurred(
    center: IncidentCenter, world: FakeWorld
) -> None:
    first = world.fail("pi-1")
    await center.syncs["fake"].run_once()
    world.fix(first.id)
    await center.syncs["fake"].run_once()
    world.fail("pi-1")
    await center.syncs["fake"].run_once()
    record = await only_incident(center)
    assert record.status == "open" and record.resolution is None
    assert [h.action for h in record.history] == ["created", "resolved", "recurred"]


async def test_after_a_manual_resolution_a_new_failure_there_is_a_new_incident(
    center: IncidentCenter, world: FakeWorld
) -> None:
    first = world.fail("pi-1")
    await center.syncs["fake"].run_once()
    record = await only_incident(center)
    await perform(
        center.db,
        actor="alice",
        operation="resolve",
        incident_id=record.id,
        request={},
        change=lambda uow: center.service.resolve(uow, record.id, ResolutionType.MANUAL, "Charged by hand"),
    )
    world.fix(first.id)
    world.fail("pi-1")
    await center.syncs["fake"].run_once()
    assert await count(center.db, incidents) == 2
    assert await count(center.db, incidents, incidents.c.status == "open") == 1


async def test_different_places_and_engines_are_different_incidents(
    center: IncidentCenter, world: FakeWorld, basic_world: FakeWorld
) -> None:
    world.fail("pi-1", "charge")
    world.fail("pi-1", "ship")
    world.fail("pi-2", "charge")
    basic_world.fail("pi-1", "charge")
    for sync in center.syncs.values():
        await sync.run_once()
    assert await count(center.db, incidents, incidents.c.engine == "fake") == 3
    assert await count(center.db, incidents, incidents.c.engine == "basic") == 1


async def test_an_unreachable_engine_changes_nothing(center: IncidentCenter, world: FakeWorld) -> None:
    world.fail("pi-1")
    await center.syncs["fake"].run_once()
    world.down = True
    with pytest.raises(EngineUnavailable):
        await center.syncs["fake"].run_once()
    assert (await only_incident(center)).status == "open"


async def test_nothing_is_lost_across_a_restart(
    make_center: Callable[..., Any], database: Database, world: FakeWorld
) -> None:
    kept, fixed_while_down = world.fail("pi-1"), world.fail("pi-2")
    async with make_center() as first:
        await first.syncs["fake"].run_once()

    world.fix(fixed_while_down.id)  # the gateway is down meanwhile
    appeared_while_down = world.fail("pi-3")

    async with make_center(db=Database(database.url)) as second:
        await second.syncs["fake"].run_once()
        async with reading(second.db) as session:
            statuses = dict((await session.execute(sa.select(incidents.c.instance_id, incidents.c.status))).all())
        linked = await count(second.db, incident_links)
        await second.db.dispose()
    assert statuses == {"pi-1": "open", "pi-2": "resolved", "pi-3": "open"}
    assert linked == 3
    assert {kept.id, appeared_while_down.id} <= set(world.incidents)
