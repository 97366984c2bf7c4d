"""A loop node (ops/scan.py) as code: the lines before a `for` loop over time, the loop, and the lines
after it. The loop's body is planned like any function's lines, with the module's names and texts
(`ModuleCode`), over variables of its own for the carries and each sequence's element at step t.

Only what the function reads is computed: a per-step output is stacked only when it is used, a carry
is carried only when a used result depends on it, a value of the step is saved (one per step, for the
derivative of the loop) only where the backward loop reads it. A loop that reads saved values says
which, in a comment above it.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ..formulas.printing import number_text, tuple_text

from ..ir import Node, toposort, use_counts
from ..ops import OPS
from ..ops.scan import Body, counts, result_key
from .checkpoints import checkpoint_of, keep_checkpoint, plan_checkpoints, recomputed_steps
from .comments import literal
from .loop_state import BODY_SHAPES, LOOP_NAMES, carries_needed, local_name, loop_names, is_saved
from .listing import FunctionCode, Statement

if TYPE_CHECKING:
    from .statements import ModuleCode

FUSED_FORMULA = "formula"


def loop_lines(code: ModuleCode, loop: Node, function: FunctionCode, results: list[Node]) -> list[Statement]:
    """The statements computing the `results` (scan_result nodes) of `loop` in `function`: a comment
    saying which loop it is, its length, the carries' first values and empty lists, the `for` loop,
    then each list stacked. A checkpointed loop keeps its carries every k steps instead of the values
    its derivative reads, and its derivative computes those again (codegen/checkpoints.py)."""
    body: Body = loop.attr("body")
    c, k, _ = counts(loop)
    wanted = {result_key(r): r for r in results}
    stacked = [(body.ys[j], wanted[c + j], loop.attr("y_axes")[j]) for j in range(len(body.ys)) if c + j in wanted]
    stacked += [(key, r, 0) for key, r in wanted.items() if isinstance(key, Node)]
    carried = sorted(carries_needed(body, {i for i in range(c) if i in wanted}, [y for y, _, _ in stacked]))
    every = checkpoint_of(code, loop)
    if every:  # the saved values are not kept: the backward loop computes them again
        stacked = [entry for entry in stacked if not is_saved(entry[1])]
    own, inner, operand = loop_names(code, loop), FunctionCode(code.names), function.operand
    before, carry_vars = _carry_lines(code, loop, function, inner, {i: wanted.get(i) for i in carried})
    for slot, value in zip(body.captured, loop.inputs[c + k:]):
        inner.inlined[slot] = literal(operand(value))
    kept = {v for v, _, _ in stacked} | (set(body.carries) if every else set())
    again = recomputed_steps(code, loop, function, own, step_lines)  # (before the step: it says how to index)
    lines, after = step_lines(code, loop, function, inner, own, carried, carry_vars, stacked, before, kept)
    if every:
        lines.insert(0, keep_checkpoint(code, loop, carried, [carry_vars[i] for i in carried], own["t"], before))
    lines = again + lines
    length, step = own["T"], own["t"]
    order = f"range({length} - 1, -1, -1)" if loop.attr("reverse") else f"range({length})"
    header = Statement("", f"for {step} in {order}:", block=tuple(lines or [Statement("", "pass")]))
    about = f"{code.names.variable(loop)} = {OPS[loop.op].text(loop, tuple(map(operand, loop.inputs)))}"
    if loop.attr("of") is not None:
        about += f": the derivative of the loop {code.names.variable(loop.attr('of'))}"
    if every:
        about += f", keeping its carries every {every} steps"
    about = Statement("", "", comment=about)
    return _saved_comment(loop, function, code) + [about] + before + [header] + after


def step_lines(code: ModuleCode, loop: Node, function: FunctionCode, inner: FunctionCode, own: dict,
               carried: list[int], carry_vars: dict[int, str], stacked: list, before: list[Statement],
               kept: set[Node]) -> tuple[list[Statement], list[Statement]]:
    """The lines of one step (each sequence's element, the step's values, each kept value appended to
    its list, the carries passed on), and the lines after the loop; the lists' first lines go to `before`."""
    body: Body = loop.attr("body")
    roots = [body.new_carries[i] for i in carried] + [y for y, _, _ in stacked]
    lines = _element_lines(loop, function.operand, own, inner, set(toposort(roots)))
    first, after = len(lines), []
    for value, target, axis in stacked:
        if is_saved(target):  # read only by the backward loop, one step at a time: kept as a list
            steps = code.names.variable(target)
            if loop.attr("reverse") and not own.get("again"):  # in time order, as the backward loop indexes it
                after.append(Statement("", f"{steps}.reverse()"))
        else:
            steps = local_name(own, ("steps", target), f"{code.names.variable(target)}_steps")
            after.append(_stacking(code, loop, function, steps, target, axis))
        before.append(Statement(steps, "[]"))
        append = Statement("", f"{steps}.append({literal(inner.operand(value))})")
        # a carry at the start of the step is kept before the step changes it
        lines.insert(first, append) if value in body.carries else lines.append(append)
    at = len(lines) - sum(value not in body.carries for value, _, _ in stacked)
    sums = _running_sums(loop, function, carried, carry_vars, kept)
    lines[at:at] = body_lines(code, roots, inner, sums)
    updates = [(carry_vars[i], literal(inner.operand(body.new_carries[i]))) for i in carried]
    lines, updates = _assigned_in_place(code, lines, [(var, text) for var, text in updates if var != text],
                                        own.setdefault("renamed", {}))
    if updates:
        lines.append(Statement(", ".join(v for v, _ in updates), ", ".join(t for _, t in updates)))
    return lines, after


def _carry_lines(code: ModuleCode, loop: Node, function: FunctionCode, inner: FunctionCode,
                 carried: dict[int, Node | None]) -> tuple[list[Statement], dict[int, str]]:
    """The loop's length, and each carry's variable set to its first value: the variable of the final
    carry where that is read, else one of the loop's own."""
    body: Body = loop.attr("body")
    c, _, _ = counts(loop)
    own = loop_names(code, loop)
    first = _text(function.operand(loop.inputs[c]))
    length = f"len({first})" if is_saved(loop.inputs[c]) else f"{first}.shape[{loop.attr('axes')[0]}]"
    forward = loop.attr("of")
    if forward is not None and checkpoint_of(code, forward):  # its lists are made again, k steps at a time
        length = loop_names(code, forward)["T"]
    lines = [Statement(own["T"], length)]
    variables = {}
    for i, final in carried.items():
        slot = body.carries[i]
        variables[i] = code.names.variable(final) if final is not None else local_name(own, ("carry", i), _carry_base(code, loop, i))
        inner.inlined[slot] = own[("carry_of", slot)] = variables[i]
        start = loop.inputs[i]
        first = function.inlined.get(start) if start.op == "zeros_like" else None  # zeros written in place
        lines.append(Statement(variables[i], first or _array_text(function.operand(start), code.dtype)))
    return lines, variables


def _element_lines(loop: Node, operand, own: dict, inner: FunctionCode, reads: set[Node]) -> list[Statement]:
    """At the top of the loop: each sequence's element at step t, for the sequences the step reads."""
    body: Body = loop.attr("body")
    c, k, _ = counts(loop)
    lines = []
    for slot, seq, axis in zip(body.xs, loop.inputs[c:c + k], loop.attr("axes")):
        if slot in reads:
            variable = local_name(own, ("x", slot), f"{_base(operand(seq))}_t")
            inner.inlined[slot] = variable
            index = [own.get(("index", seq), own["t"])] if is_saved(seq) else [":"] * axis + [own["t"]] + [":"] * (len(seq.shape) - axis - 1)
            # (an array is indexed on every axis, the Array API's rule; saved values are a list)
            lines.append(Statement(variable, f"{_text(operand(seq))}[{', '.join(index)}]"))
    return lines


def _stacking(code: ModuleCode, loop: Node, function: FunctionCode, steps: str, target: Node, axis: int) -> Statement:
    """After the loop: a list of per-step values stacked in time order (an empty result for no step)."""
    length = loop_names(code, loop)["T"]
    in_order = f"{steps}[::-1]" if loop.attr("reverse") else steps
    text = f"xp.stack({in_order}, axis={axis})"
    if not isinstance(_length(loop), int):  # a length known only at run time may be 0
        empty = tuple_text(_dim_text(d, loop, function) for d in target.shape)
        text += f" if {length} else xp.zeros({empty}, dtype=xp.{code.dtype})"
    return Statement(code.names.variable(target), text)


def prepare(code: ModuleCode, order: list[Node], function: FunctionCode) -> None:
    """Zeros that only start a loop's carry (a running sum of gradients) are written where the carry
    starts, `d_W = xp.zeros_like(W)`, rather than on a line of their own. Checkpointed loops are
    planned here too."""
    plan_checkpoints(code, order)
    for node in order:
        if node.op == "scan":
            for start in node.inputs[:counts(node)[0]]:
                if start.op == "zeros_like" and code._uses.get(start) == 1 and start not in code.names:
                    function.inlined[start] = f"xp.zeros_like({literal(function.operand(start.inputs[0]))})"


def _carry_base(code: ModuleCode, loop: Node, i: int) -> str:
    """The name of a carry's variable: in a loop's derivative, d_<the loop's carry> for the gradient of
    a carry (d_h); else the placeholder's own name."""
    forward = loop.attr("of")
    if forward is not None and i < counts(forward)[0]:
        carry = LOOP_NAMES.get(code, {}).get(forward, {}).get(("carry_of", forward.attr("body").carries[i]))
        if carry is not None:
            return f"d_{carry}"
    return loop.attr("body").carries[i].name


def _length(loop: Node):
    c, _, _ = counts(loop)
    return loop.inputs[c].shape[loop.attr("axes")[0]]


def body_lines(code: ModuleCode, roots: list[Node], inner: FunctionCode,
               sums: dict[Node, tuple[str, Node]] | None = None) -> list[Statement]:
    """The lines of a loop's step computing `roots`, over the variables `inner` already reads. A cheap
    view used once is written inside the line using it, as outside loops. `sums`: {new carry: (its
    variable, the term)} for the running sums written `d_W += term`."""
    lines: list[Statement] = []
    order = toposort(roots)
    results = loop_results(order)
    uses = use_counts(roots)
    sums = sums or {}
    terms = {term for _, term in sums.values()}
    for node in order:
        if node.is_leaf or node.op == "const" or node in inner.inlined or node.op == "scan_result":
            continue
        if node.op == "scan":
            lines += loop_lines(code, node, inner, results.get(node, []))
            continue
        if node in sums:
            variable, term = sums[node]
            lines.append(Statement("", f"{variable} += {literal(inner.operand(term))}",
                                   computes=(node, (variable, inner.operand(term)))))
            inner.inlined[node] = variable
            continue
        code._numbers[node] = OPS[node.op].has_formula and all(
            x.op == "const" or code._numbers.get(x, False) for x in node.inputs)
        args = tuple(inner.operand(x) for x in node.inputs)
        if OPS[node.op].transparent:
            inner.inlined[node] = literal(args[0])
            continue
        text = None if node.op == FUSED_FORMULA else code._text(node, args)
        once = uses.get(node) == 1 and node not in code.names
        if once and (OPS[node.op].inlined or (node in terms and text is not None)):
            inner.inlined[node] = text
            continue
        lines += code._lines(node, args, text)
        BODY_SHAPES.setdefault(code, {})[lines[-1].target] = node.shape
    return lines


def _running_sums(loop: Node, function: FunctionCode, carried: list[int], carry_vars: dict[int, str],
                  kept: set[Node]) -> dict[Node, tuple[str, Node]]:
    """{new carry: (variable, term)} for the carries that are running sums, `s + term`, started from fresh
    zeros (a gradient summed over the steps): those are added to in place, `d_W += x_t.T @ delta`, as
    a hand-written BPTT does, which keeps no second copy of the sum. Not when a step's carry is also
    kept in a list (the lists would all hold the one array) or read by anything but its sum."""
    body: Body = loop.attr("body")
    uses = use_counts(list(body.outputs))
    sums = {}
    for i in carried:
        slot, new, start = body.carries[i], body.new_carries[i], loop.inputs[i]
        fresh = start.op == "zeros_like" and start in function.inlined
        if (new.op == "add" and slot in new.inputs and fresh and uses.get(slot) == 1 and not {slot, new} & kept
                and new.inputs[0] is not new.inputs[1]):
            sums[new] = (carry_vars[i], new.inputs[1] if new.inputs[0] is slot else new.inputs[0])
    return sums


def _assigned_in_place(code: ModuleCode, lines: list[Statement], updates: list[tuple[str, str]],
                       renamed: dict[str, str]) -> tuple[list[Statement], list[tuple[str, str]]]:
    """A carry's new value assigned to the carry's variable on the line computing it, rather than to a
    temporary passed on at the end of the step, where no later line reads the carry's old value:
    `d_h = delta @ Wh.T`. The others stay in the one assignment of the step's end. `renamed` gets
    {temporary: carry variable} of those assigned so."""
    left, k, carries = [], -1, {variable for variable, _ in updates}
    while k + 1 < len(updates):  # (the updates after k are rewritten as it goes)
        k += 1
        variable, text = updates[k]
        where = [j for j, s in enumerate(lines) if s.target == text and not s.block and text not in carries]
        later = lines[where[0] + 1:] if where else []
        others = [t for v, t in updates[k + 1:]] + [t for v, t in left]
        if not where or _mentions(later, variable) or any(_word(variable).search(t) for t in others):
            left.append((variable, text))
            continue
        j = where[0]
        lines = lines[:j] + [replace(lines[j], target=variable)] + [_renamed(s, text, variable) for s in later]
        updates = updates[:k + 1] + [(v, _word(text).sub(variable, t)) for v, t in updates[k + 1:]]
        left = [(v, _word(text).sub(variable, t)) for v, t in left]
        renamed[text] = variable
        shapes = BODY_SHAPES.setdefault(code, {})
        if text in shapes:
            shapes[variable] = shapes[text]
    return lines, left


def _word(name: str) -> "re.Pattern":
    return re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")


def _mentions(statements, name: str) -> bool:
    """Whether any of the statements (or the lines of their blocks) reads or writes `name`."""
    pattern = _word(name)
    return any(pattern.search(f"{s.target} = {s.expr}") for top in statements for _, s in top.nested())


def _renamed(statement: Statement, old: str, new: str) -> Statement:
    pattern = _word(old)
    computes = statement.computes and (statement.computes[0], tuple(
        pattern.sub(new, a) if isinstance(a, str) else a for a in statement.computes[1]))
    return replace(statement, target=pattern.sub(new, statement.target), expr=pattern.sub(new, statement.expr),
                   block=tuple(_renamed(s, old, new) for s in statement.block), computes=computes)


def body_shapes(code: ModuleCode) -> dict[str, tuple]:
    """{variable: shape} of the values the module's loops compute, for check_shapes."""
    return dict(BODY_SHAPES.get(code, {}))




def _saved_comment(loop: Node, function: FunctionCode, code: ModuleCode) -> list[Statement]:
    """Above a loop that reads what another saved at each step: one comment naming those values."""
    c, k, _ = counts(loop)
    saved = [seq for seq in loop.inputs[c:c + k] if seq.op == "scan_result" and seq.attr("saved") is not None]
    if not saved:
        return []
    parts = []
    for seq in saved:
        value = seq.attr("saved")
        names = LOOP_NAMES.get(code, {}).get(seq.inputs[0], {})
        variable = code.names.variable(value) if not value.is_leaf else None
        if value.is_leaf:
            parts.append(f"{function.operand(seq)} ({names.get(('carry_of', value))} at the start of each step)")
        elif variable in names.get("renamed", {}):
            parts.append(f"{function.operand(seq)} ({names['renamed'][variable]} after each step)")
        else:
            parts.append(f"{function.operand(seq)} ({variable})")
    return [Statement("", "", comment="Saved by the forward loop at every step, read backwards: " + ", ".join(parts))]


def _dim_text(d, loop: Node, function: FunctionCode) -> str:
    """A dimension of an empty result: a number, 0 for the time axis, else a size read off an operand."""
    if isinstance(d, int):
        return str(d)
    c, k, _ = counts(loop)
    axes = loop.attr("axes")
    if d == loop.inputs[c].shape[axes[0]]:
        return "0"
    for x in loop.inputs:  # (saved values are lists, empty here)
        if d in x.shape and not is_saved(x):
            return f"{_text(function.operand(x))}.shape[{x.shape.index(d)}]"
    for leaf in toposort([loop]):  # the batch size, or a length, is the same in every input the loop reads
        if leaf.op == "input" and leaf in function.names and d in leaf.shape:
            return f"{function.names.variables[leaf]}.shape[{leaf.shape.index(d)}]"
    raise AssertionError(f"no operand of the loop has a dimension {d!r}")  # pragma: no cover


def _text(operand) -> str:
    text = literal(operand)
    return text if text.isidentifier() else f"({text})"


def _base(operand) -> str:
    text = literal(operand)
    return text if text.isidentifier() else "x"


def _array_text(operand, dtype: str) -> str:
    return operand if isinstance(operand, str) else f"xp.asarray({number_text(operand)}, dtype=xp.{dtype})"


def loop_results(order: list[Node]) -> dict[Node, list[Node]]:
    """{loop: its results among `order`}, in order: what a function reads of each loop."""
    results: dict[Node, list[Node]] = {}
    for node in order:
        if node.op == "scan":
            results.setdefault(node, [])
        elif node.op == "scan_result":
            results.setdefault(node.inputs[0], []).append(node)
    return results
