"""Spec expressions: a string parsed with Python's `ast`, then built into graph values node type by
node type against a whitelist — names, numbers, + - * / ** @, unary minus, one comparison (x > 0),
basic slicing, lists, and calls to graphcomp's functions with literal keyword arguments. Nothing is
passed to eval, exec or sympify; every problem is a SpecError naming the file, the entry and what is wrong.
"""
from __future__ import annotations

import ast
import math
from typing import Any, Callable

from ..errors import GraphcompError
from ..diff.forward import jvp
from ..ir import Node, apply, declaring
from . import dsl, losses
from .custom import CustomOp
from .spec_lines import entry_place


class SpecError(GraphcompError, ValueError):
    """A spec file that cannot be read: `file: entry: problem`."""

    def __init__(self, file: str, entry: str, problem: str) -> None:
        self.file, self.entry, self.problem = file, _printable(entry), _printable(problem)
        message = f"{file}: {self.entry}: {self.problem}" if entry else f"{file}: {self.problem}"
        super().__init__(message)


def checked_table(table: Any, file: str, where: str, allowed: set[str], required: tuple[str, ...],
                  example: str) -> dict:
    """A spec's sub-table ([scan.NAME], [ops.NAME]) as a dict, after the checks every such table gets:
    it is a table, its keys are known, the required ones are there; each problem is one SpecError."""
    if not isinstance(table, dict):
        raise SpecError(file, where, f"expected a table [{where}], {example}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(file, where, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in table:
            raise SpecError(file, where, f"missing {key!r}; {example}")
    return table


def _printable(text: str) -> str:
    """One line, whatever the user wrote: control characters as Python escapes."""
    return text if text.isprintable() else repr(text)[1:-1]


# The functions a spec may call: graphcomp's own, by their public names.
FUNCTIONS: dict[str, Callable[..., Node]] = {
    name: getattr(dsl, name) for name in dsl.__all__
} | {name: getattr(losses, name) for name in losses.__all__} | {"jvp": jvp}
# The layers that declare params on the graph are written with a declared param instead.
LAYERS = {"embedding": "write take(E, ids) with E a param of shape [vocab, dim] (init = \"standard_normal\" is "
                       "PyTorch's) and ids an input of dtype \"int64\"",
          "linear": "write x @ W + b with W a param of shape [in, out] and b of shape [out] (init = \"uniform\", "
                    "and fan_in = in for b, is PyTorch's)",
          "mlp": "write each layer as x @ W + b, or use [model] kind = \"mlp\""}


class Results:
    """The named results of one loop of a spec ([scan.NAME]), read in expressions as `NAME.result`:
    the only attribute access expressions allow, a look-up in this table and nothing else."""

    def __init__(self, name: str, values: dict[str, Node], kinds: dict[str, str]) -> None:
        self.name, self.values, self.kinds = name, values, kinds

    def listing(self) -> str:
        return ", ".join(f"{self.name}.{key} ({self.kinds[key]})" for key in self.values) or "none"

OPERATORS = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__", ast.Div: "__truediv__",
             ast.Pow: "__pow__", ast.MatMult: "__matmul__"}


RELATIONS = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}


TOO_DEEP = "the expression is nested too deeply; name parts of it in [nodes]"


def parse(text: Any, file: str, where: str) -> ast.AST:
    if not isinstance(text, str):
        raise SpecError(file, where, f"expected an expression string, got {text!r}")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except (RecursionError, MemoryError):
        raise SpecError(file, where, TOO_DEEP) from None
    except SyntaxError as error:
        column = f" at column {error.offset}" if error.offset else ""
        raise SpecError(file, where, f"syntax error{column} in {text!r}") from None


class Evaluator:
    """Builds the graph value of one parsed expression: one `_visit_<node type>` method per allowed
    node type of Python's ast; any other node type is refused with what it was."""

    def __init__(self, values: dict[str, Node], file: str, where: str) -> None:
        self.values, self.file, self.where = values, file, where

    def evaluate(self, tree: ast.AST) -> Any:
        """The value of a whole expression; nesting deeper than Python's stack is a SpecError."""
        try:
            with declaring(entry_place(self.file, self.where)):  # its values are declared at this entry
                return self.visit(tree)
        except RecursionError:
            raise self.error(TOO_DEEP) from None

    def visit(self, n: ast.AST) -> Any:
        method = getattr(self, f"_visit_{type(n).__name__}", None)
        if method is None:
            raise self.refused(n)
        return method(n)

    def refused(self, n: ast.AST) -> SpecError:
        return self.error(f"{describe(n)} is not allowed: expressions use names, numbers, + - * / ** @, "
                          "unary minus, comparisons (x > 0), slicing and calls to graphcomp functions")

    def error(self, problem: str) -> SpecError:
        return SpecError(self.file, self.where, problem)

    def guard(self, make: Callable[[], Any]) -> Any:
        return guard(self.file, self.where, make)

    def _visit_Name(self, n: ast.Name) -> Node:
        if n.id not in self.values:
            raise self.error(f"unknown name {n.id!r}")
        value = self.values[n.id]
        if isinstance(value, Results):
            raise self.error(f"{n.id!r} is a loop ([scan.{n.id}]): read one of its results, {value.listing()}")
        if isinstance(value, CustomOp):
            raise self.error(f"{n.id!r} is an op ([ops.{n.id}]): call it, e.g. {n.id}(x)")
        return value

    def _visit_Attribute(self, n: ast.Attribute) -> Node:
        """`rnn.h`: a result of the loop [scan.rnn]; any other attribute access is refused."""
        owner = self.values.get(n.value.id) if isinstance(n.value, ast.Name) else None
        if not isinstance(owner, Results):
            raise self.refused(n)
        if n.attr not in owner.values:
            raise self.error(f"the loop {owner.name!r} has no result {n.attr!r}; its results: {owner.listing()}")
        return owner.values[n.attr]

    def _visit_Constant(self, n: ast.Constant) -> int | float:
        if not isinstance(n.value, (int, float)) or isinstance(n.value, bool):
            raise self.refused(n)
        if not math.isfinite(n.value):
            raise self.error(f"the number {n.value} is not finite")
        return n.value

    def _visit_BinOp(self, n: ast.BinOp) -> Node:
        """`a + b + c + ...` is a chain of BinOps down the left side: walked with a loop, so a long
        flat sum needs no deeper stack than one term."""
        spine = []
        while isinstance(n, ast.BinOp):
            if type(n.op) not in OPERATORS:
                raise self.refused(n)
            spine.append(n)
            n = n.left
        value = self.visit(n)
        for b in reversed(spine):
            value = self._binary(b.op, value, self.visit(b.right))
        return value

    def _binary(self, op: ast.operator, left: Any, right: Any) -> Node:
        if not isinstance(left, Node) and not isinstance(right, Node):
            raise self.error("an operation on numbers alone: write its value instead")
        operand, other, method = (left, right, OPERATORS[type(op)]) if isinstance(left, Node) \
            else (right, left, "__r" + OPERATORS[type(op)][2:])
        return self.guard(lambda: getattr(operand, method)(other))

    def _visit_Compare(self, n: ast.Compare) -> Node:
        """`x > 0` (<, >=, <=, ==, !=): a 0/1 mask, the condition of where(x > 0, a, b); one relation at a time."""
        if len(n.ops) != 1:
            raise self.error("a chained comparison (a < b < c) is not allowed: write one relation at a time")
        if type(n.ops[0]) not in RELATIONS:
            raise self.refused(n)
        left, right = self.visit(n.left), self.visit(n.comparators[0])
        if isinstance(left, list) or isinstance(right, list):
            raise self.error("a comparison applies to values or numbers, not to lists")
        return self.guard(lambda: dsl.compare(left, right, RELATIONS[type(n.ops[0])]))

    def _visit_UnaryOp(self, n: ast.UnaryOp) -> Any:
        if not isinstance(n.op, (ast.USub, ast.UAdd)):
            raise self.refused(n)
        value = self.visit(n.operand)
        if isinstance(value, list):
            raise self.error("a sign applies to a value or a number, not to a list")
        return self.guard(lambda: -value) if isinstance(n.op, ast.USub) else value

    def _visit_Call(self, n: ast.Call) -> Node:
        if not isinstance(n.func, ast.Name):
            raise self.error(f"{describe(n.func)} cannot be called: call graphcomp functions by name")
        if n.func.id in LAYERS:
            raise self.error(f"{n.func.id}() declares params, which a spec declares in [params]: {LAYERS[n.func.id]}")
        own = self.values.get(n.func.id)  # a spec's own op ([ops.NAME], spec_ops.py)
        function = own if isinstance(own, CustomOp) else FUNCTIONS.get(n.func.id)
        if function is None:
            raise self.error(f"unknown function {n.func.id!r}")
        args = [self.visit(a) for a in n.args]
        kwargs = {}
        for k in n.keywords:
            if k.arg is None:
                raise self.error("'**' arguments are not allowed")
            kwargs[k.arg] = literal(k.value, self.file, self.where)
        return self.guard(lambda: function(*args, **kwargs))

    def _visit_Subscript(self, n: ast.Subscript) -> Node:
        value = self.visit(n.value)
        if not isinstance(value, Node):
            raise self.error("only graph values can be sliced")
        return self.guard(lambda: value[self._index(n.slice)])

    def _visit_List(self, n: ast.List) -> list:
        """Values and numbers, or None: the batch axis of a shape, as in reshape(x, (None, -1))."""
        return [None if isinstance(e, ast.Constant) and e.value is None else self.visit(e) for e in n.elts]

    _visit_Tuple = _visit_List

    def _index(self, n: ast.AST) -> Any:
        if isinstance(n, ast.Slice):
            return slice(*(None if part is None else literal(part, self.file, self.where)
                           for part in (n.lower, n.upper, n.step)))
        if isinstance(n, ast.Tuple):
            return tuple(self._index(e) for e in n.elts)
        if isinstance(n, ast.Constant) and n.value is Ellipsis:
            return Ellipsis
        return literal(n, self.file, self.where)


def literal(n: ast.AST, file: str, where: str) -> Any:
    """A keyword argument's value: a number, a string, True/False/None, or a tuple/list of those."""
    if isinstance(n, ast.Constant) and isinstance(n.value, float) and not math.isfinite(n.value):
        raise SpecError(file, where, f"the number {n.value} is not finite")
    if isinstance(n, ast.Constant) and (n.value is None or isinstance(n.value, (int, float, str, bool))):
        return n.value
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub) and isinstance(n.operand, ast.Constant) \
            and isinstance(n.operand.value, (int, float)) and not isinstance(n.operand.value, bool):
        return -n.operand.value
    if isinstance(n, (ast.Tuple, ast.List)):
        return tuple(literal(e, file, where) for e in n.elts)
    raise SpecError(file, where, f"{describe(n)} is not allowed as a keyword value: use numbers, names in "
                                 "quotes, True/False/None, or tuples of those")


def describe(n: ast.AST) -> str:
    if isinstance(n, ast.Attribute):
        return f"attribute access '.{n.attr}'"
    if isinstance(n, ast.Constant):
        return f"the constant {n.value!r}"
    return f"a {type(n).__name__} expression"


def guard(file: str, where: str, make: Callable[[], Any]) -> Any:
    """Run one building step, turning graphcomp's errors into a SpecError for this entry."""
    try:
        return make()
    except SpecError:
        raise
    except GraphcompError as error:
        raise SpecError(file, where, str(error)) from None
    except (TypeError, AttributeError, ValueError) as error:  # wrong arguments: a number where a tensor goes, ...
        raise SpecError(file, where, _argument_problem(error)) from None
    except RecursionError:
        raise SpecError(file, where, TOO_DEEP) from None


def _argument_problem(error: Exception) -> str:
    """What a Python error raised inside a graphcomp function says about the spec's arguments."""
    if isinstance(error, AttributeError) and ("'int'" in str(error) or "'float'" in str(error)):
        return "a number was given where a tensor is expected"  # e.g. 3.ndim inside softmax(3)
    return str(error)
