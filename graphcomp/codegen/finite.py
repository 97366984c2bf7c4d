"""`gc.compile(..., check_finite=True)`: a debug mode of the generated module in which every line of
`forward` and `_gradients` (inside loops too) that computes a value of the graph is followed by one
short call, `_expect_finite(xp, t3, line=57, operands=(t2,))`, that stops at the first value holding
NaN or an infinity. Its report (templates/runtime/helpers.py) gives the line of the module, the value's
name, its formula as text and as code, its operands' values where it first went wrong, and where the
user declared it: the file and line of the Python DSL, or a spec file's entry.

What the report needs besides the arrays is one row per checked line, `_FINITE_LINES` at the top of
the module, keyed by the line's number; the numbers are known once the module is laid out, so the
checks are written with a marker that is replaced by the line number after rendering (the number of
lines never changes). The common parts of a fused formula (sympy.cse's parts) are not checked, as in
check_shapes: an infinity there may be harmless (1/(1 + e^x) at large x), and the line using them is.
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import replace

from ..diff.reverse import Backward
from ..ir import Declared, Node, declared
from ..ops import OPS
from .comments import literal
from .listing import Statement
from .statements import ModuleCode

HELPER = "expect_finite"  # the function of templates/runtime/helpers.py the check lines call (_expect_finite)
FUNCTIONS = ("forward", "gradient_forward", "backward", "inference")
_MARK = "@finite{}@"


def add_finite_checks(context: dict, code: ModuleCode, inference: ModuleCode | None) -> None:
    """A check after every line of forward and _gradients that computes a value, and the rows of
    `_FINITE_LINES` they read (by marker until `number_lines` numbers them)."""
    rows: list[tuple] = []
    for key in FUNCTIONS:
        if key in context:
            owner = inference if key == "inference" else code
            context[key] = [_checked(s, owner, rows) for s in context[key]]
    context["finite_lines"] = rows


def number_lines(source: str) -> str:
    """The rendered module with each marker replaced by the number of the line its check follows."""
    numbers = {}
    for number, line in enumerate(source.splitlines(), 1):
        for mark in re.findall(r"line=(@finite\d+@)", line):
            numbers[mark] = number - 1  # the assignment is the line just above its check
    return re.sub(r"@finite\d+@", lambda m: str(numbers[m.group(0)]), source)


def _checked(s: Statement, code: ModuleCode, rows: list[tuple]) -> Statement:
    """The statement with its check (a loop: each line of its block), and its row added to `rows`. With
    check_shapes too, both checks share the line after the statement."""
    if s.block:
        return replace(s, block=tuple(_checked(inner, code, rows) for inner in s.block))
    if not s.computes or not s.target and " += " not in s.expr:
        return s
    node, args = s.computes
    target, expr = (s.target, s.expr) if s.target else s.expr.split(" += ")  # a loop's running sum: d_W += term
    # (a carry updated in place reads its old value, gone once the line has run: not passed)
    operands = tuple(x for x in dict.fromkeys(_operands(expr)) if x != target)
    mark = _MARK.format(len(rows))
    formula = OPS[node.op].text(node, tuple(literal(a) for a in args))
    rows.append((mark, target, expr if s.target else f"{target} + {expr}", formula, operands, _place(code, node)))
    tuple_text = "(" + ", ".join(operands) + ("," if len(operands) == 1 else "") + ")"
    check = f"_expect_finite(xp, {target}, line={mark}, operands={tuple_text})"
    return replace(s, check=f"{check}; {s.check}" if s.check else check)


def _operands(expr: str) -> list[str]:
    """What a line's code reads, as it reads it: each variable, or a view of one (`W.T`, `t5.shape[0]`,
    `x[:, t, :]`), never a call (`xp.ones_like(t2)`, which the check would compute again: its variables)."""
    found: list[str] = []

    def visit(n: ast.AST) -> None:
        root = n
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        if isinstance(root, ast.Name) and root.id != "xp":
            found.append(ast.unparse(n))
            return
        for child in ast.iter_child_nodes(n):
            if not (isinstance(n, ast.Call) and child is n.func):
                visit(child)

    visit(ast.parse(expr, mode="eval"))
    return found


def _place(code: ModuleCode, node: Node) -> str:
    """Where the user declared the value a line computes: the value itself (or the written value a
    simplified one stands for), else, for a line of the backward pass, the forward value it
    differentiates; "" when graphcomp made it (a loop's derivative)."""
    place = _declared(code, node)
    if place is not None:
        return _shown(place)
    backward: Backward | None = code.backward
    owner = None if backward is None else backward.made_by.get(node, backward.fan_out.get(node))
    if owner is None:
        return ""
    place = _declared(code, owner)
    where = f" ({_shown(place)})" if place is not None else ""
    return f"in the derivative of {code.names.variable(owner)}{where}"


def _declared(code: ModuleCode, node: Node) -> Declared | None:
    """The place of the written value `node` stands for, else of `node` itself."""
    written = code.names.origin(node)
    return (declared(written) if written is not None else None) or declared(node)


def _shown(place: Declared) -> str:
    """A place, its file under the working folder as a relative path: the module reads the same on
    every machine the project is checked out on."""
    try:
        relative = os.path.relpath(place.file)
    except ValueError:  # another drive
        return str(place)
    return str(place) if relative.startswith("..") else str(replace(place, file=relative))
