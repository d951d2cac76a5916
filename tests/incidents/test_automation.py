"""The policies at work: automatic retries with backoff, escalation of forgotten incidents, severity by age."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.tables import audit_log
from incidents.actions import perform
from incidents.center import IncidentCenter
from incidents.models import incident_history, incidents
from tests.incidents.fake_engine import FakeWorld
from tests.incidents.helpers import rows

QUICK = timedelta(milliseconds=20)


class Clock:
    """The Incident Center's time, moved only by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    for module in ("incidents.center", "incidents.service"):
        monkeypatch.setattr(f"{module}.utcnow", clock)
    return clock


async def history(center: IncidentCenter) -> list[tuple[str, str, dict[str, Any]]]:
    entries = await rows(center.db, sa.select(incident_history).order_by(incident_history.c.id))
    return [(entry["action"], entry["actor"], entry["details"]) for entry in entries]


async def record(center: IncidentCenter) -> dict[str, Any]:
    (found,) = await rows(center.db, sa.select(incidents))
    return found


async def test_transient_incidents_are_retried_automatically_with_backoff_until_the_attempts_run_out(
    make_center: Callable[..., Any], world: FakeWorld, clock: Clock
) -> None:
    backoff = timedelta(seconds=30)
    async with make_center(auto_retry_attempts=2, auto_retry_backoff=backoff) as center:
        world.fail("pi-1")  # keeps failing: `fail` stays true
        await center.syncs["fake"].run_once()
        found = await record(center)
        assert found["next_retry_at"] - found["detected_at"] == backoff

        await center.apply_policies()  # not due yet
        assert sum(world.retries.values()) == 0
        clock.advance(backoff - timedelta(microseconds=1))
        await center.apply_policies()  # still not due
        assert sum(world.retries.values()) == 0
        clock.advance(timedelta(microseconds=1))
        await center.apply_policies()
        await center.syncs["fake"].run_once()  # failed again: the next retry waits twice as long
        found = await record(center)
        assert found["next_retry_at"] - found["updated"] == 2 * backoff
        clock.advance(2 * backoff)
        await center.apply_policies()
        await center.syncs["fake"].run_once()
        await center.apply_policies()

        found = await record(center)
        assert sum(world.retries.values()) == 2
        assert (found["status"], found["retry_count"], found["auto_retries"], found["next_retry_at"]) == (
            "open",
            2,
            2,
            None,
        )
        actions = await history(center)
        assert [(action, actor) for action, actor, _ in actions] == [
            ("created", "system"),
            ("retried", "system"),
            ("recurred", "system"),
            ("retried", "system"),
            ("recurred", "system"),
        ]
        assert actions[1][2]["automatic"] is True


async def test_only_open_incidents_of_transient_types_are_retried_automatically(
    make_center: Callable[..., Any], world: FakeWorld
) -> None:
    async with make_center(auto_retry_attempts=3, auto_retry_backoff=QUICK) as center:
        world.fail("pi-1", incident_type="conditionError")
        await center.syncs["fake"].run_once()
        await asyncio.sleep(0.05)
        await center.apply_policies()
        assert sum(world.retries.values()) == 0


async def test_an_acknowledged_incident_is_left_to_the_person_by_the_automatic_retry(
    make_center: Callable[..., Any], world: FakeWorld
) -> None:
    async with make_center(auto_retry_attempts=3, auto_retry_backoff=QUICK) as center:
        world.fail("pi-1")
        await center.syncs["fake"].run_once()
        found = await record(center)
        await perform(
            center.db,
            actor="alice",
            operation="acknowledge",
            incident_id=found["id"],
            request={},
            change=lambda uow: center.service.acknowledge(uow, found["id"], None),
        )
        await asyncio.sleep(0.05)
        await center.apply_policies()
        assert sum(world.retries.values()) == 0
        after = await record(center)
        assert (after["status"], after["auto_retries"], after["retry_count"]) == ("acknowledged", 0, 0)
        assert after["next_retry_at"] is not None  # due, but the rule AUTOMATIC_RETRY applies to open records only


async def test_an_automatic_retry_the_engine_refuses_waits_for_the_next_backoff(
    make_center: Callable[..., Any], world: FakeWorld
) -> None:
    async with make_center(auto_retry_attempts=3, auto_retry_backoff=QUICK) as center:
        world.fail("pi-1")
        await center.syncs["fake"].run_once()
        await asyncio.sleep(0.05)
        world.down = True
        await center.apply_policies()
        found = await record(center)
        assert (found["status"], found["auto_retries"]) == ("open", 1)
        assert found["next_retry_at"] is not None
        failures = await rows(center.db, sa.select(audit_log).where(audit_log.c.outcome == "failure"))
        assert [(f["operation"], f["actor"], f["status"]) for f in failures] == [("retry", "system", 503)]


async def test_incidents_left_open_are_escalated_once(make_center: Callable[..., Any], world: FakeWorld) -> None:
    async with make_center(escalation_timeout=QUICK) as center:
        world.fail("pi-1")
        world.fail("pi-2")
        await center.syncs["fake"].run_once()
        (acknowledged_id,) = [
            r["id"] for r in await rows(center.db, sa.select(incidents)) if r["instance_id"] == "pi-2"
        ]
        await perform(
            center.db,
            actor="alice",
            operation="acknowledge",
            incident_id=acknowledged_id,
            request={},
            change=lambda uow: center.service.acknowledge(uow, acknowledged_id, None),
        )
        await asyncio.sleep(0.05)
        await center.apply_policies()
        await center.apply_policies()

        statuses = {
            r["instance_id"]: (r["status"], r["escalation_level"]) for r in await rows(center.db, sa.select(incidents))
        }
        assert statuses == {"pi-1": ("escalated", 1), "pi-2": ("acknowledged", 0)}
        escalations = [(actor, details) for action, actor, details in await history(center) if action == "escalated"]
        assert escalations == [("system", {"level": 1})]


async def test_severity_rises_with_age(make_center: Callable[..., Any], world: FakeWorld) -> None:
    async with make_center(severity_age_step=timedelta(hours=1)) as center:
        world.fail("pi-1")
        world.fail("pi-2", created=datetime.now(UTC) - timedelta(minutes=90))
        await center.syncs["fake"].run_once()
        severities = {r["instance_id"]: r["severity"] for r in await rows(center.db, sa.select(incidents))}
        assert severities == {"pi-1": "medium", "pi-2": "high"}  # already an hour old when detected

        async with center.db.sessionmaker() as session, session.begin():  # two hours pass
            for row in (await session.execute(sa.select(incidents.c.id, incidents.c.created))).all():
                moved = (
                    incidents.update().where(incidents.c.id == row.id).values(created=row.created - timedelta(hours=2))
                )
                await session.execute(moved)
        await center.apply_policies()
        await center.apply_policies()
        severities = {r["instance_id"]: r["severity"] for r in await rows(center.db, sa.select(incidents))}
        assert severities == {"pi-1": "critical", "pi-2": "critical"}
        changes = [(actor, details) for action, actor, details in await history(center) if action == "severity_changed"]
        assert sorted(d["from"] for _, d in changes) == ["high", "medium"]
        assert {(actor, d["to"]) for actor, d in changes} == {("system", "critical")}
