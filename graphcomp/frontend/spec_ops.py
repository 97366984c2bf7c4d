"""Users' own ops in spec files: an [ops.NAME] table, read into one `gc.custom_op`.

    [ops.softplus_stable]
    inputs = ["x"]                                       # the op's inputs, in call order
    forward = "maximum(x, 0) + log(1 + exp(-abs(x)))"    # its value, over the inputs
    vjp.x = "g * sigmoid(x)"                             # each input's gradient: over the inputs, y, g
    jvp = "dot_x * sigmoid(x)"                           # optional: y's tangent, over the inputs, y, dot_x
    check = true                                         # false: the rule differs on purpose

Inside the rules, `y` is the op's output, `g` the gradient of the loss with respect to it, and
`dot_<input>` each input's tangent. A rule of "0" gives its input no gradient. The node expressions
then call `softplus_stable(a)` like any graphcomp function. Every expression is built by the same
whitelist evaluator as [nodes], and every name it reads is checked when the table is read.
"""
from __future__ import annotations

import ast
import keyword
from typing import Any

from ..ir import Node
from .custom import RESERVED, CustomOp, custom_op
from .expressions import FUNCTIONS, LAYERS, Evaluator, SpecError, checked_table, guard, parse

OP_KEYS = {"inputs", "forward", "vjp", "jvp", "check"}
EXAMPLE = 'e.g. [ops.softplus_stable] with inputs = ["x"], forward = "log(1 + exp(x))", vjp.x = "g * sigmoid(x)"'


def read_ops(tables: Any, taken: dict[str, str], file: str) -> dict[str, CustomOp]:
    """Every [ops.NAME] table as a custom op, in the order the file writes them (an op's forward and
    rules may call the ops before it). `taken` maps the spec's other names to what they are."""
    if not isinstance(tables, dict):
        raise SpecError(file, "ops", f"expected tables [ops.NAME], got {tables!r}")
    ops: dict[str, CustomOp] = {}
    for name, table in tables.items():
        where = f"ops.{name}"
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SpecError(file, where, f"{name!r} cannot name an op: use a Python identifier that is not a keyword")
        if name in RESERVED or name in LAYERS:
            raise SpecError(file, where, f"{name!r} is already a graphcomp function; give the op another name")
        if name in taken:
            raise SpecError(file, where, f"{name!r} is already the name of {taken[name]}; give the op another name")
        ops[name] = _read_op(name, table, file, dict(ops))
    return ops


def _read_op(name: str, table: Any, file: str, earlier: dict[str, CustomOp]) -> CustomOp:
    where = f"ops.{name}"
    table = checked_table(table, file, where, OP_KEYS, ("inputs", "forward", "vjp"), EXAMPLE)
    inputs = _inputs(table["inputs"], file, f"{where}.inputs")
    forward = _expression(table["forward"], set(inputs), earlier, file, f"{where}.forward")
    rules = table["vjp"]
    if not isinstance(rules, dict):
        raise SpecError(file, f"{where}.vjp", f"expected one rule per input, vjp.{inputs[0]} = \"...\", got {rules!r}")
    for key in rules:
        if key not in inputs:
            raise SpecError(file, f"{where}.vjp.{key}", f"{key!r} is not an input of the op (inputs: {', '.join(inputs)})")
    missing = [x for x in inputs if x not in rules]
    if missing:
        raise SpecError(file, f"{where}.vjp", f"no rule for input {missing[0]!r}: add vjp.{missing[0]} = \"...\" "
                                              "(its gradient, over the inputs, y and g; \"0\" for none)")
    rule_names = set(inputs) | {"y", "g"}
    vjp = {x: _expression(rules[x], rule_names, earlier, file, f"{where}.vjp.{x}") for x in inputs}
    jvp = None
    if "jvp" in table:
        jvp = _expression(table["jvp"], set(inputs) | {"y"} | {f"dot_{x}" for x in inputs}, earlier, file, f"{where}.jvp")
    check = table.get("check", True)
    if not isinstance(check, bool):
        raise SpecError(file, f"{where}.check", f"expected true or false, got {check!r}")
    return guard(file, where, lambda: custom_op(
        name, _forward(forward, inputs, earlier, file, f"{where}.forward"), _vjp(vjp, inputs, earlier, file, where),
        None if jvp is None else _jvp(jvp, inputs, earlier, file, f"{where}.jvp"), check=check, inputs=inputs))


def _inputs(value: Any, file: str, where: str) -> list[str]:
    """The inputs' names: distinct identifiers, none of which a rule uses for something else."""
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise SpecError(file, where, f"expected a list of input names such as [\"x\"], got {value!r}")
    for x in value:
        if not x.isidentifier() or keyword.iskeyword(x):
            raise SpecError(file, where, f"{x!r} cannot name an input: use a Python identifier that is not a keyword")
        if x in ("y", "g") or x.startswith("dot_"):
            raise SpecError(file, where, f"{x!r} cannot name an input: y, g and dot_<input> are the rules' own "
                                         "names (the output, its gradient, the inputs' tangents)")
    if len(set(value)) < len(value):
        raise SpecError(file, where, f"the inputs' names must differ, got {value!r}")
    return value


def _expression(text: Any, names: set[str], earlier: dict, file: str, where: str) -> ast.AST:
    """One expression, parsed, every name it reads checked now: the rule is built only when the op is
    called (the forward) or differentiated (the rules)."""
    tree = parse(text, file, where)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and id(n) not in called and n.id not in names:
            allowed = ", ".join(sorted(names))
            raise SpecError(file, where, f"unknown name {n.id!r}; an op's expressions read only {allowed}")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id not in FUNCTIONS | earlier.keys():
            raise SpecError(file, where, f"unknown function {n.func.id!r}")
    return tree


def _value(tree: ast.AST, scope: dict, earlier: dict, file: str, where: str) -> Node | int | float:
    value = Evaluator({**earlier, **scope}, file, where).evaluate(tree)
    if not isinstance(value, (Node, int, float)) or isinstance(value, bool):
        raise SpecError(file, where, f"the expression gives {value!r}, not a graph value")
    return value


def _forward(tree: ast.AST, inputs: list[str], earlier: dict, file: str, where: str):
    def forward(*values: Node) -> Node:
        value = _value(tree, dict(zip(inputs, values)), earlier, file, where)
        if not isinstance(value, Node):
            raise SpecError(file, where, f"the forward gives the number {value!r}, not a value computed from the inputs")
        return value
    return forward


def _vjp(trees: dict[str, ast.AST], inputs: list[str], earlier: dict, file: str, where: str):
    def vjp(values: tuple, y: Node, g: Node) -> tuple:
        scope = dict(zip(inputs, values)) | {"y": y, "g": g}
        pieces = []
        for x, tree in trees.items():
            piece = _value(tree, scope, earlier, file, f"{where}.vjp.{x}")
            if not isinstance(piece, Node) and piece != 0:
                raise SpecError(file, f"{where}.vjp.{x}", f"the rule gives the number {piece!r}; write it over g "
                                                          "(the output's gradient), or \"0\" for no gradient")
            pieces.append(piece if isinstance(piece, Node) else None)
        return tuple(pieces)
    return vjp


def _jvp(tree: ast.AST, inputs: list[str], earlier: dict, file: str, where: str):
    def jvp(values: tuple, y: Node, tangents: tuple) -> Node:
        scope = dict(zip(inputs, values)) | {"y": y} | {f"dot_{x}": t for x, t in zip(inputs, tangents)}
        value = _value(tree, scope, earlier, file, where)
        if not isinstance(value, Node):
            raise SpecError(file, where, f"the rule gives the number {value!r}; write it over the tangents dot_...")
        return value
    return jvp
