"""Expressions in BPMN (gateway conditions, timer and assignment expressions), evaluated without `eval`.

An expression is a small Python-like formula over the instance's variables: names, literals, comparisons
(also `in` / `not in`), `and` / `or` / `not`, arithmetic on numbers, `x if c else y`, and field access on
Json variables (`order.amount`, `order["amount"]`, `items[0]`). There are no calls, no builtins and no
attributes of Python objects, so an expression cannot reach anything but the data it is given.

Camunda-style expressions are accepted too: `${amount > 0}`, and the JUEL operators `&&`, `||`, `!` and the
literals `true`, `false`, `null`.

Every evaluation has a budget: at most MAX_STEPS nodes visited and at most MAX_BUILT characters or list
items built by `+` in total, so a short expression over a big variable cannot eat the gateway's memory.
A multi-instance activity's `loopCardinality` may be at most the cap the engine was given
(PM_EMBEDDED_MAX_CARDINALITY); a larger one fails the activity (an incident).

Script tasks are a different matter: they run real Python (`exec`) and are off unless the operator
turns them on with PM_EMBEDDED_ALLOW_SCRIPTS.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

_WRAPPED = re.compile(r"^\s*[$#]\{(?P<body>.*)\}\s*$", re.DOTALL)
_STRING_LITERAL = re.compile(r"""('(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")""")
_JUEL_OPERATORS = ((re.compile(r"&&"), " and "), (re.compile(r"\|\|"), " or "), (re.compile(r"!(?!=)"), " not "))
_JUEL_LITERALS = {"true": True, "false": False, "null": None}

# ISO 8601 dates, durations and repetitions are what timer definitions usually hold, unquoted.
# Dates in extended or basic form, with any offset (`Z`, `+01`, `+0100`, `+01:00`) or none.
_TIMER_LITERAL = re.compile(
    r"^(R\d*/\S+|P(?=\d|T\d)[\dYMWDTHS.,]+|\d{4}-?\d{2}-?\d{2}(T[\d:.,]+(Z|[+-]\d{2}(:?\d{2})?)?)?)$",
    re.IGNORECASE,
)

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Name,
    ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Subscript, ast.Attribute,
    *_BINARY, *_UNARY, *_COMPARE,
)  # fmt: skip


MAX_STEPS = 10_000  # AST nodes one evaluation may visit
MAX_BUILT = 1_048_576  # characters (texts) or items (lists) `+` may build in one evaluation, all joins together
MAX_INT_BITS = 4_096  # the largest integer arithmetic may produce


class ExpressionError(Exception):
    """An expression that cannot be compiled (at deployment) or evaluated (at run time); the message says why."""


def normalize(text: str) -> str:
    """Unwrap `${...}` and translate JUEL operators, leaving string literals alone."""
    wrapped = _WRAPPED.match(text)
    body = wrapped.group("body") if wrapped else text
    parts = _STRING_LITERAL.split(body)
    for index in range(0, len(parts), 2):  # even parts lie outside string literals
        for pattern, replacement in _JUEL_OPERATORS:
            parts[index] = pattern.sub(replacement, parts[index])
    return "".join(parts).strip()


@functools.lru_cache(maxsize=4096)
def compile_expression(text: str) -> ast.Expression:
    """Parse and check an expression once; raise ExpressionError naming what is not allowed."""
    source = normalize(text)
    if not source:
        raise ExpressionError("The expression is empty")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"Invalid expression {text.strip()!r}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(
            f"Invalid expression {text.strip()[:200]!r}...: it is nested too deeply (evaluation budget)"
        ) from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_STEPS:
        raise ExpressionError(f"Invalid expression: it has more than {MAX_STEPS} parts (evaluation budget)")
    for node in nodes:
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(f"Invalid expression {text.strip()!r}: {_describe(node)} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"Invalid expression {text.strip()!r}: the field {node.attr!r} is not allowed")
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise ExpressionError(f"Invalid expression {text.strip()!r}: the name {node.id!r} is not allowed")
    return tree


def evaluate(text: str, variables: Mapping[str, Any]) -> Any:
    tree = compile_expression(text)
    try:
        return _Evaluator(variables).visit(tree.body)
    except ExpressionError as exc:
        raise ExpressionError(f"Cannot evaluate {text.strip()!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ExpressionError(f"Cannot evaluate {text.strip()!r}: {exc}") from None
    except RecursionError:
        raise ExpressionError(f"Cannot evaluate {text.strip()[:200]!r}: it is nested too deeply") from None


def is_timer_literal(text: str) -> bool:
    return bool(_TIMER_LITERAL.match(text.strip()))


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "calling a function"
    if isinstance(node, ast.Pow):
        return "the power operator"
    return f"a {type(node).__name__} construct"


class _Evaluator:
    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables
        self.steps = 0
        self.built = 0

    def visit(self, node: ast.AST) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ExpressionError(f"the evaluation takes more than {MAX_STEPS} steps (evaluation budget)")
        return getattr(self, f"visit_{type(node).__name__}")(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.variables:
            return self.variables[node.id]
        if node.id in _JUEL_LITERALS:
            return _JUEL_LITERALS[node.id]
        raise ExpressionError(f"the variable {node.id!r} is not set")

    def visit_List(self, node: ast.List) -> list[Any]:
        return [self.visit(item) for item in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.visit(item) for item in node.elts)

    def visit_Set(self, node: ast.Set) -> set[Any]:
        return {self.visit(item) for item in node.elts}

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        result: Any = None
        for value in node.values:
            result = self.visit(value)
            if (isinstance(node.op, ast.And) and not result) or (isinstance(node.op, ast.Or) and result):
                return result
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        return _UNARY[type(node.op)](self.visit(node.operand))

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        # Only numbers take part in arithmetic (and `+` joins texts or lists): no `"x" * 10**9` memory bombs.
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        joining = isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, str | list)
        if not numbers and not joining:
            raise ExpressionError(
                f"cannot apply {type(node.op).__name__.lower()} to {type(left).__name__} and {type(right).__name__}"
            )
        if joining:
            self.built += len(left) + len(right)
            if self.built > MAX_BUILT:
                raise ExpressionError(
                    f"the expression builds more than {MAX_BUILT} characters or items with + (evaluation budget)"
                )
        elif (
            isinstance(node.op, ast.Mult)
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise ExpressionError(f"the product is larger than {MAX_INT_BITS} bits (evaluation budget)")
        return _BINARY[type(node.op)](left, right)

    def visit_Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        container, key = self.visit(node.value), self.visit(node.slice)
        if not isinstance(container, dict | list | str):
            raise ExpressionError(f"cannot index a {type(container).__name__}")
        try:
            return container[key]
        except (KeyError, IndexError):
            raise ExpressionError(f"no element {key!r}") from None

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        container = self.visit(node.value)
        if not isinstance(container, dict):
            raise ExpressionError(f"cannot read the field {node.attr!r} of a {type(container).__name__}")
        if node.attr not in container:
            raise ExpressionError(f"no field {node.attr!r}")
        return container[node.attr]


class _SafeEnvironment(TaskDataEnvironment):
    """SpiffWorkflow evaluates some expressions on the environment directly (message correlation properties):
    those go to the safe evaluator too, never to `eval`."""

    def evaluate(self, expression: str, context: Mapping[str, Any], external_context: Any = None) -> Any:
        return evaluate(expression, {**(external_context or {}), **context})


class EmbeddedScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's hook for every expression and script: expressions go to the safe evaluator above."""

    def __init__(self, *, allow_scripts: bool, max_cardinality: int = 1_000) -> None:
        super().__init__(environment=_SafeEnvironment())
        self.allow_scripts = allow_scripts
        self.max_cardinality = max_cardinality

    def validate(self, expression: str) -> None:
        compile_expression(expression)

    def evaluate(self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None) -> Any:
        if is_timer_literal(expression):
            return expression.strip()
        try:
            result = evaluate(expression, {**(external_context or {}), **task.data})
        except ExpressionError as exc:
            raise WorkflowTaskException(str(exc), task=task, exception=exc) from None
        cardinality = expression == getattr(task.task_spec, "cardinality", None)
        if cardinality and isinstance(result, int) and result > self.max_cardinality:
            raise WorkflowTaskException(
                f"loopCardinality {result} is above the limit of {self.max_cardinality} instances "
                "(PM_EMBEDDED_MAX_CARDINALITY)",
                task=task,
            )
        return result

    def execute(self, task: Any, script: str, external_context: Mapping[str, Any] | None = None) -> Any:
        if not self.allow_scripts:
            raise WorkflowTaskException(
                "Script tasks are disabled; an operator can enable them with PM_EMBEDDED_ALLOW_SCRIPTS=true",
                task=task,
            )
        return super().execute(task, script, external_context)
