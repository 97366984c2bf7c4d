"""Loops in spec files: a [scan.NAME] table, read into one call of `gc.scan`.

    [scan.rnn]
    xs = { x_t = "x" }                               # element name -> the sequence it walks
    axis = 1                                         # the time axis of every sequence
    init = { h = "h0" }                              # carry name -> its value before the first step
    let = { z = "x_t @ Wx + h @ Wh + b" }            # optional: values computed at each step
    step = { h = "tanh(z)" }                         # carry name -> its value after the step
    ys = { hs = "h" }                                # optional: per-step outputs, stacked along axis
    reverse = false

Inside the step, a carry's name is its value at the start of the step and `ys` read the carries after
it (so `hs` stacks h_1 ... h_T, as the lecture does). Outside, `rnn.h` is the final carry and `rnn.hs`
the stacked output. The loop itself is gc.scan's: this module only reads the table, checks every name
against every other, and builds each expression with the same whitelist evaluator as [nodes].
"""
from __future__ import annotations

import ast
import keyword
from dataclasses import dataclass
from typing import Any

from ..ir import Graph, Node, format_shape
from .expressions import Evaluator, Results, SpecError, checked_table, guard, parse
from .recurrent import scan
from .spec_order import evaluation_order

SCAN_KEYS = {"xs", "axis", "init", "let", "step", "ys", "reverse"}
EXAMPLE = 'e.g. [scan.rnn] with xs = { x_t = "x" }, init = { h = "h0" }, step = { h = "tanh(x_t @ W + h @ U)" }'


@dataclass
class ScanTable:
    """One [scan.NAME] table, read and checked but not built: each part maps a name to its parsed
    expression, in the order the file writes them."""

    name: str
    where: str                      # "scan.rnn": the entry errors name
    sequences: dict[str, ast.AST]   # element name -> the sequence (built outside the loop)
    init: dict[str, ast.AST]        # carry name -> its first value (built outside the loop)
    lets: dict[str, ast.AST]        # per-step values, in dependency order
    step: dict[str, ast.AST]        # carry name -> its value after the step
    ys: dict[str, ast.AST]          # per-step outputs
    axis: int
    reverse: bool

    def outer_tree(self) -> ast.AST:
        """Every expression of the table as one tree: the names of [nodes], [outputs] and other loops it
        reads are what the loop depends on (its own names never clash with those, so none is mistaken)."""
        parts = [*self.sequences.values(), *self.init.values(), *self.lets.values(), *self.step.values(),
                 *self.ys.values()]
        return ast.Tuple(elts=parts, ctx=ast.Load())


def read_scans(tables: Any, outer_names: dict[str, str], file: str) -> dict[str, ScanTable]:
    """Read every [scan.NAME] table. `outer_names` maps each name of the spec outside the loops (leaves,
    nodes, outputs) to what it is, so a loop or a name inside one that would hide it is an error."""
    if not isinstance(tables, dict):
        raise SpecError(file, "scan", f"expected tables [scan.NAME], got {tables!r}")
    scans = {}
    for name, table in tables.items():
        where = f"scan.{name}"
        _check_name(name, file, where, "a loop")
        if name in outer_names:
            raise SpecError(file, where, f"{name!r} is already the name of {outer_names[name]}; give the loop another name")
        scans[name] = _read_scan(name, table, file, outer_names | {n: f"the loop {n!r}" for n in tables})
    return scans


def _read_scan(name: str, table: Any, file: str, taken: dict[str, str]) -> ScanTable:
    where = f"scan.{name}"
    table = checked_table(table, file, where, SCAN_KEYS, ("xs", "init", "step"), EXAMPLE)
    parts = {key: _expressions(table.get(key, {}), file, f"{where}.{key}", required=key != "let" and key != "ys")
             for key in ("xs", "init", "let", "step", "ys")}
    _check_carries(parts["init"], parts["step"], file, where)
    _check_names(parts, file, where, taken)
    return ScanTable(name, where, parts["xs"], parts["init"], _ordered_lets(parts["let"], file, where), parts["step"],
                     parts["ys"], _axis(table.get("axis", 0), file, where), _flag(table.get("reverse", False), file, where))


def _ordered_lets(lets: dict[str, ast.AST], file: str, where: str) -> dict[str, ast.AST]:
    """The step's let values, each after the ones it reads (in any order in the file, as [nodes])."""
    entries = {f"{where}.let.{name}": name for name in lets}
    order = evaluation_order({entry: lets[name] for entry, name in entries.items()},
                             {entry: (name, None) for entry, name in entries.items()}, file)
    return {entries[entry]: lets[entries[entry]] for entry in order}


def _expressions(part: Any, file: str, where: str, required: bool) -> dict[str, ast.AST]:
    """One part of the table, `{ name = "expression", ... }`, parsed."""
    if not isinstance(part, dict):
        raise SpecError(file, where, f"expected a table of name = \"expression\", got {part!r}")
    if required and not part:
        raise SpecError(file, where, "give at least one name = \"expression\"")
    return {name: parse(text, file, f"{where}.{name}") for name, text in part.items()}


def _check_carries(init: dict, step: dict, file: str, where: str) -> None:
    """The step gives each carry of init a new value, and nothing else."""
    for carry in init:
        if carry not in step:
            raise SpecError(file, f"{where}.step", f"no new value for the carry {carry!r}; add "
                                                   f"{carry} = \"...\" (its value after one step)")
    for name in step:
        if name not in init:
            raise SpecError(file, f"{where}.step.{name}", f"{name!r} is not a carry (carries: {', '.join(init)}); "
                                                          "give it an init value, or compute it in let")


def _check_names(parts: dict, file: str, where: str, taken: dict[str, str]) -> None:
    """Elements, carries and lets share the step's scope with the spec's other names: each is new."""
    seen: dict[str, str] = {}
    for key, what in (("xs", "an element"), ("init", "a carry"), ("let", "a let value")):
        for name in parts[key]:
            entry = f"{where}.{key}.{name}"
            _check_name(name, file, entry, what)
            clash = taken.get(name) or seen.get(name)
            if clash:
                raise SpecError(file, entry, f"{name!r} is already the name of {clash}; give {what} another name")
            seen[name] = f"{what} of the loop"
    results = set(parts["init"])
    for name in parts["ys"]:
        _check_name(name, file, f"{where}.ys.{name}", "an output")
        if name in results:
            raise SpecError(file, f"{where}.ys.{name}", f"{name!r} is also a carry: {where.split('.', 1)[1]}.{name} "
                                                        "would be both; give the stacked output another name")


def _check_name(name: str, file: str, where: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(file, where, f"{name!r} cannot name {what}: use a Python identifier that is not a keyword")


def _axis(value: Any, file: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(file, f"{where}.axis", f"expected a whole number (the time axis), got {value!r}")
    return value


def _flag(value: Any, file: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(file, f"{where}.reverse", f"expected true or false, got {value!r}")
    return value


# ------------------------------------------------------------------ building

def build_scan(table: ScanTable, values: dict[str, Any], graph: Graph, taken: set[str], file: str) -> Results:
    """Build the loop with gc.scan over the values built so far; its results, for `NAME.result`, named
    NAME_result in the generated code (`rnn_h`) unless another value of the spec has that name (`taken`)."""
    sequences = [_outer_value(table, "xs", name, values, file) for name in table.sequences]
    inits = [_outer_value(table, "init", name, values, file) for name in table.init]
    _check_axis(table, sequences, file)

    def step(carries: tuple, elements: tuple) -> tuple:
        scope = values | dict(zip(table.sequences, elements)) | dict(zip(table.init, carries))
        for name, tree in table.lets.items():
            scope[name] = _step_value(tree, scope, file, f"{table.where}.let.{name}")
        new = [_step_value(table.step[name], scope, file, f"{table.where}.step.{name}") for name in table.init]
        for name, start, after in zip(table.init, inits, new):
            _check_carry_shape(table, name, start, after, file)
        after_step = scope | dict(zip(table.init, new))
        ys = [_step_value(tree, after_step, file, f"{table.where}.ys.{name}") for name, tree in table.ys.items()]
        return tuple(new), (tuple(ys) if ys else None)

    finals, stacked = guard(file, table.where, lambda: scan(step, tuple(inits), tuple(sequences),
                                                              axis=table.axis, reverse=table.reverse))
    results = dict(zip(table.init, finals)) | dict(zip(table.ys, stacked or ()))
    for key, node in results.items():
        label = f"{table.name}_{key}"
        if label not in taken:
            taken.add(label)
            results[key] = guard(file, table.where, lambda: graph.let(label, node))
    kinds = {name: "final carry" for name in table.init} | {name: f"stacked along axis {table.axis}" for name in table.ys}
    return Results(table.name, results, kinds)


def _outer_value(table: ScanTable, key: str, name: str, values: dict, file: str) -> Node:
    """A sequence or an initial carry: an expression over the spec's values, built before the loop."""
    where = f"{table.where}.{key}.{name}"
    tree = table.sequences[name] if key == "xs" else table.init[name]
    value = Evaluator(values, file, where).evaluate(tree)
    if not isinstance(value, Node):
        what = "a sequence" if key == "xs" else "an initial carry"
        raise SpecError(file, where, f"{what} must be a graph value (an input, a param or a named value), got {value!r}")
    return value


def _step_value(tree: ast.AST, scope: dict, file: str, where: str) -> Node:
    value = Evaluator(scope, file, where).evaluate(tree)
    if not isinstance(value, Node):
        raise SpecError(file, where, f"the expression gives {value!r}, not a graph value")
    return value


def _check_axis(table: ScanTable, sequences: list, file: str) -> None:
    """The time axis exists in every sequence, and they all have one length along it."""
    for name, sequence in zip(table.sequences, sequences):
        if not -sequence.ndim <= table.axis < sequence.ndim:
            raise SpecError(file, f"{table.where}.axis", f"axis {table.axis} is out of range for the sequence "
                                                        f"of {name!r}, of shape {format_shape(sequence.shape)}")
        if sequence.shape[table.axis] is None:
            raise SpecError(file, f"{table.where}.axis", f"axis {table.axis} of the sequence of {name!r}, of shape "
                                                        f"{format_shape(sequence.shape)}, is the batch axis, not a time axis")
    lengths = {name: sequence.shape[table.axis] for name, sequence in zip(table.sequences, sequences)}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise SpecError(file, f"{table.where}.xs", f"the sequences differ in length along axis {table.axis} "
                                                  f"({listed}); a loop walks them step by step together")


def _check_carry_shape(table: ScanTable, name: str, start: Node, after: Node, file: str) -> None:
    if tuple(start.shape) != tuple(after.shape):
        raise SpecError(file, f"{table.where}.step.{name}",
                        f"the carry {name!r} starts with shape {format_shape(start.shape)} (init) but the step "
                        f"gives it shape {format_shape(after.shape)}; a carry keeps its shape from step to step")
