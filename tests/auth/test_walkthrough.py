"""README "The walkthrough with authentication on": the tokens tools/dev_token.py mints from its local key are
what the gateway accepts through PM_AUTH_JWKS_FILE, and each step works for the role the README gives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.engines.testing.polling import eventually
from tests.auth.conftest import bearer
from tools import dev_token

ORDER_PROCESS = Path(__file__).parents[2] / "examples" / "order-process.bpmn"
B = "/api/processes"


async def test_the_readme_walkthrough_with_auth_on(make_gateway: Any, tmp_path: Path) -> None:
    keys = tmp_path / ".dev-auth"
    assert dev_token.main(["--dir", str(keys), "init"]) == 0
    settings = {name.removeprefix("PM_").lower(): value for name, value in dev_token.init(keys).items()}

    def token(sub: str, roles: str, groups: str = "") -> dict[str, str]:
        return bearer(
            dev_token.mint(
                keys, sub=sub, roles=roles.split(","), groups=groups.split(",") if groups else [], tenants=["acme"]
            )
        )

    admin, alice, bob = token("admin", "admin"), token("alice", "task-user"), token("bob", "task-user", "sales")
    carol, auditor = token("carol", "incident-responder"), token("audrey", "auditor")

    async with make_gateway(**settings) as gw:
        client = gw.client
        assert (await client.get(f"{B}/tasks")).status_code == 401  # no token, no entry

        files = {"file": ("order-process.bpmn", ORDER_PROCESS.read_bytes(), "application/xml")}
        deployed = await client.post(f"{B}/definitions", files=files, headers=admin)
        assert deployed.status_code == 201, deployed.text
        assert deployed.json()["definitions"][0]["tenant_id"] == "acme"

        started = await client.post(
            f"{B}/instances",
            json={"definition_key": "order-process", "business_key": "order-1", "variables": {"amount": 120}},
            headers=alice,
        )
        assert started.status_code == 201, started.text
        assert started.json()["started_by"] == "alice"
        instance_id = started.json()["id"]

        inbox = (
            await client.get(f"{B}/tasks", params={"candidate_group": "sales", "unassigned": True}, headers=bob)
        ).json()
        (task,) = inbox["items"]
        assert (await client.get(f"{B}/tasks", headers=alice)).json()["items"] == []  # not in sales
        assert (
            await client.post(f"{B}/tasks/{task['id']}/claim", json={"user_id": "bob"}, headers=bob)
        ).status_code == 200
        done = await client.post(
            f"{B}/tasks/{task['id']}/complete", json={"variables": {"approved": True}}, headers=bob
        )
        assert done.status_code == 204, done.text
        assert (await client.get(f"{B}/instances/{instance_id}", headers=alice)).json()["status"] == "completed"

        failing = await client.post(
            f"{B}/instances",
            json={"definition_key": "order-process", "business_key": "order-2", "variables": {"amount": "abc"}},
            headers=alice,
        )
        failing_id = failing.json()["id"]

        async def incidents() -> list[dict[str, Any]]:
            return (await client.get(f"{B}/incidents", params={"instance_id": failing_id}, headers=carol)).json()[
                "items"
            ]

        (incident,) = await eventually(incidents, lambda items: len(items) == 1)
        path = f"{B}/incidents/{incident['id']}"
        assert (await client.post(f"{path}/assign", json={"user_id": "carol"}, headers=carol)).status_code == 200
        retried = await client.post(f"{path}/retry", json={"variables": {"amount": {"value": 75}}}, headers=carol)
        assert retried.status_code == 202, retried.text

        async def incident_now() -> dict[str, Any]:
            return (await client.get(path, headers=carol)).json()

        assert (await eventually(incident_now, lambda i: i["status"] == "resolved"))["status"] == "resolved"

        audit = (await client.get(f"{B}/audit", params={"resource_type": "instance"}, headers=auditor)).json()
        assert {row["actor"] for row in audit["items"]} == {"alice"}
        events = (await client.get(f"{B}/events", params={"after": 0}, headers=auditor)).json()["items"]
        assert events and {e["tenant_id"] for e in events} == {"acme"}
        assert (await client.get(f"{B}/audit", headers=alice)).status_code == 403  # a task user reads no audit
