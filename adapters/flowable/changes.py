"""Flowable change feed: what the engine did, read from its history (flowable-rest 7.2, history level audit).

| event | source |
|---|---|
| task.created | `POST /query/historic-task-instances {taskCreatedAfter, taskCreatedBefore}` (sort startTime) |
| task.completed | `POST /query/historic-task-instances {taskCompletedAfter, taskCompletedBefore}` (sort endTime), no delete reason |
| instance.completed / instance.terminated | `POST /query/historic-process-instances {finishedAfter, finishedBefore}` (sort endTime), by delete reason |
| task.assigned | `POST /query/tasks` (sort id): every open task's current assignee, compared round by round by the feed (`read_assignees`) |

Flowable keeps no log of assignments (unless historic task logging is switched on), so an assignment made outside
the gateway is seen as a changed assignee of an open task: one that lasts less than a feed round (assigned and
completed at once) shows only in `task.completed`'s `completed_by`. Not observed: a suspension made outside the
gateway. Those made through the gateway are in the event log as always.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from adapters.flowable import paging
from adapters.flowable.mapping import moment, tenant
from adapters.flowable.queries import clean
from gateway.engines.change_window import PAGE_SIZE, SourceRows, SourceWindow, collect
from gateway.engines.port import ChangeBatch, EngineChange, OpenTaskAssignee
from gateway.resilience import EngineHttp


async def read_changes(http: EngineHttp, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
    """The changes after `mark` up to `settled_before` (see the module's table), per `EngineAdapter.read_changes`."""

    def after(source: str) -> datetime:
        return SourceWindow.load(mark.get(source), settled_before).query_after

    async def rows(path: str, operation: str, **body: Any) -> list[dict[str, Any]]:
        found = await http.json(
            "POST", path, operation=operation, idempotent=True, json=clean({**body, "order": "asc", "size": PAGE_SIZE})
        )
        return found["data"]

    # The sources are independent: read at once, so a round takes the slowest query, not their sum.
    created, finished, ended = await asyncio.gather(
        rows(
            "/query/historic-task-instances",
            "changes_created_tasks",
            taskCreatedAfter=after("tasks_created"),
            taskCreatedBefore=settled_before,
            sort="startTime",
        ),
        rows(
            "/query/historic-task-instances",
            "changes_finished_tasks",
            taskCompletedAfter=after("tasks_finished"),
            taskCompletedBefore=settled_before,
            finished=True,
            sort="endTime",
        ),
        rows(
            "/query/historic-process-instances",
            "changes_ended_instances",
            finishedAfter=after("instances_ended"),
            finishedBefore=settled_before,
            finished=True,
            sort="endTime",
        ),
    )
    read = {
        "tasks_created": SourceRows(
            [(row["id"], _time(row["startTime"]), _task_created(row)) for row in created], len(created) == PAGE_SIZE
        ),
        "tasks_finished": SourceRows(
            [(row["id"], _time(row["endTime"]), _task_completed(row)) for row in finished], len(finished) == PAGE_SIZE
        ),
        "instances_ended": SourceRows(
            [(row["id"], _time(row["endTime"]), _instance_ended(row)) for row in ended], len(ended) == PAGE_SIZE
        ),
    }
    return collect(mark, settled_before, read)


async def read_assignees(http: EngineHttp) -> list[OpenTaskAssignee]:
    """Every open task of a process instance with its assignee (`POST /query/tasks`), per
    `EngineAdapter.read_assignees`."""

    async def fetch(start: int, size: int) -> dict[str, Any]:
        body = {"start": start, "size": size, "sort": "id", "order": "asc"}
        return await http.json("POST", "/query/tasks", operation="changes_assignees", idempotent=True, json=body)

    return [
        OpenTaskAssignee(
            task_id=row["id"],
            instance_id=row["processInstanceId"],
            assignee=row.get("assignee"),
            created_at=_time(row["createTime"]),
            task_name=row.get("name"),
            tenant_id=tenant(row.get("tenantId")),
        )
        for row in await paging.collect(fetch)
        if row.get("processInstanceId")
    ]


def _time(text: str) -> datetime:
    found = moment(text)
    assert found is not None  # the query selected rows by this very time
    return found


def _definition_key(row: dict[str, Any]) -> str | None:
    """Flowable names only the definition id (`key:version:id`) on history rows."""
    definition_id = row.get("processDefinitionId") or ""
    return definition_id.split(":", 1)[0] or None


def _task_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row["id"],
        "task_name": row.get("name"),
        "task_definition_key": row.get("taskDefinitionKey"),
        "definition_key": _definition_key(row),
    }


def _task_created(row: dict[str, Any]) -> EngineChange | None:
    if not row.get("processInstanceId"):
        return None
    return EngineChange(
        "task.created",
        row["processInstanceId"],
        _time(row["startTime"]),
        {**_task_data(row), "assignee": row.get("assignee")},
        tenant(row.get("tenantId")),
    )


def _task_completed(row: dict[str, Any]) -> EngineChange | None:
    if not row.get("processInstanceId") or row.get("deleteReason"):
        return None  # deleted with its instance: instance.terminated says it
    return EngineChange(
        "task.completed",
        row["processInstanceId"],
        _time(row["endTime"]),
        {**_task_data(row), "completed_by": row.get("assignee")},
        tenant(row.get("tenantId")),
    )


def _instance_ended(row: dict[str, Any]) -> EngineChange:
    data: dict[str, Any] = {"definition_key": _definition_key(row), "business_key": row.get("businessKey")}
    if row.get("deleteReason"):
        event = "instance.terminated"
        data["reason"] = row["deleteReason"]
    else:
        event = "instance.completed"
        data["duration_ms"] = row.get("durationInMillis")
    return EngineChange(event, row["id"], _time(row["endTime"]), data, tenant(row.get("tenantId")))
