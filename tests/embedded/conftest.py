"""The embedded adapter built through the real registry, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from adapters.embedded import EmbeddedAdapter
from gateway.db import Database
from gateway.registry import EngineRegistry
from gateway.schemas import EngineIncidentQuery, Page, StartInstance, Task, TaskQuery
from gateway.settings import Settings
from gateway.variables import parse_request_variables

T = TypeVar("T")

BPMN_HEAD = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="definitions" targetNamespace="http://pm-gateway.dev/tests">
"""
BPMN_TAIL = b"</bpmn:definitions>\n"


def bpmn(process_id: str, body: str, *, head: str = "") -> bytes:
    """A BPMN document with one executable process (and optional top-level elements such as errors)."""
    process = f'<bpmn:process id="{process_id}" name="{process_id.title()}" isExecutable="true">{body}</bpmn:process>'
    return BPMN_HEAD + head.encode() + process.encode() + BPMN_TAIL


def flow(source: str, target: str, condition: str | None = None) -> str:
    expression = f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression>" if condition else ""
    flow_id = f"{source}-{target}"
    return (
        f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}">{expression}</bpmn:sequenceFlow>'
    )


@pytest.fixture
def make_adapter(database: Database) -> Callable[..., Any]:
    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[EmbeddedAdapter]:
        configured = Settings(
            engines=[{"name": "local", "type": "embedded", "default": True, "options": options}],
            database_url=database.url,
        )
        registry = EngineRegistry(configured, database)
        await registry.start()
        try:
            yield registry.get().adapter
        finally:
            await registry.close()

    return factory


@pytest.fixture
async def adapter(make_adapter: Callable[..., Any]) -> AsyncIterator[EmbeddedAdapter]:
    async with make_adapter() as built:
        yield built


async def deploy(adapter: EmbeddedAdapter, xml: bytes, tenant_id: str | None = None) -> str:
    deployment = await adapter.deploy(xml, filename="test.bpmn", name=None, tenant_id=tenant_id, deployed_by="tester")
    return deployment.definitions[0].id


async def start(adapter: EmbeddedAdapter, key: str, variables: dict[str, Any] | None = None) -> str:
    request = StartInstance(definition_key=key, variables=parse_request_variables(variables or {}))
    return (await adapter.start_instance(request, started_by="tester")).id


async def tasks_of(adapter: EmbeddedAdapter, instance_id: str) -> dict[str, Task]:
    page: Page[Task] = await adapter.list_tasks(TaskQuery(instance_id=instance_id))
    return {task.task_definition_key: task for task in page.items}


async def incidents_of(adapter: EmbeddedAdapter, instance_id: str) -> list[Any]:
    return (await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))).items
