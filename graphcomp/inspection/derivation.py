"""The chain rule step by step, on the graph as the user wrote it (no fusion), so that every value of
the lecture slides has its step: t₁ = u + v, ∂f/∂t₁ = w · ∂f/∂f, ... Scalar graphs get ∂f/∂x notation
and, given values, numbers; tensor graphs get adjoint equations x̄ = ... and, given arrays, their
values. The backward pass and the values are the module's own: those of the graph compiled as written
(`GeneratedModule.as_written`) and of one traced run of it (`GeneratedModule.values_at`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import sympy as sp

from ..codegen import GeneratedModule
from ..diff.reverse import Backward
from ..formulas.printing import plain_text
from ..formulas.latex import axis_subscript, group, latex_number, latex_operator, short_number
from ..formulas.derivatives import in_exponentials, local_derivative
from ..formulas.symbols import partial, symbol
from ..ir import Node, toposort
from ..ops import OPS, in_terms_of, scalar_expr
from ..ops.nn import softmax_of
from .equations import is_scalar_graph
from .kinks import kink_notes
from .leaf_values import batch_size, check_leaves, computed_values
from .loop_steps import LoopStep, loop_steps
from .notation import Notation, grouped_text, signed, signed_text
from .numbers import shown
from .unroll import leaving_out, unrolled_model


class AdjointRenderer:
    """A backward node as a formula: forward values by name, adjoints as x̄, the rest expanded."""

    def __init__(self, notation: Notation, backward: Backward, plain: bool = False) -> None:
        self.notation, self.plain = notation, plain
        self.stops: dict[Node, str] = {}  # a gradient met inside another's formula reads as its name
        for forward, adjoint in backward.adjoints.items():  # reversed topological order: first wins
            if forward in notation:
                self.stops.setdefault(adjoint, notation.gradient(forward, plain))

    def render(self, node: Node, top: bool = True, named: dict[Node, str] | None = None) -> str:
        """`node` as LaTeX (or plain text); `named` gives adjoints to show under a name of the caller's choosing."""
        if named and node in named:
            return named[node]
        if node in self.stops and not top:
            return self.stops[node]
        if node.op == "const":
            return short_number(node.attr("value")) if self.plain else latex_number(node.attr("value"))
        softmax = softmax_of(node) if node not in self.notation else None
        if softmax is not None:  # the probabilities a softmax cross-entropy's rule computes: softmax(z)
            z = self.render(softmax[0], top=False, named=named)
            return f"softmax({z})" if self.plain else latex_operator("softmax", [z], axis_subscript(softmax[1]))
        if node in self.notation:
            return self.notation.name(node) if self.plain else self.notation.value(node)
        args = []
        bare = _call_arguments(node) if self.plain else set()
        for k, x in enumerate(node.inputs):
            if x.op == "const":
                args.append(x.attr("value"))
            else:
                text = self.render(x, top=False, named=named)
                args.append(text if k in bare else grouped_text(text) if self.plain else group(text))
        if self.plain:
            return OPS[node.op].text(node, tuple(str(a) if not isinstance(a, str) else a for a in args))
        return OPS[node.op].latex(node, tuple(args))


def _call_arguments(node: Node) -> set[int]:
    """The operands the node's plain text writes as arguments of a call, sum(x, axis=0), which need no
    parentheses of their own: found by printing the text over markers."""
    markers = tuple(f"\x00{k}\x00" for k in range(len(node.inputs)))
    text = OPS[node.op].text(node, markers)
    return {k for k, marker in enumerate(markers)
            if re.search(rf"[(,] ?{re.escape(marker)}(?=[,)])", text)}


# ------------------------------------------------------------------ derivations

@dataclass
class Step:
    """∂loss/∂target as the sum of one term per path out of target."""

    target: str                       # the value's name
    lhs: str                          # ∂f/∂t_{1} or \bar{t}_{1}
    terms: list[str]                  # local derivative · upstream adjoint, per path
    numbers: list[str] = field(default_factory=list)   # the same terms with values (scalar graphs, given `at`)
    path_values: list[float] = field(default_factory=list)
    value: float | None = None
    plain: tuple[str, list[str], list[str]] = ("", [], [])  # lhs, terms and numbers as plain text
    array: np.ndarray | None = None   # the gradient's value in a tensor graph, given `at`

    def latex(self) -> str:
        return f"{self.lhs} &= " + " = ".join(self._parts(self.terms, self.numbers, latex=True))

    def text(self) -> str:
        lhs, terms, numbers = self.plain
        return f"{lhs} = " + " = ".join(self._parts(terms, numbers, latex=False))

    def _parts(self, terms: list[str], numbers: list[str], latex: bool) -> list[str]:
        sign, number = (signed, latex_number) if latex else (signed_text, short_number)
        parts = [summed(terms) if terms else "1"]
        if self.array is not None:  # a tensor graph's step: the formula, then the array it computes
            return list(dict.fromkeys(parts + [shown(self.array, latex=latex)]))
        if numbers:
            parts.append(summed(numbers))
        if self.value is not None and (len(self.path_values) > 1 or numbers and numbers[0] != number(self.value)):
            if len(self.path_values) > 1:
                parts.append(" + ".join(sign(v) if k else number(v) for k, v in enumerate(self.path_values)))
            parts.append(number(self.value))
        return list(dict.fromkeys(parts))


def summed(terms: list[str]) -> str:
    """Terms joined into a sum, a negative term subtracted: a - b, never a + -b."""
    text = terms[0]
    for term in terms[1:]:
        text += f" - {term[1:].lstrip()}" if term.startswith("-") and not term.startswith("-(") else f" + {term}"
    return text


@dataclass
class ForwardStep:
    """One value of the forward pass: t1 = u + v = 5."""

    target: str
    lhs: str
    formula: str                  # LaTeX
    plain: str                    # the same formula as plain text
    value: float | np.ndarray | None = None

    def latex(self) -> str:
        return f"{self.lhs} &= {self.formula}" + ("" if self.value is None else f" = {shown(self.value, latex=True)}")

    def text(self) -> str:
        return f"{self.target} = {self.plain}" + ("" if self.value is None else f" = {shown(self.value, latex=False)}")


@dataclass
class Derivation:
    """Both passes: each value computed forward, then the chain rule node by node from the loss back
    to the leaves."""

    loss: str
    steps: list[Step]
    values: dict[str, float] = field(default_factory=dict)  # every value by name, when `at` was given
    forward: list[ForwardStep] = field(default_factory=list)
    # what the steps were computed from, for pictures: the backward pass, and every value by node
    # (gradients too, for tensor graphs) when `at` was given
    backward: Backward | None = field(default=None, repr=False)
    node_values: dict[Node, object] = field(default_factory=dict, repr=False)
    loops: list[LoopStep] = field(default_factory=list)  # each loop's recursions, forward and backward
    kinks: list[str] = field(default_factory=list)  # values on a kink at `at`, and the derivative taken (kinks.py)

    def _lines(self, latex: bool) -> list[str]:
        """Each step's line, a loop's forward recursion after the loop's value and its backward
        recursion after the last gradient of its results."""
        def written(loop_lines: list[tuple[str, str]]) -> list[str]:
            return LoopStep.latex(loop_lines) if latex else LoopStep.text(loop_lines)
        lines = []
        for step in self.forward:
            lines.append(step.latex() if latex else step.text())
            lines += [line for loop in self.loops if loop.target == step.target for line in written(loop.forward)]
        for step in self.steps:
            lines.append(step.latex() if latex else step.text())
            lines += [line for loop in self.loops if loop.after == step.target for line in written(loop.backward)]
        return lines

    def latex(self) -> str:
        return "\\begin{aligned}\n" + " \\\\\n".join(self._lines(latex=True)) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$$\n{self.latex()}\n$$"

    def _repr_html_(self) -> str:
        """A notebook's view as MathML, which an HTML export of the notebook shows without MathJax."""
        from .mathml import math_html
        return math_html(self.latex())

    def text(self) -> str:
        """The forward pass, then one plain-text line per backward step: df/du = 1 * df/dt1 = 1 * 4 = 4;
        then a note for each value that sits on a kink."""
        return "\n".join(self._lines(latex=False) + [f"kink: {note}" for note in self.kinks])

    __str__ = text

    def step(self, name: str) -> Step:
        """The step of the value named `name`."""
        for s in self.steps:
            if s.target == name:
                return s
        raise KeyError(f"no step for {name!r}; steps: {', '.join(s.target for s in self.steps)}")


def derivation(model: GeneratedModule, at: Mapping[str, object] | None = None, unroll: bool = False,
               elided: set[Node] | None = None) -> Derivation:
    """∂loss/∂v for every value v between the wrt leaves and the loss of `model`, in the order backprop
    visits them, on the graph as written: read off the module compiled as written, with the values of
    one run of it at `at` (the leaves' values) when given.

    unroll: a loop (gc.scan) over inputs is written out step by step (h1, h2, ... on xs_1, xs_2, ...:
    every step of a sequence of up to 12 given `at`, the first and the last 3 of a longer one up to 200,
    the first 3 without values), so that the derivation reads as backpropagation through time. Its values
    are then named on that written-out graph, not the model's: a view for reading (`graphcomp grad`),
    never the data of a picture. `elided`: values whose lines are left out, one ⋮ line in their place."""
    if unroll and any(n.op == "scan" for n in model.graph.nodes()):
        written_out = unrolled_model(model, at)
        if written_out is not None:
            return derivation(*written_out[:2], unroll=False, elided=written_out[2])
    written = model.as_written()
    graph, loss, backward = written.graph, written.loss_or_error(), written.backward
    loss_node, notation = graph.outputs[loss], Notation(graph)
    scalar = is_scalar_graph(loss_node)
    values = None
    if at is not None:
        check_leaves(loss_node, graph, at)
        values = computed_values(written, at, scalar)
    uses = consumers(loss_node, backward)
    loops = loop_steps(written, notation.name)
    chain = _ChainRule(notation, backward, loss, scalar, values if scalar else None, loops)
    order = _backprop_order(loss_node, list(graph.leaves.values()), uses)
    for k, node in enumerate(order):  # a loop's backward recursion follows the gradients of its results
        if node in loops and k:
            loops[node].after = notation.name(order[k - 1])
    order = [n for n in order if n.op != "scan"]
    steps = [chain.step(node, uses.get(node, []), node is loss_node) for node in order]
    if values is not None and not scalar:  # a tensor graph's steps show the arrays the generated code computes
        for step, node in zip(steps, order):
            step.array = np.float64(1.0) if node is loss_node else values.get(backward.adjoints[node])
    values = values or {}
    named_values = {notation.name(n): v for n, v in values.items() if n in notation}
    # every value the loss is computed from, so that each symbol a step uses is defined (t7 = 1 - y too)
    computed = [n for n in toposort([loss_node]) if not n.is_leaf and n in notation]
    forward = [ForwardStep(notation.name(n), notation.value(n), notation.formula(n), notation.text(n), values.get(n))
               for n in computed]
    if any(re.search(r"\bN\b", text) for text in [s.plain for s in forward] + [t for s in steps for t in s.plain[1]]):
        forward.insert(0, ForwardStep("N", "N", r"\text{the number of examples}", "the number of examples",
                                      batch_size(graph, at)))
    forward = leaving_out(forward, [None] * (len(forward) - len(computed)) + computed, elided)
    steps = leaving_out(steps, order, elided)
    kinks = kink_notes(computed, values, notation.name, notation.text, backward.paths)
    return Derivation(loss, steps, named_values, forward, backward, values, list(loops.values()), kinks)


class _ChainRule:
    """Makes each value's step: the sum, over the paths out of it, of the local derivative times the
    gradient of the value it feeds (with numbers when the scalar values are known)."""

    def __init__(self, notation: Notation, backward: Backward, loss: str, scalar: bool,
                 values: dict[Node, float] | None, loops: dict[Node, LoopStep]) -> None:
        self.notation, self.backward, self.loss, self.scalar, self.values = notation, backward, loss, scalar, values
        self.loops = loops
        self.renderer = AdjointRenderer(notation, backward)
        self.text_renderer = AdjointRenderer(notation, backward, plain=True)
        self.adjoint_values: dict[Node, float] = {}

    def lhs(self, node: Node) -> tuple[str, str]:
        """(LaTeX, plain text) of a value's gradient: ∂f/∂t1 and df/dt1, or t̄1 and d_t1."""
        if self.scalar:
            return partial(symbol(self.loss), self.notation.value(node)), f"d{self.loss}/d{self.notation.name(node)}"
        return self.notation.gradient(node), self.notation.gradient(node, plain=True)

    def step(self, node: Node, consumers: list[tuple[Node, int]], is_loss: bool) -> Step:
        name = self.notation.name(node)
        lhs, plain_lhs = self.lhs(node)
        if is_loss:
            self.adjoint_values[node] = 1.0
            return Step(name, lhs, [], value=1.0 if self.values is not None else None, plain=(plain_lhs, [], []))
        step = Step(name, lhs, [], plain=(plain_lhs, [], []))
        for user, index in consumers:
            if user.op == "scan":  # what the backward loop adds: Σ_t h_{t-1}ᵀ δ_t
                added = self.loops[user].added[index] if user in self.loops else r"\text{the generated loop's}"
                step.terms.append(added)
                step.plain[1].append(LoopStep.text([("", added)])[0].lstrip(" ="))
            elif self.scalar:
                self._scalar_path(step, user, index)
            else:
                self._tensor_path(step, user, index)
        if self.values is not None:
            self.adjoint_values[node] = step.value = sum(step.path_values)
        return step

    def _scalar_path(self, step: Step, user: Node, index: int) -> None:
        upstream, plain_upstream = self.lhs(user)
        local = local_derivative(scalar_expr(user), index) if OPS[user.op].has_formula else sp.Integer(1)
        step.terms.append(rf"{group(local_latex(local, user, self.notation))} \cdot {upstream}")
        step.plain[1].append(f"{local_text(local, user, self.notation)} * {plain_upstream}")
        if self.values is not None:
            slope = float(local_value(local, user, self.values))
            step.numbers.append(rf"{signed(slope)} \cdot {signed(self.adjoint_values[user])}")
            step.plain[2].append(f"{signed_text(slope)} * {signed_text(self.adjoint_values[user])}")
            step.path_values.append(slope * self.adjoint_values[user])

    def _tensor_path(self, step: Step, user: Node, index: int) -> None:
        # the user's own adjoint reads as ū, even where it is the same array as another's
        piece, adjoint = self.backward.paths[(user, index)], self.backward.adjoints[user]
        step.terms.append(self.renderer.render(piece, named={adjoint: self.notation.gradient(user)}))
        step.plain[1].append(self.text_renderer.render(piece, named={adjoint: self.notation.gradient(user, plain=True)}))


def consumers(loss: Node, backward: Backward) -> dict[Node, list[tuple[Node, int]]]:
    """For each value on a path to the loss: (user, operand index) of each use the gradient flows through
    (a use with no path, as stop_gradient's or a dropout mask's, is none)."""
    users: dict[Node, list[tuple[Node, int]]] = {}
    for node in toposort([loss]):
        if node.is_leaf or node not in backward.adjoints:
            continue
        for i, x in enumerate(node.inputs):
            if x in backward.adjoints and (node, i) in backward.paths or x.op == "scan" and node.op == "scan_result":
                users.setdefault(x, []).append((node, i))
        if node.op == "scan_result" and node.inputs[0] not in users.get(node.inputs[0], ()):
            loop = node.inputs[0]  # a loop has no gradient of its own: its derivative loop gives its operands'
            for i, x in enumerate(loop.inputs):
                if x in backward.adjoints and (loop, i) in backward.paths and (loop, i) not in users.get(x, []):
                    users.setdefault(x, []).append((loop, i))
    return users


def _backprop_order(loss: Node, leaves: list[Node], consumers) -> list[Node]:
    """Values in the order backprop finishes them: a value as soon as all its users are done.

    Among the values one node makes ready, leaves come first in declaration order, then the
    others from the last operand back, as on the slides: f = t1 w gives f, w, t1, then u, v.
    """
    waiting = {x: len(uses) for x, uses in consumers.items()}
    order, queue = [], [loss]
    while queue:
        node = queue.pop(0)
        order.append(node)
        ready = []
        for x in dict.fromkeys(reversed(node.inputs)):
            done = sum(user is node for user, _ in consumers.get(x, ()))  # the uses the gradient flows through
            if done:
                waiting[x] -= done
                if waiting[x] == 0:
                    ready.append(x)
        queue += sorted((x for x in ready if x.is_leaf), key=leaves.index) + [x for x in ready if not x.is_leaf]
    return [n for n in order if n.op != "const"]


def local_latex(local: sp.Expr, user: Node, notation: Notation) -> str:
    """A local derivative of `user` in LaTeX, over the names of its operands and output."""
    dummies: dict[Node, sp.Symbol] = {}
    expr = in_terms_of(local, user, lambda value: dummies.setdefault(value, sp.Symbol(f"a{len(dummies)}", real=True)))
    return sp.latex(expr, symbol_names={d: notation.value(value) for value, d in dummies.items()})


def local_text(local: sp.Expr, user: Node, notation: Notation) -> str:
    return plain_text(in_terms_of(local, user, lambda value: sp.Symbol(notation.name(value))))


def local_value(local: sp.Expr, user: Node, values: dict[Node, float]) -> float:
    return float(sp.N(in_exponentials(in_terms_of(local, user, lambda value: sp.Float(values[value])))))
