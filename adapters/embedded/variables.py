"""Typed instance variables: SpiffWorkflow keeps plain values, the instance row keeps their declared types.

A value keeps the type it was given (a Long stays a Long, a Date a Date) as long as it still fits that
type after the engine changed it; a new or no-longer-fitting value gets the type inferred from its value.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from gateway.variables import TypedValue, Variables, VariableType, coerce, format_datetime, infer_type


def plain(variables: Variables) -> dict[str, Any]:
    return {name: typed.value for name, typed in variables.items()}


def stored(variables: Variables) -> dict[str, dict[str, Any]]:
    return {name: typed.model_dump(mode="json") for name, typed in variables.items()}


def loaded(column: dict[str, dict[str, Any]]) -> Variables:
    return {name: TypedValue.model_validate(entry) for name, entry in column.items()}


def typed(values: dict[str, Any], known: Variables) -> Variables:
    """Type the workflow's values, keeping each known variable's type where the value still fits it."""
    return {name: _typed(name, value, known.get(name)) for name, value in values.items()}


def _typed(name: str, original: Any, known: TypedValue | None) -> TypedValue:
    value = _json_value(original)
    if known is not None:
        if known.value == value and type(known.value) is type(value):
            return known
        if known.type is not VariableType.JSON or isinstance(value, dict | list):
            try:
                return coerce(name, value, known.type)
            except ValueError:
                pass
    if isinstance(original, datetime):
        return TypedValue(value=value, type=VariableType.DATE)
    return TypedValue(value=value, type=infer_type(value))


def _json_value(value: Any) -> Any:
    """What a script may leave in the data, as a JSON value (scripts run only when an operator allows them)."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


INDEXED_TEXT_LENGTH = 1000  # longer strings are not indexed (a B-tree entry must stay small)
INDEXED_NAME_LENGTH = 255  # embedded_variable_index.name; variables with longer names are not indexed


def index_rows(instance_id: str, scope_id: str, variables: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of `embedded_variable_index` for stored variables (`stored()` form) of an instance (`scope_id` =
    `instance_id`) or of one task (`scope_id` = the task id): numbers in `number_value`, strings and dates in
    `text_value`, booleans as "true"/"false"; Json, Null, over-long strings and names over INDEXED_NAME_LENGTH
    characters get no row (a condition on them finds nothing)."""
    rows = []
    for name, entry in variables.items():
        if len(name) > INDEXED_NAME_LENGTH:
            continue
        value = entry.get("value")
        text: str | None = None
        number: float | None = None
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and len(value) <= INDEXED_TEXT_LENGTH and entry.get("type") != VariableType.JSON:
            text = value
        else:
            continue
        rows.append(
            {"scope_id": scope_id, "name": name, "instance_id": instance_id, "text_value": text, "number_value": number}
        )
    return rows
