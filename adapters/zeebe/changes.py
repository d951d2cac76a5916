"""Camunda 8 change feed: what the cluster did, read from its secondary storage (Orchestration Cluster REST API,
8.8 searches).

| event | source |
|---|---|
| task.created | `POST /user-tasks/search` filter `creationDate` (sort creationDate) |
| task.completed | `POST /user-tasks/search` filter `completionDate`, state COMPLETED (sort completionDate) |
| instance.completed / instance.terminated | `POST /process-instances/search` filter `endDate` (sort endDate), by `state` |

| task.assigned | `POST /user-tasks/search` filter state CREATED: every open task's current assignee, compared round by round by the feed (`read_assignees`) |

Camunda 8 keeps no assignment history, so an assignment made outside the gateway is seen as a changed assignee of
an open task: one that lasts less than a feed round (assigned and completed at once) shows only in
`task.completed`'s `completed_by`. Camunda 8 has no suspension. Secondary storage trails the cluster by its export
lag, which adds to the feed's delay.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from adapters.zeebe.mapping import duration_ms, moment, tenant
from adapters.zeebe.queries import between, search
from gateway.engines.change_window import PAGE_SIZE, SourceRows, SourceWindow, collect
from gateway.engines.port import ChangeBatch, EngineChange, OpenTaskAssignee
from gateway.resilience import EngineHttp

INSTANCE_END_EVENTS = {"COMPLETED": "instance.completed", "TERMINATED": "instance.terminated"}


async def read_changes(http: EngineHttp, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
    """The changes after `mark` up to `settled_before` (see the module's table), per `EngineAdapter.read_changes`."""

    def window(source: str, field: str, **extra: Any) -> dict[str, Any]:
        after = SourceWindow.load(mark.get(source), settled_before).query_after
        return search(
            {field: between(after, settled_before), **extra}, sort=[{"field": field, "order": "ASC"}], limit=PAGE_SIZE
        )

    async def items(resource: str, body: dict[str, Any], operation: str) -> list[dict[str, Any]]:
        found = await http.json("POST", f"/{resource}/search", operation=operation, idempotent=True, json=body)
        return found["items"]

    # The sources are independent: read at once, so a round takes the slowest search, not their sum.
    created, completed, ended = await asyncio.gather(
        items("user-tasks", window("tasks_created", "creationDate"), "changes_created_tasks"),
        items("user-tasks", window("tasks_completed", "completionDate", state="COMPLETED"), "changes_completed_tasks"),
        items("process-instances", window("instances_ended", "endDate"), "changes_ended_instances"),
    )
    read = {
        "tasks_created": SourceRows(
            [
                (row["userTaskKey"], _time(row["creationDate"]), _task("task.created", row, "creationDate"))
                for row in created
            ],
            len(created) == PAGE_SIZE,
        ),
        "tasks_completed": SourceRows(
            [
                (row["userTaskKey"], _time(row["completionDate"]), _task("task.completed", row, "completionDate"))
                for row in completed
            ],
            len(completed) == PAGE_SIZE,
        ),
        "instances_ended": SourceRows(
            [(row["processInstanceKey"], _time(row["endDate"]), _instance_ended(row)) for row in ended],
            len(ended) == PAGE_SIZE,
        ),
    }
    return collect(mark, settled_before, read)


def open_task_assignee(row: dict[str, Any]) -> OpenTaskAssignee:
    """An open user task of a user task search as `EngineAdapter.read_assignees` reports it."""
    return OpenTaskAssignee(
        task_id=row["userTaskKey"],
        instance_id=row["processInstanceKey"],
        assignee=row.get("assignee"),
        created_at=_time(row["creationDate"]),
        task_name=row.get("name"),
        tenant_id=tenant(row.get("tenantId")),
    )


def _time(text: str) -> datetime:
    found = moment(text)
    assert found is not None  # the search selected items by this very time
    return found


def _task(event: str, row: dict[str, Any], at: str) -> EngineChange:
    data = {
        "task_id": row["userTaskKey"],
        "task_name": row.get("name"),
        "task_definition_key": row.get("elementId"),
        "definition_key": row.get("processDefinitionId"),
    }
    data.update({"assignee": row.get("assignee")} if event == "task.created" else {"completed_by": row.get("assignee")})
    return EngineChange(event, row["processInstanceKey"], _time(row[at]), data, tenant(row.get("tenantId")))


def _instance_ended(row: dict[str, Any]) -> EngineChange | None:
    event = INSTANCE_END_EVENTS.get(row.get("state") or "")
    if event is None:
        return None
    data: dict[str, Any] = {"definition_key": row.get("processDefinitionId"), "business_key": None}
    if event == "instance.completed":
        data["duration_ms"] = duration_ms(moment(row.get("startDate")), moment(row.get("endDate")))
    return EngineChange(event, row["processInstanceKey"], _time(row["endDate"]), data, tenant(row.get("tenantId")))
