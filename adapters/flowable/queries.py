"""Unified list queries as Flowable query parameters and bodies (pure; no engine calls)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.flowable import mapping
from gateway.conditions import VariableCondition, VariableOperator, VariableScope
from gateway.errors import NotSupported
from gateway.schemas import HistoryQuery, InstanceQuery, ListQuery, TaskQuery
from gateway.variables import format_datetime

Item = dict[str, Any]

# Unified sort fields -> Flowable's, per list.
DEFINITION_SORT = {"key": "key", "name": "name", "version": "version"}
RUNTIME_INSTANCE_SORT = {
    "start_time": "startTime",
    "end_time": "startTime",  # running instances have no end; they keep their start order
    "business_key": "businessKey",
    "definition_key": "processDefinitionKey",
}
HISTORIC_INSTANCE_SORT = {
    "start_time": "startTime",
    "end_time": "endTime",
    "business_key": "businessKey",
    "definition_key": "processDefinitionId",  # history cannot sort by key; definition ids begin with it
}
TASK_SORT = {"created": "createTime", "due": "dueDate", "priority": "priority", "name": "name", "assignee": "assignee"}
HISTORIC_TASK_SORT = {**TASK_SORT, "created": "startTime"}
ACTIVITY_SORT = {"start_time": "startTime", "end_time": "endTime"}


# Unified variable operators -> Flowable's QueryVariable `operation` (no `in`).
VARIABLE_OPERATIONS = {
    VariableOperator.EQ: "equals",
    VariableOperator.NEQ: "notEquals",
    VariableOperator.GT: "greaterThan",
    VariableOperator.GTE: "greaterThanOrEquals",
    VariableOperator.LT: "lessThan",
    VariableOperator.LTE: "lessThanOrEquals",
    VariableOperator.LIKE: "like",
}


def variable_filters(conditions: list[VariableCondition], scope: VariableScope) -> list[dict[str, Any]] | None:
    """The conditions of one scope as QueryVariables (`{name, operation, value}`; Flowable types the value from
    its JSON), or None when there are none (so the body leaves the field out)."""
    found = [
        {"name": c.name, "operation": VARIABLE_OPERATIONS[c.operator], "value": c.value}
        for c in conditions
        if c.scope is scope
    ]
    return found or None


def clean(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unset filters and write dates the way Flowable parses them."""
    return {
        name: format_datetime(value) if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


def sorting(query: ListQuery, fields: dict[str, str], default: tuple[str, str], *, engine: str) -> dict[str, str]:
    if query.sort is None:
        field, order = default
        return {"sort": field, "order": order}
    if query.sort not in fields:
        known = ", ".join(sorted(fields))
        raise NotSupported(
            f"Engine '{engine}' (flowable) cannot sort this list by {query.sort}; it sorts by {known}", engine=engine
        )
    return {"sort": fields[query.sort], "order": query.order.value}


def instance_filters(query: InstanceQuery) -> dict[str, Any]:
    """Filters both the runtime and the historic instance queries take."""
    return {
        "processDefinitionKey": query.definition_key,
        "processDefinitionId": query.definition_id,
        "processBusinessKey": query.business_key,
        "startedAfter": query.started_after,
        "startedBefore": query.started_before,
        "tenantId": query.tenant_id,
        "variables": variable_filters(query.conditions, VariableScope.INSTANCE),
    }


def history_filters(query: HistoryQuery) -> dict[str, Any]:
    return {
        "processDefinitionKey": query.definition_key,
        "startedAfter": query.started_after,
        "startedBefore": query.started_before,
        "finishedAfter": query.finished_after,
        "finished": query.finished,
    }


def open_task_filters(query: TaskQuery, *, engine: str) -> tuple[dict[str, Any], Callable[[Item], bool] | None]:
    """The body of `POST /query/tasks`, and a filter to apply to its results where Flowable has none."""
    body = {
        "assignee": query.assignee,
        "candidateGroup": query.candidate_group,
        "candidateUser": query.candidate_user,
        "unassigned": True if query.unassigned or query.status == "created" else None,
        "processInstanceId": query.instance_id,
        "processDefinitionKey": query.definition_key,
        "dueBefore": query.due_before,
        "tenantId": query.tenant_id,
        "processInstanceVariables": variable_filters(query.conditions, VariableScope.INSTANCE),
        "taskVariables": variable_filters(query.conditions, VariableScope.TASK),
        **sorting(query, TASK_SORT, ("createTime", "desc"), engine=engine),
    }
    if query.status == "delegated":
        body["delegationState"] = "pending"
    if query.status == "assigned":
        # Flowable selects assigned tasks but cannot leave out those with a pending delegation.
        body["assigneeLike"] = "%"
        return body, lambda item: mapping.task_status(item) == "assigned"
    return body, None


def finished_task_filters(query: TaskQuery, *, engine: str) -> dict[str, Any]:
    """The body of `POST /query/historic-task-instances` for completed or cancelled tasks."""
    if query.candidate_user is not None or query.unassigned:
        raise NotSupported(
            f"Engine '{engine}' (flowable) cannot filter finished tasks by candidate user or by being unassigned",
            engine=engine,
        )
    return {
        "finished": True,
        # Flowable gives a completed task no delete reason; a cancelled one always has one.
        "withoutDeleteReason": True if query.status == "completed" else None,
        "taskDeleteReasonLike": "%" if query.status == "cancelled" else None,
        "taskAssignee": query.assignee,
        "taskCandidateGroup": query.candidate_group,
        "processInstanceId": query.instance_id,
        "processDefinitionKey": query.definition_key,
        "dueDateBefore": query.due_before,
        "tenantId": query.tenant_id,
        "processVariables": variable_filters(query.conditions, VariableScope.INSTANCE),
        "taskVariables": variable_filters(query.conditions, VariableScope.TASK),
        **sorting(query, HISTORIC_TASK_SORT, ("startTime", "desc"), engine=engine),
    }
