"""`gc.compile` and the `CompiledModel` it returns: the generated module, plus the ways to read it —
its gradient formulas, the derivation of both passes, the Markdown report, a notebook view."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..codegen import GeneratedModule, generate
from ..errors import GraphError
from ..files import write_atomic
from ..inspection.derivation import Derivation, derivation
from ..inspection.equations import gradient_latex, gradient_text
from ..inspection.explorer import explorer_html, notebook_html
from ..inspection.report import markdown, summary
from ..inspection.tangents import tangent_derivation
from ..ir import Graph
from .custom_check import check_custom_rules
from .request import check_request


class CompiledModel(GeneratedModule):
    """A compiled graph: its generated source, ways to save and import it, and its formulas."""

    def gradient_latex(self) -> dict[str, str]:
        """{leaf: LaTeX} of each gradient: a closed form for short scalar graphs (∂f/∂u = w for
        f = (u + v) w); otherwise the generated code's equations under its names (README, "Reading
        the formulas")."""
        self.loss_or_error()
        return gradient_latex(self)

    def gradient_text(self) -> dict[str, str]:
        """{leaf: plain text} of each gradient, as `graphcomp grad` prints them: the closed form, or the
        generated code's lines that compute it."""
        self.loss_or_error()
        return gradient_text(self)

    def derivation(self, at: dict | None = None, unroll: bool = False) -> Derivation:
        """Both passes node by node, on the graph as written: each value forward, then the chain rule
        from the loss back to the leaves; with numbers (and arrays) when the leaves' values are given:
        derivation(at={"u": 2, "v": 3, "w": 4}). unroll: loops written out step by step (see
        inspection.derivation.derivation), as `graphcomp grad` shows them."""
        self.loss_or_error()
        return derivation(self, at, unroll=unroll)

    def tangent_derivation(self, tangents: dict, at: dict | None = None) -> Derivation:
        """Forward mode value by value, on the graph as written: each value followed by its tangent along
        `tangents` (leaf name -> its tangent; the others stay), with numbers when `at` is given:
        tangent_derivation({"x1": 1, "x2": 0}, at={"x1": 2, "x2": 5}) ends with dot_<loss>, the loss's
        directional derivative. `graphcomp grad --tangent` prints it."""
        return tangent_derivation(self, tangents, at)

    def report(self, path: str | Path, at: dict | None = None) -> Path:
        """Write a Markdown report: the forward pass (with values, given `at`), local derivatives before
        and after simplification, what the passes changed and why, the gradient equations, the
        derivation, and the forward/gradients part of the generated code."""
        text = markdown(self, at)  # a bad `at` raises here, before anything is written
        return write_atomic(path, text)

    def explorer(self, path: str | Path, at: dict | None = None) -> Path:
        """Write the explorer: one self-contained HTML page with the graph's picture, the formulas, the
        derivation and the code, cross-linked (choose a value to see its formula, value, gradient, local
        derivatives and code lines); it needs no network and opens from file://."""
        text = explorer_html(self, at)  # a bad `at` raises here, before anything is written
        return write_atomic(path, text)

    def _repr_markdown_(self) -> str:
        return summary(self)

    def _repr_html_(self) -> str:
        """A notebook's view: the graph's picture, then each gradient's formula (MathML, offline)."""
        return notebook_html(self)

    def __repr__(self) -> str:
        return f"<CompiledModel {self.graph.name!r}: loss {self.loss!r}, wrt {list(self.wrt)}>"


def compile(graph: Graph, wrt: Sequence[str] | None = None, loss: str | None = None,
            dtype: str = "float64", simplify: bool = True, predict: str | None = None,
            target: str | None = None, training: dict | None = None, check_shapes: bool = False,
            runtime: bool = True, check_finite: bool = False) -> CompiledModel:
    """Differentiate `graph` and generate its NumPy module.

    wrt: leaf names to differentiate with respect to; by default every param,
    or every input when the graph has none. loss: the output to differentiate;
    by default the only output, or the only scalar one. simplify: rewrite naive
    formulas into stable ones and fuse elementwise chains first (False: emit the
    graph exactly as written, one line per op). predict / target: an output and
    an input the training loop scores accuracy with. training: default settings
    of the generated train() and command line (epochs, lr, batch_size, optimizer, ...).
    check_shapes: a debug mode in which the module checks, after every line of forward and
    gradients, that the value computed has the shape the graph gives it. runtime: False writes only
    forward and gradients (and what they call), for users who bring their own training loop.
    check_finite: a debug mode in which the module stops at the first value of forward or gradients
    that holds NaN or an infinity, naming its line, formula, operands and where it was declared.
    """
    check_request(graph, wrt, loss, dtype, predict, target, training)
    check_custom_rules(graph)  # each custom op's rule against finite differences (unless check=False)
    if not isinstance(check_finite, (bool, np.bool_)):
        raise GraphError(f"compile: check_finite must be True or False, got {check_finite!r}")
    return generate(graph, wrt, loss, dtype, simplify, predict, target, training, check_shapes, runtime,
                    model_class=CompiledModel, check_finite=bool(check_finite))
