"""Camunda 8 search requests (Orchestration Cluster REST API v2 `POST /<resource>/search`): filters, sorts with
their tie-breaks, paging, variable conditions, and the unified page built from a search result."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gateway.conditions import VariableCondition, VariableOperator, VariableScope
from gateway.errors import NotSupported
from gateway.schemas import ListQuery, Page
from gateway.variables import format_datetime

# Unified sort fields (ListQuery.sort) to Camunda 8 search fields, per list.
DEFINITION_SORT = {
    "key": "processDefinitionId",
    "name": "name",
    "version": "version",
    # Camunda 8 records no deployment time; keys grow with every deployment (all on the deployment partition).
    "deployed_at": "processDefinitionKey",
}
LATEST_DEFINITION_SORT = {"key": "processDefinitionId"}  # isLatestVersion searches sort by id or tenant only
INSTANCE_SORT = {"start_time": "startDate", "end_time": "endDate", "definition_key": "processDefinitionId"}
TASK_SORT = {
    "created": "creationDate",
    "due": "dueDate",
    "follow_up": "followUpDate",
    "priority": "priority",
    "name": "name",
}
# The id each sort ends with, so that equal values keep one order across pages (user tasks sort by no key:
# the cluster orders their ties by key itself).
INSTANCE_TIEBREAK = "processInstanceKey"
INCIDENT_TIEBREAK = "incidentKey"
# Variable conditions Camunda 8's VariableValueFilterProperty can express: its value is a StringFilterProperty
# over the variable's JSON text, so it has equality, `$in` and `$like`, but no ordering.
VARIABLE_OPERATORS = frozenset({VariableOperator.EQ, VariableOperator.NEQ, VariableOperator.IN, VariableOperator.LIKE})
INCIDENT_SORT = {"created": "creationTime"}
ACTIVITY_SORT = {"start_time": "startDate", "end_time": "endDate"}


# ------------------------------------------------------------------ search requests and pages
def eq(value: Any) -> dict[str, Any] | None:
    """The advanced filter form, which Camunda 8.8 and 8.9 both accept for every filter property."""
    return None if value is None else {"$eq": value}


def between(after: datetime | None, before: datetime | None) -> dict[str, str] | None:
    condition = {}
    if after is not None:
        condition["$gt"] = format_datetime(after)
    if before is not None:
        condition["$lt"] = format_datetime(before)
    return condition or None


def search(
    filter: dict[str, Any],
    *,
    sort: list[dict[str, str]] | None = None,
    offset: int = 0,
    limit: int,
    after: str | None = None,
) -> dict[str, Any]:
    """A search body; filter entries that are None are left out. The page is offset-based (`from`, `limit`), or
    cursor-based when `after` (a response's `page.endCursor`) is given (SearchQueryPageRequest)."""
    page: dict[str, Any] = {"from": offset, "limit": limit} if after is None else {"after": after, "limit": limit}
    body: dict[str, Any] = {
        "filter": {name: value for name, value in filter.items() if value is not None},
        "page": page,
    }
    if sort:
        body["sort"] = sort
    return body


def sort(
    query: ListQuery, fields: dict[str, str], default: str, listing: str, tiebreak: str | None = None
) -> list[dict[str, str]]:
    """The search `sort`: the requested field, then `tiebreak` (the item's key) in the same order."""
    name = query.sort or default
    if name not in fields:
        raise NotSupported(f"Camunda 8 cannot sort {listing} by {name}; it sorts them by {', '.join(fields)}")
    order = query.order.value.upper()
    criteria = [{"field": fields[name], "order": order}]
    if tiebreak is not None:
        criteria.append({"field": tiebreak, "order": order})
    return criteria


def variable_filters(conditions: list[VariableCondition], scope: VariableScope) -> list[dict[str, Any]] | None:
    """Conditions of one scope as VariableValueFilterProperty items (`{name, value}`): Camunda 8 compares the
    variable's JSON text, so values are written as JSON (`"ACME"` with its quotes, `10000`) and a `like` pattern
    (`%`, `_`) becomes its wildcard form (`*`, `?`) inside the quotes. None when there are none."""
    found = []
    for c in conditions:
        if c.scope is not scope:
            continue
        if c.operator is VariableOperator.IN:
            value: Any = {"$in": [_json_text(item) for item in c.value]}
        elif c.operator is VariableOperator.LIKE:
            value = {"$like": '"' + "".join(_LIKE.get(ch, ch) for ch in c.value) + '"'}
        else:
            value = {"$eq" if c.operator is VariableOperator.EQ else "$neq": _json_text(c.value)}
        found.append({"name": c.name, "value": value})
    return found or None


_LIKE = {"%": "*", "_": "?", "*": "\\*", "?": "\\?", "\\": "\\\\"}


def _json_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def page(result: dict[str, Any], items: list[Any], query: ListQuery) -> Page[Any]:
    return Page(items=items, total=result["page"]["totalItems"], page=query.page, size=query.size)


def empty_page(query: ListQuery) -> Page[Any]:
    return Page(items=[], total=0, page=query.page, size=query.size)
