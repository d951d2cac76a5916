"""What the gateway remembers about engine objects that an engine itself cannot keep.

For example Camunda 8.8 has no business key, so the Zeebe adapter stores the caller's business key
here, and the owner of a task it 'delegates' by reassignment.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.db import Database
from gateway.tables import engine_object_meta as meta
from gateway.uow import reading, transaction


class MetadataStore:
    def __init__(self, db: Database, engine: str) -> None:
        self.db = db
        self.engine = engine

    async def put(self, object_type: str, object_id: str, values: dict[str, str | None]) -> None:
        async with transaction(self.db) as uow:
            key = (meta.c.engine == self.engine) & (meta.c.object_type == object_type) & (meta.c.object_id == object_id)
            await uow.session.execute(meta.delete().where(key & meta.c.name.in_(list(values))))
            await uow.session.execute(
                meta.insert(),
                [
                    {"engine": self.engine, "object_type": object_type, "object_id": object_id, "name": n, "value": v}
                    for n, v in values.items()
                ],
            )

    async def get(self, object_type: str, object_id: str) -> dict[str, str | None]:
        return (await self.get_many(object_type, [object_id])).get(object_id, {})

    async def get_many(self, object_type: str, object_ids: list[str]) -> dict[str, dict[str, str | None]]:
        if not object_ids:
            return {}
        async with reading(self.db) as session:
            rows = await session.execute(
                sa.select(meta.c.object_id, meta.c.name, meta.c.value).where(
                    meta.c.engine == self.engine, meta.c.object_type == object_type, meta.c.object_id.in_(object_ids)
                )
            )
        found: dict[str, dict[str, str | None]] = {}
        for object_id, name, value in rows:
            found.setdefault(object_id, {})[name] = value
        return found

    async def find(self, object_type: str, name: str, value: str) -> list[str]:
        async with reading(self.db) as session:
            rows = await session.execute(
                sa.select(meta.c.object_id).where(
                    meta.c.engine == self.engine,
                    meta.c.object_type == object_type,
                    meta.c.name == name,
                    meta.c.value == value,
                )
            )
        return [row[0] for row in rows]
