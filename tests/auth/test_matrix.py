"""The permission matrix: every route of the OpenAPI document × a token per default role, plus no token.

The expected permissions are written out here, independently of gateway/auth/roles.json: the route table
from the API's documentation (README "Authentication and authorization"), the role table from the
specification's roles. A route added to the API without an entry here fails the test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.auth.conftest import Provider, bearer

P = "/api/processes"

# Needs a valid token, whatever its roles grant.
AUTHENTICATED = "(any valid token)"

# (method, path template) -> the permission it needs; None: open (health, and the default PM_AUTH_OPEN_PATHS).
REQUIRED: dict[tuple[str, str], str | None] = {
    ("GET", "/health"): None,
    ("GET", "/ready"): None,
    ("GET", "/metrics"): None,
    ("GET", f"{P}/definitions"): "definition:read",
    ("POST", f"{P}/definitions"): "definition:deploy",
    ("GET", f"{P}/definitions/{{definition_id}}"): "definition:read",
    ("GET", f"{P}/definitions/{{definition_id}}/xml"): "definition:read",
    ("PUT", f"{P}/definitions/{{definition_id}}"): "definition:deploy",
    ("DELETE", f"{P}/definitions/{{definition_id}}"): "definition:delete",
    ("PUT", f"{P}/definitions/{{definition_id}}/suspended"): "definition:suspend",
    ("GET", f"{P}/instances"): "instance:read",
    ("POST", f"{P}/instances"): "instance:start",
    ("GET", f"{P}/instances/{{instance_id}}"): "instance:read",
    ("DELETE", f"{P}/instances/{{instance_id}}"): "instance:terminate",
    ("PUT", f"{P}/instances/{{instance_id}}/suspended"): "instance:suspend",
    ("GET", f"{P}/instances/{{instance_id}}/variables"): "instance:read",
    ("PUT", f"{P}/instances/{{instance_id}}/variables"): "instance:write-variables",
    ("POST", f"{P}/instances/{{instance_id}}/modification"): "instance:modify",
    ("POST", f"{P}/instances/{{instance_id}}/migration"): "instance:modify",
    ("POST", f"{P}/messages"): "message:correlate",
    ("POST", f"{P}/signals"): "signal:broadcast",
    ("GET", f"{P}/tasks"): "task:read",
    ("GET", f"{P}/tasks/{{task_id}}"): "task:read",
    ("POST", f"{P}/tasks/{{task_id}}/claim"): "task:claim",
    ("POST", f"{P}/tasks/{{task_id}}/unclaim"): "task:claim",
    ("POST", f"{P}/tasks/{{task_id}}/assign"): "task:assign",
    ("POST", f"{P}/tasks/{{task_id}}/delegate"): "task:delegate",
    ("POST", f"{P}/tasks/{{task_id}}/complete"): "task:complete",
    ("GET", f"{P}/me"): AUTHENTICATED,
    ("GET", f"{P}/engines"): "engines:read",
    ("GET", f"{P}/audit"): "audit:read",
    ("GET", f"{P}/events"): "events:read",
    ("GET", f"{P}/incidents"): "incident:read",
    ("POST", f"{P}/incidents/retry"): "incident:bulk-retry",
    ("GET", f"{P}/incidents/{{incident_id}}"): "incident:read",
    ("GET", f"{P}/incidents/{{incident_id}}/engine-incidents/{{engine_incident_id}}"): "incident:read",
    ("POST", f"{P}/incidents/{{incident_id}}/acknowledge"): "incident:act",
    ("POST", f"{P}/incidents/{{incident_id}}/assign"): "incident:act",
    ("POST", f"{P}/incidents/{{incident_id}}/comments"): "incident:act",
    ("POST", f"{P}/incidents/{{incident_id}}/retry"): "incident:act",
    ("POST", f"{P}/incidents/{{incident_id}}/resolve"): "incident:act",
    ("POST", f"{P}/incidents/{{incident_id}}/escalate"): "incident:act",
    ("GET", f"{P}/operations/{{operation_id}}"): "incident:read",
    ("GET", f"{P}/incidents/statistics/by-error"): "incident:read",
    ("GET", f"{P}/statistics"): "statistics:read",
    ("GET", f"{P}/statistics/definitions/{{definition_key}}/elements"): "statistics:read",
    ("GET", f"{P}/tasks/statistics"): "statistics:read",
    ("GET", f"{P}/performance"): "statistics:read",
    ("GET", f"{P}/bottlenecks"): "statistics:read",
    ("POST", f"{P}/tasks/claim-next"): "task:claim",
    ("GET", f"{P}/events/stream"): "events:read",
    ("GET", f"{P}/subscriptions"): "subscriptions:manage",
    ("POST", f"{P}/subscriptions"): "subscriptions:manage",
    ("GET", f"{P}/subscriptions/{{subscription_id}}"): "subscriptions:manage",
    ("PATCH", f"{P}/subscriptions/{{subscription_id}}"): "subscriptions:manage",
    ("DELETE", f"{P}/subscriptions/{{subscription_id}}"): "subscriptions:manage",
    ("GET", f"{P}/subscriptions/{{subscription_id}}/deliveries"): "subscriptions:manage",
    ("POST", f"{P}/subscriptions/{{subscription_id}}/deliveries/{{delivery_id}}/retry"): "subscriptions:manage",
    ("POST", f"{P}/subscriptions/{{subscription_id}}/recover"): "subscriptions:manage",
    ("POST", f"{P}/subscriptions/{{subscription_id}}/test"): "subscriptions:manage",
}

EVERYTHING = {
    "definition:deploy", "definition:read", "definition:delete", "definition:suspend",
    "instance:start", "instance:read", "instance:terminate", "instance:suspend", "instance:write-variables",
    "instance:modify", "message:correlate", "signal:broadcast",
    "task:read", "task:claim", "task:complete", "task:assign", "task:delegate", "task:admin",
    "incident:read", "incident:act", "incident:bulk-retry",
    "audit:read", "events:read", "subscriptions:manage", "engines:read", "statistics:read",
}  # fmt: skip

# The default roles (service specification, "Security & Compliance"), as README documents them.
ROLES: dict[str, set[str]] = {
    "admin": EVERYTHING,
    "process-designer": {
        "definition:deploy", "definition:read", "definition:delete", "definition:suspend", "instance:read",
        "engines:read",
    },
    "process-operator": {
        "definition:read", "definition:suspend", "instance:start", "instance:read", "instance:terminate",
        "instance:suspend", "instance:write-variables", "instance:modify", "message:correlate", "signal:broadcast",
        "task:read", "task:assign", "task:delegate", "task:admin",
        "incident:read", "incident:act", "events:read", "engines:read", "statistics:read",
    },
    "task-user": {
        "definition:read", "instance:start", "instance:read", "task:read", "task:claim", "task:complete",
        "task:delegate",
    },
    "approver": {"definition:read", "instance:read", "task:read", "task:claim", "task:complete"},
    "incident-responder": {
        "definition:read", "instance:read", "instance:modify", "incident:read", "incident:act", "incident:bulk-retry", "engines:read",
    },
    "auditor": {
        "definition:read", "instance:read", "task:read", "task:admin", "incident:read", "audit:read",
        "events:read", "statistics:read", "engines:read",
    },
    "event-subscriber": {"events:read", "subscriptions:manage"},
}  # fmt: skip

BPMN = (
    '<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'id="d" targetNamespace="http://x"><bpmn:process id="approval" isExecutable="true"><bpmn:startEvent id="s"/>'
    "</bpmn:process></bpmn:definitions>"
)

BODIES: dict[tuple[str, str], Any] = {
    ("POST", f"{P}/definitions"): {"bpmn_xml": BPMN},
    ("PUT", f"{P}/definitions/{{definition_id}}"): {"bpmn_xml": BPMN},
    ("PUT", f"{P}/definitions/{{definition_id}}/suspended"): {"suspended": True},
    ("POST", f"{P}/instances"): {"definition_key": "unknown-process"},
    ("PUT", f"{P}/instances/{{instance_id}}/suspended"): {"suspended": True},
    ("PUT", f"{P}/instances/{{instance_id}}/variables"): {"variables": {"a": 1}},
    ("POST", f"{P}/instances/{{instance_id}}/modification"): {"instructions": [{"type": "cancel", "activity_id": "a"}]},
    ("POST", f"{P}/instances/{{instance_id}}/migration"): {"target_definition_id": "no-such-id"},
    ("POST", f"{P}/messages"): {"message_name": "nobody-waits"},
    ("POST", f"{P}/signals"): {"signal_name": "nobody-listens"},
    ("POST", f"{P}/tasks/{{task_id}}/claim"): {"user_id": "alice"},
    ("POST", f"{P}/tasks/{{task_id}}/assign"): {"user_id": "bob"},
    ("POST", f"{P}/tasks/{{task_id}}/delegate"): {"user_id": "bob"},
    ("POST", f"{P}/tasks/{{task_id}}/complete"): {},
    ("POST", f"{P}/tasks/claim-next"): {},
    ("POST", f"{P}/incidents/retry"): {"filter": {"status": "open"}},
    ("POST", f"{P}/incidents/{{incident_id}}/acknowledge"): {},
    ("POST", f"{P}/incidents/{{incident_id}}/assign"): {"user_id": "bob"},
    ("POST", f"{P}/incidents/{{incident_id}}/comments"): {"message": "note"},
    ("POST", f"{P}/incidents/{{incident_id}}/retry"): {},
    ("POST", f"{P}/incidents/{{incident_id}}/resolve"): {"resolution_type": "manual", "message": "done"},
    ("POST", f"{P}/incidents/{{incident_id}}/escalate"): {"message": "help"},
    ("POST", f"{P}/subscriptions"): {"url": "http://127.0.0.1:9/hook"},
    ("PATCH", f"{P}/subscriptions/{{subscription_id}}"): {"active": False},
    ("POST", f"{P}/subscriptions/{{subscription_id}}/recover"): {"since": "2026-01-01T00:00:00Z"},
}

# The SSE stream never ends for a caller it lets in; a Last-Event-ID that is no cursor makes it answer 400 at once
# (after the permission check), so the matrix sees allowed (400) and refused (401/403) alike.
HEADERS: dict[tuple[str, str], dict[str, str]] = {
    ("GET", f"{P}/events/stream"): {"Last-Event-ID": "not-a-cursor"},
}


def routes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    methods = {"get", "post", "put", "delete", "patch"}
    return sorted(
        (method.upper(), path) for path, item in spec["paths"].items() for method in item if method in methods
    )


def concrete(path: str) -> str:
    for name in (
        "definition_id", "instance_id", "task_id", "incident_id", "operation_id", "definition_key", "subscription_id",
        "delivery_id", "engine_incident_id",
    ):  # fmt: skip
        path = path.replace(f"{{{name}}}", "no-such-id")
    return path


async def test_every_route_obeys_the_default_permission_matrix(
    make_gateway: Any, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the subscriptions created here point at a closed loopback port (nothing leaves the machine)
    monkeypatch.setenv("PM_EVENTS_ALLOW_PRIVATE_TARGETS", "true")
    async with make_gateway() as gw:
        spec = (await gw.client.get("/openapi.json")).json()
        every = routes(spec)
        unknown = [route for route in every if route not in REQUIRED]
        assert not unknown, f"routes without an expected permission in this test: {unknown}"
        assert len(every) == len(REQUIRED)

        checked, mismatches = 0, []
        for method, template in every:
            path, body, permission = concrete(template), BODIES.get((method, template)), REQUIRED[(method, template)]
            headers = HEADERS.get((method, template), {})
            anonymous = await gw.client.request(method, path, json=body, headers=headers)
            if permission is None:
                ok = anonymous.status_code == 200
            else:
                ok = anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
            checked += 1
            if not ok:
                mismatches.append((method, template, "no token", anonymous.status_code))
            for role, granted in ROLES.items():
                # every tenant: this matrix is about roles (tests/auth/test_tenants.py is about tenants)
                token = provider.mint({"sub": "alice", "roles": [role], "tenants": ["*"]})
                response = await gw.client.request(method, path, json=body, headers=headers | bearer(token))
                checked += 1
                if permission in (None, AUTHENTICATED) or permission in granted:
                    # allowed: whatever the outcome for an unknown id, never refused, never a malformed request
                    ok = response.status_code not in (401, 403, 422)
                else:
                    ok = response.status_code == 403 and f"'{permission}'" in response.json()["detail"]
                if not ok:
                    mismatches.append((method, template, role, response.status_code, response.text[:200]))
        assert mismatches == []
        assert checked == len(every) * (len(ROLES) + 1)
        print(f"permission matrix: {len(every)} routes x ({len(ROLES)} roles + no token) = {checked} requests")
