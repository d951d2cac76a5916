"""Exact numbers from a hand-built history: five instances of one process around the days of a period in
Europe/Berlin (CET, UTC+1), their activity runs, user tasks, claims, completions and incidents. Every expected
value below is worked out by hand from the formulas in `analytics.service` and the OpenAPI descriptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.db import Database
from gateway.uow import transaction
from incidents import repository as incident_repository
from tests.analytics.history_engine import History

PERIOD = {"from": "2026-11-02", "to": "2026-11-04", "timezone": "Europe/Berlin"}  # [11-01 23:00Z, 11-04 23:00Z)
MIN = 60_000
HOUR = 3_600_000


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def running(history: History) -> None:
    """First read: every instance runs, its review task open."""
    history.instance("i0", "order", at(1, 22, 30))  # starts before the period (22:30Z = 23:30 local on 11-01)
    history.instance("i1", "order", at(2, 8))
    history.instance("i2", "order", at(2, 23, 30))  # 00:30 local on 11-03: counts on 11-03, not 11-02
    history.instance("i3", "order", at(3, 10))
    history.instance("i4", "order", at(4, 12))
    for instance_id, review_start in (
        ("i0", at(1, 22, 30)),
        ("i1", at(2, 8, 10)),
        ("i2", at(2, 23, 30)),
        ("i3", at(3, 10)),
        ("i4", at(4, 12)),
    ):
        start = history.instances[instance_id].start_time
        history.activity(instance_id, "start", "startEvent", start, start)
        history.activity(instance_id, "review", "userTask", review_start)
    history.open_task("t0", "i0", "review", at(1, 22, 30), candidate_groups=["sales"])
    history.open_task("t1", "i1", "review", at(2, 8, 10), due=at(2, 8, 30), candidate_groups=["sales"])
    history.open_task("t2", "i2", "review", at(2, 23, 30), due=at(3, 12), candidate_groups=["sales"])
    history.open_task("t3", "i3", "review", at(3, 10), candidate_groups=["sales"])
    history.open_task("t4", "i4", "review", at(4, 12), due=at(4, 13), candidate_groups=["sales"])


def finished(history: History) -> None:
    """Second read: i0, i1, i2 completed (i1 with a service task after the review), i3 terminated, i4 runs on."""
    history.instance("i0", "order", at(1, 22, 30), at(1, 23, 30))
    history.activity("i0", "review", "userTask", at(1, 22, 30), at(1, 23, 30))
    history.activity("i0", "end", "endEvent", at(1, 23, 30), at(1, 23, 30))
    history.instance("i1", "order", at(2, 8), at(2, 9))
    history.activity("i1", "review", "userTask", at(2, 8, 10), at(2, 8, 50))
    history.activity("i1", "notify", "serviceTask", at(2, 8, 50), at(2, 8, 55))
    history.activity("i1", "end", "endEvent", at(2, 9), at(2, 9))
    history.instance("i2", "order", at(2, 23, 30), at(3, 1, 30))
    history.activity("i2", "review", "userTask", at(2, 23, 30), at(3, 1, 30))
    history.activity("i2", "end", "endEvent", at(3, 1, 30), at(3, 1, 30))
    history.instance("i3", "order", at(3, 10), at(3, 10, 30), status="terminated")
    history.activity("i3", "review", "userTask", at(3, 10), at(3, 10, 30))
    for task_id in ("t0", "t1", "t2", "t3"):
        del history.tasks[task_id]


async def task_event(db: Database, event_type: str, moment: datetime, data: dict[str, Any]) -> None:
    async with transaction(db, actor="alice") as uow:
        uow.emit(event_type, engine="history", instance_id="i1", data={"task_id": "t1", **data})
        uow.events[-1].occurred_at = moment


async def incident(db: Database, incident_id: str, instance_id: str, created: datetime, status: str) -> None:
    async with transaction(db) as uow:
        await incident_repository.insert_incident(
            uow.session,
            {
                "id": incident_id,
                "engine": "history",
                "incident_type": "failedJob",
                "message": "Mail server 10.0.0.7 refused the connection",
                "status": status,
                "severity": "medium",
                "instance_id": instance_id,
                "definition_key": "order",
                "activity_id": "review",
                "activity_name": "Review",
                "retry_count": 0,
                "auto_retries": 0,
                "escalation_level": 0,
                "created": created,
                "detected_at": created,
                "updated": created,
                "status_changed_at": created,
            },
        )


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any], history: History, database: Database) -> Any:
    async with make_gateway() as gateway:
        projector = gateway.app.state.analytics.projector
        running(history)
        await projector.run_once(full=True)
        await task_event(database, "task.assigned", at(2, 8, 20), {"action": "claim", "assignee": "alice"})
        await projector.run_once()
        finished(history)
        await task_event(
            database,
            "task.completed",
            at(2, 8, 50, 30),
            {"task_definition_key": "review", "definition_key": "order", "completed_by": "alice"},
        )
        await incident(database, "inc-1", "i3", at(3, 10, 15), "resolved")
        await incident(database, "inc-2", "i4", at(4, 12, 30), "open")
        await projector.run_once(full=True)
        yield gateway


async def get(gateway: Any, path: str, **params: Any) -> dict[str, Any]:
    response = await gateway.client.get(f"/api/processes{path}", params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generated_at"] and body["data_as_of"]
    return body


async def test_statistics_of_a_period_in_a_non_utc_time_zone(gateway: Any) -> None:
    body = await get(gateway, "/statistics")
    assert body["period"] == {
        "start_date": "2026-11-01T23:00:00Z",
        "end_date": "2026-11-04T23:00:00Z",
        "timezone": "Europe/Berlin",
    }
    assert body["summary"] == {
        "total_instances": 4,  # i1..i4; i0 started before the period
        "active_instances": 1,
        "completed_instances": 2,
        "terminated_instances": 1,
        "suspended_instances": 0,
        "average_duration": 1.5 * HOUR,  # i1 1 h, i2 2 h
        "median_duration": HOUR,  # nearest rank: the 1st of 2
        "total_tasks": 4,  # t1..t4
        "completed_tasks": 2,
        "open_tasks": 1,
        "overdue_tasks": 1,  # t4, due 11-04 13:00Z
        "incidents": 2,
        "resolved_incidents": 1,
    }
    (order,) = body["by_process"]
    assert {k: v for k, v in order.items() if k != "bottlenecks"} == {
        "process_definition_key": "order",
        "process_definition_name": "Order",
        "instances": 4,
        "active_instances": 1,
        "completed_instances": 2,
        "average_duration": 1.5 * HOUR,
        "success_rate": 2 / 3,
        "tasks": 4,
        "completed_tasks": 2,
        "open_tasks": 1,
    }
    assert [(b["activity_id"], b["severity"]) for b in order["bottlenecks"]] == [("review", "critical")]
    assert body["by_day"] == [
        # i0 and i1 complete on 11-02 (i0 at 00:30 local), each after 1 h; t0 and t1 complete that day.
        {
            "date": "2026-11-02",
            "instances": 1,
            "completed_instances": 2,
            "average_duration": HOUR,
            "tasks_completed": 2,
            "incidents": 0,
        },
        {
            "date": "2026-11-03",
            "instances": 2,
            "completed_instances": 1,
            "average_duration": 2 * HOUR,
            "tasks_completed": 1,
            "incidents": 1,
        },
        {
            "date": "2026-11-04",
            "instances": 1,
            "completed_instances": 0,
            "average_duration": None,
            "tasks_completed": 0,
            "incidents": 1,
        },
    ]


async def test_a_period_cut_through_slots_sums_days_slots_and_rows(gateway: Any) -> None:
    """[11-01 22:29:59Z, 11-03 10:00:01Z) in UTC: a second of a slot at each end (read from the rows: i3 starts at
    10:00), whole slots on 11-01 and 11-03 (i0) and the whole UTC day 11-02 (i1, i2) from the roll-ups."""
    params = {"from": "2026-11-01T22:29:59Z", "to": "2026-11-03T10:00:01Z", "timezone": "UTC"}
    body = await get(gateway, "/statistics", **params)
    summary = body["summary"]
    assert {k: summary[k] for k in ("total_instances", "completed_instances", "terminated_instances")} == {
        "total_instances": 4,
        "completed_instances": 3,  # i0 1 h, i1 1 h, i2 2 h
        "terminated_instances": 1,  # i3
    }
    assert (summary["average_duration"], summary["median_duration"]) == (80 * MIN, HOUR)
    assert (summary["total_tasks"], summary["completed_tasks"], summary["open_tasks"]) == (4, 3, 0)  # t3 cancelled
    assert [
        (d["date"], d["instances"], d["completed_instances"], d["average_duration"], d["tasks_completed"])
        for d in body["by_day"]
    ] == [
        ("2026-11-01", 1, 1, HOUR, 1),  # i0 and t0 end at 23:30
        ("2026-11-02", 2, 1, HOUR, 1),  # i1; t1 ends at 08:50
        ("2026-11-03", 1, 1, 2 * HOUR, 1),  # i3 starts at 10:00; i2 and t2 end at 01:30
    ]
    bottlenecks = await get(gateway, "/bottlenecks", **params)
    # review: i0 60 min, i1 40 min, i2 2 h (i3's was canceled); start ×4 with i3's at 10:00.
    assert [(b["activity_id"], b["average_wait_time"], b["instances_affected"]) for b in bottlenecks["items"]] == [
        ("review", 220 / 3 * MIN, 3),
        ("notify", 5.0 * MIN, 1),
        ("end", 0.0, 3),
        ("start", 0.0, 4),
    ]


async def test_bottlenecks_rank_by_wait_against_the_other_runs(gateway: Any) -> None:
    body = await get(gateway, "/bottlenecks", definition_key="order")
    # Completed runs that started in the period: start ×4 (i1..i4, 0 ms), review ×2 (i1 40 min, i2 2 h; i3's was
    # canceled, i4's runs, i0's began before the period), notify ×1 (5 min), end ×3 (i0 at 23:30Z, i1, i2; 0 ms).
    # review: the other 8 runs average 5/8 min, spread ~1.65 min: z ≈ 48, critical. notify: the other 9 average
    # 160/9 min, above it: low.
    assert [
        (b["activity_id"], b["activity_type"], b["average_wait_time"], b["instances_affected"], b["severity"])
        for b in body["items"]
    ] == [
        ("review", "userTask", 80.0 * MIN, 2, "critical"),
        ("notify", "serviceTask", 5.0 * MIN, 1, "low"),
        ("end", "endEvent", 0.0, 3, "low"),
        ("start", "startEvent", 0.0, 4, "low"),
    ]


async def test_element_statistics_for_a_heatmap(gateway: Any) -> None:
    body = await get(gateway, "/statistics/definitions/order/elements")
    assert body["definition_key"] == "order"
    assert body["elements"] == [
        {
            "activity_id": "end",
            "activity_name": "End",
            "activity_type": "endEvent",
            "active": 0,
            "completed": 3,
            "canceled": 0,
            "incidents": 0,
            "average_duration": 0.0,
            "p50_duration": 0,
            "p95_duration": 0,
        },
        {
            "activity_id": "notify",
            "activity_name": "Notify",
            "activity_type": "serviceTask",
            "active": 0,
            "completed": 1,
            "canceled": 0,
            "incidents": 0,
            "average_duration": 5.0 * MIN,
            "p50_duration": 5 * MIN,
            "p95_duration": 5 * MIN,
        },
        {
            "activity_id": "review",
            "activity_name": "Review",
            "activity_type": "userTask",
            "active": 1,
            "completed": 2,
            "canceled": 1,
            "incidents": 1,
            "average_duration": 80.0 * MIN,
            "p50_duration": 40 * MIN,
            "p95_duration": 2 * HOUR,
        },
        {
            "activity_id": "start",
            "activity_name": "Start",
            "activity_type": "startEvent",
            "active": 0,
            "completed": 4,
            "canceled": 0,
            "incidents": 0,
            "average_duration": 0.0,
            "p50_duration": 0,
            "p95_duration": 0,
        },
    ]


async def test_task_statistics_per_group_and_assignee(gateway: Any) -> None:
    body = await get(gateway, "/tasks/statistics")
    completion = (HOUR + 40 * MIN + 2 * HOUR) / 3  # t0 (1 h), t1 (40 min, ended with its activity), t2 (2 h)
    assert {k: v for k, v in body.items() if k.startswith(("open", "claimed", "completed", "overdue", "average"))} == {
        "open": 1,
        "claimed": 0,
        "completed": 3,  # t0 completed at 23:30Z on 11-01, inside the period
        "overdue": 1,
        "average_time_to_claim": 10.0 * MIN,  # t1: created 08:10, claimed 08:20
        "average_time_to_complete": completion,
    }
    assert body["by_candidate_group"] == [
        {
            "candidate_group": "sales",
            "open": 1,
            "claimed": 0,
            "completed": 3,
            "overdue": 1,
            "average_time_to_claim": 10.0 * MIN,
            "average_time_to_complete": completion,
            "oldest_open_task": {"id": "t4", "name": "Review", "instance_id": "i4", "created": "2026-11-04T12:00:00Z"},
        },
    ]
    assert body["by_assignee"] == [
        {"assignee": "alice", "claimed": 0, "completed": 1, "average_time_to_complete": 40.0 * MIN}
    ]


async def test_performance_metrics(gateway: Any) -> None:
    body = await get(gateway, "/performance")
    assert body["throughput"] == {
        "instances_per_hour": 4 / 72,
        "tasks_per_hour": 3 / 72,
        "peak_load_time": "2026-11-02T09:00:00+01:00",  # every hour has one start: the earliest wins
        "capacity_utilization": 4 / 72,
    }
    # Completed in the period: i0 (1 h; review 1 h), i1 (1 h; review 40 min + notify 5 min), i2 (2 h; review 2 h).
    assert body["efficiency"] == {
        "lead_time": (HOUR + HOUR + 2 * HOUR) / 3,
        "cycle_time": (HOUR + 50 * MIN + 2 * HOUR) / 3,  # from the first task's start: i1's review began at 08:10
        "processing_time": (HOUR + 45 * MIN + 2 * HOUR) / 3,
        "wait_time": 5.0 * MIN,  # i1 spent 15 min outside tasks: 15 min / 3
        "automation_rate": 1 / 4,  # notify among i0, i1, i2's reviews (i3's was canceled)
    }
    assert body["quality"] == {
        "first_pass_yield": 1.0,
        "rework_rate": 0.0,
        "error_rate": 2 / 4,  # i3 and i4 had incidents
        "sla_compliance": 1 / 2,  # t1 finished 20 min late, t2 on time, t0 had no due date
    }
    assert body["resource_utilization"] == {"human_resources": {"alice": 1}}


async def test_an_empty_period(gateway: Any) -> None:
    params = {"from": "2026-10-01", "to": "2026-10-02"}
    statistics = await get(gateway, "/statistics", **params)
    assert statistics["summary"] == {
        "total_instances": 0,
        "active_instances": 0,
        "completed_instances": 0,
        "terminated_instances": 0,
        "suspended_instances": 0,
        "average_duration": None,
        "median_duration": None,
        "total_tasks": 0,
        "completed_tasks": 0,
        "open_tasks": 0,
        "overdue_tasks": 0,
        "incidents": 0,
        "resolved_incidents": 0,
    }
    assert statistics["by_process"] == []
    assert [day["date"] for day in statistics["by_day"]] == ["2026-10-01", "2026-10-02"]
    assert all(day["instances"] == 0 and day["average_duration"] is None for day in statistics["by_day"])
    performance = await get(gateway, "/performance", **params)
    assert performance["throughput"] == {
        "instances_per_hour": 0.0,
        "tasks_per_hour": 0.0,
        "peak_load_time": None,
        "capacity_utilization": None,
    }
    assert set(performance["efficiency"].values()) == {None}
    assert set(performance["quality"].values()) == {None}
    assert (await get(gateway, "/bottlenecks", **params))["items"] == []
    tasks = await get(gateway, "/tasks/statistics", **params)
    assert (tasks["completed"], tasks["average_time_to_complete"], tasks["open"]) == (0, None, 1)  # open is now


async def test_a_period_with_one_instance(gateway: Any) -> None:
    body = await get(gateway, "/statistics", **{"from": "2026-11-04", "to": "2026-11-04"})
    assert body["summary"] == {
        "total_instances": 1,
        "active_instances": 1,
        "completed_instances": 0,
        "terminated_instances": 0,
        "suspended_instances": 0,
        "average_duration": None,
        "median_duration": None,
        "total_tasks": 1,
        "completed_tasks": 0,
        "open_tasks": 1,
        "overdue_tasks": 1,
        "incidents": 1,
        "resolved_incidents": 0,
    }
    assert body["by_process"][0]["success_rate"] is None
    assert body["by_day"] == [
        {
            "date": "2026-11-04",
            "instances": 1,
            "completed_instances": 0,
            "average_duration": None,
            "tasks_completed": 0,
            "incidents": 1,
        }
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, "not an ISO 8601 date"),
        ({"timezone": "Mars/Olympus"}, "Unknown time zone"),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "The period is empty"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "longer than 400 days"),
    ],
)
async def test_a_bad_period_is_a_clear_problem(gateway: Any, params: dict[str, str], message: str) -> None:
    response = await gateway.client.get("/api/processes/statistics", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]
