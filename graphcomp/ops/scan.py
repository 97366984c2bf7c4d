"""Loops: `scan`, whose value is the tuple of a loop's results, and `scan_result`, one of them.

A loop is one node. Its operands are the initial carries, the sequences it walks and the values it
captures from outside (params, and every part of the step that depends on neither the carry nor the
sequences, computed once before the loop); its `body` attribute is a small graph of its own over
placeholder inputs (`Body`): the carry at step t, each sequence's element at step t, the captured
values. `scan_result(loop, index=k)` is the k-th result: the final carries first, then each per-step
output stacked along its axis. `scan_result(loop, saved=v)` is the body value `v` at every step,
on a first axis: what the derivative of the step reads, saved by the forward loop (the generated code
keeps it as a list of one array per step, which only the backward loop indexes).

The derivative of a loop is a reversed loop (`_scan_vjp`): its carries are the gradients of the
carries and one sum per captured value; its body is the step's own derivative, made by the project's
reverse mode on the body (`graphcomp.diff.reverse.pullback`, registered in `PULLBACK` when the
`diff` package is imported, since the op table may not import it), fed at each step by the saved
values and the per-step output gradients, read backwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import DifferentiationError, ShapeError
from ..ir.graph import Node, apply, toposort
from ..ir.shapes import Shape, format_shape
from .table import OPS, Op, register

# pullback(seeds, wrt) -> the gradient (or None) of each of `wrt` given (value, adjoint) seeds: the
# reverse mode of graphcomp.diff, put here by graphcomp.diff when it is imported.
PULLBACK: list[Callable] = []


@dataclass(frozen=True, eq=False)
class Body:
    """The step of a loop as a graph of its own: placeholders in, new carries and per-step outputs out."""

    carries: tuple[Node, ...]      # placeholders: the carry at step t
    xs: tuple[Node, ...]           # placeholders: each sequence's element at step t
    captured: tuple[Node, ...]     # placeholders: values computed outside the loop
    new_carries: tuple[Node, ...]  # the carry after step t, one per carry
    ys: tuple[Node, ...]           # the per-step outputs

    @property
    def outputs(self) -> tuple[Node, ...]:
        return self.new_carries + self.ys

    def nodes(self) -> list[Node]:
        """The body's values, inputs before users."""
        return toposort(self.outputs)

    def __repr__(self) -> str:
        return f"<loop body: {len(self.carries)} carries, {len(self.xs)} sequences, {len(self.captured)} captured>"


def placeholder(shape: Shape, name: str) -> Node:
    """A value a loop body reads: made directly, never shared with another (each is its own input)."""
    return Node("input", (), (), tuple(shape), name)


def stacked_shape(shape: Shape, length: Any, axis: int) -> Shape:
    """A per-step shape with the sequence's length inserted at `axis`."""
    return tuple(shape[:axis]) + (length,) + tuple(shape[axis:])


def step_shape(shape: Shape, axis: int) -> Shape:
    """A sequence's shape without its time axis: the shape of one step's element."""
    return tuple(shape[:axis]) + tuple(shape[axis + 1:])


def sequence_length(shapes: tuple, axes: tuple, what: str = "gc.scan") -> Any:
    """The length of sequences of these shapes along these axes: one int or one symbol for all."""
    lengths = [shape[axis] for shape, axis in zip(shapes, axes)]
    if any(d is None for d in lengths):
        raise ShapeError(f"{what}: a sequence's time axis cannot be the batch axis (None)")
    if len(set(lengths)) > 1:
        raise ShapeError(f"{what}: the sequences have different lengths {', '.join(map(str, lengths))} "
                         f"(shapes {' and '.join(format_shape(s) for s in shapes)})")
    return lengths[0]


def counts(node: Node) -> tuple[int, int, int]:
    """(carries, sequences, captured values) of a loop node: how its operands divide."""
    body = node.attr("body")
    return len(body.carries), len(body.xs), len(body.captured)


def result_key(node: Node) -> Any:
    """Which result of its loop a `scan_result` is: an index, or the saved body value."""
    index = node.attr("index")
    return index if index is not None else node.attr("saved")


def _scan_shape(shapes: tuple, attrs: dict) -> Shape:
    body: Body = attrs["body"]
    c, k = len(body.carries), len(body.xs)
    if len(shapes) != c + k + len(body.captured) or not k:
        raise ShapeError("scan: a loop takes its initial carries, at least one sequence and its captured values")
    for i, (given, slot) in enumerate(zip(shapes[:c], body.carries)):
        if tuple(given) != tuple(slot.shape):
            raise ShapeError(f"scan: carry {i} starts with shape {format_shape(given)}, but the step reads shape "
                             f"{format_shape(slot.shape)}")
    sequence_length(shapes[c:c + k], attrs["axes"])
    return ()


def result(loop: Node, index: int | None = None, saved: Node | None = None) -> Node:
    """One result of a loop: `index` (final carries, then stacked outputs) or a `saved` body value. Its
    shape is worked out here, from the loop, and kept as an attribute (a shape rule sees only shapes)."""
    return apply("scan_result", loop, index=index, saved=saved, shape=_result_shape(loop, index, saved))


def _result_shape(loop: Node, index: int | None, saved: Node | None) -> Shape:
    body: Body = loop.attr("body")
    c, k, _ = counts(loop)
    length = sequence_length(tuple(x.shape for x in loop.inputs[c:c + k]), loop.attr("axes"))
    if saved is not None:
        return stacked_shape(saved.shape, length, 0)
    if not isinstance(index, int) or not 0 <= index < c + len(body.ys):
        raise ShapeError(f"scan_result: a loop of {c} carries and {len(body.ys)} outputs has no result {index!r}")
    if index < c:
        return body.carries[index].shape
    j = index - c
    return stacked_shape(body.ys[j].shape, length, loop.attr("y_axes")[j])


class _Closing:
    """A body's values rebuilt over placeholders only: each value the step computes is either a step value
    (it depends on a per-step placeholder: rebuilt inside the body) or an outside value (computed once
    before the loop, and read through a placeholder of its own, its capture)."""

    def __init__(self, frontier: Callable[[Node], tuple | None]) -> None:
        """`frontier(value)`: ("step", placeholder) or ("outer", value outside) for a value the walk must
        not enter, else None."""
        self.frontier = frontier
        self.done: dict[Node, tuple[str, Node]] = {}
        self.captures: dict[Node, Node] = {}   # value outside -> its placeholder in the body

    def inside(self, node: Node) -> Node:
        """The body's version of a value: itself rebuilt, a placeholder, or a number."""
        kind, value = self.classify(node)
        if kind != "outer" or value.op == "const":
            return value
        if value not in self.captures:  # a loop's saved values stay a list of steps (codegen/loop_state.py)
            saved = (value.op == "scan_result" and value.attr("saved") is not None) or (
                value.op == "input" and value.name == "saved_steps")
            self.captures[value] = placeholder(value.shape, "saved_steps" if saved else "captured")
        return self.captures[value]

    def classify(self, root: Node) -> tuple[str, Node]:
        stack = [root]
        while stack:
            node = stack[-1]
            if node in self.done:
                stack.pop()
                continue
            edge = self.frontier(node)
            if edge is not None:
                self.done[node] = edge
            elif node.op == "const" or node.is_leaf:
                self.done[node] = ("outer", node)
            else:
                waiting = [x for x in node.inputs if x not in self.done]
                if waiting:
                    stack.extend(reversed(waiting))
                    continue
                kinds = [self.done[x] for x in node.inputs]
                if any(kind == "step" for kind, _ in kinds):
                    self.done[node] = ("step", apply(node.op, *(self.inside(x) for x in node.inputs), **dict(node.attrs)))
                else:  # computed before the loop, once
                    same = all(value is x for (_, value), x in zip(kinds, node.inputs))
                    self.done[node] = ("outer", node if same else apply(node.op, *(v for _, v in kinds), **dict(node.attrs)))
            stack.pop()
        return self.done[root]


def make_loop(inits: tuple, seqs: tuple, carries: tuple, xs: tuple, new_carries: tuple, ys: tuple, *,
              reverse: bool, axes: tuple, y_axes: tuple, reads: "_StepReads | None" = None,
              checkpoint: int | None = None) -> Node:
    """The loop node of a step written over the placeholders `carries` and `xs` (and any value from
    outside): the step is closed over placeholders, outside values captured. `reads` says what the
    walk must not enter beyond the placeholders, and adds the sequences it finds it needs."""
    per_step = {slot: ("step", slot) for slot in carries + xs}
    if reads is not None:
        reads.plan(new_carries + ys)
    closing = _Closing(lambda node: per_step.get(node) or (reads.edge(node) if reads else None))
    new_carries = tuple(closing.inside(x) for x in new_carries)
    ys = tuple(closing.inside(y) for y in ys)
    if reads is not None:
        xs, seqs, axes = reads.sequences(xs, seqs, axes)
    body = Body(carries=tuple(carries), xs=tuple(xs), captured=tuple(closing.captures.values()),
                new_carries=new_carries, ys=ys)
    attrs = {} if reads is None else {"of": reads.loop}  # a loop's derivative knows its loop (for names)
    if checkpoint is not None:  # its carries are kept every `checkpoint` steps (codegen/checkpoints.py)
        attrs["checkpoint"] = checkpoint
    return apply("scan", *inits, *seqs, *closing.captures, body=body, reverse=bool(reverse),
                 axes=tuple(axes), y_axes=tuple(y_axes), **attrs)


class _StepReads:
    """What the derivative of a loop's step reads of the forward step, and from where: a captured value
    from outside; a sequence's element from that sequence; a per-step output from the stacked outputs;
    any other value of the step (a carry, an intermediate value) saved by the forward loop at each step,
    unless it is an elementwise function of values saved anyway: that is computed again in the backward
    step (tanh(c_t) of an LSTM from its gates and c_{t-1}), as a hand-written BPTT does, which keeps one
    array fewer per step."""

    def __init__(self, loop: Node, own: tuple[Node, ...]) -> None:
        body: Body = loop.attr("body")
        self.loop, self.body, self.own = loop, body, set(own)
        c, k, _ = counts(loop)
        self.forward = set(body.nodes()) | set(body.carries + body.xs + body.captured)
        self.outside = dict(zip(body.captured, loop.inputs[c + k:]))
        self.elements = {slot: (seq, axis) for slot, seq, axis in zip(body.xs, loop.inputs[c:c + k], loop.attr("axes"))}
        self.outputs = {y: (result(loop, index=c + j), axis) for j, (y, axis) in enumerate(zip(body.ys, loop.attr("y_axes")))}
        self.slots: dict[Node, Node] = {}          # forward value -> its placeholder in the derivative
        self.found: list[tuple[Node, int]] = []    # (sequence, axis) of each, in order
        self.recomputed: set[Node] = set()         # forward values the derivative computes again

    def _reads(self, node: Node) -> bool:
        """Whether `node` is a value of the forward step (or what a loop inside it saved)."""
        inner_result = node.op == "scan_result" and node.inputs[0] in self.forward
        return (node in self.forward or inner_result) and node.op != "const"

    def plan(self, roots: tuple) -> None:
        """Which forward values the derivative `roots` read are computed again rather than saved: those
        made elementwise of values that are free (an element of a sequence, a captured value, a number)
        or saved anyway. Decided in the step's order, so a chain of them is computed again whole."""
        reached, stack, seen = set(), list(roots), set()
        while stack:
            node = stack.pop()
            if node in seen or node in self.own:
                continue
            seen.add(node)
            if self._reads(node):
                reached.add(node)
            else:
                stack.extend(node.inputs)
        free = set(self.body.xs) | set(self.body.captured)
        cheap: dict[Node, bool] = {}

        def available(node: Node) -> bool:
            if node.op == "const" or node in free or (node in reached and node not in self.recomputed):
                return True
            if node not in cheap:
                cheap[node] = node in self.forward and _elementwise(node) and all(map(available, node.inputs))
            return cheap[node]
        for node in self.body.nodes():
            if node in reached and _elementwise(node) and all(map(available, node.inputs)):
                self.recomputed.add(node)
        self.recomputed |= {node for node, ok in cheap.items() if ok}

    def edge(self, node: Node) -> tuple | None:
        if node in self.own:
            return ("step", node)
        inner_result = node.op == "scan_result" and node.inputs[0] in self.forward  # what a loop inside saved
        if not self._reads(node) or node in self.recomputed:
            return None
        if node in self.outside:
            return ("outer", self.outside[node])
        if node not in self.slots:  # (what a loop inside saved is a list of arrays: "saved_steps")
            self.slots[node] = placeholder(node.shape, "saved_steps" if inner_result and node.attr("saved") is not None else "saved")
            self.found.append(self.elements.get(node) or self.outputs.get(node) or (result(self.loop, saved=node), 0))
        return ("step", self.slots[node])

    def sequences(self, xs: tuple, seqs: tuple, axes: tuple) -> tuple[tuple, tuple, tuple]:
        """The derivative loop's sequences: its own, then those found; at least one (it counts the steps)."""
        if not xs and not self.found:
            self.slots[self.body.xs[0]] = placeholder(self.body.xs[0].shape, "steps")
            self.found.append(self.elements[self.body.xs[0]])
        return (xs + tuple(self.slots.values()), seqs + tuple(seq for seq, _ in self.found),
                axes + tuple(axis for _, axis in self.found))


def _elementwise(node: Node) -> bool:
    """A value computed position by position from its operands (a `pointwise` op or a fused formula)."""
    op = OPS.get(node.op)
    return op is not None and op.has_formula


def _scan_vjp(loop: Node, adjoints: dict) -> tuple:
    """The gradients of a loop's operands given its results' adjoints ({result key: adjoint}): a loop
    over the same steps in the other direction, whose body is the derivative of the step. Its carries
    are the carries' gradients and one running sum per captured value; its sequences the gradients of
    the per-step outputs, then what the derivative reads of the forward step."""
    if not PULLBACK:
        raise DifferentiationError("differentiating a loop needs graphcomp.diff (import graphcomp)")
    body: Body = loop.attr("body")
    c, k, m = counts(loop)
    inits, outside = loop.inputs[:c], loop.inputs[c + k:]
    # per-step outputs whose gradient is asked for: (value of the step, stacked gradient, its axis)
    stepwise = [(y, adjoints[c + j], loop.attr("y_axes")[j]) for j, y in enumerate(body.ys) if adjoints.get(c + j) is not None]
    stepwise += [(key, g, 0) for key, g in adjoints.items() if isinstance(key, Node) and g is not None]
    d_carries = tuple(placeholder(x.shape, "d_carry") for x in body.carries)
    d_steps = tuple(placeholder(y.shape, "d_step") for y, _, _ in stepwise)
    sums = tuple(placeholder(x.shape, "d_sum") for x in body.captured)
    seeds = list(zip(body.new_carries, d_carries)) + [(y, d) for (y, _, _), d in zip(stepwise, d_steps)]
    grads = PULLBACK[0](seeds, body.carries + body.xs + body.captured)
    g_carries, g_xs, g_captured = grads[:c], grads[c:c + k], grads[c + k:]
    new_carries = tuple(g if g is not None else apply("zeros_like", d) for g, d in zip(g_carries, d_carries))
    new_carries += tuple(s if g is None else s + g for s, g in zip(sums, g_captured))
    start = tuple(adjoints[i] if adjoints.get(i) is not None else apply("zeros_like", inits[i]) for i in range(c))
    start += tuple(apply("zeros_like", x) for x in outside)
    back = make_loop(start, tuple(g for _, g, _ in stepwise), d_carries + sums, d_steps, new_carries,
                     tuple(g for g in g_xs if g is not None), reverse=not loop.attr("reverse"),
                     axes=tuple(axis for _, _, axis in stepwise),
                     y_axes=tuple(a for a, g in zip(loop.attr("axes"), g_xs) if g is not None),
                     reads=_StepReads(loop, d_carries + d_steps + sums))
    d_seqs, at = [], c + m
    for g in g_xs:
        d_seqs.append(None if g is None else result(back, index=at))
        at += g is not None
    d_outside = tuple(None if g is None else result(back, index=c + j) for j, g in enumerate(g_captured))
    return tuple(result(back, index=i) for i in range(c)) + tuple(d_seqs) + d_outside


def _loop_text(node: Node, args: tuple) -> str:
    c, k, _ = counts(node)
    reverse = ", reverse" if node.attr("reverse") else ""
    args = tuple(map(str, args))
    return f"scan(init=({', '.join(args[:c])}), xs=({', '.join(args[c:c + k])}){reverse})"


def _result_text(node: Node, args: tuple) -> str:
    key = result_key(node)
    return f"{args[0]}[{key}]" if isinstance(key, int) else f"{args[0]}.saved"


def _result_latex(node: Node, args: tuple) -> str:
    key = result_key(node)
    return f"{{{args[0]}}}_{{{key}}}" if isinstance(key, int) else f"{{{args[0]}}}_{{\\text{{saved}}}}"


def _emitted_as_a_block(node: Node, args: tuple) -> str:
    raise DifferentiationError("a loop is written as a for block by graphcomp.codegen.loops, not as one expression")


register(Op(name="scan", arity=None, shape=_scan_shape, emit=_emitted_as_a_block,
            vjp=lambda node, g: _scan_vjp(node, g), text=_loop_text,
            latex=lambda node, args: r"\operatorname{scan}(" + ", ".join(args) + ")"))


register(Op(name="scan_result", arity=1, shape=lambda shapes, attrs: attrs["shape"],
            emit=lambda node, args: str(args[0]), vjp=None, text=_result_text,
            latex=_result_latex, selects=result_key))
