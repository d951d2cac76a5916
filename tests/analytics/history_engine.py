"""An engine whose history and open tasks the tests write by hand (for exact numbers), built on the Incident
Center's test double. Its state is a `History` per engine URL, shared by every adapter built for that URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.schemas import ActivityRecord, HistoryQuery, Page, ProcessInstance, Task, TaskQuery
from tests.incidents.fake_engine import FakeEngine

HISTORIES: dict[str, History] = {}


@dataclass
class History:
    instances: dict[str, ProcessInstance] = field(default_factory=dict)
    activities: list[ActivityRecord] = field(default_factory=list)
    tasks: dict[str, Task] = field(default_factory=dict)  # open tasks
    queries: list[HistoryQuery | TaskQuery] = field(default_factory=list)  # every query read, in order

    def instance(
        self, instance_id: str, key: str, start: datetime, end: datetime | None = None, status: str | None = None
    ) -> None:
        self.instances[instance_id] = ProcessInstance(
            id=instance_id,
            definition_id=f"{key}:1",
            definition_key=key,
            definition_name=key.title(),
            start_time=start,
            end_time=end,
            duration_ms=None if end is None else int((end - start).total_seconds() * 1000),
            status=status or ("active" if end is None else "completed"),
        )

    def activity(
        self, instance_id: str, activity_id: str, kind: str, start: datetime, end: datetime | None = None
    ) -> None:
        self.activities = [
            a
            for a in self.activities
            if not (a.instance_id == instance_id and a.activity_id == activity_id and a.start_time == start)
        ]
        self.activities.append(
            ActivityRecord(
                activity_id=activity_id,
                activity_name=activity_id.title(),
                activity_type=kind,
                instance_id=instance_id,
                definition_key=self.instances[instance_id].definition_key,
                start_time=start,
                end_time=end,
                duration_ms=None if end is None else int((end - start).total_seconds() * 1000),
            )
        )

    def open_task(self, task_id: str, instance_id: str, activity_id: str, created: datetime, **fields: Any) -> None:
        self.tasks[task_id] = Task(
            id=task_id,
            name=activity_id.title(),
            instance_id=instance_id,
            definition_key=self.instances[instance_id].definition_key,
            task_definition_key=activity_id,
            created=created,
            **fields,
        )


def _page(items: list[Any], query: Any) -> Page[Any]:
    return Page(
        items=items[query.offset : query.offset + query.size], total=len(items), page=query.page, size=query.size
    )


class HistoryEngine(FakeEngine):
    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.history = HISTORIES.setdefault(context.config.url or "", History())

    async def history_instances(self, query: HistoryQuery) -> Page[ProcessInstance]:
        self.history.queries.append(query)
        found = [
            i
            for i in self.history.instances.values()
            if (query.started_after is None or i.start_time >= query.started_after)
            and (query.finished_after is None or (i.end_time is not None and i.end_time >= query.finished_after))
        ]
        return _page(sorted(found, key=lambda i: (i.start_time, i.id)), query)

    async def history_activities(self, query: HistoryQuery) -> Page[ActivityRecord]:
        self.history.queries.append(query)
        found = [
            a
            for a in self.history.activities
            if (query.started_after is None or a.start_time >= query.started_after)
            and (query.finished_after is None or (a.end_time is not None and a.end_time >= query.finished_after))
        ]
        return _page(sorted(found, key=lambda a: (a.start_time, a.instance_id, a.activity_id)), query)

    async def list_tasks(self, query: TaskQuery, *, candidates: bool = True) -> Page[Task]:
        self.history.queries.append(query)
        newest_first = query.order.value == "desc"
        return _page(sorted(self.history.tasks.values(), key=lambda t: (t.created, t.id), reverse=newest_first), query)
