"""The comment on each line of the backward pass: which forward value it differentiates, and the
local derivative it multiplies by (`h1 = sigmoid(a1); dh1/da1 = h1*(1 - h1)`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import sympy as sp

from ..diff.reverse import Backward
from ..formulas.printing import number_text, plain_text
from ..formulas.derivatives import local_derivative
from ..formulas.renaming import renaming
from ..ir import Node
from ..ops import OPS, in_terms_of, scalar_expr

if TYPE_CHECKING:
    from .listing import FunctionCode


def literal(arg: str | int | float) -> str:
    """A variable name as is, a number as code."""
    return arg if isinstance(arg, str) else number_text(arg)


def formula(node: Node, function: FunctionCode) -> str:
    """The node's op over its operands as `function` reads them, as plain text: `u + v`. A fused
    formula's text is made once per formula and order of its operands' names (formulas.renaming)."""
    args = tuple(literal(function.operand(x)) for x in node.inputs)
    stand_ins = renaming(list(enumerate(args)), split=None) if node.op == "formula" else None
    if stand_ins is None:
        return OPS[node.op].text(node, args)
    key = ("text", node.attrs, stand_ins.pattern)
    if key not in function.comment_parts:
        stand_in_args = tuple(str(stand_ins.symbols[k]) for k in range(len(args)))
        function.comment_parts[key] = OPS[node.op].text(node, stand_in_args)
    return stand_ins.named_back(function.comment_parts[key])


def _local_text(owner: Node, index: int, name: Callable[[Node], str]) -> str:
    """∂owner/∂(its operand `index`) as plain text over the values' names, printed under stand-ins
    that sort as the names do (formulas.renaming), so that SymPy builds each shape of formula once."""
    values = list(dict.fromkeys(x for x in (*owner.inputs, owner) if x.op != "const"))
    stand_ins = renaming([(x, name(x)) for x in values], split=None)
    local = local_derivative(scalar_expr(owner), index)
    if stand_ins is None:
        return plain_text(in_terms_of(local, owner, lambda value: sp.Symbol(name(value), real=True)))
    return stand_ins.named_back(plain_text(in_terms_of(local, owner, stand_ins.symbols.__getitem__)))


def comment(node: Node, backward: Backward, function: FunctionCode) -> str:
    """Why a backward line of `function` exists: the fan-out it sums, or the forward value and the
    local derivative."""
    name = function.names.variable
    if node in backward.fan_out:
        return f"{name(backward.fan_out[node])} is used more than once: sum of its paths"
    owner = backward.made_by.get(node)
    if owner is None:
        return ""
    text = _once(function, (owner,), lambda: f"{name(owner)} = {formula(owner, function)}")
    into = backward.flows_into.get(node)
    if into is None:
        return text
    # every operand this line is the gradient path into (u and v share one in f = w*(u + v))
    indices = ([i for i, x in enumerate(owner.inputs) if backward.paths.get((owner, i)) is node]
               or [owner.inputs.index(into)])
    operands = list(dict.fromkeys(name(owner.inputs[i]) for i in indices))
    if OPS[owner.op].has_formula:
        partials = " = ".join(f"d{name(owner)}/d{operand_name}" for operand_name in operands)
        local_text = _once(function, (owner, indices[0]), lambda: _local_text(owner, indices[0], name))
        return f"{text}; {partials} = {local_text}"
    return f"{text}; into {', '.join(operands)}"


def _once(function: FunctionCode, key: tuple, make: Callable[[], str]) -> str:
    """A comment's part made once per function: a forward value is the owner of several backward
    lines (one per operand), each of which shows its formula."""
    if key not in function.comment_parts:
        function.comment_parts[key] = make()
    return function.comment_parts[key]
