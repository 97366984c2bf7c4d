"""A derivation's loops, as the lecture writes backpropagation through time: each forward loop's
recursion (h_t from h_{t-1}), its derivative's (δ_t = \\bar{h}_t ⊙ (1 - h_t²), \\bar{h}_{t-1} = δ_t Wᵀ
from \\bar{h}_T), and what the backward loop adds to the gradient of each operand of the loop
(Σ_t h_{t-1}ᵀ δ_t for a shared param). Read off the loops of the module compiled as written, with the
equations of loop_equations.py, under the names every other view uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..codegen import GeneratedModule
from ..ir import Node, toposort
from .equations import _EquationWriter, plain_math
from .loop_equations import LoopEquations, loops_of, nested
from .loop_names import LoopNames

NESTED_TEXT = r"\text{computed by the generated loops (a loop inside a loop's step)}"


@dataclass
class LoopStep:
    """One loop of a derivation: `target` is the forward loop's name (t4)."""

    target: str
    forward: list[tuple[str, str]] = field(default_factory=list)   # h_t = ... (LaTeX), h_0, x = stack(...)
    backward: list[tuple[str, str]] = field(default_factory=list)  # δ_t = ..., \bar{h}_{t-1} = ..., \bar{h}_T
    added: dict[int, str] = field(default_factory=dict)            # operand -> what the loop adds to its gradient
    after: str | None = None  # the backward step the recursion follows in the derivation

    @staticmethod
    def latex(lines: list[tuple[str, str]]) -> list[str]:
        return [f"{lhs} &= {rhs}" for lhs, rhs in lines]

    @staticmethod
    def text(lines: list[tuple[str, str]]) -> list[str]:
        return [plain_math(f"{lhs} = {rhs}") for lhs, rhs in lines]


def loop_steps(written: GeneratedModule, name_of) -> dict[Node, LoopStep]:
    """{forward loop: its LoopStep} for every loop of the graph as written that has a derivative, named
    by `name_of`; a loop with a loop inside its step is not written out (each operand's share says so)."""
    backward, graph = written.backward, written.graph
    if backward is None or not any(n.op == "scan" for n in graph.nodes()):
        return {}
    loops = loops_of(written)
    asked = {written.listing.symbols.get(graph.leaves[name]) for name in written.wrt}
    names = LoopNames(loops, dict(written.listing.symbols), asked)
    # the loops' results keep the derivation's names (t₂₇ = h_T, h̄_T = t̄₂₇), so the recursion is
    # joined to the steps before and after it
    listing, results = written.listing, {}
    forward_nodes, adjoints = set(graph.nodes()), set(backward.adjoints.values())
    found: dict[Node, LoopStep] = {}
    for loop in loops:
        pieces = {i: backward.paths[(loop, i)] for i in range(len(loop.inputs)) if (loop, i) in backward.paths}
        step = found[loop] = LoopStep(name_of(loop))
        if nested(loop) or not pieces:
            step.added = {i: NESTED_TEXT for i in pieces}
            continue
        # what the backward loop reads from outside that is no value of the derivation: written in place
        inline = {n for n in toposort(list(pieces.values()))
                  if n not in forward_nodes and n not in adjoints and n.op != "scan"}
        equations = LoopEquations(written, names, _EquationWriter(listing, inline), results)
        step.forward = [(line.lhs, line.rhs) for line in equations.lines(loop)]
        for back in dict.fromkeys(p.inputs[0] for p in pieces.values() if p.op == "scan_result"):
            recursion, defined, added = equations.backward_parts(back, tuple(pieces.values()))
            lines = [(line.lhs, line.rhs) for line in recursion]
            lines += [(line.lhs, line.rhs) for own in defined.values() for line in own[:-1]]  # x̄_t
            # where it starts (\bar{h}_T = \bar{h}), then the step at t
            step.backward += sorted(lines, key=lambda line: "_{t" in line[0])
            step.added.update({i: added[p] for i, p in pieces.items() if p in added})
    return found
