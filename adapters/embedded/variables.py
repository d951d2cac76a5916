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
