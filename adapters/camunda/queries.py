"""Unified list queries as Camunda 7 query parameters: filters, sorting and `firstResult`/`maxResults` paging."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.camunda import mapping
from adapters.camunda.mapping import COMPLETED_TASK_REASON, DELETED_TASK_REASON, STATUS_FILTERS
from gateway.conditions import VariableCondition, VariableOperator, VariableScope
from gateway.errors import NotSupported
from gateway.schemas import (
    FINISHED_TASK_STATUSES,
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceQuery,
    ListQuery,
    TaskQuery,
)

# Each query's sortable fields (the query models validate `sort`) -> Camunda's `sortBy` on the listed resource.
DEFINITION_SORT = {"key": "key", "name": "name", "version": "version", "deployed_at": "deployTime"}
INSTANCE_SORT = {
    "start_time": "startTime",
    "end_time": "endTime",
    "business_key": "businessKey",
    "definition_key": "definitionKey",
}
TASK_SORT = {
    "created": "created",
    "due": "dueDate",
    "follow_up": "followUpDate",
    "priority": "priority",
    "name": "name",
    "assignee": "assignee",
}
HISTORIC_TASK_SORT = {
    "follow_up": "followUpDate",
    "created": "startTime",
    "due": "dueDate",
    "priority": "priority",
    "name": "taskName",
    "assignee": "assignee",
}
INCIDENT_SORT = {"created": "incidentTimestamp"}
HISTORIC_INSTANCE_SORT = {"start_time": "startTime", "end_time": "endTime"}
ACTIVITY_SORT = {"start_time": "startTime", "end_time": "endTime"}


# Unified variable operators -> the `operator` of Camunda's VariableQueryParameterDto (no `in`).
VARIABLE_OPERATORS = {
    VariableOperator.EQ: "eq",
    VariableOperator.NEQ: "neq",
    VariableOperator.GT: "gt",
    VariableOperator.GTE: "gteq",
    VariableOperator.LT: "lt",
    VariableOperator.LTE: "lteq",
    VariableOperator.LIKE: "like",
}


def variable_filters(conditions: list[VariableCondition], scope: VariableScope) -> list[dict[str, Any]]:
    """The conditions of one scope as `VariableQueryParameterDto`s (`{name, operator, value}`, the value typed as
    JSON), for `variables` / `processVariables` / `taskVariables` of a POST query body."""
    return [
        {"name": c.name, "operator": VARIABLE_OPERATORS[c.operator], "value": c.value}
        for c in conditions
        if c.scope is scope
    ]


def sorting_list(query: ListQuery, fields: dict[str, str], default: str, tiebreak: str) -> list[dict[str, str]]:
    """The `sorting` of a POST query body: the requested field, then the id (`tiebreak`) for a stable order."""
    order = query.order.value
    return [{"sortBy": fields[query.sort or default], "sortOrder": order}, {"sortBy": tiebreak, "sortOrder": order}]


def query_body(filters: dict[str, Any]) -> dict[str, Any]:
    """GET-style filters as a POST query body: list filters (`...In`) become arrays."""
    return {
        name: [value] if name.endswith("In") and isinstance(value, str) else value for name, value in filters.items()
    }


def compact(**params: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (httpx would send None as an empty value)."""
    return {name: value for name, value in params.items() if value is not None}


def camunda_date(moment: datetime | None) -> str | None:
    return None if moment is None else mapping.format_moment(moment)


def page(query: ListQuery) -> dict[str, int]:
    return {"firstResult": query.offset, "maxResults": query.size}


def page_total(rows: list[Any], counted: int, query: ListQuery) -> int:
    """The total to show beside `rows`, one page read concurrently with its `/count`.

    Camunda has no list that carries its count, so the two requests can see different moments. A short page is
    the last one: its total is `offset + len(rows)` (at most `offset` when it is empty). A full page has at least
    that many.
    """
    if not rows:
        return min(counted, query.offset)
    shown = query.offset + len(rows)
    return shown if len(rows) < query.size else max(counted, shown)


def sorting(query: ListQuery, fields: dict[str, str], default: str) -> dict[str, str]:
    """`sortBy`/`sortOrder`; `default` is the unified field used when the query names none."""
    return {"sortBy": fields[query.sort or default], "sortOrder": query.order.value}


def definition_filters(query: DefinitionQuery) -> dict[str, Any]:
    return compact(
        key=query.key,
        name=query.name,
        latestVersion=True if query.latest_only else None,
        suspended=True if query.suspended else None,
        active=True if query.suspended is False else None,
        tenantIdIn=query.tenant_id,
    )


def instance_filters(query: InstanceQuery) -> dict[str, Any]:
    """Filters of GET /history/process-instance, which holds running and finished instances alike."""
    if query.has_incident is False:
        raise NotSupported("Camunda 7 cannot list only the instances without incidents (has_incident=false)")
    filters = compact(
        processDefinitionKey=query.definition_key,
        processDefinitionId=query.definition_id,
        processInstanceBusinessKey=query.business_key,
        startedAfter=camunda_date(query.started_after),
        startedBefore=camunda_date(query.started_before),
        withIncidents=query.has_incident,
        tenantIdIn=query.tenant_id,
    )
    if query.status is not None:
        filters[STATUS_FILTERS[query.status]] = True
    return filters


def history_instance_filters(query: HistoryQuery) -> dict[str, Any]:
    return compact(
        processDefinitionKey=query.definition_key,
        startedAfter=camunda_date(query.started_after),
        startedBefore=camunda_date(query.started_before),
        finishedAfter=camunda_date(query.finished_after),
        finished=True if query.finished else None,
        unfinished=True if query.finished is False else None,
    )


def history_activity_filters(query: HistoryQuery, definition_id: str | None) -> dict[str, Any]:
    """Camunda cannot filter historic activities by definition key, only by one definition id."""
    return compact(
        processDefinitionId=definition_id,
        startedAfter=camunda_date(query.started_after),
        startedBefore=camunda_date(query.started_before),
        finishedAfter=camunda_date(query.finished_after),
        finished=True if query.finished else None,
        unfinished=True if query.finished is False else None,
    )


def is_finished_task_query(query: TaskQuery) -> bool:
    return query.status in FINISHED_TASK_STATUSES


def task_filters(query: TaskQuery) -> dict[str, Any]:
    """Filters of GET /task (open tasks).

    Candidate filters match assigned tasks too (`includeAssignedTasks`); `unassigned` narrows them. The status
    `assigned` also matches delegated tasks, which have an assignee as well: Camunda cannot exclude them.
    """
    candidate_filter = query.candidate_group is not None or query.candidate_user is not None
    return compact(
        processInstanceId=query.instance_id,
        processDefinitionKey=query.definition_key,
        assignee=query.assignee,
        candidateGroup=query.candidate_group,
        candidateUser=query.candidate_user,
        includeAssignedTasks=True if candidate_filter else None,
        unassigned=True if query.unassigned or query.status == "created" else None,
        assigned=True if query.unassigned is False or query.status == "assigned" else None,
        delegationState="PENDING" if query.status == "delegated" else None,
        dueBefore=camunda_date(query.due_before),
        tenantIdIn=query.tenant_id,
    )


def historic_task_filters(query: TaskQuery) -> dict[str, Any]:
    """Filters of GET /history/task for completed or cancelled tasks.

    Camunda keeps why a task ended: `completed`, or `deleted` when its instance was cancelled without a reason.
    Cancellations with a custom reason are not matched.
    """
    return compact(
        finished=True,
        taskDeleteReason=COMPLETED_TASK_REASON if query.status == "completed" else DELETED_TASK_REASON,
        processInstanceId=query.instance_id,
        processDefinitionKey=query.definition_key,
        taskAssignee=query.assignee,
        taskHadCandidateGroup=query.candidate_group,
        taskHadCandidateUser=query.candidate_user,
        unassigned=True if query.unassigned else None,
        assigned=True if query.unassigned is False else None,
        taskDueDateBefore=camunda_date(query.due_before),
        tenantIdIn=query.tenant_id,
    )


def incident_filters(query: EngineIncidentQuery) -> dict[str, Any]:
    return compact(
        processInstanceId=query.instance_id,
        processDefinitionKeyIn=query.definition_key,
        incidentType=query.incident_type,
    )
