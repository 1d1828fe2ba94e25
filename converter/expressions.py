"""Evaluate the arithmetic that Histograms.json allows in numbers ("16 * 1024 * 1024"), and nothing else.

Definitions are data from the network, so nothing is ``eval``-ed: the text is
parsed into a syntax tree and only integer literals and + - * / // % ** and
parentheses are walked. Every operand and result must stay within
``MAX_MAGNITUDE`` (64 bits, more than any C++ size the browser uses), so no
expression can take long or use much memory (``(2**64)**64**...`` is refused
after one step).
"""

from __future__ import annotations

import ast
import operator

_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Div: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
MAX_EXPRESSION_LENGTH = 200
MAX_MAGNITUDE = 2 ** 64
MAX_EXPONENT = 64


class UnresolvedExpression(ValueError):
    """A number in a definition uses something other than integer arithmetic (e.g. a C++ symbol)."""


def evaluate(value: int | str) -> int:
    """An integer, or the value of an arithmetic expression in a string."""
    if isinstance(value, bool):
        raise UnresolvedExpression(f"{value!r} is not a number")
    if isinstance(value, int):
        return _bounded(value, repr(value))
    if not isinstance(value, str) or len(value) > MAX_EXPRESSION_LENGTH:
        raise UnresolvedExpression(f"{value!r} is not a number or an arithmetic expression")
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError:
        raise UnresolvedExpression(f"cannot resolve {value!r}") from None
    return _walk(tree.body, value)


def _walk(node: ast.AST, text: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return _bounded(node.value, text)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _walk(node.left, text), _walk(node.right, text)
        if isinstance(node.op, ast.Pow) and not 0 <= right <= MAX_EXPONENT:
            raise UnresolvedExpression(f"exponent out of range in {text!r}")
        try:
            return _bounded(_OPERATORS[type(node.op)](left, right), text)
        except ZeroDivisionError:
            raise UnresolvedExpression(f"division by zero in {text!r}") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _walk(node.operand, text)
        return -operand if isinstance(node.op, ast.USub) else operand
    raise UnresolvedExpression(f"cannot resolve {text!r}")


def _bounded(number: int, text: str) -> int:
    """``number``, if it is within MAX_MAGNITUDE: operands that stay small keep every step cheap."""
    if abs(number) > MAX_MAGNITUDE:
        raise UnresolvedExpression(f"number out of range in {text!r}")
    return number
