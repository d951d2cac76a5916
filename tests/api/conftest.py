from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.settings import Settings

APPROVAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="defs" targetNamespace="http://example.com/bpmn">
  <bpmn:process id="approval" name="Approval" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" name="Review request" camunda:candidateGroups="sales">
      <bpmn:documentation>Check the request</bpmn:documentation>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

PARALLEL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="defs" targetNamespace="http://example.com/bpmn">
  <bpmn:process id="parallel" name="Parallel" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="left"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="right"/>
    <bpmn:userTask id="left" name="Left"/>
    <bpmn:userTask id="right" name="Right"/>
    <bpmn:sequenceFlow id="f4" sourceRef="left" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="right" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def make_client(database: Database) -> Callable[..., Any]:
    """Build a gateway on the test database; extra settings may be passed."""

    def factory(**settings: Any) -> Any:
        merged: dict[str, Any] = {
            "database_url": database.url,
            "engines": [{"name": "local", "type": "embedded", "default": True}],
            **settings,
        }

        class Client:
            async def __aenter__(self) -> httpx.AsyncClient:
                self.app = create_app(Settings(**merged))
                self.lifespan = LifespanManager(self.app)
                await self.lifespan.__aenter__()
                self.client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=self.lifespan.app), base_url="http://gateway.test"
                )
                return self.client

            async def __aexit__(self, *exc: object) -> None:
                await self.client.aclose()
                await self.lifespan.__aexit__(*exc)

        return Client()

    return factory


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as api:
        yield api


async def deploy(client: httpx.AsyncClient, xml: bytes = APPROVAL) -> dict[str, Any]:
    response = await client.post("/api/processes/definitions", files={"file": ("process.bpmn", xml, "application/xml")})
    assert response.status_code == 201, response.text
    return response.json()


async def start(client: httpx.AsyncClient, key: str = "approval", **body: Any) -> dict[str, Any]:
    response = await client.post("/api/processes/instances", json={"definition_key": key, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def open_tasks(client: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/processes/tasks", params={"instance_id": instance_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]
