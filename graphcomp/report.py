"""The Markdown report of a compiled model: a document a student can read top to bottom."""
from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from .graph import format_shape
from .latex import Notation, is_scalar_graph, local_latex, partial, symbol
from .ops import OPS, scalar_expr
from .simplify import in_exponentials, local_derivative, placeholder

if TYPE_CHECKING:
    from .codegen import CompiledModel


def summary(model: "CompiledModel") -> str:
    """A short Markdown view (what a notebook shows for a model)."""
    lines = [f"**{model.graph.name}**: loss `{model.loss}`, gradients with respect to "
             + ", ".join(f"`{w}`" for w in model.wrt)]
    if model.backward is not None:
        lines += ["", *(f"$${formula}$$" for formula in model.gradient_latex().values())]
    return "\n".join(lines)


def markdown(model: "CompiledModel") -> str:
    graph, notation = model.graph, Notation(model.graph)
    out = [f"# Model `{graph.name}`", ""]
    out += ["## Graph", "", "| value | op | shape | formula |", "| --- | --- | --- | --- |"]
    for node in graph.nodes():
        if node.op == "const":
            continue
        formula = node.op if node.is_leaf else f"${notation.formula(node)}$"
        out.append(f"| ${notation.value(node)}$ | {node.op} | `{format_shape(node.shape)}` | {formula} |")
    out += ["", "## Forward pass", ""]
    out += [f"$${notation.value(n)} = {notation.formula(n)}$$" for n in graph.nodes() if not n.is_leaf]
    out += ["", "## Local derivatives", "",
            "Each elementwise node's derivative as `sympy.diff` gives it, and the form graphcomp uses "
            "(through the node's own output where that is cheaper).", ""]
    for node in graph.nodes():
        if node.is_leaf or not OPS[node.op].elementwise:
            continue
        for i, x in enumerate(node.inputs):
            if x.op == "const":
                continue
            plain = sp.diff(in_exponentials(scalar_expr(node)), placeholder(i))
            chosen = local_derivative(scalar_expr(node), i)
            lhs = partial(notation.value(node), notation.value(x))
            out.append(f"$${lhs} = {local_latex(plain, node, notation)} \\;\\to\\; {local_latex(chosen, node, notation)}$$")
    if model.backward is not None:
        out += ["", "## Gradients", ""]
        out += [f"$${formula}$$" for formula in model.gradient_latex().values()]
        notation_note = ("" if is_scalar_graph(graph, graph.outputs[model.loss])
                         else f" A bar marks a gradient: $\\bar{{v}} = \\partial {symbol(model.loss)} / \\partial v$.")
        out += ["", "## Derivation", "",
                "The chain rule from the loss back to the leaves: each value's gradient is the sum, over the "
                "paths out of it, of the local derivative times the gradient of the value it feeds." + notation_note,
                "", f"$$\n{model.derivation().latex()}\n$$"]
    out += ["", "## Generated code", "", "```python", model.source.rstrip(), "```", ""]
    return "\n".join(out)


__all__ = ["markdown", "summary", "symbol"]
