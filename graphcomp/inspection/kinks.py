"""Values that sit exactly on a kink, for a derivation: where a function is not differentiable, the
derivative the code computes is one of several and the reader should know which.

Elementwise ops are read off their formula, so that a new op declared by a formula needs nothing here:
every condition of a `Piecewise` case (relu's a > 0, maximum's a > b, a clip's bounds) is a kink where
its two sides are equal, and so is the argument of |·|. At a kink the code takes the first case whose
condition holds, and the note gives the local derivative that case gives (relu'(0) = 0, the second
operand of maximum wins a tie). Reductions to a max or a min, and max-pooling, have kinks where several
elements tie for the extreme value: their rule shares the gradient equally among them.
"""
from __future__ import annotations

import functools
from typing import Callable, Collection, Mapping

import numpy as np
import sympy as sp

from ..formulas.derivatives import local_derivative, placeholder
from ..formulas.printing import plain_text
from ..ir import Node
from ..ops import OPS, scalar_expr

Name = Callable[[Node], str]


def kink_notes(nodes: list[Node], values: Mapping[Node, object], name: Name, formula: Name,
               paths: Collection[tuple[Node, int]]) -> list[str]:
    """One note per value of `nodes` that sits on a kink at `values` (a traced run), in their order.
    `paths`: the (node, operand index) pairs a gradient flows through; a kink only matters where such an
    operand meets it (a mask's zeros select a case, but no derivative depends on them)."""
    notes = []
    for node in nodes:
        if node not in values or any(x.op != "const" and x not in values for x in node.inputs):
            continue
        operands = [np.asarray(x.attr("value") if x.op == "const" else values[x], dtype=float) for x in node.inputs]
        if OPS[node.op].has_formula:
            note = _formula_kink(node, operands, name, {i for i in range(len(node.inputs)) if (node, i) in paths})
        elif node.op in ("max", "min", "max_pool2d") and (node, 0) in paths:
            note = _tie(node, operands[0], np.asarray(values[node], dtype=float))
        else:
            continue
        if note:
            notes.append(f"{name(node)} = {formula(node)}: {note}")
    return notes


def _formula_kink(node: Node, operands: list[np.ndarray], name: Name, moving: set[int]) -> str:
    """The first kink of an elementwise formula that an element sits on, and the derivative taken there:
    where the two sides of an inequality of its cases meet, or |·|'s argument is 0, with an operand the
    gradient flows through (`moving`) on it. (An equality selects a case: no kink.)"""
    expr = scalar_expr(node)
    symbols = [placeholder(i) for i in range(len(node.inputs))]
    arrays = np.broadcast_arrays(*operands) if operands else []
    inequalities = (sp.StrictGreaterThan, sp.StrictLessThan, sp.GreaterThan, sp.LessThan)
    edges = [(r.lhs - r.rhs) for p in expr.atoms(sp.Piecewise) for _, condition in p.args
             for r in ([condition] if isinstance(condition, inequalities) else condition.atoms(*inequalities))]
    edges += [a.args[0] for a in expr.atoms(sp.Abs)]
    edges = [e for e in edges if any(symbols[i] in e.free_symbols for i in moving)]
    for edge in edges:
        at = np.asarray(_numeric(edge, len(symbols))(*arrays)) == 0
        if not at.any():
            continue
        index = tuple(int(k) for k in np.argwhere(at)[0]) if at.ndim else ()
        point = {s: float(a[index]) for s, a in zip(symbols, arrays)}
        names = {s: sp.Symbol(_operand_name(x, name), real=True) for s, x in zip(symbols, node.inputs)}
        where = ", ".join(f"{names[s]} = {_number(point[s])}" for i, s in enumerate(symbols)
                          if node.inputs[i].op != "const")
        slopes = ", ".join(f"d{name(node)}/d{names[s]} = {_slope(local_derivative(expr, i).xreplace(point))}"
                           for i, s in enumerate(symbols) if node.inputs[i].op != "const")
        count = f"{int(at.sum())} of {at.size} elements sit" if at.ndim else "it sits"
        place = f"first at index {list(index)}: " if index else ""
        return (f"{count} on the kink {plain_text(edge.xreplace(names))} = 0 ({place}{where}); there the derivative "
                f"takes the first case whose condition holds: {slopes}")
    return ""


@functools.cache
def _numeric(edge: sp.Expr, arity: int) -> Callable:
    """An edge of a kink as a NumPy function of the op's operands, made once per formula (SymPy's
    lambdify over the op table's own formula, never over user text)."""
    return sp.lambdify([placeholder(i) for i in range(arity)], edge, modules="numpy")


def _tie(node: Node, x: np.ndarray, result: np.ndarray) -> str:
    """Elements tied for the max (or min) of a reduction or a pooling window: the gradient is shared."""
    if node.op == "max_pool2d":
        size, stride = node.attr("size"), node.attr("stride")
        counts = np.zeros(result.shape, dtype=int)
        for i in range(result.shape[2]):
            for j in range(result.shape[3]):
                window = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
                counts[:, :, i, j] = (window == result[:, :, i:i + 1, j:j + 1]).sum(axis=(2, 3))
    else:
        axis = node.attr("axis")
        axes = tuple(range(x.ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        kept = result if node.attr("keepdims") or result.ndim == x.ndim else np.expand_dims(result, axes)
        counts = np.asarray((x == kept).sum(axis=axes))
    tied = counts > 1
    if not tied.any():
        return ""
    index = tuple(int(k) for k in np.argwhere(tied)[0]) if tied.ndim else ()
    what = "max of a pooling window" if node.op == "max_pool2d" else node.op
    first = f", first at {list(index)}: {int(counts[index])} elements" if index else f": {int(counts[index])} elements"
    return (f"a tie for the {what} in {int(tied.sum())} of {tied.size} results{first} share the value "
            f"{_number(float(np.asarray(result)[index]))}; the derivative shares the gradient equally among them "
            f"(1/{int(counts[index])} each)")


def _operand_name(x: Node, name: Name) -> str:
    return _number(x.attr("value")) if x.op == "const" else name(x)


def _slope(value: sp.Expr) -> str:
    """A local derivative at the kink: a number, or (where SymPy leaves it undecided) its formula."""
    return _number(float(value)) if value.is_number and value.is_real else plain_text(value)


def _number(value: float) -> str:
    return f"{value:g}"
