"""Typed process variables: the one format of API.md, with inference and validation.

A value travels through the gateway as `TypedValue(value, type)` in canonical JSON form:
Date values are ISO 8601 UTC strings, Json values any JSON, Long/Integer Python ints.
Adapters translate this form to and from their engine's own format.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import ValidationFailed

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class VariableType(StrEnum):
    NULL = "Null"
    BOOLEAN = "Boolean"
    STRING = "String"
    INTEGER = "Integer"
    LONG = "Long"
    DOUBLE = "Double"
    DATE = "Date"
    JSON = "Json"


class TypedValue(BaseModel):
    """A process variable: its value and its type. Answers always carry `type`; in requests it may be left out
    and is then inferred from the value (`true` → Boolean, `7` → Integer, `"x"` → String, ...)."""

    model_config = ConfigDict(frozen=True)

    value: Any = None
    type: VariableType = Field(  # type: ignore[assignment]  # every TypedValue the gateway builds has one; see the docstring
        None,
        description="Null, Boolean, String, Integer, Long, Double, Date or Json; optional in requests (inferred)",
    )


Variables = dict[str, TypedValue]

REQUEST_VARIABLES_DOC: dict[str, Any] = {
    "description": 'Variables by name: `{"value": ..., "type": ...}` (type optional, inferred when left out) '
    "or a bare value",
    "json_schema_extra": {"additionalProperties": {"$ref": "#/components/schemas/TypedValue"}},
}


def format_datetime(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`; milliseconds only when they are not zero."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def parse_datetime(text: str) -> datetime:
    """Parse ISO 8601 (also `Z` and `+0000` offsets, as Camunda writes them) into aware UTC."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    elif len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-4:].isdigit():
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def infer_type(value: Any) -> VariableType:
    if value is None:
        return VariableType.NULL
    if isinstance(value, bool):
        return VariableType.BOOLEAN
    if isinstance(value, int):
        return VariableType.INTEGER if INT32_MIN <= value <= INT32_MAX else VariableType.LONG
    if isinstance(value, float):
        return VariableType.DOUBLE
    if isinstance(value, str):
        return VariableType.STRING
    if isinstance(value, dict | list):
        return VariableType.JSON
    raise ValueError(f"unsupported value of Python type {type(value).__name__}")


def coerce(name: str, value: Any, declared: VariableType | str | None) -> TypedValue:
    """Validate one request variable and return it in canonical form; raise ValueError with a reason."""
    if declared is None:
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(
                f"{value} is outside the Long range [{INT64_MIN}, {INT64_MAX}]; send it as a String (or a Double)"
            )
        return TypedValue(value=value, type=infer_type(value))
    try:
        var_type = VariableType(declared)
    except ValueError:
        allowed = ", ".join(t.value for t in VariableType)
        raise ValueError(f"unknown type {declared!r}; expected one of {allowed}") from None
    if value is None:
        return TypedValue(value=None, type=var_type)
    match var_type:
        case VariableType.NULL:
            raise ValueError("a Null variable must have the value null")
        case VariableType.BOOLEAN:
            if not isinstance(value, bool):
                raise ValueError("a Boolean needs true or false")
        case VariableType.STRING:
            if not isinstance(value, str):
                raise ValueError("a String needs a JSON string")
        case VariableType.INTEGER | VariableType.LONG:
            low, high = (INT32_MIN, INT32_MAX) if var_type is VariableType.INTEGER else (INT64_MIN, INT64_MAX)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                article = "an" if var_type is VariableType.INTEGER else "a"
                raise ValueError(f"{article} {var_type.value} needs a whole number")
            if not low <= value <= high:
                raise ValueError(f"{value} is outside the {var_type.value} range [{low}, {high}]")
        case VariableType.DOUBLE:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("a Double needs a number")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError("a Double must be finite")
        case VariableType.DATE:
            if not isinstance(value, str):
                raise ValueError("a Date needs an ISO 8601 string")
            try:
                value = format_datetime(parse_datetime(value))
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
            except OverflowError:
                raise ValueError(f"{value!r} lies outside 0001-01-01..9999-12-31 once moved to UTC") from None
        case VariableType.JSON:
            pass
    return TypedValue(value=value, type=var_type)


def parse_request_variables(raw: dict[str, Any] | None, *, loc: str = "variables") -> Variables:
    """Turn the request form `{name: {value, type?}}` (or a bare value) into canonical TypedValues.

    Collects every problem and raises one 422 naming each bad variable.
    """
    if not raw:
        return {}
    result: Variables = {}
    errors: list[dict[str, Any]] = []
    for name, entry in raw.items():
        if isinstance(entry, dict) and "value" in entry and set(entry) <= {"value", "type"}:
            value, declared = entry["value"], entry.get("type")
        else:
            value, declared = entry, None
        try:
            result[name] = coerce(name, value, declared)
        except ValueError as exc:
            errors.append({"loc": ["body", loc, name], "msg": str(exc)})
    if errors:
        detail = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors)
        raise ValidationFailed(f"Invalid variables: {detail}", errors=errors)
    return result


def to_plain(variables: Variables) -> dict[str, Any]:
    return {name: typed.value for name, typed in variables.items()}


def from_plain(values: dict[str, Any]) -> Variables:
    """Type plain values read back from an engine that keeps no types (inference only)."""
    return {name: TypedValue(value=value, type=infer_type(value)) for name, value in values.items()}


def audit_summary(variables: dict[str, Any]) -> dict[str, str]:
    """What the audit log keeps of variables: names and types, never values (they may be personal data)."""
    return {name: getattr(typed, "type", "inferred") for name, typed in variables.items()}


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why a string cannot be stored (a NUL character, or a lone UTF-16 surrogate such as JSON's `"\\ud800"`,
    which no UTF-8 text can hold), or None."""
    if "\x00" in text:
        return "contains a NUL character, which no string may contain"
    if _LONE_SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (e.g. \\ud800), which is not a character"
    return None
