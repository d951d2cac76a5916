"""Tenant isolation and the task-level rule, through the API with auth on: a cross-tenant probe over every
GET route of the OpenAPI document (statistics included), the event log, webhook deliveries to real loopback
receivers and the SSE stream; deployments, instances and webhook subscriptions kept in the caller's tenants, tasks
visible only to their assignee and candidates."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.engines.testing.polling import eventually
from gateway.settings import Settings
from tests.auth.conftest import AUDIENCE, Gateway, Provider, bearer
from tests.conformance.harnesses.camunda7 import HARNESS as CAMUNDA
from tests.conformance.harnesses.embedded import APPROVAL, CHARGING, register_charging
from tests.events.conftest import QUICK, serve
from tests.events.receiver import Receiver
from tests.events.test_stream import stream

P = "/api/processes"


def counted(body: dict[str, Any]) -> int:
    """A count each statistics route answers, > 0 for one tenant's populated data (`populate`)."""
    if "summary" in body:  # /statistics
        return int(body["summary"]["total_instances"] + body["summary"]["incidents"] + body["summary"]["total_tasks"])
    if "by_candidate_group" in body:  # /tasks/statistics
        return int(body["open"] + body["claimed"] + sum(g["open"] for g in body["by_candidate_group"]))
    if "throughput" in body:  # /performance: instances started = per hour x the period's hours
        return round(body["throughput"]["instances_per_hour"] * 24 * 30)
    if "elements" in body:  # /statistics/definitions/{key}/elements
        return int(sum(e["active"] + e["completed"] + e["incidents"] for e in body["elements"]))
    return int(sum(item["instances_affected"] for item in body["items"]))  # /bottlenecks


STATISTICS = {
    f"{P}/statistics",
    f"{P}/statistics/definitions/{{definition_key}}/elements",
    f"{P}/tasks/statistics",
    f"{P}/performance",
    f"{P}/bottlenecks",
}
SSE_STREAM = (
    f"{P}/events/stream"  # endless: probed over real HTTP by test_the_sse_stream_carries_only_the_callers_tenants
)


@dataclass
class TenantData:
    """What one tenant created: ids by path parameter, and every id it owns (for leak scanning)."""

    ids: dict[str, str] = field(default_factory=dict)
    owned: set[str] = field(default_factory=set)


async def call(client: httpx.AsyncClient, token: str, method: str, path: str, status: int, **kw: Any) -> Any:
    response = await client.request(method, path, headers=bearer(token), **kw)
    assert response.status_code == status, f"{method} {path}: {response.text}"
    return response.json() if response.content else None


async def populate(gw: Gateway, token: str, receiver: Receiver | None = None) -> TenantData:
    """A webhook subscription (to `receiver`, before anything else, so that it gets every event of the tenant),
    a deployment, a running instance with an open user task, a failed instance with an incident, a bulk
    operation: one of each kind of object the API can name."""
    data = TenantData()
    client = gw.client
    if receiver is not None:
        subscription = await call(client, token, "POST", f"{P}/subscriptions", 201, json={"url": receiver.url})
        data.ids["subscription_id"] = subscription["id"]
    for xml in (APPROVAL, CHARGING):
        deployment = await call(client, token, "POST", f"{P}/definitions", 201, files={"file": ("p.bpmn", xml)})
        data.owned |= {deployment["deployment_id"], *(d["id"] for d in deployment["definitions"])}
    data.ids["definition_id"] = deployment["definitions"][0]["id"]
    instance = await call(client, token, "POST", f"{P}/instances", 201, json={"definition_key": "approval"})
    data.ids["instance_id"] = instance["id"]
    tasks = await call(client, token, "GET", f"{P}/tasks", 200, params={"instance_id": instance["id"]})
    data.ids["task_id"] = tasks["items"][0]["id"]
    failing = await call(
        client, token, "POST", f"{P}/instances", 201, json={"definition_key": "charging", "variables": {"fail": True}}
    )

    async def incidents() -> list[dict[str, Any]]:
        page = await call(client, token, "GET", f"{P}/incidents", 200, params={"instance_id": failing["id"]})
        return page["items"]

    (incident,) = await eventually(incidents, lambda items: len(items) == 1, 5.0)
    data.ids["incident_id"] = incident["id"]
    details = await call(client, token, "GET", f"{P}/incidents/{incident['id']}", 200)
    data.ids["engine_incident_id"] = details["engine_incidents"][0]["id"]
    operation = await call(client, token, "POST", f"{P}/incidents/retry", 202, json={"filter": {"status": "open"}})
    data.ids["operation_id"] = operation["operation_id"]
    data.owned |= {instance["id"], failing["id"], *data.ids.values()}
    return data


@pytest.fixture
async def gateway(make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    for name, value in QUICK.items():  # webhooks to loopback receivers, relayed every 50 ms
        monkeypatch.setenv(f"PM_EVENTS_{name}", value)
    async with make_gateway() as gw:
        await register_charging(gw.app.state.registry.get("local").adapter)
        yield gw


def admin_of(provider: Provider, *tenants: str, sub: str | None = None) -> str:
    return provider.mint({"sub": sub or f"admin-{'-'.join(tenants)}", "roles": ["admin"], "tenants": list(tenants)})


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    """A webhook receiver on loopback per subscriber: t1's, t2's and one for a subscription of every tenant."""
    built = {name: Receiver() for name in ("t1", "t2", "all")}
    for receiver in built.values():
        await receiver.start()
    yield built
    for receiver in built.values():
        await receiver.stop()


async def test_no_get_route_and_no_event_leaks_another_tenants_data(
    gateway: Gateway, provider: Provider, receivers: dict[str, Receiver]
) -> None:
    t1, t2, everyone = admin_of(provider, "t1"), admin_of(provider, "t2"), admin_of(provider, "*", sub="root")
    both = admin_of(provider, "t1", "t2")
    client = gateway.client
    unscoped = await call(client, everyone, "POST", f"{P}/subscriptions", 201, json={"url": receivers["all"].url})
    assert unscoped["tenant_id"] is None
    ours, theirs = await populate(gateway, t1, receivers["t1"]), await populate(gateway, t2, receivers["t2"])
    await gateway.app.state.analytics.projector.run_once(full=True)
    spec = (await client.get("/openapi.json")).json()
    get_routes = sorted(path for path, item in spec["paths"].items() if "get" in item and path.startswith(P))

    probes, leaks = 0, []
    for template in get_routes:
        names = [name for name in ours.ids if f"{{{name}}}" in template]
        if names:
            foreign, unknown = template, template
            for name in names:
                foreign = foreign.replace(f"{{{name}}}", ours.ids[name])
                unknown = unknown.replace(f"{{{name}}}", "no-such-id")
            seen = await client.get(foreign, headers=bearer(t2))
            missing = await client.get(unknown, headers=bearer(t2))
            probes += 1
            same = {**seen.json(), "instance": None, "detail": None} == {
                **missing.json(),
                "instance": None,
                "detail": None,
            }
            seen_detail = seen.json().get("detail", "")
            for name in names:
                seen_detail = seen_detail.replace(ours.ids[name], "X")
            same_detail = seen_detail == missing.json().get("detail", "").replace("no-such-id", "X")
            if seen.status_code != 404 or not same or not same_detail:
                leaks.append((template, seen.status_code, seen.text[:200]))
            mine = template
            for name in names:
                mine = mine.replace(f"{{{name}}}", theirs.ids[name])
            assert (await client.get(mine, headers=bearer(t2))).status_code == 200, mine  # t2 reads its own
        elif template in STATISTICS:
            # Both tenants hold the same data: each tenant's caller counts half of what a caller of every tenant
            # counts. t2 asks first, so an answer cached without its tenants would be served to the others.
            path = template.replace("{definition_key}", "approval")
            figures = [counted(await call(client, token, "GET", path, 200)) for token in (t2, everyone, t1, both)]
            probes += 1
            if not (figures[0] > 0 and figures[0] == figures[2] and figures[1] == 2 * figures[0] == figures[3]):
                leaks.append((template, "t2, every tenant, t1, t1 and t2:", figures))
        elif template == SSE_STREAM:
            probes += 1
        elif template == f"{P}/incidents/statistics/by-error":
            groups = (await client.get(template, headers=bearer(t2))).json()["items"]
            probes += 1
            if sum(group["open_count"] for group in groups) != 1:  # t2's one incident; t1 has one too
                leaks.append((template, groups))
        else:
            response = await client.get(
                template, params={"size": 500} if "events" not in template else {"limit": 1000}, headers=bearer(t2)
            )
            assert response.status_code == 200, (template, response.text)
            probes += 1
            text = response.text
            found = sorted(i for i in ours.owned if i in text)
            if found or '"tenant_id":"t1"' in text.replace(" ", ""):
                leaks.append((template, found))
            mine_text = (await client.get(template, headers=bearer(t1))).text
            if template not in (f"{P}/engines", f"{P}/me"):  # no tenant data
                assert any(i in mine_text for i in ours.owned), f"{template}: t1 must see its own data"
    events = (await client.get(f"{P}/events", params={"limit": 1000}, headers=bearer(t2))).json()["items"]
    assert events and {e["tenant_id"] for e in events} == {"t2"}
    audit = (await client.get(f"{P}/audit", params={"size": 500}, headers=bearer(t2))).json()["items"]
    assert audit and {row["tenant_id"] for row in audit} == {"t2"}

    # Webhooks: each tenant's receiver gets exactly its tenant's events; the subscription of every tenant gets all.
    expected: dict[str, set[str]] = {}
    for name, token in (("t1", t1), ("t2", t2), ("all", everyone)):
        page = await call(client, token, "GET", f"{P}/events", 200, params={"limit": 1000})
        expected[name] = {event["id"] for event in page["items"]}
    for name, receiver in receivers.items():
        received = await receiver.wait_for(lambda got, name=name: len(got) >= len(expected[name]))
        probes += 1
        if {r.event["id"] for r in received} != expected[name]:
            leaks.append(("webhook", name, sorted({r.event["tenant_id"] for r in received}, key=str)))
    if any(i in r.body.decode() for r in receivers["t2"].received for i in ours.owned):
        leaks.append(("webhook", "t2 received t1's ids"))
    assert expected["all"] == expected["t1"] | expected["t2"] and expected["t1"] and expected["t2"]
    # A replay of t2's subscription queues t2's events only.
    replay = await call(
        client,
        t2,
        "POST",
        f"{P}/subscriptions/{theirs.ids['subscription_id']}/recover",
        202,
        json={"since": "2020-01-01"},
    )
    assert replay["deliveries"] == len(expected["t2"])
    print(f"cross-tenant probe: {len(get_routes)} GET routes and {len(receivers)} webhook receivers, {leaks=}")
    assert probes == len(get_routes) + len(receivers)
    assert leaks == []


async def test_the_sse_stream_carries_only_the_callers_tenants(sqlite_url: str, provider: Provider) -> None:
    settings = Settings(
        database_url=sqlite_url,
        auto_migrate=False,
        engines=[{"name": "local", "type": "embedded", "default": True}],
        auth_mode="jwt",
        auth_issuer=provider.url,
        auth_audience=AUDIENCE,
    )
    t1, t2 = admin_of(provider, "t1"), admin_of(provider, "t2")
    async with serve(settings) as gw:
        for token in (t1, t2):  # t1 first: a leaking stream would start with t1's events
            await call(gw.client, token, "POST", f"{P}/definitions", 201, files={"file": ("p.bpmn", APPROVAL)})
            await call(gw.client, token, "POST", f"{P}/instances", 201, json={"definition_key": "approval"})
        ours = (await call(gw.client, t1, "GET", f"{P}/events", 200, params={"limit": 1000}))["items"]
        theirs = (await call(gw.client, t2, "GET", f"{P}/events", 200, params={"limit": 1000}))["items"]
        assert ours and theirs and {e["tenant_id"] for e in ours} == {"t1"}
        async with stream(gw, headers=bearer(t2), after=0) as reader:
            seen = [await reader.next_event() for _ in theirs]
    assert [e["id"] for e in seen] == [e["cursor"] for e in theirs]
    assert {e["data"]["tenant_id"] for e in seen} == {"t2"}


async def test_webhook_subscriptions_belong_to_the_callers_tenant(gateway: Gateway, provider: Provider) -> None:
    client = gateway.client
    one, both, everyone = admin_of(provider, "t1"), admin_of(provider, "t1", "t2"), admin_of(provider, "*")
    hook = {"url": "http://127.0.0.1:9/hook"}
    mine = await call(client, one, "POST", f"{P}/subscriptions", 201, json=hook)
    assert mine["tenant_id"] == "t1"
    refused = await client.post(f"{P}/subscriptions", json={**hook, "tenant_id": "t2"}, headers=bearer(one))
    assert refused.status_code == 403 and "only in your tenants (t1)" in refused.json()["detail"]
    ambiguous = await client.post(f"{P}/subscriptions", json=hook, headers=bearer(both))
    assert ambiguous.status_code == 400 and "Give tenant_id" in ambiguous.json()["detail"]
    second = await call(client, both, "POST", f"{P}/subscriptions", 201, json={**hook, "tenant_id": "t2"})
    assert second["tenant_id"] == "t2"
    unscoped = await call(client, everyone, "POST", f"{P}/subscriptions", 201, json=hook)
    assert unscoped["tenant_id"] is None

    listed = await call(client, one, "GET", f"{P}/subscriptions", 200)
    assert [s["id"] for s in listed["items"]] == [mine["id"]] and listed["total"] == 1
    assert (await call(client, both, "GET", f"{P}/subscriptions", 200))["total"] == 2
    assert (await call(client, everyone, "GET", f"{P}/subscriptions", 200))["total"] == 3

    other = admin_of(provider, "t2")
    sid = mine["id"]
    for method, path, body in [
        ("GET", f"{P}/subscriptions/{sid}", None),
        ("GET", f"{P}/subscriptions/{sid}/deliveries", None),
        ("PATCH", f"{P}/subscriptions/{sid}", {"active": False}),
        ("POST", f"{P}/subscriptions/{sid}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("POST", f"{P}/subscriptions/{sid}/deliveries/no-such-id/retry", None),
        ("POST", f"{P}/subscriptions/{sid}/test", None),
        ("DELETE", f"{P}/subscriptions/{sid}", None),
    ]:
        response = await client.request(method, path, json=body, headers=bearer(other))
        assert response.status_code == 404 and response.json()["detail"] == f"Subscription {sid} does not exist"
    assert (await call(client, one, "GET", f"{P}/subscriptions/{sid}", 200))["active"] is True  # unchanged

    audit = await call(client, everyone, "GET", f"{P}/audit", 200, params={"resource_type": "subscription"})
    assert sorted((r["actor"], r["operation"], r["status"], r["tenant_id"]) for r in audit["items"]) == sorted(
        [
            ("admin-t1", "create", 201, "t1"),
            ("admin-t1", "create", 403, "t1"),
            ("admin-t1-t2", "create", 400, None),
            ("admin-t1-t2", "create", 201, "t2"),
            ("admin-*", "create", 201, None),
            *[("admin-t2", operation, 404, "t2") for operation in ("update", "recover", "retry_delivery", "delete")],
        ]
    )


async def test_commands_on_another_tenants_objects_are_404_and_audited(gateway: Gateway, provider: Provider) -> None:
    t1, t2 = admin_of(provider, "t1"), admin_of(provider, "t2")
    ours = await populate(gateway, t1)
    client = gateway.client
    ids = ours.ids
    commands = [
        ("POST", f"{P}/tasks/{ids['task_id']}/complete", {}),
        ("POST", f"{P}/tasks/{ids['task_id']}/claim", {"user_id": "admin-t2"}),
        ("DELETE", f"{P}/instances/{ids['instance_id']}", None),
        ("PUT", f"{P}/instances/{ids['instance_id']}/variables", {"variables": {"a": 1}}),
        ("PUT", f"{P}/definitions/{ids['definition_id']}/suspended", {"suspended": True}),
        ("DELETE", f"{P}/definitions/{ids['definition_id']}", None),
        ("POST", f"{P}/incidents/{ids['incident_id']}/acknowledge", {}),
        ("POST", f"{P}/instances", {"definition_id": ids["definition_id"]}),
    ]
    for method, path, body in commands:
        response = await client.request(method, path, json=body, headers=bearer(t2))
        assert response.status_code == 404, (method, path, response.text)
    refused = (await client.get(f"{P}/audit", params={"actor": "admin-t2", "size": 100}, headers=bearer(t2))).json()
    assert [(row["outcome"], row["status"], row["tenant_id"]) for row in refused["items"]] == [
        ("failure", 404, "t2")
    ] * len(commands)
    # nothing changed for t1
    task = await call(client, t1, "GET", f"{P}/tasks/{ids['task_id']}", 200)
    assert task["status"] == "created" and task["assignee"] is None
    assert (await call(client, t1, "GET", f"{P}/instances/{ids['instance_id']}", 200))["status"] == "active"


async def test_deployments_and_instances_stay_in_the_callers_tenants(gateway: Gateway, provider: Provider) -> None:
    client = gateway.client
    one, both = admin_of(provider, "t1"), admin_of(provider, "t1", "t2")
    deployed = await call(client, one, "POST", f"{P}/definitions", 201, files={"file": ("a.bpmn", APPROVAL)})
    assert deployed["definitions"][0]["tenant_id"] == "t1"  # the tenant reaches the engine
    refused = await client.post(
        f"{P}/definitions", files={"file": ("a.bpmn", APPROVAL)}, data={"tenant_id": "t2"}, headers=bearer(one)
    )
    assert refused.status_code == 403 and "only in your tenants (t1)" in refused.json()["detail"]
    ambiguous = await client.post(f"{P}/definitions", files={"file": ("a.bpmn", APPROVAL)}, headers=bearer(both))
    assert ambiguous.status_code == 400 and "Give tenant_id" in ambiguous.json()["detail"]
    await call(
        client, both, "POST", f"{P}/definitions", 201, files={"file": ("a.bpmn", APPROVAL)}, data={"tenant_id": "t2"}
    )

    started = await call(client, one, "POST", f"{P}/instances", 201, json={"definition_key": "approval"})
    assert started["tenant_id"] == "t1"

    # A caller of two tenants pages through both, tenant after tenant, with exact totals.
    first = await call(client, both, "GET", f"{P}/definitions", 200, params={"size": 1, "page": 1})
    second = await call(client, both, "GET", f"{P}/definitions", 200, params={"size": 1, "page": 2})
    assert (first["total"], second["total"]) == (2, 2)
    assert [first["items"][0]["tenant_id"], second["items"][0]["tenant_id"]] == ["t1", "t2"]
    only_t2 = await call(client, both, "GET", f"{P}/definitions", 200, params={"tenant_id": "t2"})
    assert [d["tenant_id"] for d in only_t2["items"]] == ["t2"]
    not_mine = await call(client, one, "GET", f"{P}/definitions", 200, params={"tenant_id": "t2"})
    assert not_mine["total"] == 0


async def test_a_task_is_seen_only_by_its_assignee_and_candidates(gateway: Gateway, provider: Provider) -> None:
    client = gateway.client
    admin = admin_of(provider, "t1")
    await call(client, admin, "POST", f"{P}/definitions", 201, files={"file": ("a.bpmn", APPROVAL)})
    instance = await call(client, admin, "POST", f"{P}/instances", 201, json={"definition_key": "approval"})
    (task,) = (await call(client, admin, "GET", f"{P}/tasks", 200, params={"instance_id": instance["id"]}))["items"]

    def user(sub: str, *groups: str) -> str:
        return provider.mint({"sub": sub, "roles": ["task-user"], "groups": list(groups), "tenants": ["t1"]})

    seller, outsider = user("sam", "sales"), user("otto", "hr")
    assert [t["id"] for t in (await call(client, seller, "GET", f"{P}/tasks", 200))["items"]] == [task["id"]]
    assert (await call(client, outsider, "GET", f"{P}/tasks", 200))["items"] == []
    for method, path, body in [
        ("GET", f"{P}/tasks/{task['id']}", None),
        ("POST", f"{P}/tasks/{task['id']}/claim", {"user_id": "otto"}),  # 404, not 403: no existence leak
        ("POST", f"{P}/tasks/{task['id']}/complete", {}),
    ]:
        response = await client.request(method, path, json=body, headers=bearer(outsider))
        assert response.status_code == 404, (path, response.text)
    # claiming for someone else needs task:assign, which a task user lacks
    for_other = await client.post(f"{P}/tasks/{task['id']}/claim", json={"user_id": "otto"}, headers=bearer(seller))
    assert for_other.status_code == 403 and "'task:assign'" in for_other.json()["detail"]
    claimed = await call(client, seller, "POST", f"{P}/tasks/{task['id']}/claim", 200, json={"user_id": "sam"})
    assert claimed["assignee"] == "sam"
    done = await client.post(f"{P}/tasks/{task['id']}/complete", json={}, headers=bearer(seller))
    assert done.status_code == 204, done.text
    audit = (await call(client, admin, "GET", f"{P}/audit", 200, params={"resource_id": task["id"]}))["items"]
    assert [(r["actor"], r["operation"], r["status"]) for r in reversed(audit)] == [
        ("otto", "claim", 404),
        ("otto", "complete", 404),
        ("sam", "claim", 403),
        ("sam", "claim", 200),
        ("sam", "complete", 204),
    ]


async def test_permissions_scoped_to_definition_keys(make_gateway: Any, provider: Provider, tmp_path: Any) -> None:
    roles = tmp_path / "roles.json"
    roles.write_text(
        json.dumps({"roles": {"admin": ["*"], "order-starter": ["instance:start@order-*", "instance:read@order-*"]}})
    )
    async with make_gateway(auth_roles_file=roles) as gw:
        admin = admin_of(provider, "t1")
        order = APPROVAL.replace(b'id="approval"', b'id="order-approval"')
        for xml in (APPROVAL, order):
            await call(gw.client, admin, "POST", f"{P}/definitions", 201, files={"file": ("a.bpmn", xml)})
        starter = provider.mint({"sub": "olga", "roles": ["order-starter"], "tenants": ["t1"]})
        await call(gw.client, starter, "POST", f"{P}/instances", 201, json={"definition_key": "order-approval"})
        refused = await gw.client.post(f"{P}/instances", json={"definition_key": "approval"}, headers=bearer(starter))
        assert refused.status_code == 403 and "for process definition 'approval'" in refused.json()["detail"]
        unfiltered = await gw.client.get(f"{P}/instances", headers=bearer(starter))
        assert unfiltered.status_code == 403 and "definition_key" in unfiltered.json()["detail"]
        mine = await call(gw.client, starter, "GET", f"{P}/instances", 200, params={"definition_key": "order-approval"})
        assert mine["total"] == 1


@pytest.mark.parametrize("engine", ["embedded", "camunda7"])
async def test_claim_next_takes_only_a_task_of_the_callers_tenants(
    make_gateway: Any, provider: Provider, engine: str
) -> None:
    """The queue of a group spans tenants; a caller limited to one tenant takes its tenant's tasks and then hears
    204, though the other tenant's older task still waits (embedded: one statement; Camunda 7: query then claim)."""
    if engine == "embedded":
        settings: dict[str, Any] = {}
        bpmn = APPROVAL
    else:
        settings = {
            "engines": [{"name": "camunda", "default": True, **CAMUNDA.engine}],
            "engine_transports": {"camunda": CAMUNDA.make_transport()},
        }
        bpmn = CAMUNDA.bpmn["approval"]
    async with make_gateway(**settings) as gw:
        client = gw.client
        admin = admin_of(provider, "t1", "t2")
        started: dict[str, str] = {}
        for tenant in ("t2", "t1"):  # t2's task is the older one: first in the queue without the tenant rule
            await call(
                client,
                admin,
                "POST",
                f"{P}/definitions",
                201,
                files={"file": ("a.bpmn", bpmn)},
                data={"tenant_id": tenant},
            )
            body = {"definition_key": "approval", "tenant_id": tenant}
            started[tenant] = (await call(client, admin, "POST", f"{P}/instances", 201, json=body))["id"]

        seller = provider.mint({"sub": "sam", "roles": ["task-user"], "groups": ["sales"], "tenants": ["t1"]})
        claimed = await call(client, seller, "POST", f"{P}/tasks/claim-next", 200, json={})
        assert (claimed["instance_id"], claimed["tenant_id"], claimed["assignee"]) == (started["t1"], "t1", "sam")
        assert (await client.post(f"{P}/tasks/claim-next", json={}, headers=bearer(seller))).status_code == 204
        waiting = await call(client, admin, "GET", f"{P}/tasks", 200, params={"instance_id": started["t2"]})
        assert [task["assignee"] for task in waiting["items"]] == [None]


async def test_an_sse_stream_ends_when_its_token_expires(
    sqlite_url: str, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream outlives the request that checked its token: once the token expired (with the leeway) it ends,
    and events committed after that no longer reach it; the client reconnects with a fresh token."""
    monkeypatch.setenv("PM_EVENTS_SSE_HEARTBEAT", "0.2")
    settings = Settings(
        database_url=sqlite_url,
        auto_migrate=False,
        engines=[{"name": "local", "type": "embedded", "default": True}],
        auth_mode="jwt",
        auth_issuer=provider.url,
        auth_audience=AUDIENCE,
        auth_leeway=0,
    )
    lasting = admin_of(provider, "t1")
    async with serve(settings) as gw:
        await call(gw.client, lasting, "POST", f"{P}/definitions", 201, files={"file": ("p.bpmn", APPROVAL)})
        expires = int(time.time()) + 3
        brief = provider.mint({"sub": "s", "roles": ["admin"], "tenants": ["t1"], "exp": expires})
        async with stream(gw, headers=bearer(brief)) as reader:
            first = await call(gw.client, lasting, "POST", f"{P}/instances", 201, json={"definition_key": "approval"})
            assert (await reader.next_event())["data"]["instance_id"] == first["id"]
            await asyncio.sleep(max(0.0, expires + 0.5 - time.time()))  # past `exp`
            await call(gw.client, lasting, "POST", f"{P}/instances", 201, json={"definition_key": "approval"})
            seen = []
            with pytest.raises(EOFError):  # the stream ends (a TimeoutError if it went on)
                while True:
                    seen.append(await reader.next_event())
        assert {event["data"]["instance_id"] for event in seen} <= {first["id"]}  # nothing of the second
        gone = await gw.client.get(f"{P}/events/stream", headers=bearer(brief))
        assert gone.status_code == 401 and "expired" in gone.json()["detail"]
