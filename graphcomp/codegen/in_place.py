"""The training step's in-place form, for NumPy arrays: `_gradients_in_place` computes what _gradients
computes, line for line, but writes every value it can into an array made once per batch size
(`_buffers(n)`), with NumPy's `out=` arguments and in-place operators, instead of a new array for each
operation: `np.matmul(x, W1, out=t1)`, `np.subtract(1, h1, out=d_a1)`, `d_a1 *= h1`. Each such line
carries the ordinary line as its comment. A value is written in place when its op says how (`Op.into`:
matmul, sum) or its formula is a chain of operations (formulas/in_place.py); loops, the softmax family,
scalars and values with a named length keep their ordinary lines.

NumPy alone: the Array API standard has no `out=`, and lazy libraries (JAX, Dask) have no arrays to
write into, so train() takes this form only for NumPy arrays, and _gradients stays the readable
reference every other library runs (tests compare the two).
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, replace

import sympy as sp

from ..formulas.in_place import in_place_lines
from ..formulas.printing import tuple_text
from ..formulas.renaming import renaming
from ..ops import OPS, scalar_expr
from .listing import Statement
from .statements import ModuleCode

BATCH = "n"  # _buffers' argument: the number of examples in the batch


@dataclass(frozen=True)
class InPlaceCode:
    lines: list[Statement]          # the body of _gradients_in_place, after its buffers are unpacked
    buffers: list[tuple[str, str]]  # (variable, the shape of its array, `n` for the batch axis)


def in_place_code(code: ModuleCode, statements: list[Statement], returned: set[str]) -> InPlaceCode | None:
    """The in-place form of _gradients' `statements` (its forward lines, then its backward lines); None
    when no value of them can be written into an array made beforehand. `returned`: the variables the
    function returns, whose arrays no later value may take over."""
    shapes: dict[tuple, list[str] | None] = {}  # lines under stand-ins, by formula and order of names
    planned: list[tuple[Statement, list[str] | None]] = [(s, _written(code, s, shapes)) for s in statements]
    holder = _holders(code, planned, returned)
    lines: list[Statement] = []
    buffers: list[tuple[str, str]] = []
    for statement, written in planned:
        if written is None:  # (a common part of a fused formula may read a value whose array another holds)
            lines.append(replace(statement, expr=_renamed(statement.expr, holder)) if not statement.block else statement)
            continue
        name = statement.target
        if holder[name] == name:
            buffers.append((name, tuple_text(BATCH if size is None else size for size in statement.computes[0].shape)))
        written = [_renamed(line, holder) for line in written]
        held = f" (in {holder[name]})" if holder[name] != name else ""
        lines.append(Statement("", written[0], comment=f"{name} = {statement.expr}{held}"))
        lines += [Statement("", line) for line in written[1:]]
    return InPlaceCode(lines, buffers) if buffers else None


def _holders(code: ModuleCode, planned: list, returned: set[str]) -> dict[str, str]:
    """{value written in place: the variable of the array that holds it}. A value computed elementwise
    from one that nothing else reads, of its shape, takes over that value's array: `np.matmul(x, W1,
    out=a1)`, then `np.add(b1, a1, out=a1)` for a1 = t1 + b1, one array where there were two. The
    operand it replaces must be read by the first of its lines only (the others read the array after
    it was overwritten), not by a common part of its formula computed before it."""
    holder: dict[str, str] = {}
    sharing: dict[str, list[str]] = {}  # an array's variable -> the values it holds, in order
    node_of = {statement.target: statement.computes[0] for statement, written in planned if written is not None}
    by_node = {node: name for name, node in node_of.items()}
    for statement, written in planned:
        if written is None:
            continue
        name, node = statement.target, statement.computes[0]
        holder[name], sharing[name] = name, [name]
        if not OPS[node.op].has_formula:
            continue
        for operand in dict.fromkeys(node.inputs):
            taken = by_node.get(operand)
            read = [bool(re.search(rf"\b{re.escape(taken)}\b", line)) for line in written] if taken else []
            if (taken is not None and taken not in returned and code.reads(operand) == 1 and operand.shape == node.shape
                    and read[0] and not any(read[1:])):
                held = sharing.pop(holder[taken]) + sharing.pop(name)  # the array passes on to this value
                sharing[name] = held
                for value in held:
                    holder[value] = name
                break
    return holder


AUGMENTED = {"add": "+=", "multiply": "*=", "subtract": "-=", "divide": "/="}


def _renamed(line: str, holder: dict[str, str]) -> str:
    """A line with every value written in place named by the variable of the array holding it; an
    operation of that array with an operand into itself written as such: `h1 += b1`."""
    line = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: holder.get(m.group(0), m.group(0)), line)
    call = re.fullmatch(r"np\.(add|multiply|subtract|divide)\(([\w.]+), ([\w.]+), out=(\w+)\)", line)
    if call is None:
        return line
    function, a, b, out = call.groups()
    if a == out:
        return f"{out} {AUGMENTED[function]} {b}"
    if b == out and function in ("add", "multiply"):
        return f"{out} {AUGMENTED[function]} {a}"
    return line


def _written(code: ModuleCode, statement: Statement, shapes: dict) -> list[str] | None:
    """The lines writing the statement's value into its array (named as the value), or None."""
    if statement.block or not statement.target or not statement.computes:
        return None
    node, args = statement.computes
    if not node.shape or not all(size is None or isinstance(size, int) for size in node.shape):
        return None  # a scalar stays a NumPy scalar; a named length ("T") is not known before the step
    into = OPS[node.op].into
    if into is not None:
        line = into(node, args, statement.target) if all(isinstance(a, str) for a in args) else None
        return None if line is None else [line]
    if not code.computes_formula(node):
        return None
    named = None if code.has_parts(node, args) else renaming(
        [*((k, a) for k, a in enumerate(args) if isinstance(a, str)), ("out", statement.target)], split=None)
    if named is None:  # a formula over the names of its common parts, or names that stand-ins cannot keep
        return _lowered(code, node, args, statement.target, lambda a: sp.Symbol(a, real=True))
    key = (scalar_expr(node), named.pattern, tuple(None if isinstance(a, str) else (type(a), repr(a)) for a in args),
           tuple(code.is_number(x) for x in node.inputs))
    if key not in shapes:  # a chain repeats a few formulas over ever new names: each lowered once
        symbols = {a: named.symbols[k] for k, a in enumerate(args) if isinstance(a, str)}
        shapes[key] = _lowered(code, node, args, str(named.symbols["out"]), symbols.__getitem__)
    return None if shapes[key] is None else [named.named_back(line) for line in shapes[key]]


def _lowered(code: ModuleCode, node, args: tuple, out: str, operand) -> list[str] | None:
    """The formula's lines into `out`, its operands written `operand(text)`; None where they cannot be."""
    formula = code.formula(node, args, operand)
    numbers = {operand(a) for x, a in zip(node.inputs, args) if code.is_number(x) and isinstance(a, str)}
    if formula is None or not _numbers_in_chains(formula, numbers):
        return None
    return in_place_lines(formula, out)


def _numbers_in_chains(formula: sp.Expr, numbers: set, parent: sp.Expr | None = None) -> bool:
    """Whether the Python numbers (counts of examples, which may be ints) are only terms of sums, factors
    and divisors of products: np.reciprocal(n) of an int n is an int, 1 // n."""
    for arg in formula.args:
        divisor = isinstance(formula, sp.Pow) and formula.exp == -1 and isinstance(parent, sp.Mul)
        if arg in numbers and not (isinstance(formula, (sp.Add, sp.Mul)) or divisor):
            return False
        if not _numbers_in_chains(arg, numbers, formula):
            return False
    return True


def unpacking(buffers: list[tuple[str, str]], width: int = 96) -> list[str]:
    """`t1, a1, h1 = buffers`, wrapped in parentheses over lines of at most `width` characters."""
    text = ", ".join(name for name, _ in buffers) + ("," if len(buffers) == 1 else "")
    if len(text) + len(" = buffers") <= width:
        return [text + " = buffers"]
    rows = textwrap.wrap(text, width - 2, break_on_hyphens=False)
    rows = ["(" + rows[0]] + [" " + row for row in rows[1:]]
    rows[-1] += ") = buffers"
    return rows
