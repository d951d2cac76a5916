"""How JUEL (Camunda 7, Flowable) fails on the arithmetic service-task expressions the simulators evaluate.

A real engine evaluates `${1 % divisor}` and fails with `/ by zero` when divisor is 0, or cannot resolve an
unset variable. The simulators evaluate such plain arithmetic over variables with the embedded engine's
evaluator (no calls, no beans) and word the failure as their engine does; expressions with method calls
are not evaluated here (the simulators' `fail` rule covers the one the harnesses use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.embedded.expressions import ExpressionError, evaluate


@dataclass(frozen=True)
class ExpressionFailure:
    cause: str  # the Java exception's message: "/ by zero", "Cannot resolve identifier 'divisor'"
    unknown: bool  # True when a variable was not set (PropertyNotFoundException)


def expression_failure(expression: str | None, variables: dict[str, Any]) -> ExpressionFailure | None:
    """The failure of `expression` over `variables`, or None when it succeeds or is not plain arithmetic."""
    if not expression:
        return None
    try:
        evaluate(expression, variables)
    except ExpressionError as error:
        text = str(error)
        if text.startswith("Invalid expression"):
            return None
        unknown = re.search(r"the variable '(\w+)' is not set", text)
        if unknown:
            return ExpressionFailure(f"Cannot resolve identifier '{unknown[1]}'", unknown=True)
        if "by zero" in text:
            return ExpressionFailure("/ by zero", unknown=False)
        return ExpressionFailure(text.split(": ", 1)[-1], unknown=False)
    return None
