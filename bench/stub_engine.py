"""A minimal local HTTP engine stub (Camunda 7 shaped) for measuring the gateway's own overhead.

It answers instantly from memory: `GET /engine-rest/version`, the process definition list and its count,
a deployment, and the variables and instance of any process instance id. Run: python -m bench.stub_engine PORT
"""

from __future__ import annotations

import json
import sys

import uvicorn

VARIABLES = json.dumps(
    {
        "amount": {"type": "Integer", "value": 250, "valueInfo": {}},
        "customer": {"type": "String", "value": "ACME", "valueInfo": {}},
        "approved": {"type": "Boolean", "value": True, "valueInfo": {}},
    }
).encode()
VERSION = json.dumps({"version": "7.23.0"}).encode()
DEFINITIONS = json.dumps(
    [
        {
            "id": f"approval-{n}:1:abc{n}",
            "key": f"approval-{n}",
            "category": "http://example.com",
            "description": None,
            "name": f"Approval {n}",
            "version": 1,
            "resource": "approval.bpmn",
            "deploymentId": "dep-1",
            "diagram": None,
            "suspended": False,
            "tenantId": None,
            "versionTag": None,
            "historyTimeToLive": None,
            "startableInTasklist": True,
        }
        for n in range(5)
    ]
).encode()
COUNT = json.dumps({"count": 5}).encode()
DEPLOYMENT = json.dumps({"id": "dep-1", "name": "approval", "deploymentTime": "2026-11-01T10:00:00.000+0000"}).encode()


def instance(instance_id: str) -> bytes:
    return json.dumps(
        {
            "id": instance_id,
            "definitionId": "approval:1:abc",
            "definitionKey": "approval",
            "businessKey": None,
            "caseInstanceId": None,
            "ended": False,
            "suspended": False,
            "tenantId": None,
            "links": [],
        }
    ).encode()


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    path: str = scope["path"].removeprefix("/engine-rest")
    parts = path.strip("/").split("/")
    status, body = 404, b'{"type":"InvalidRequestException","message":"not found"}'
    if path == "/version":
        status, body = 200, VERSION
    elif path == "/process-definition":
        status, body = 200, DEFINITIONS
    elif path == "/process-definition/count":
        status, body = 200, COUNT
    elif len(parts) == 2 and parts[0] == "deployment":
        status, body = 200, DEPLOYMENT
    elif len(parts) == 3 and parts[0] == "process-instance" and parts[2] == "variables":
        status, body = 200, VARIABLES
    elif len(parts) == 2 and parts[0] == "process-instance":
        status, body = 200, instance(parts[1])
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
