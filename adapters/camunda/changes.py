"""Camunda 7 change feed: what the engine did, read from its history (engine-rest, history level full).

| event | source |
|---|---|
| task.created | `GET /history/task?startedAfter&startedBefore` (sortBy startTime) |
| task.completed | `GET /history/task?finishedAfter&finishedBefore` (sortBy endTime), delete reason `completed` |
| task.assigned | `GET /history/identity-link-log?type=assignee&dateAfter&dateBefore`: an `add` row is an assignment; a `delete` row not followed by the same task's `add` (a reassignment writes both) is an unassignment (`action: unclaim`, `assignee: null`); the task's instance from `GET /history/task?taskId` |
| instance.completed / instance.terminated | `GET /history/process-instance?finishedAfter&finishedBefore` (sortBy endTime) by `state` |
| instance.suspended / instance.activated | `GET /history/user-operation?entityType=ProcessInstance&afterTimestamp&beforeTimestamp`, operation Suspend / Activate |

Limits: Camunda writes the user operation log only for an authenticated user, so a suspension made without one
is not seen. A reassignment writes the old assignee's `delete` row and the new one's `add` row in one command,
milliseconds apart at most; should a page or the feed's horizon fall between the two, the subscriber sees an
unassignment before the new assignment (one event too many, none lost).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from adapters.camunda import mapping
from adapters.camunda.mapping import COMPLETED_TASK_REASON
from gateway.engines.change_window import PAGE_SIZE, SourceRows, SourceWindow, collect
from gateway.engines.port import ChangeBatch, EngineChange
from gateway.resilience import EngineHttp

INSTANCE_END_EVENTS = {
    "COMPLETED": "instance.completed",
    "EXTERNALLY_TERMINATED": "instance.terminated",
    "INTERNALLY_TERMINATED": "instance.terminated",
}
SUSPENSION_EVENTS = {"Suspend": "instance.suspended", "Activate": "instance.activated"}
# Camunda stamps the `delete` and `add` rows of one reassignment with the clock read for each: milliseconds apart.
REASSIGNMENT_GAP = timedelta(seconds=1)


async def read_changes(http: EngineHttp, mark: dict[str, Any], settled_before: datetime) -> ChangeBatch:
    """The changes after `mark` up to `settled_before` (see the module's table), per `EngineAdapter.read_changes`."""
    until = mapping.format_moment(settled_before)

    def after(source: str) -> str:
        return mapping.format_moment(SourceWindow.load(mark.get(source), settled_before).query_after)

    async def rows(path: str, operation: str, **params: Any) -> list[dict[str, Any]]:
        return await http.json("GET", path, operation=operation, params={**params, "maxResults": PAGE_SIZE})

    # The sources are independent: read at once, so a round takes the slowest query, not their sum.
    created, finished, assignments, ended, operations = await asyncio.gather(
        rows(
            "/history/task",
            "changes_created_tasks",
            startedAfter=after("tasks_created"),
            startedBefore=until,
            sortBy="startTime",
            sortOrder="asc",
        ),
        rows(
            "/history/task",
            "changes_finished_tasks",
            finishedAfter=after("tasks_finished"),
            finishedBefore=until,
            sortBy="endTime",
            sortOrder="asc",
        ),
        rows(
            "/history/identity-link-log",
            "changes_assignments",
            type="assignee",
            dateAfter=after("assignments"),
            dateBefore=until,
            sortBy="time",
            sortOrder="asc",
        ),
        rows(
            "/history/process-instance",
            "changes_ended_instances",
            finishedAfter=after("instances_ended"),
            finishedBefore=until,
            sortBy="endTime",
            sortOrder="asc",
        ),
        rows(
            "/history/user-operation",
            "changes_instance_operations",
            entityType="ProcessInstance",
            afterTimestamp=after("suspensions"),
            beforeTimestamp=until,
            sortBy="timestamp",
            sortOrder="asc",
        ),
    )
    tasks = {row["id"]: row for row in created + finished}
    for task_id in {row["taskId"] for row in assignments if row.get("taskId")} - set(tasks):
        found = await http.json("GET", "/history/task", operation="changes_assigned_task", params={"taskId": task_id})
        tasks.update((row["id"], row) for row in found)
    read = {
        "tasks_created": SourceRows(
            [(row["id"], _time(row["startTime"]), _task_created(row)) for row in created], len(created) == PAGE_SIZE
        ),
        "tasks_finished": SourceRows(
            [(row["id"], _time(row["endTime"]), _task_completed(row)) for row in finished], len(finished) == PAGE_SIZE
        ),
        "assignments": SourceRows(
            [
                (row["id"], _time(row["time"]), _task_assigned(row, tasks.get(row.get("taskId")), assignments))
                for row in assignments
            ],
            len(assignments) == PAGE_SIZE,
        ),
        "instances_ended": SourceRows(
            [(row["id"], _time(row["endTime"]), _instance_ended(row)) for row in ended], len(ended) == PAGE_SIZE
        ),
        "suspensions": SourceRows(
            [(row["id"], _time(row["timestamp"]), _suspension(row)) for row in operations],
            len(operations) == PAGE_SIZE,
        ),
    }
    return collect(mark, settled_before, read)


def _time(text: str) -> datetime:
    moment = mapping.moment(text)
    assert moment is not None  # the query selected rows by this very time
    return moment


def _task_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row["id"],
        "task_name": row.get("name"),
        "task_definition_key": row.get("taskDefinitionKey"),
        "definition_key": row.get("processDefinitionKey"),
    }


def _task_created(row: dict[str, Any]) -> EngineChange | None:
    if not row.get("processInstanceId"):
        return None  # a standalone task belongs to no process instance
    return EngineChange(
        "task.created",
        row["processInstanceId"],
        _time(row["startTime"]),
        {**_task_data(row), "assignee": row.get("assignee")},
        row.get("tenantId"),
    )


def _task_completed(row: dict[str, Any]) -> EngineChange | None:
    if not row.get("processInstanceId") or row.get("deleteReason") != COMPLETED_TASK_REASON:
        return None  # deleted with its instance: instance.terminated says it
    return EngineChange(
        "task.completed",
        row["processInstanceId"],
        _time(row["endTime"]),
        {**_task_data(row), "completed_by": row.get("assignee")},
        row.get("tenantId"),
    )


def _task_assigned(row: dict[str, Any], task: dict[str, Any] | None, log: list[dict[str, Any]]) -> EngineChange | None:
    """An identity-link-log row of type assignee as `task.assigned`: `add` names the new assignee; `delete` is an
    unassignment unless the same task's `add` follows within `REASSIGNMENT_GAP` (then that row reports the
    reassignment), or the task had ended by then."""
    if task is None or not task.get("processInstanceId"):
        return None
    at = _time(row["time"])
    if row.get("operationType") == "add":
        action, assignee = "assign", row.get("userId")
    elif row.get("operationType") == "delete":
        ended = mapping.moment(task.get("endTime"))
        if (ended is not None and ended <= at) or any(_reassigns(other, row, at) for other in log):
            return None
        action, assignee = "unclaim", None
    else:
        return None
    return EngineChange(
        "task.assigned",
        task["processInstanceId"],
        at,
        {"task_id": task["id"], "task_name": task.get("name"), "action": action, "assignee": assignee},
        row.get("tenantId"),
    )


def _reassigns(other: dict[str, Any], deleted: dict[str, Any], at: datetime) -> bool:
    """Whether `other` is the `add` row of the same reassignment as the `delete` row `deleted` (made at `at`)."""
    if other.get("operationType") != "add" or other.get("taskId") != deleted.get("taskId"):
        return False
    return timedelta(0) <= _time(other["time"]) - at <= REASSIGNMENT_GAP


def _instance_ended(row: dict[str, Any]) -> EngineChange | None:
    event = INSTANCE_END_EVENTS.get(row.get("state") or "")
    if event is None:
        return None
    data: dict[str, Any] = {"definition_key": row.get("processDefinitionKey"), "business_key": row.get("businessKey")}
    if event == "instance.completed":
        data["duration_ms"] = row.get("durationInMillis")
    else:
        data["reason"] = row.get("deleteReason")
    return EngineChange(event, row["id"], _time(row["endTime"]), data, row.get("tenantId"))


def _suspension(row: dict[str, Any]) -> EngineChange | None:
    event = SUSPENSION_EVENTS.get(row.get("operationType") or "")
    if event is None or not row.get("processInstanceId"):
        return None  # other operations, or a whole definition's instances (not one instance)
    return EngineChange(
        event, row["processInstanceId"], _time(row["timestamp"]), {"definition_key": row.get("processDefinitionKey")}
    )
