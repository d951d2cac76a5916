"""The Incident Center API on fake engines: the workflow through HTTP, problem responses, filters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.tables import audit_log, outbox
from incidents.models import incident_history
from tests.incidents.fake_engine import FakeWorld
from tests.incidents.helpers import (
    Gateway,
    count,
    incident_audit,
    incident_events,
    rows,
)

ALICE = {"X-User-Id": "alice"}


@pytest.fixture
async def api(make_gateway: Callable[..., Any]) -> AsyncIterator[Gateway]:
    async with make_gateway() as gateway:
        yield gateway


async def detected(api: Gateway, world: FakeWorld, instance_id: str = "pi-1", **failure: Any) -> dict[str, Any]:
    """Make the fake engine fail and wait for the gateway's record."""
    world.fail(instance_id, **failure)
    found = await eventually(
        lambda: api.incidents(instance_id=instance_id, status="open"), lambda items: len(items) == 1
    )
    assert len(found) == 1, found
    return found[0]


async def post(api: Gateway, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
    response = await api.client.post(f"/api/processes/incidents/{path}", json=body, headers=ALICE)
    assert response.status_code == status, response.text
    return response.json()


async def refused(api: Gateway, path: str, body: dict[str, Any] | None, status: int) -> dict[str, Any]:
    response = await api.client.post(f"/api/processes/incidents/{path}", json=body, headers=ALICE)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


async def test_list_and_get_an_incident(api: Gateway, world: FakeWorld) -> None:
    listed = await detected(api, world, message="Card gateway timed out")
    assert listed["engine"] == "fake" and listed["status"] == "open" and listed["severity"] == "medium"
    assert listed["incident_message"] == "Card gateway timed out"
    assert listed["engine_incident_ids"] == list(world.incidents)
    assert "history" not in listed

    incident = await api.incident(listed["id"])
    assert [h["action"] for h in incident["history"]] == ["created"]
    assert incident["engine_incidents"][0]["open"] is True
    assert incident["resolution"] is None and incident["retry_count"] == 0

    missing = await api.client.get("/api/processes/incidents/no-such-incident")
    assert missing.status_code == 404 and missing.json()["detail"] == "Incident no-such-incident does not exist"


JAVA_TRACE = (
    "java.lang.IllegalStateException: Card gateway timed out\n"
    "\tat com.example.CardGateway.charge(CardGateway.java:42)\n"
)


async def test_an_engine_incidents_stack_trace_is_read_live_from_the_engine_only_when_asked(
    api: Gateway, world: FakeWorld
) -> None:
    listed = await detected(api, world, message="Card gateway timed out", detail=JAVA_TRACE)
    (engine_incident_id,) = listed["engine_incident_ids"]
    incident = await api.incident(listed["id"])
    assert "detail" not in incident["engine_incidents"][0]  # the record's reads stay off the engine
    path = f"/api/processes/incidents/{listed['id']}/engine-incidents/{engine_incident_id}"

    read = await api.client.get(path)
    assert read.status_code == 200, read.text
    found = read.json()
    assert (found["id"], found["engine"], found["message"]) == (engine_incident_id, "fake", "Card gateway timed out")
    assert found["detail"] == JAVA_TRACE and found["activity_id"] == "charge"

    world.down = True  # read live: an unreachable engine answers its problem, not a stored copy
    unavailable = await api.client.get(path)
    assert unavailable.status_code == 503 and unavailable.headers["content-type"] == "application/problem+json"
    assert unavailable.json()["detail"] == "Engine 'fake' is unreachable"
    world.down = False

    other = await detected(api, world, "pi-2")
    unlinked = await api.client.get(
        f"/api/processes/incidents/{listed['id']}/engine-incidents/{other['engine_incident_ids'][0]}"
    )
    assert unlinked.status_code == 404 and unlinked.headers["content-type"] == "application/problem+json"
    assert unlinked.json()["detail"] == (
        f"Engine incident {other['engine_incident_ids'][0]} is not linked to incident {listed['id']}"
    )
    unknown = await api.client.get(f"/api/processes/incidents/no-such-incident/engine-incidents/{engine_incident_id}")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "Incident no-such-incident does not exist"

    world.fix(engine_incident_id)  # fixed in Cockpit: the engine no longer keeps it
    await eventually(lambda: api.incident(listed["id"]), lambda i: i["status"] == "resolved")
    gone = await api.client.get(path)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["detail"] == (
        f"Engine incident {engine_incident_id} of incident {listed['id']} is no longer kept by the engine"
    )
    assert gone.json()["engine"] == "fake"


async def test_an_engine_incident_without_a_stack_trace_has_a_null_detail(api: Gateway, world: FakeWorld) -> None:
    listed = await detected(api, world)
    (engine_incident_id,) = listed["engine_incident_ids"]
    read = await api.client.get(f"/api/processes/incidents/{listed['id']}/engine-incidents/{engine_incident_id}")
    assert read.status_code == 200 and read.json()["detail"] is None


async def test_filters_sorting_and_paging(api: Gateway, world: FakeWorld, basic_world: FakeWorld) -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    world.fail("pi-1", created=old)
    world.fail("pi-2", incident_type="deadLetterJob", definition_key="shipping")
    basic_world.fail("pi-9")
    everything = await eventually(api.incidents, lambda items: len(items) == 3)
    assert len(everything) == 3  # every engine unless `engine` filters
    assert len(await api.incidents(engine="*")) == 3

    assert [i["instance_id"] for i in await api.incidents(engine="basic")] == ["pi-9"]
    assert [i["instance_id"] for i in await api.incidents(definition_key="shipping")] == ["pi-2"]
    assert [i["instance_id"] for i in await api.incidents(incident_type="deadLetterJob")] == ["pi-2"]
    assert [i["instance_id"] for i in await api.incidents(severity="high")] == ["pi-2"]
    after = (old + timedelta(minutes=1)).isoformat()
    assert sorted(i["instance_id"] for i in await api.incidents(created_after=after)) == ["pi-2", "pi-9"]
    assert (await api.incidents(sort="created", order="asc"))[0]["instance_id"] == "pi-1"
    assert (await api.incidents(sort="severity", order="desc"))[0]["instance_id"] == "pi-2"

    page = (await api.client.get("/api/processes/incidents", params={"size": 2, "page": 2})).json()
    assert (page["total"], page["page"], page["size"], len(page["items"])) == (3, 2, 2, 1)
    bad = await api.client.get("/api/processes/incidents", params={"sort": "assignee"})
    assert bad.status_code == 422
    bad = await api.client.get("/api/processes/incidents", params={"status": "sleeping"})
    assert bad.status_code == 422


async def test_acknowledge_assign_comment_and_escalate(api: Gateway, world: FakeWorld) -> None:
    incident_id = (await detected(api, world))["id"]

    acknowledged = await post(api, f"{incident_id}/acknowledge", {"message": "Looking"})
    assert acknowledged["status"] == "acknowledged"
    problem = await refused(api, f"{incident_id}/acknowledge", None, 409)
    assert problem["detail"] == f"Incident {incident_id} is acknowledged; it can be acknowledged only when open"

    assigned = await post(api, f"{incident_id}/assign", {"user_id": "bob"})
    assert (assigned["status"], assigned["assignee"]) == ("acknowledged", "bob")

    commented = await post(api, f"{incident_id}/comments", {"message": "PSP down since 10:02"}, status=201)
    last = commented["history"][-1]
    assert (last["action"], last["message"], last["user"]) == ("commented", "PSP down since 10:02", "alice")
    assert world.annotations == {commented["engine_incident_ids"][0]: "PSP down since 10:02"}

    escalated = await post(api, f"{incident_id}/escalate", {"message": "Customer impact"})
    assert (escalated["status"], escalated["escalation_level"]) == ("escalated", 1)
    escalated = await post(api, f"{incident_id}/escalate", {"message": "Still down", "level": 3})
    assert escalated["escalation_level"] == 3
    problem = await refused(api, f"{incident_id}/escalate", {"message": "Down", "level": 2}, 422)
    assert "already escalated to level 3" in problem["detail"]

    assert [h["action"] for h in escalated["history"]] == [
        "created",
        "acknowledged",
        "assigned",
        "commented",
        "escalated",
        "escalated",
    ]
    assert [h["user"] for h in escalated["history"]] == ["system", *["alice"] * 5]


async def test_an_assigned_open_incident_is_acknowledged(api: Gateway, world: FakeWorld) -> None:
    incident_id = (await detected(api, world))["id"]
    assigned = await post(api, f"{incident_id}/assign", {"user_id": "bob"})
    assert (assigned["status"], assigned["assignee"]) == ("acknowledged", "bob")


async def test_retry_with_variables_resolves_when_the_engine_incident_is_gone(
    api: Gateway, world: FakeWorld, database: Database
) -> None:
    incident_id = (await detected(api, world))["id"]
    retrying = await post(api, f"{incident_id}/retry", {"variables": {"fail": False}}, status=202)
    assert (retrying["status"], retrying["retry_count"]) == ("retrying", 1)
    assert retrying["history"][-1]["details"]["variables"] == {"fail": "Boolean"}
    assert world.variables["pi-1"]["fail"].value is False

    resolved = await eventually(lambda: api.incident(incident_id), lambda i: i["status"] == "resolved")
    assert resolved["resolution"]["type"] == "retry"
    problem = await refused(api, f"{incident_id}/retry", {}, 409)
    assert problem["detail"] == (
        f"Incident {incident_id} is resolved; it can be retried only when open, acknowledged or escalated"
    )
    assert [e["type"].rsplit(".", 1)[1] for e in await incident_events(database)] == ["created", "updated", "resolved"]
    retry_audit = [a for a in await incident_audit(database) if a["operation"] == "retry" and a["outcome"] == "success"]
    assert retry_audit[0]["request"] == {"retries": 1, "variables": {"fail": "Boolean"}}  # names and types, no values
    assert retry_audit[0]["status"] == 202 and retry_audit[0]["actor"] == "alice"


async def test_a_retry_that_fails_again_reopens_the_incident_with_recurred(api: Gateway, world: FakeWorld) -> None:
    incident_id = (await detected(api, world))["id"]
    await post(api, f"{incident_id}/retry", {"retries": 2}, status=202)
    reopened = await eventually(lambda: api.incident(incident_id), lambda i: i["status"] == "open")
    assert [h["action"] for h in reopened["history"]] == ["created", "retried", "recurred"]
    assert len(reopened["engine_incident_ids"]) == 2
    assert len(await api.incidents()) == 1


async def test_resolve_manual_then_everything_but_comments_is_refused(api: Gateway, world: FakeWorld) -> None:
    incident_id = (await detected(api, world))["id"]
    resolved = await post(api, f"{incident_id}/resolve", {"resolution_type": "manual", "message": "Charged by hand"})
    assert resolved["status"] == "resolved"
    assert resolved["resolution"]["type"] == "manual" and resolved["resolution"]["resolved_by"] == "alice"
    assert resolved["resolution"]["message"] == "Charged by hand"
    assert world.incidents  # a manual resolution leaves the engine alone

    for path, body in (
        ("resolve", {"resolution_type": "manual", "message": "again"}),
        ("retry", {}),
        ("assign", {"user_id": "bob"}),
        ("escalate", {"message": "late"}),
        ("acknowledge", {}),
    ):
        problem = await refused(api, f"{incident_id}/{path}", body, 409)
        assert problem["title"] == "Conflict" and f"Incident {incident_id} is resolved" in problem["detail"]
    await post(api, f"{incident_id}/comments", {"message": "Post-mortem on Monday"}, status=201)


async def test_resolve_skip_and_abort_act_on_the_engine(api: Gateway, world: FakeWorld, database: Database) -> None:
    skipped_id = (await detected(api, world, "pi-1"))["id"]
    skipped_engine_incident = next(iter(world.incidents))
    skipped = await post(api, f"{skipped_id}/resolve", {"resolution_type": "skip", "message": "Not needed"})
    assert skipped["resolution"]["type"] == "skip"
    assert world.resolved_without_retry == [skipped_engine_incident]
    assert [link["open"] for link in skipped["engine_incidents"]] == [False]

    aborted_id = (await detected(api, world, "pi-2"))["id"]
    aborted = await post(api, f"{aborted_id}/resolve", {"resolution_type": "abort", "message": "Order cancelled"})
    assert aborted["resolution"]["type"] == "abort"
    assert world.terminated == {"pi-2": f"Incident {aborted_id} aborted: Order cancelled"}
    terminated = await rows(database, sa.select(outbox).where(outbox.c.type == "process_manager.instance.terminated"))
    assert [(e["instance_id"], e["data"]["incident_id"]) for e in terminated] == [("pi-2", aborted_id)]


async def test_skip_on_an_engine_without_it_is_501_naming_the_engine(api: Gateway, basic_world: FakeWorld) -> None:
    basic_world.fail("pi-9")
    (incident,) = await eventually(lambda: api.incidents(engine="basic"), lambda items: len(items) == 1)
    problem = await refused(api, f"{incident['id']}/resolve", {"resolution_type": "skip", "message": "x"}, 501)
    assert problem["detail"] == "Engine 'basic' (fake-basic) does not support resolving an incident without a retry"
    assert (await api.incident(incident["id"]))["status"] == "open"

    commented = await post(api, f"{incident['id']}/comments", {"message": "No annotations there"}, status=201)
    assert commented["history"][-1]["details"] == {}
    assert basic_world.annotations == {}


async def test_an_unknown_engine_is_a_404_naming_the_known_ones(api: Gateway, basic_world: FakeWorld) -> None:
    for path in ("/api/processes/incidents", "/api/processes/incidents/statistics/by-error"):
        response = await api.client.get(path, params={"engine": "nope"})
        assert response.status_code == 404, response.text
        assert "Unknown engine 'nope'. Known engines: basic" in response.json()["detail"]
    assert (await api.client.get("/api/processes/incidents", params={"engine": "*"})).status_code == 200


async def test_a_failed_action_changes_nothing_but_is_audited(
    api: Gateway, world: FakeWorld, database: Database
) -> None:
    incident_id = (await detected(api, world))["id"]
    history_before = await count(database, incident_history)
    events_before = len(await incident_events(database))
    world.down = True

    problem = await refused(api, f"{incident_id}/retry", {"variables": {"fail": False}}, 503)
    assert problem["engine"] == "fake"
    world.down = False
    incident = await api.incident(incident_id)
    assert (incident["status"], incident["retry_count"]) == ("open", 0)
    assert await count(database, incident_history) == history_before
    assert len(await incident_events(database)) == events_before
    failure = (await rows(database, sa.select(audit_log).where(audit_log.c.outcome == "failure")))[-1]
    assert (failure["operation"], failure["resource_id"], failure["status"], failure["actor"]) == (
        "retry",
        incident_id,
        503,
        "alice",
    )


async def test_every_action_writes_one_history_entry_one_audit_row_and_one_event(
    api: Gateway, world: FakeWorld, database: Database
) -> None:
    incident_id = (await detected(api, world))["id"]
    await post(api, f"{incident_id}/acknowledge")
    await post(api, f"{incident_id}/assign", {"user_id": "bob"})
    await post(api, f"{incident_id}/comments", {"message": "note"}, status=201)
    await post(api, f"{incident_id}/escalate", {"message": "up"})
    await post(api, f"{incident_id}/resolve", {"resolution_type": "modify", "message": "moved the token in Cockpit"})

    history = await count(database, incident_history)
    audits = [a for a in await incident_audit(database) if a["outcome"] == "success"]
    events = await incident_events(database)
    assert history == len(audits) == len(events) == 6
    assert [a["operation"] for a in audits] == ["detect", "acknowledge", "assign", "comment", "escalate", "resolve"]
    assert [e["data"]["action"] for e in events] == [
        "created",
        "acknowledged",
        "assigned",
        "commented",
        "escalated",
        "resolved",
    ]
    assert {e["data"]["incident_id"] for e in events} == {incident_id}
    assert [e["actor"] for e in events] == ["system", *["alice"] * 5]


INVALID_BODIES = [
    ("resolve", {"message": "no type"}),
    ("resolve", {"resolution_type": "external", "message": "only the sync resolves as external"}),
    ("resolve", {"resolution_type": "manual", "message": ""}),
    ("assign", {}),
    ("comments", {"message": ""}),
    ("retry", {"retries": 0}),
    ("retry", {"variables": {"when": {"value": "not a date", "type": "Date"}}}),
    ("escalate", {"message": "x", "level": 0}),
]


async def test_invalid_bodies_are_422_and_change_nothing(api: Gateway, world: FakeWorld) -> None:
    incident_id = (await detected(api, world))["id"]
    for path, body in INVALID_BODIES:
        problem = await refused(api, f"{incident_id}/{path}", body, 422)
        assert problem["errors"], (path, body)
    incident = await api.incident(incident_id)
    assert incident["status"] == "open" and len(incident["history"]) == 1


async def test_actions_on_an_unknown_incident_are_404(api: Gateway) -> None:
    problem = await refused(api, "nope/assign", {"user_id": "bob"}, 404)
    assert problem["detail"] == "Incident nope does not exist"
