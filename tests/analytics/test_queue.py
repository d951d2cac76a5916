"""Task queues (`POST /tasks/claim-next`), overdue tasks (`task.overdue`, once) and incidents grouped by error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gateway.db import Database
from gateway.tables import outbox
from gateway.uow import transaction
from incidents import repository as incident_repository
from tests.analytics.history_engine import History
from tests.api.conftest import APPROVAL
from tests.conformance.harnesses.camunda7 import HARNESS as CAMUNDA

EMBEDDED = [{"name": "local", "type": "embedded", "default": True}]


async def start_approvals(
    client: Any, count: int, params: dict[str, str] | None = None, bpmn: bytes = APPROVAL
) -> list[str]:
    deployed = await client.post(
        "/api/processes/definitions", params=params, files={"file": ("a.bpmn", bpmn, "application/xml")}
    )
    assert deployed.status_code == 201, deployed.text
    ids = []
    for n in range(count):
        started = await client.post(
            "/api/processes/instances", params=params, json={"definition_key": "approval", "business_key": str(n)}
        )
        assert started.status_code == 201, started.text
        ids.append(started.json()["id"])
    return ids


async def claim_next(client: Any, user: str, params: dict[str, str] | None = None, **body: Any) -> Any:
    return await client.post("/api/processes/tasks/claim-next", params=params, json=body, headers={"X-User-Id": user})


async def test_concurrent_callers_never_get_the_same_task(make_gateway: Callable[..., Any]) -> None:
    async with make_gateway(engines=EMBEDDED) as gateway:
        client = gateway.client
        instances = await start_approvals(client, 25)
        first = await claim_next(client, "first", candidate_groups=["sales"])
        assert first.status_code == 200, first.text
        assert (first.json()["instance_id"], first.json()["assignee"]) == (instances[0], "first")  # the oldest
        assert (await claim_next(client, "outsider", candidate_groups=["support"])).status_code == 204

        answers = await asyncio.gather(
            *(claim_next(client, f"user-{n}", candidate_groups=["sales"]) for n in range(30))
        )
        claimed = [a.json() for a in answers if a.status_code == 200]
        assert sorted(a.status_code for a in answers) == [200] * 24 + [204] * 6
        assert len({task["id"] for task in claimed}) == 24
        assert first.json()["id"] not in {task["id"] for task in claimed}
        for answer, n in zip(answers, range(30), strict=True):
            if answer.status_code == 200:
                task = (await client.get(f"/api/processes/tasks/{answer.json()['id']}")).json()
                assert task["assignee"] == f"user-{n}"
        events = await client.get(
            "/api/processes/events", params={"types": "process_manager.task.assigned", "limit": 100}
        )
        assert len(events.json()["items"]) == 25


async def test_concurrent_callers_on_an_http_engine_query_then_claim(make_gateway: Callable[..., Any]) -> None:
    engines = [{"name": "camunda", "default": True, **CAMUNDA.engine}]
    async with make_gateway(engines=engines, transports={"camunda": CAMUNDA.make_transport()}) as gateway:
        client = gateway.client
        await start_approvals(client, 12, bpmn=CAMUNDA.bpmn["approval"])
        answers = await asyncio.gather(
            *(claim_next(client, f"user-{n}", candidate_groups=["sales"]) for n in range(15))
        )
        claimed = [a.json() for a in answers if a.status_code == 200]
        assert sorted(a.status_code for a in answers) == [200] * 12 + [204] * 3
        assert len({task["id"] for task in claimed}) == 12
        assert sorted(task["assignee"] for task in claimed) == sorted({task["assignee"] for task in claimed})


async def test_a_task_past_its_due_is_announced_once(
    make_gateway: Callable[..., Any], history: History, database: Database
) -> None:
    now = datetime.now(UTC)
    history.instance("i1", "order", now - timedelta(hours=3))
    history.activity("i1", "review", "userTask", now - timedelta(hours=3))
    history.open_task(
        "late", "i1", "review", now - timedelta(hours=3), due=now - timedelta(hours=1), candidate_groups=["sales"]
    )
    history.open_task(
        "early", "i1", "review", now - timedelta(hours=3), due=now + timedelta(hours=1), candidate_groups=["sales"]
    )
    async with make_gateway() as gateway:
        projector = gateway.app.state.analytics.projector
        await projector.run_once(full=True)
        counts = await asyncio.gather(projector.emit_overdue(), projector.emit_overdue())
        assert sorted(counts) == [0, 1]
        assert await projector.emit_overdue() == 0
        async with database.sessionmaker() as session:
            rows = (
                (await session.execute(sa.select(outbox).where(outbox.c.type == "process_manager.task.overdue")))
                .mappings()
                .all()
            )
        assert [(row["data"]["task_id"], row["engine"], row["instance_id"]) for row in rows] == [
            ("late", "history", "i1")
        ]
        statistics = await gateway.client.get("/api/processes/tasks/statistics")
        assert (statistics.json()["overdue"], statistics.json()["open"]) == (1, 2)


async def open_incident(db: Database, incident_id: str, message: str, key: str, status: str = "open") -> None:
    now = datetime.now(UTC)
    async with transaction(db) as uow:
        await incident_repository.insert_incident(
            uow.session,
            {
                "id": incident_id,
                "engine": "history",
                "incident_type": "failedJob",
                "message": message,
                "status": status,
                "severity": "medium",
                "instance_id": f"instance-{incident_id}",
                "definition_key": key,
                "activity_id": "charge",
                "retry_count": 0,
                "auto_retries": 0,
                "escalation_level": 0,
                "created": now,
                "detected_at": now,
                "updated": now,
                "status_changed_at": now,
            },
        )


async def test_open_incidents_are_grouped_by_their_normalised_error(
    make_gateway: Callable[..., Any], database: Database
) -> None:
    await open_incident(
        database, "a", "Card 4111 declined for order 981 (id 3f2c9a7e-1b2c-4d5e-8f90-123456789abc)", "charging"
    )
    await open_incident(
        database, "b", "Card 5500  declined for order 17 (id 9a9a9a9a-1b2c-4d5e-8f90-123456789abc)", "refund"
    )
    await open_incident(
        database,
        "c",
        "Card 4111 declined for order 3 (id 00000000-1b2c-4d5e-8f90-123456789abc)",
        "charging",
        "resolved",
    )
    await open_incident(database, "d", "Mail server unreachable", "charging")
    async with make_gateway() as gateway:
        response = await gateway.client.get("/api/processes/incidents/statistics/by-error")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["generated_at"] and body["data_as_of"]
        groups = body["items"]
        assert [(g["open_count"], g["definitions"]) for g in groups] == [(2, ["charging", "refund"]), (1, ["charging"])]
        assert groups[1]["incident_message"] == "Mail server unreachable"
        listed = await gateway.client.get("/api/processes/incidents", params={"error_hash": groups[0]["error_hash"]})
        assert sorted(i["id"] for i in listed.json()["items"]) == ["a", "b", "c"]  # the list shows resolved ones too
        assert all(i["error_hash"] == groups[0]["error_hash"] for i in listed.json()["items"])


async def test_the_highest_priority_goes_first_then_the_oldest(make_gateway: Callable[..., Any]) -> None:
    urgent = APPROVAL.replace(b'id="approval" name="Approval"', b'id="urgent" name="Urgent"').replace(
        b'camunda:candidateGroups="sales"', b'camunda:candidateGroups="sales" camunda:priority="80"'
    )
    async with make_gateway(engines=EMBEDDED) as gateway:
        client = gateway.client
        older = await start_approvals(client, 2)
        deployed = await client.post(
            "/api/processes/definitions", files={"file": ("u.bpmn", urgent, "application/xml")}
        )
        assert deployed.status_code == 201, deployed.text
        newest = await client.post("/api/processes/instances", json={"definition_key": "urgent"})
        order = [
            (await claim_next(client, "alice", candidate_groups=["sales"])).json()["instance_id"] for _ in range(3)
        ]
        assert order == [newest.json()["id"], *older]
        assert (await claim_next(client, "alice", definition_key="approval")).status_code == 204
