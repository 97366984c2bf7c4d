"""A graph's loops written out for their first few steps, for a picture drawn like the slide of a
recurrent net unrolled in time: the loop's step applied k times, the carry named h1, h2, ... (c1, c2,
... for an LSTM's cell), each step reading an input x1, x2, ... of its own. A drawing of the
recursion, not the model: the loop runs T steps, the picture shows k, so it carries no values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..codegen import GeneratedModule, generate
from ..errors import GraphError
from ..ir import Graph, Node, apply, toposort
from ..ops import reshape
from ..ops.scan import counts
from ..passes import rebuild

CARRY_NAMES = ("h", "c")  # an RNN's state, an LSTM's cell: the names the lecture gives them


def unrolled(graph: Graph, steps: int, most: int = 20, step_of: dict[Node, int] | None = None) -> Graph:
    """`graph` with each loop (gc.scan) replaced by its first `steps` steps (at most `most`), written out;
    `step_of` gets the step (from 1) each value written out belongs to."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= most:
        raise GraphError(f"--unroll: draw between 1 and {most} steps, got {steps!r}")
    copy = Graph(graph.name)
    copy.leaves = dict(graph.leaves)
    copy.labels = dict(graph.labels)
    copy.outputs = dict(graph.outputs)
    results: dict[Node, tuple[list[Node], list[Node]]] = {}  # loop -> (final carries, last outputs)

    def transform(old: Node, remade: Node) -> Node:
        if old.op == "scan":
            results[old] = _written_out(copy, remade, steps, {} if step_of is None else step_of)
        elif old.op == "scan_result" and old.inputs[0] in results:
            carries, ys = results[old.inputs[0]]
            index = old.attr("index")
            if index is None:
                raise GraphError("--unroll: a loop's saved values are drawn only in the loop's own box")
            return carries[index] if index < len(carries) else ys[index - len(carries)]
        return remade

    mapping = rebuild(list(graph.outputs.values()) + list(graph.labels), transform)
    result = copy.remapped(mapping)  # with the steps' inputs xs_1, xs_2, ... and their carries h1, h2, ...
    read = set(toposort(list(result.outputs.values()) + list(result.labels)))
    walked = {x for loop in results for x in loop.inputs if x.op == "input"}
    result.leaves = {name: leaf for name, leaf in result.leaves.items() if leaf in read or leaf not in walked}
    return result  # a sequence read only by its loop is now read step by step: its steps' inputs stand for it


def _written_out(graph: Graph, loop: Node, steps: int, step_of: dict[Node, int]) -> tuple[list[Node], list[Node]]:
    """The loop's step applied `steps` times on new inputs x1 ... xk: (carries after the last step,
    the per-step outputs of the steps drawn, stacked as the loop stacks them); `step_of` gets the step
    of each value."""
    body = loop.attr("body")
    c, k = len(body.carries), len(body.xs)
    carries = list(loop.inputs[:c])
    order = range(steps - 1, -1, -1) if loop.attr("reverse") else range(steps)
    ys: list[list[Node]] = [[] for _ in body.ys]
    for t in order:
        step = dict(zip(body.carries, carries))
        for j, (slot, sequence) in enumerate(zip(body.xs, loop.inputs[c:c + k])):
            base = graph.name_of(sequence) or f"x{'' if k == 1 else j + 1}"
            step[slot] = _new_input(graph, f"{base}_{t + 1}", slot.shape)
        step.update(zip(body.captured, loop.inputs[c + k:]))
        for node in body.nodes():
            if node.op == "const":
                step[node] = node
            elif node not in step:
                step[node] = apply(node.op, *(step[x] if x.op != "const" else x for x in node.inputs),
                                   **dict(node.attrs))
        carries = [_named(graph, step[new], f"{CARRY_NAMES[i] if i < len(CARRY_NAMES) and c <= 2 else f's{i + 1}_'}{t + 1}")
                   for i, new in enumerate(body.new_carries)]
        for value in list(step.values()) + carries:
            step_of.setdefault(value, t + 1)
        for j, y in enumerate(body.ys):
            ys[j].append(step[y])
    return carries, [_stacked(values, axis, bool(loop.attr("reverse")))
                     for values, axis in zip(ys, loop.attr("y_axes"))]


def _stacked(values: list[Node], axis: int, reverse: bool) -> Node:
    """The per-step outputs of the steps drawn, stacked in time order along the loop's axis."""
    ordered = values[::-1] if reverse else values
    single = [reshape(v, tuple(v.shape[:axis]) + (1,) + tuple(v.shape[axis:])) for v in ordered]
    return single[0] if len(single) == 1 else apply("concat", *single, axis=axis)


def _new_input(graph: Graph, name: str, shape: tuple) -> Node:
    """An input of one step's element (xs_1 ...), made directly like a loop's placeholders."""
    while name in graph.leaves:
        name += "_"
    node = Node("input", (), (), tuple(shape), name)
    graph.leaves[name] = node
    return node


def _named(graph: Graph, node: Node, name: str) -> Node:
    """The step's new carry under the lecture's name (h2), unless the graph uses that name already."""
    try:
        return graph.let(name, node)
    except GraphError:
        return node


MOST_STEPS = 12  # a derivation writes a loop out step by step up to this many steps, every one shown
LONGEST = 200  # up to this many, the first and the last SHOWN_STEPS are shown, the others elided
SHOWN_STEPS = 3  # without values, the first steps of the recursion


def unrolled_model(model: GeneratedModule, at: Mapping[str, object] | None
                   ) -> tuple[GeneratedModule, dict | None, set[Node]] | None:
    """(the model's graph with its loops written out, the values `at` with each sequence split into its
    steps xs_1, xs_2, ..., the values of the steps a derivation leaves out: for a sequence longer than
    MOST_STEPS, all but the first and last SHOWN_STEPS) for a derivation that shows the recursion step
    by step with a time index, as the lecture writes backpropagation through time; None when that cannot
    be: a sequence that is not an input, a length longer than LONGEST, or lengths that differ."""
    sequences: dict[str, int] = {}
    for loop in (n for n in model.graph.nodes() if n.op == "scan"):
        c, k, _ = counts(loop)
        for sequence, axis in zip(loop.inputs[c:c + k], loop.attr("axes")):
            if sequence.op != "input":
                return None
            sequences[sequence.name] = axis
    lengths = {SHOWN_STEPS} if at is None else {np.shape(at[name])[axis] for name, axis in sequences.items() if name in at}
    if len(lengths) != 1 or not 1 <= min(lengths) <= LONGEST:
        return None
    steps, step_of = lengths.pop(), {}
    flat = unrolled(model.graph, steps, LONGEST, step_of)
    elided = set() if steps <= MOST_STEPS else {
        node for node, t in step_of.items() if SHOWN_STEPS < t <= steps - SHOWN_STEPS}
    names = {name: [f"{name}_{t + 1}" for t in range(steps)] for name in sequences}
    if any(element not in flat.leaves for elements in names.values() for element in elements):
        return None
    values = None
    if at is not None:
        # (a sequence the graph also reads outside its loop stays a leaf of the unrolled graph)
        values = {name: value for name, value in at.items() if name not in sequences or name in flat.leaves}
        for name, axis in sequences.items():
            values.update((element, np.take(np.asarray(at[name]), t, axis=axis)) for t, element in enumerate(names[name]))
    wrt = [w for w in model.wrt if w in flat.leaves] + [e for name in sequences if name in model.wrt for e in names[name]]
    return generate(flat, wrt, model.loss, simplify=False), values, elided


@dataclass
class Elided:
    """The ⋮ line standing for the lines of the middle steps of a long loop written out."""

    target: str = ""

    def latex(self) -> str:
        return r"&\vdots \quad \text{(the middle steps likewise)}"

    def text(self) -> str:
        return "⋮ (the middle steps likewise)"


def leaving_out(lines: list, nodes: list[Node], elided: set[Node] | None) -> list:
    """`lines` (one per node) without those of the `elided` nodes, one ⋮ line where the first was."""
    if not elided:
        return lines
    kept, marked = [], False
    for line, node in zip(lines, nodes):
        if node not in elided:
            kept.append(line)
        elif not marked:
            kept.append(Elided())
            marked = True
    return kept
