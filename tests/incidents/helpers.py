"""Helpers of the Incident Center tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from gateway.db import Database
from gateway.tables import audit_log, outbox
from incidents.settings import IncidentSettings

T = TypeVar("T")

FAKE_URL = "http://fake.test"
BASIC_URL = "http://basic.test"
ENGINES = [
    {"name": "fake", "type": "fake", "url": FAKE_URL, "default": True},
    {"name": "basic", "type": "fake-basic", "url": BASIC_URL},
]


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: FastAPI

    async def incident(self, incident_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/processes/incidents/{incident_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def incidents(self, **filters: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/api/processes/incidents", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["items"]


def quiet_settings(**overrides: Any) -> IncidentSettings:
    """No policy acts unless a test turns it on."""
    values: dict[str, Any] = {"escalation_timeout": 0, "severity_age_step": 0, "auto_retry_attempts": 0, **overrides}
    return IncidentSettings(**values)


async def count(db: Database, table: sa.Table, *conditions: sa.ColumnElement[bool]) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(table).where(*conditions)) or 0)


async def rows(db: Database, statement: sa.Select[Any]) -> list[dict[str, Any]]:
    async with db.sessionmaker() as session:
        return [dict(row) for row in (await session.execute(statement)).mappings()]


async def incident_events(db: Database) -> list[dict[str, Any]]:
    return await rows(
        db, sa.select(outbox).where(outbox.c.type.like("process_manager.incident.%")).order_by(outbox.c.id)
    )


async def incident_audit(db: Database) -> list[dict[str, Any]]:
    return await rows(db, sa.select(audit_log).where(audit_log.c.resource_type == "incident").order_by(audit_log.c.id))
