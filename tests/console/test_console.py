"""The operator console in headless chromium: what an operator sees and clicks, against the real gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from gateway.settings import Settings
from tests.auth.conftest import AUDIENCE, Provider, bearer
from tests.console.conftest import CLIENT_ID, HERE, ROOT, AuthorizationServer, run_scenario
from tests.events.conftest import ServedGateway, serve

# Each test runs on SQLite and on PostgreSQL (the `database` fixture; PM_TEST_DATABASE_URL or the local server).

ORDER_PROCESS = str(ROOT / "examples" / "order-process.bpmn")
ORDER_PROCESS_BPMN = (ROOT / "examples" / "order-process.bpmn").read_bytes()
SHIPMENT_BPMN = (HERE / "shipment.bpmn").read_bytes()


@asynccontextmanager
async def jwt_gateway(database: Database, provider: Provider, **settings: object) -> AsyncIterator[ServedGateway]:
    """The gateway with auth on (PM_AUTH_MODE=jwt, keys from `provider` by OIDC discovery), on `database`."""
    async with serve(
        Settings(
            database_url=database.url,
            auto_migrate=False,
            engines=[{"name": "local", "type": "embedded", "default": True}],
            auth_mode="jwt",
            auth_issuer=provider.url,
            auth_audience=AUDIENCE,
            **settings,  # type: ignore[arg-type]
        )
    ) as gateway:
        yield gateway


async def test_the_readme_incident_flow_by_clicking(console: ServedGateway) -> None:
    """Deploy, start with a non-numeric amount, see check-amount marked failed, open the stack trace (read from the
    engine), fix the variable's type and value, retry, see the incident resolved and the instance waiting at Approve
    order."""
    output = await run_scenario(console, "incident_flow.mjs", ORDER_PROCESS)
    assert "incident-flow: ok" in output and "incident-flow-stack-trace.png" in output
    incidents = (await console.client.get("/api/processes/incidents")).json()["items"]
    assert [(i["status"], i["resolution"]["type"]) for i in incidents] == [("resolved", "retry")]


async def deploy_order_process(gateway: ServedGateway) -> None:
    response = await gateway.client.post(
        "/api/processes/definitions", files={"file": ("order-process.bpmn", ORDER_PROCESS_BPMN)}
    )
    assert response.status_code == 201, response.text


async def start_orders(gateway: ServedGateway, amount: object, count: int) -> list[str]:
    ids = []
    for n in range(count):
        body = {"definition_key": "order-process", "business_key": f"order-{n}", "variables": {"amount": amount}}
        response = await gateway.client.post("/api/processes/instances", json=body, headers={"X-User-Id": "alice"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def open_incidents(gateway: ServedGateway, expected: int) -> None:
    async def count() -> int:
        return (await gateway.client.get("/api/processes/incidents", params={"status": "open"})).json()["total"]

    assert await eventually(count, lambda n: n == expected, timeout=30) == expected, "every failure is recorded"


async def test_claim_complete_and_claim_next_in_the_task_inbox(console: ServedGateway) -> None:
    await deploy_order_process(console)
    started = set(await start_orders(console, 120, 3))
    output = await run_scenario(console, "tasks.mjs")
    assert "tasks: ok" in output
    instances = [(await console.client.get(f"/api/processes/instances/{i}")).json() for i in started]
    completed = [i for i in instances if i["status"] == "completed"]
    assert len(completed) == 1, "one task was completed"
    assert completed[0]["variables"]["approved"] == {"value": True, "type": "Boolean"}, "with the typed Boolean"
    bobs = (await console.client.get("/api/processes/tasks", params={"assignee": "bob"})).json()["items"]
    waiting = (await console.client.get("/api/processes/tasks", params={"unassigned": True})).json()["items"]
    assert len(bobs) == 1 and len(waiting) == 1, "claim next took one of the two waiting tasks"
    assert {bobs[0]["instance_id"], waiting[0]["instance_id"], completed[0]["id"]} == started


async def test_bulk_retry_of_an_error_group_shows_its_progress(console: ServedGateway) -> None:
    await deploy_order_process(console)
    await start_orders(console, "abc", 12)
    await open_incidents(console, 12)
    output = await run_scenario(console, "bulk_retry.mjs", "12")
    assert "bulk-retry: ok" in output
    incidents = (await console.client.get("/api/processes/incidents", params={"size": 50})).json()["items"]
    retries = sorted(incident["retry_count"] for incident in incidents)
    assert retries == [1] * 10 + [2, 2], "the bulk retry reached all twelve, the hand-picked retry two of them"


async def test_keyboard_navigation_and_every_control_labelled(console: ServedGateway) -> None:
    await deploy_order_process(console)
    await start_orders(console, "abc", 1)
    await open_incidents(console, 1)
    assert "keyboard: ok" in await run_scenario(console, "keyboard.mjs")


async def test_an_incident_responder_of_one_tenant_sees_only_its_incidents(
    browser_tools: str, database: Database, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth on (PM_AUTH_MODE=jwt): tenants t1 and t2 each have a failing order; carol (incident-responder, t1)
    signs in with a pasted token and sees, opens and acknowledges t1's incident only."""
    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "0.2")
    async with jwt_gateway(database, provider) as gateway:
        instances = {}
        for tenant in ("t1", "t2"):
            admin = bearer(provider.mint({"sub": f"admin-{tenant}", "roles": ["admin"], "tenants": [tenant]}))
            deployed = await gateway.client.post(
                "/api/processes/definitions", files={"file": ("order-process.bpmn", ORDER_PROCESS_BPMN)}, headers=admin
            )
            assert deployed.status_code == 201, deployed.text
            body = {"definition_key": "order-process", "variables": {"amount": "abc"}}
            started = await gateway.client.post("/api/processes/instances", json=body, headers=admin)
            assert started.status_code == 201, started.text
            instances[tenant] = started.json()["id"]
        every = bearer(provider.mint({"sub": "root", "roles": ["admin"], "tenants": ["t1", "t2"]}))

        async def open_count() -> int:
            page = await gateway.client.get("/api/processes/incidents", params={"status": "open"}, headers=every)
            return page.json()["total"]

        assert await eventually(open_count, lambda n: n == 2, timeout=30) == 2
        carol = provider.mint({"sub": "carol", "roles": ["incident-responder"], "tenants": ["t1"]})
        output = await run_scenario(gateway, "tenants.mjs", carol, instances["t1"])
        assert "tenant-limited: ok" in output
        page = (await gateway.client.get("/api/processes/incidents", headers=every)).json()["items"]
        assert {(i["instance_id"], i["status"]) for i in page} == {
            (instances["t1"], "acknowledged"),
            (instances["t2"], "open"),
        }, "carol acknowledged t1's incident and could not touch t2's"


async def test_send_a_message_and_modify_the_instance_on_its_page(console: ServedGateway) -> None:
    """The instance waits for payment-received: the message is sent from the page with a typed variable; a
    modification the engine refuses shows its problem and changes nothing; skipping Pack order moves the token."""
    deployed = await console.client.post("/api/processes/definitions", files={"file": ("shipment.bpmn", SHIPMENT_BPMN)})
    assert deployed.status_code == 201, deployed.text
    started = await console.client.post("/api/processes/instances", json={"definition_key": "shipment"})
    assert started.status_code == 201, started.text
    instance_id = started.json()["id"]
    assert "instance-actions: ok" in await run_scenario(console, "instance_actions.mjs", instance_id)
    instance = (await console.client.get(f"/api/processes/instances/{instance_id}")).json()
    assert [a["id"] for a in instance["current_activities"]] == ["ship-order"]
    assert instance["variables"]["paid"] == {"value": True, "type": "Boolean"}, "the message's typed variable"
    audit = (await console.client.get("/api/processes/audit", params={"resource_id": instance_id})).json()["items"]
    assert [a["status"] for a in audit if a["operation"] == "modify"] == [200, 400], (
        "the refused modification and the applied one are audited, newest first"
    )


async def test_actions_are_hidden_from_a_caller_without_their_permission(
    browser_tools: str, database: Database, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth on: an auditor of t1 sees the failing instance, its incident, a waiting task and the definition with
    no action offered; a process operator of t1 sees the instance's actions."""
    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "0.2")
    async with jwt_gateway(database, provider) as gateway:
        admin = bearer(provider.mint({"sub": "admin", "roles": ["admin"], "tenants": ["t1"]}))
        deployed = await gateway.client.post(
            "/api/processes/definitions", files={"file": ("order-process.bpmn", ORDER_PROCESS_BPMN)}, headers=admin
        )
        assert deployed.status_code == 201, deployed.text
        ids = []
        for amount in ("abc", 120):
            body = {"definition_key": "order-process", "variables": {"amount": amount}}
            started = await gateway.client.post("/api/processes/instances", json=body, headers=admin)
            assert started.status_code == 201, started.text
            ids.append(started.json()["id"])

        async def open_count() -> int:
            page = await gateway.client.get("/api/processes/incidents", params={"status": "open"}, headers=admin)
            return page.json()["total"]

        assert await eventually(open_count, lambda n: n == 1, timeout=30) == 1
        auditor = provider.mint({"sub": "audrey", "roles": ["auditor"], "groups": ["sales"], "tenants": ["t1"]})
        operator = provider.mint({"sub": "otto", "roles": ["process-operator"], "tenants": ["t1"]})
        output = await run_scenario(gateway, "permissions.mjs", auditor, operator, ids[0])
        assert "permissions: ok" in output


async def test_sign_in_through_the_oidc_provider_with_pkce(
    browser_tools: str,
    database: Database,
    authorization_server: AuthorizationServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PM_CONSOLE_OIDC_CLIENT_ID set: "Sign in with the identity provider" goes through the provider's authorize and
    token endpoints (the verifier checked against the S256 challenge) and the incident list is shown to nina. A
    first attempt whose challenge was swapped is refused by the token endpoint and shown as a failed sign-in."""
    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "0.2")
    authorization_server.user = {"sub": "nina", "roles": ["incident-responder"], "tenants": ["t1"]}
    authorization_server.forge_next_challenge = True
    provider = authorization_server.tokens
    async with jwt_gateway(
        database, provider, console_oidc_client_id=CLIENT_ID, console_oidc_scopes="openid profile"
    ) as gateway:
        admin = bearer(provider.mint({"sub": "admin", "roles": ["admin"], "tenants": ["t1"]}))
        deployed = await gateway.client.post(
            "/api/processes/definitions", files={"file": ("order-process.bpmn", ORDER_PROCESS_BPMN)}, headers=admin
        )
        assert deployed.status_code == 201, deployed.text
        body = {"definition_key": "order-process", "variables": {"amount": "abc"}}
        assert (await gateway.client.post("/api/processes/instances", json=body, headers=admin)).status_code == 201

        async def open_count() -> int:
            page = await gateway.client.get("/api/processes/incidents", params={"status": "open"}, headers=admin)
            return page.json()["total"]

        assert await eventually(open_count, lambda n: n == 1, timeout=30) == 1
        assert "oidc: ok" in await run_scenario(gateway, "oidc.mjs", provider.url)
    assert authorization_server.exchanges == ["wrong verifier", "ok"], "the PKCE verifier decides"


async def test_the_console_page_carries_only_public_sign_in_settings(
    database: Database, authorization_server: AuthorizationServer
) -> None:
    """The served page names the issuer, client id and scopes, nothing else; without a client id it names none."""
    provider = authorization_server.tokens
    async with jwt_gateway(database, provider, console_oidc_client_id=CLIENT_ID) as gateway:
        page = (await gateway.client.get("/console")).text
    config = json.loads(page.split('<script id="console-config" type="application/json">')[1].split("</script>")[0])
    assert config == {"oidc": {"issuer": provider.url, "client_id": CLIENT_ID, "scopes": "openid"}}
    async with jwt_gateway(database, provider) as gateway:
        page = (await gateway.client.get("/console")).text
    assert '<script id="console-config" type="application/json">{}</script>' in page
