"""The safe evaluator behind gateway conditions, timers and assignments: useful, and unable to escape."""

from __future__ import annotations

import pytest

from adapters.embedded.expressions import ExpressionError, compile_expression, evaluate, is_timer_literal

ORDER = {
    "amount": 120,
    "status": "new",
    "approved": True,
    "nothing": None,
    "order": {"lines": [{"sku": "A-1"}], "total": 99.5},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("amount > 100", True),
        ("${amount > 100}", True),
        ("#{amount <= 100}", False),
        ("amount > 100 and status == 'new'", True),
        ("${approved && amount >= 120}", True),
        ("${!approved || amount < 0}", False),
        ("status != 'new'", False),
        ("status in ['new', 'open']", True),
        ("status not in ('closed',)", True),
        ("amount * 2 - 40 == 200", True),
        ("amount / 8", 15.0),
        ("amount % 7", 1),
        ("-amount", -120),
        ("'big' if amount > 100 else 'small'", "big"),
        ("order.total < 100", True),
        ("order['lines'][0]['sku']", "A-1"),
        ("order.lines[0].sku == 'A-1'", True),
        ("status + '!'", "new!"),
        ("approved == true", True),
        ("nothing is null and not false", True),
        ("'&&' == '&&'", True),  # operators inside string literals stay as they are
    ],
)
def test_evaluates_conditions(expression: str, expected: object) -> None:
    assert evaluate(expression, ORDER) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('id')", "calling a function"),
        ("open('/etc/passwd')", "calling a function"),
        ("amount.__class__", "'__class__'"),
        ("order.__class__.__mro__", "'__mro__'"),
        ("order._private", "'_private'"),
        ("__builtins__", "'__builtins__'"),
        ("[x for x in order]", "ListComp"),
        ("lambda: 1", "Lambda"),
        ("2 ** 1000000", "power operator"),
        ("f'{amount}'", "JoinedStr"),
        ("(y := 1)", "NamedExpr"),
        ("amount >", "Invalid expression"),
        ("", "empty"),
    ],
)
def test_rejects_anything_beyond_data(expression: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason.replace("(", r"\(").replace("*", r"\*")):
        compile_expression(expression)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("total > 0", "the variable 'total' is not set"),
        ("status > 0", "not supported between instances of 'str' and 'int'"),
        ("status * 1000000000", "cannot apply mult to str and int"),
        ("amount / 0", "division by zero"),
        ("amount.value", "cannot read the field 'value' of a int"),
        ("order.missing", "no field 'missing'"),
        ("order['lines'][3]", "no element 3"),
    ],
)
def test_reports_why_an_expression_cannot_be_evaluated(expression: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, ORDER)
    assert reason in str(caught.value)
    assert expression in str(caught.value)


def test_timer_literals_are_recognised_but_expressions_are_not() -> None:
    assert all(is_timer_literal(text) for text in ("PT5M", "P2D", "R3/PT10M", "2026-11-22T10:00:00Z", " PT0.5S "))
    assert not any(is_timer_literal(text) for text in ("amount > 1", "'PT5M'", "${delay}", "P", "PT"))
