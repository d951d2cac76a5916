"""Variable conditions of list queries: `?variable=amount:gt:10000&variable=customer:eq:"ACME"`.

One condition is `name:operator:value`:

- `name` is the variable's name (no `:`);
- `operator` is one of `eq, neq, gt, gte, lt, lte, like, in`;
- `value` is JSON: a string in double quotes (`"ACME"`), a number (`10000`, `12.5`), `true`/`false`, or for
  `in` an array of strings or of numbers (`["open","held"]`). Dates are compared as ISO 8601 strings.
  `like` takes a string where `%` matches any run of characters (`"ACME%"`).

Conditions are combined with AND. An instance (or task) matches a condition only when it has the variable, so
`neq` does not match instances without it (as on Camunda and Flowable). Each adapter maps conditions to its
engine's own variable filter; an operator the engine lacks is a 501 (`EngineAdapter.variable_operators`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic_core import PydanticCustomError

from gateway.variables import INT64_MAX, INT64_MIN, unstorable

MAX_IN_VALUES = 100
MAX_CONDITIONS = 50  # per query parameter (variable, task_variable)
CONDITION_ERROR = "variable_condition"  # the pydantic error type; the API answers it with a 400, not a 422


class VariableOperator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    LIKE = "like"
    IN = "in"


class VariableScope(StrEnum):
    """Whose variables a condition reads: the process instance's, or a task's own (task-local) ones."""

    INSTANCE = "instance"
    TASK = "task"


ORDERING = frozenset({VariableOperator.GT, VariableOperator.GTE, VariableOperator.LT, VariableOperator.LTE})

CONDITIONS_DOC = (
    "Filter by process instance variables: `name:operator:value`, repeatable (all must hold). Operators: "
    "`eq`, `neq`, `gt`, `gte`, `lt`, `lte`, `like` (`%` matches any characters) and `in` (a JSON array). The value "
    'is JSON: quote strings. Examples: `amount:gt:10000`, `customer:eq:"ACME"`, `approved:eq:true`, '
    '`region:in:["EU","US"]`, `order_no:like:"47%"`, `due:lt:"2026-12-01T00:00:00Z"`. An invalid condition '
    "is a 400 naming it; an operator the engine cannot filter by is a 501 naming the engine and the operator."
)
TASK_CONDITIONS_DOC = (
    'Filter by the task\'s own (task-local) variables; same syntax as `variable`, e.g. `decision:eq:"approve"`.'
)


@dataclass(frozen=True)
class VariableCondition:
    """One parsed condition. `value` is a str, int, float or bool (a non-empty list of str or of numbers for
    `in`); `text` is the condition as the caller wrote it, for messages."""

    name: str
    operator: VariableOperator
    value: Any
    scope: VariableScope
    text: str

    @property
    def values(self) -> list[Any]:
        """The values compared against: the list of `in`, else the one value."""
        return list(self.value) if self.operator is VariableOperator.IN else [self.value]


def _refuse(text: str, reason: str) -> PydanticCustomError:
    return PydanticCustomError(
        CONDITION_ERROR, "invalid variable condition '{condition}': {reason}", {"condition": text, "reason": reason}
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_condition(text: str, scope: VariableScope = VariableScope.INSTANCE) -> VariableCondition:
    """Parse `name:operator:value`. Errors: `PydanticCustomError` of type `variable_condition` whose message
    names the condition and what is wrong with it (the API answers it as a 400)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0].strip():
        raise _refuse(text, "write it as name:operator:value, e.g. amount:gt:10000")
    name, operator_text, raw = parts[0].strip(), parts[1].strip(), parts[2]
    try:
        operator = VariableOperator(operator_text)
    except ValueError:
        known = ", ".join(VariableOperator)
        raise _refuse(text, f"unknown operator '{operator_text}'; use one of {known}") from None
    try:
        value = json.loads(raw)
    except ValueError:
        raise _refuse(text, f'the value {raw!r} is not JSON; quote strings, e.g. {name}:{operator}:"{raw}"') from None
    for part in [name, *(value if isinstance(value, list) else [value])]:
        if isinstance(part, str) and (reason := unstorable(part)):
            raise _refuse(text, f"a string {reason}")
        if isinstance(part, int) and not isinstance(part, bool) and not INT64_MIN <= part <= INT64_MAX:
            raise _refuse(text, f"the integer is outside the signed 64-bit range [{INT64_MIN}, {INT64_MAX}]")
    if operator is VariableOperator.IN:
        if not isinstance(value, list) or not value:
            raise _refuse(text, '\'in\' takes a non-empty JSON array, e.g. ["EU","US"]')
        if len(value) > MAX_IN_VALUES:
            raise _refuse(text, f"'in' takes at most {MAX_IN_VALUES} values")
        if not (all(isinstance(item, str) for item in value) or all(_is_number(item) for item in value)):
            raise _refuse(text, "'in' takes strings only or numbers only")
    elif operator is VariableOperator.LIKE:
        if not isinstance(value, str):
            raise _refuse(text, "'like' takes a string pattern, e.g. \"ACME%\"")
    elif operator in ORDERING:
        if not (isinstance(value, str) or _is_number(value)):
            raise _refuse(text, f"'{operator}' compares numbers or strings (dates as ISO 8601 strings)")
    elif not (isinstance(value, str | bool) or _is_number(value)):
        raise _refuse(text, f"'{operator}' compares a string, a number or true/false")
    return VariableCondition(name=name, operator=operator, value=value, scope=scope, text=text)


def parse_conditions(texts: list[str], scope: VariableScope) -> list[VariableCondition]:
    """Every condition parsed; at most MAX_CONDITIONS (a query of thousands would exceed the databases' limits)."""
    if len(texts) > MAX_CONDITIONS:
        raise PydanticCustomError(
            CONDITION_ERROR,
            "at most {limit} variable conditions per query; this one has {count}",
            {"limit": MAX_CONDITIONS, "count": len(texts)},
        )
    return [parse_condition(text, scope) for text in texts]
