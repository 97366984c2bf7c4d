"""A loop's formulas with a time index, as the lecture writes backpropagation through time:

    h_t = tanh(x_t W_x + h_{t-1} W_h + b)          t = 1, ..., T, from h_0
    δ_t = \\bar{h}_t ⊙ (1 - h_t²)
    \\bar{h}_{t-1} = δ_t W_hᵀ                       t = T, ..., 1, from \\bar{h}_T
    \\bar{W}_h = Σ_t h_{t-1}ᵀ δ_t

They are read off the graph the code is generated from: the loop node's step (its `Body`) and the
step of its derivative, the reversed loop whose carries are the carries' gradients and one running sum
per shared value. Each body is written with the same LaTeX rules as every other formula (the outer
equations' writer, given in), its placeholders named by time (loop_names.py); a value of the step used
more than once gets an equation of its own, anything else is written in place. The code's temporary
names inside loops appear nowhere, so the formulas do not depend on how the loop's code is written.

A sequence and a stacked output are written `x = stack_axis(x_1, ..., x_T)`: the equation both says
what x_t is and how the per-step values make up the array.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace

from ..formulas.latex import axis_subscript, latex_number
from ..ir import Node, toposort, use_counts
from ..ops.scan import Body, counts, result_key
from .loop_latex import grouped, untransposed
from .loop_names import TIME, LoopNames, LoopSymbols, TimeSymbol, numbered

NAMED_LENGTH = 12  # characters: a value of a step used twice gets its own equation when written longer


@dataclass
class LoopLine:
    """One equation of a loop: `pattern` says when another equation uses what it defines."""

    lhs: str
    rhs: str
    pattern: str
    reads: str = ""  # what it reads besides its right side: s_t = A's t-th slice reads A


@dataclass
class _Step:
    """One body as formulas: its symbols, the values written in place, and the writer that renders it."""

    body: Body
    symbols: dict[Node, str]
    writer: object = None
    named: list[Node] = field(default_factory=list)


def loops_of(model) -> list[Node]:
    """The model's forward loops (those that are no loop's derivative), in the order the code runs them."""
    roots = list(model.compiled_graph.outputs.values())
    if model.backward is not None:
        roots += [model.backward.gradients[model.compiled_graph.leaves[name]] for name in model.wrt]
    return [n for n in toposort(roots) if n.op == "scan" and n.attr("of") is None]


def forward_of(loop: Node) -> Node:
    """The forward loop a loop is (itself) or is the derivative of."""
    return loop if loop.attr("of") is None else loop.attr("of")


def sequences_read(root: Node) -> set[Node]:
    """The sequences the loops `root` is computed from walk: each is written by a symbol of its own,
    since `x = stack(x_1, ..., x_T)` names x's steps."""
    found = set()
    for loop in toposort([root]):
        if loop.op == "scan":
            c, k, _ = counts(loop)
            found.update(loop.inputs[c:c + k])
    return found


def nested(loop: Node) -> bool:
    """Whether a loop's step holds a loop: such a recursion is not written out (the code shows it)."""
    return any(n.op == "scan" for n in loop.attr("body").nodes())


def result_symbols(model, names: LoopNames) -> dict[Node, str]:
    """The symbols the outer equations give a loop's results: h_T for the last carry and \\bar{h}_T for
    its gradient, \\bar{h}_0 for the gradient of the first one, where the code has a temporary for them
    (t_{2}, \\bar{t}_{2}); a value you named, a stacked or a summed result keeps its name."""
    symbols = {}
    for node in toposort(_roots(model)):
        if node.op != "scan_result" or not isinstance(result_key(node), int):
            continue
        loop = node.inputs[0]
        forward = forward_of(loop)
        if forward not in names.of or nested(forward) or result_key(node) >= counts(forward)[0]:
            continue
        loop_symbols = names.of[forward]
        carry = loop_symbols.carries[result_key(node)]
        if loop is not forward:
            symbols[node] = carry.barred().at(loop_symbols.back_steps.last)
            continue
        if TEMPORARY.fullmatch(model.listing.symbols.get(node, "t_{0}")):
            symbols[node] = carry.at(loop_symbols.steps.last)
        adjoint = model.backward.adjoints.get(node) if model.backward is not None else None
        if adjoint is not None and TEMPORARY_GRADIENT.fullmatch(model.listing.symbols.get(adjoint, "")):
            symbols[adjoint] = carry.barred().at(loop_symbols.back_steps.first)
    return symbols


TEMPORARY = re.compile(r"t_\{\d+\}")
TEMPORARY_GRADIENT = re.compile(r"\\bar\{t\}_\{\d+\}")


def _roots(model) -> list[Node]:
    roots = list(model.compiled_graph.outputs.values())
    if model.backward is not None:
        roots += [model.backward.gradients[model.compiled_graph.leaves[name]] for name in model.wrt]
    return roots


class LoopEquations:
    """The equations of a model's loops, written with the outer equations' writer for what a loop
    reads from outside (its first carries, its sequences, the params it shares)."""

    def __init__(self, model, names: LoopNames, outer, results: dict[Node, str]) -> None:
        self.model, self.names, self.outer = model, names, outer
        self.symbols = {**model.listing.symbols, **results}
        self._results = _results_by_loop(_roots(model))
        self.aliases: dict[str, str] = {}  # an outer symbol the recursion uses by another index: its pattern

    def lines(self, loop: Node) -> list[LoopLine]:
        """The forward recursion of `loop` (a forward loop), or the backward one of a derivative."""
        forward = forward_of(loop)
        symbols = self.names.of[forward]
        if loop is forward:
            return self._forward_lines(forward, symbols, self._forward_step(forward, symbols))
        return self._backward_lines(loop)

    # ---- the forward step
    def _forward_step(self, loop: Node, names: LoopSymbols) -> _Step:
        body: Body = loop.attr("body")
        c, k, _ = counts(loop)
        symbols = {slot: self._outer_text(x) for slot, x in zip(body.captured, loop.inputs[c + k:])}
        symbols.update({slot: names.carries[i].at(names.steps.previous) for i, slot in enumerate(body.carries)})
        symbols.update({slot: names.elements[j].at(TIME) for j, slot in enumerate(body.xs)})
        for i, new in enumerate(body.new_carries):
            symbols.setdefault(new, names.carries[i].at(TIME))
        for j, y in enumerate(body.ys):
            symbols.setdefault(y, names.outputs[j].at(TIME))
        # what the derivative reads of the step (saved by the loop at every step) is named: a_t
        read = {result_key(r) for r in self._results.get(loop, ()) if not isinstance(result_key(r), int)}
        return self._planned(body, symbols, names.value_stem, read, set())

    def _forward_lines(self, loop: Node, names: LoopSymbols, step: _Step) -> list[LoopLine]:
        body: Body = loop.attr("body")
        c, k, _ = counts(loop)
        lines = []
        for i, new in enumerate(body.new_carries):
            carry = names.carries[i]
            lines.append(LoopLine(carry.at(TIME), f"{self._render(step, new)} \\qquad {names.steps.span}", carry.pattern()))
        lines += self._named_lines(step)
        for j, y in enumerate(body.ys):
            if y not in body.new_carries:
                lines.append(LoopLine(names.outputs[j].at(TIME), self._render(step, y), names.outputs[j].pattern()))
        for result in self._results.get(loop, ()):  # a last carry you named: hT = h_T
            key = result_key(result)
            if isinstance(key, int) and key < c and self.symbols[result] != names.carries[key].at(names.steps.last):
                lines.append(LoopLine(self.symbols[result], names.carries[key].at(names.steps.last),
                                      re.escape(self.symbols[result])))
        for i, carry in enumerate(names.carries):
            first = self._outer_text(loop.inputs[i])
            if first == carry.at(names.steps.first):  # h_{0} is the first carry's own name: its equation is kept
                self.aliases[first] = carry.pattern()  # wherever h_t is used
            else:
                lines.append(LoopLine(carry.at(names.steps.first), first, carry.pattern()))
        for j, (seq, axis) in enumerate(zip(loop.inputs[c:c + k], loop.attr("axes"))):
            lines += self._sequence_lines(seq, names.elements[j], axis)
        for result in self._results.get(loop, ()):
            key = result_key(result)
            if isinstance(key, int) and key >= c:
                y = body.ys[key - c]
                per_step = names.carries[body.new_carries.index(y)] if y in body.new_carries else names.outputs[key - c]
                lines.append(_stack_line(self.symbols[result], per_step, loop.attr("y_axes")[key - c], defines=True))
        return lines

    # ---- the step of the derivative
    def backward_parts(self, back: Node, also: tuple[Node, ...] = ()) -> tuple[list[LoopLine], dict, dict]:
        """The backward recursion of a derivative loop (its step's equations and the first values of
        its carries), {result: the equations that define it}, and {result: what it adds to the
        gradient of the forward loop's operand: Σ_t ..., stack(x̄_1, ..., x̄_T), \\bar{h}_0}; `also`:
        first carries' gradients to say, even where the code reads none of them."""
        recursion, results, added, sequences = self._backward_parts(back)
        names, c = self.names.of[forward_of(back)], counts(forward_of(back))[0]
        for result in also:
            if result_key(result) < c:
                added[result] = names.carries[result_key(result)].barred().at(names.back_steps.last)
        return recursion + sequences, results, added

    def _backward_parts(self, back: Node) -> tuple[list[LoopLine], dict, dict, list[LoopLine]]:
        forward = forward_of(back)
        names = self.names.of[forward]
        step = self._backward_step(back, names, self._forward_step(forward, names))
        body: Body = back.attr("body")
        c, m = counts(forward)[0], counts(forward)[2]
        steps, recursion = names.back_steps, self._named_lines(step)
        for i in range(c):
            gradient = names.carries[i].barred()
            rhs = f"{self._render(step, body.new_carries[i])} \\qquad {steps.span}"
            recursion.append(LoopLine(gradient.at(steps.previous), rhs, gradient.pattern()))
            seed = "0" if back.inputs[i].op == "zeros_like" else self._outer_text(back.inputs[i])
            if seed != gradient.at(steps.first):
                recursion.append(LoopLine(gradient.at(steps.first), seed, gradient.pattern()))
        results, added = {}, {}
        for result in self._results.get(back, ()):
            key = result_key(result)
            if key < c:  # the gradient of a first carry is the recursion's last value
                added[result] = names.carries[key].barred().at(steps.last)
            elif key < c + m:
                total = self._running_sum(step, body.carries[key], body.new_carries[key])
                results[result] = [LoopLine(self.symbols[result], total, re.escape(self.symbols[result]))]
                added[result] = total
            else:
                results[result] = self._sequence_gradient(back, names, step, result, key - c - m)
                added[result] = results[result][-1].rhs
        c_b, k_b, _ = counts(back)
        sequences = []  # the gradients of per-step outputs the step reads: \\bar{y} = stack(\\bar{y}_1, ...)
        for slot, seq, axis in zip(body.xs, back.inputs[c_b:c_b + k_b], back.attr("axes")):
            if slot.name == "d_step":
                sequences += self._sequence_lines(seq, _split(step.symbols[slot]), axis)
        return recursion, results, added, sequences

    def _backward_lines(self, back: Node) -> list[LoopLine]:
        recursion, results, _, sequences = self._backward_parts(back)
        return recursion + [line for lines in results.values() for line in lines] + sequences

    def _backward_step(self, back: Node, names: LoopSymbols, forward_step: _Step) -> _Step:
        body: Body = back.attr("body")
        forward: Node = back.attr("of")
        fbody: Body = forward.attr("body")
        c = counts(forward)[0]
        c_b, k_b, _ = counts(back)
        symbols = {slot: self._outer_text(x) for slot, x in zip(body.captured, back.inputs[c_b + k_b:])}
        symbols.update({body.carries[i]: names.carries[i].barred().at(TIME) for i in range(c)})
        outputs = iter(j for j in range(len(fbody.ys)) if _has_adjoint(self.model, self._results, forward, c + j))
        for slot, seq in zip(body.xs, back.inputs[c_b:c_b + k_b]):
            if slot.name == "d_step":
                j = next(outputs, None)
                symbols[slot] = (names.outputs[j] if j is not None else TimeSymbol(r"\bar{y}")).barred().at(TIME)
            else:
                symbols[slot] = self._forward_value(forward, fbody, forward_step, seq)
        sums = {slot: 0 for slot in body.carries[c:]}
        known = {forward_step.writer.render(n): forward_step.symbols[n] for n in fbody.nodes()
                 if n in forward_step.symbols and n.op not in ("input", "const")}
        return self._planned(body, symbols, names.gradient_stem, set(), sums, known=known)

    def _forward_value(self, forward: Node, fbody: Body, step: _Step, seq: Node) -> str:
        """The symbol, at step t, of what the derivative reads of the forward step from `seq`."""
        c, k, _ = counts(forward)
        if seq in forward.inputs[c:c + k]:
            return step.symbols[fbody.xs[forward.inputs[c:c + k].index(seq)]]
        key = result_key(seq)
        return step.symbols[fbody.ys[key - c] if isinstance(key, int) else key]

    def _running_sum(self, step: _Step, total: Node, new: Node) -> str:
        """Σ_t of what one step adds to a shared value's gradient."""
        if new is total:
            return "0"
        added = new.inputs[1] if new.op == "add" and new.inputs[0] is total else \
            new.inputs[0] if new.op == "add" and new.inputs[1] is total else new
        text = self._as_text(step.writer.operand(added))
        return rf"\sum_{{{TIME}=1}}^{{T}} {{{grouped(text)}}}"

    def _sequence_gradient(self, back: Node, names: LoopSymbols, step: _Step, result: Node, j: int) -> list[LoopLine]:
        """\\bar{x}_t of a sequence the loop walks, and the stacked \\bar{x}."""
        body: Body = back.attr("body")
        forward: Node = back.attr("of")
        wanted = _sequence_gradients(forward, back)[j]
        element = names.elements[wanted].barred()
        return [LoopLine(element.at(TIME), self._render(step, body.ys[j]), element.pattern()),
                _stack_line(self.symbols[result], element, back.attr("y_axes")[j], defines=True)]

    # ---- planning and writing a body
    def _planned(self, body: Body, symbols: dict, stem: str, named: set, numbers: dict,
                 known: dict[str, str] | None = None) -> _Step:
        """Which values of the body get an equation: those in `named`, and those used more than once
        whose formula is long; the rest are written where they are used. In a derivative's step
        (`known`: the forward step's formulas and their symbols), a forward value it computes again is
        written by its forward symbol (c_t), or in place."""
        backward = known is not None
        uses = use_counts(list(body.outputs))
        step = _Step(body, dict(symbols))
        writer = self._writer(step, numbers)  # a first writer, to measure formulas; symbols numbered after
        own = []
        for node in body.nodes():
            if node in symbols or node.op in ("const", "input"):
                continue
            recomputed = backward and not _reads_gradient(node, body)  # a forward value, computed again
            if recomputed and writer.render(node) in known:
                step.symbols[node] = known[writer.render(node)]
                continue
            shared = uses.get(node, 0) > 1 and node.op != "transpose" and len(writer.render(node)) > NAMED_LENGTH
            if (node in named or shared) and not recomputed:
                own.append(node)
                step.symbols[node] = f"{stem}_{{{TIME}}}^{{({len(own)})}}"
            else:
                writer.inline.add(node)
        step.named = own
        step.symbols.update({n: s.at(TIME) for n, s in zip(own, numbered(stem, len(own)) if own else [])})
        step.writer = self._writer(step, numbers)
        step.writer.inline |= writer.inline
        return step

    def _writer(self, step: _Step, numbers: dict):
        writer = type(self.outer)(SimpleNamespace(symbols=step.symbols, inlined={}), set())
        writer.numbers = dict(numbers)
        return writer

    def _named_lines(self, step: _Step) -> list[LoopLine]:
        return [LoopLine(step.symbols[n], step.writer.render(n), _split(step.symbols[n]).pattern()) for n in step.named]

    def _render(self, step: _Step, node: Node) -> str:
        if node.op == "input" or node in step.named or node.op == "const":
            return self._as_text(step.writer.operand(node))
        return step.writer.render(node)

    def _sequence_lines(self, sequence: Node, element: TimeSymbol, axis: int) -> list[LoopLine]:
        """What a loop walks, step by step: `x = stack(x_1, ..., x_T)`; a sequence the code writes in
        place (it has no name) is named by its steps' stem first: `u = ...`, `u = stack(u_1, ..., u_T)`."""
        if sequence in self.symbols:
            return [_stack_line(self.symbols[sequence], element, axis)]
        array = element.stem + element.sup
        return [LoopLine(array, self._outer_text(sequence), re.escape(array)), _stack_line(array, element, axis)]

    def _outer_text(self, node: Node) -> str:
        """What the loop reads from outside, as the outer equations write it; (Wᵀ)ᵀ is W."""
        return untransposed(self._as_text(self.outer.operand(node)))

    @staticmethod
    def _as_text(value) -> str:
        return value if isinstance(value, str) else latex_number(value)


def _results_by_loop(roots: list[Node]) -> dict[Node, list[Node]]:
    """{loop: its results the code reads}."""
    found: dict[Node, list[Node]] = {}
    for node in toposort(roots):
        if node.op == "scan_result":
            found.setdefault(node.inputs[0], []).append(node)
    return found


def _has_adjoint(model, results: dict, forward: Node, index: int) -> bool:
    """Whether the stacked output `index` of a loop has a gradient (then the derivative reads it per step)."""
    return any(result_key(r) == index and model.backward.adjoints.get(r) is not None for r in results.get(forward, ()))


def _sequence_gradients(forward: Node, back: Node) -> list[int]:
    """The sequences of `forward` whose gradient the derivative loop gives, in its order: matched in
    order by shape and time axis (a sequence with no gradient has no per-step output there)."""
    fbody: Body = forward.attr("body")
    given = list(zip(back.attr("body").ys, back.attr("y_axes")))
    found = []
    for i, (slot, axis) in enumerate(zip(fbody.xs, forward.attr("axes"))):
        if len(found) < len(given) and given[len(found)][0].shape == slot.shape and given[len(found)][1] == axis:
            found.append(i)
    return found


def _reads_gradient(node: Node, body: Body) -> bool:
    """Whether a value of the derivative's step depends on a gradient (a carry or a per-step output's)."""
    gradients = {slot for slot in body.carries} | {slot for slot in body.xs if slot.name == "d_step"}
    return any(n in gradients for n in toposort([node]))


def _stack_line(array: str, per_step: TimeSymbol, axis: int, defines: bool = False) -> LoopLine:
    """`array = stack_axis(s_1, ..., s_T)`: what s_t is (a sequence's element), or what array is (outputs)."""
    rhs = rf"\operatorname{{stack}}_{{{axis_subscript((axis,))}}}\left({per_step.at('1')}, \dots, {per_step.at('T')}\right)"
    if defines:
        return LoopLine(array, rhs, re.escape(array))
    return LoopLine(array, rhs, per_step.pattern(), reads=array)


def _split(symbol: str) -> TimeSymbol:
    """The TimeSymbol of a symbol written at step t."""
    stem, _, rest = symbol.partition(f"_{{{TIME}}}")
    return TimeSymbol(stem, rest)
