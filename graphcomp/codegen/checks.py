"""`gc.compile(..., check_shapes=True)`: a debug mode of the generated module in which every line of
`forward` and `_gradients` is followed by one that compares the shape it computed with the shape the
graph gives that value, so that a line which silently computes the wrong shape stops at once with
its name, its formula and both shapes, instead of giving wrong numbers further down.

The expected shapes write the batch axis as `N`, the number of examples read from the first batched
input: every batch-sized axis of the graph (None) is that one size, wherever it has moved to.
"""
from __future__ import annotations

from dataclasses import replace

from ..formulas.printing import tuple_text
from ..ir import Node, toposort
from .listing import Statement
from .loops import body_shapes
from .statements import ModuleCode

HELPER = "expect_shape"  # the function of templates/runtime/helpers.py the check lines call (_expect_shape)


def checked_statements(code: ModuleCode, parts: list[list[Statement]], roots: list[Node],
                       batch: str) -> list[list[Statement]]:
    """The statements of one generated function, in parts (forward lines, backward lines), with each line
    that computes a value of the graph followed by its shape check; the batch size `batch` is read
    first when a checked shape has a batch axis.

    The common parts of a fused formula (sympy.cse's t7 = ...) are not checked: the graph gives them
    no shape, and the line that uses them is.
    """
    shapes = {**_shapes_by_variable(code), **body_shapes(code)}
    every = [s for part in parts for top in part for _, s in top.nested()]  # a loop's lines too
    lengths = _lengths(code, roots, {d for s in every for d in shapes.get(s.target, ())})

    def checked_one(s: Statement) -> Statement:
        if s.block:
            return replace(s, block=tuple(checked_one(inner) for inner in s.block))
        return replace(s, check=_check_line(s.target, shapes[s.target], batch, lengths)) if s.target in shapes else s

    checked = [[checked_one(s) for s in part] for part in parts]
    for name, (variable, text) in reversed(lengths.items()):  # a run-time length ("T"), read off an input
        checked[0].insert(0, Statement(variable, text))
    if any(None in shapes.get(s.target, ()) for s in every):
        checked[0].insert(0, Statement(batch, _batched_leaf(code, roots)))
    return checked


def _lengths(code: ModuleCode, roots: list[Node], dims: set) -> dict[str, tuple[str, str]]:
    """{length's name: (its variable, the text reading it off an input)} for the run-time lengths the
    checked shapes hold."""
    needed = set(toposort(roots))
    lengths = {}
    for leaf in code.graph.inputs.values():
        for axis, d in enumerate(leaf.shape):
            if isinstance(d, str) and d in dims and d not in lengths and leaf in needed:
                lengths[d] = (code.names.local(d), f"{code.names.variables[leaf]}.shape[{axis}]")
    return lengths


def checked_lines(statements: list[Statement]) -> dict[str, str]:
    """{variable: the formula of its line}: what a failed check names (one entry per variable, which
    forward and _gradients compute alike)."""
    return {s.target: s.expr for top in statements for _, s in top.nested() if s.check}  # a loop's lines too


def _shapes_by_variable(code: ModuleCode) -> dict[str, tuple]:
    """The graph's shape of every value that has a line of its own, by its variable."""
    return {lines[-1].target: node.shape for node, lines in code.lines_of.items()}


def _check_line(variable: str, shape: tuple, batch: str, lengths: dict) -> str:
    expected = tuple_text(batch if d is None else lengths[d][0] if isinstance(d, str) else d for d in shape)
    return f'_expect_shape({variable}, {expected}, "{variable}")'


def _batched_leaf(code: ModuleCode, roots: list[Node]) -> str:
    """The batch size read off the first input with a batch axis that the code reads (`x.shape[0]`; a
    time-major sequence's is its second axis): every batch-sized axis comes from the inputs', which the
    generated _read checks to agree."""
    needed = set(toposort(roots))
    for leaf in code.graph.inputs.values():
        if leaf in needed and None in leaf.shape:
            return f"{code.names.variables[leaf]}.shape[{leaf.shape.index(None)}]"
    raise AssertionError("a value has a batch axis, but no input with one is read")
