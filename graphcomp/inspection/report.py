"""The Markdown report of a compiled model: a document a student can read top to bottom."""
from __future__ import annotations

import ast

import sympy as sp

from ..codegen import GeneratedModule
from ..formulas.derivatives import in_exponentials, local_derivative, placeholder
from ..formulas.symbols import partial, symbol
from ..ir import Graph, format_shape
from ..ops import OPS, scalar_expr
from .derivation import derivation as derive, local_latex, shown
from .equations import gradient_latex
from .notation import Notation



def summary(model: GeneratedModule) -> str:
    """A short Markdown view (what a notebook shows for a model)."""
    lines = [f"**{model.graph.name}**: loss `{model.loss}`, gradients with respect to "
             + ", ".join(f"`{w}`" for w in model.wrt)]
    if model.backward is not None:
        lines += ["", *(f"$${formula}$$" for formula in gradient_latex(model).values())]
    return "\n".join(lines)


def markdown(model: GeneratedModule, at: dict | None = None) -> str:
    """The whole story of a compiled model, top to bottom: the graph and its forward pass (with values
    when `at` gives the leaves), the local derivatives, what simplification changed and why, the
    gradients, the derivation, and the part of the generated code that computes them."""
    graph, notation = model.graph, Notation(model.graph)
    derivation = derive(model, at) if model.backward is not None else None
    values = derivation.values if derivation is not None and at is not None else {}
    out = [f"# Model `{graph.name}`", ""]
    if model.backward is not None:
        out += [f"Loss `{model.loss}`, differentiated with respect to " + ", ".join(f"`{w}`" for w in model.wrt)
                + (" at the values given." if at is not None else "."), ""]
    out += _forward_table(graph, notation, values, at) + _local_derivatives(graph, notation)
    out += ["", "## What simplification changed", ""] + _changes(model, notation)
    if derivation is not None:
        out += ["", "## Gradients", "",
                "The equations of the generated code, under its names (a bar marks a gradient: "
                f"$\\bar{{v}} = \\partial {symbol(model.loss)} / \\partial v$).", ""]
        out += _loop_note(model)
        for leaf, formula in gradient_latex(model).items():
            out += [f"### `{leaf}`", "", f"$$\n{formula}\n$$", ""]
        out += ["## Derivation", "",
                "The forward pass, then the chain rule from the loss back to the leaves on the graph as written: "
                "each value's gradient is the sum, over the paths out of it, of the local derivative times the "
                "gradient of the value it feeds.", "", f"$$\n{derivation.latex()}\n$$"]
    out += ["", "## Generated code", "", "`forward` and `gradients` of the generated module (the training loop, "
            "file helpers and command line are in the module itself).", "", "```python", source_functions(model.source,
            ("forward", "gradients", "_gradients")), "```", ""]
    return "\n".join(out)


def _loop_note(model: GeneratedModule) -> list[str]:
    """How the gradients of a model with loops read: as recursions over time, as the lecture writes them."""
    if not any(n.op == "scan" for n in model.compiled_graph.nodes()):
        return []
    return ["A loop is written as its recursion over the steps $t = 1, \\dots, T$: $h_t$ is a carry after step "
            "$t$ ($h_0$ its first value), computed forwards; $\\bar{h}_t$ its gradient, computed backwards from "
            "$\\bar{h}_T$; $\\delta_t$ a gradient the step reads more than once; a value the loop shares (a param) "
            "gets the sum over $t$ of what each step adds to its gradient; "
            "$x = \\operatorname{stack}(x_1, \\dots, x_T)$ names the steps of a sequence. A loop run with "
            "`reverse=True` walks $t = T, \\dots, 1$ from $h_{T+1}$, and its gradients from $\\bar{h}_1$.", ""]


def _forward_table(graph: Graph, notation: Notation, values: dict, at: dict | None) -> list[str]:
    """The forward pass as a table: each value, its op, shape and formula (and value, given `at`)."""
    out = ["## Forward pass", "", "| value | op | shape | formula |" + (" value |" if values else ""),
           "| --- | --- | --- | --- |" + (" --- |" if values else "")]
    for node in graph.nodes():
        if node.op == "const":
            continue
        name = notation.name(node)
        formula = node.op if node.is_leaf else f"${notation.formula(node)}$"
        row = f"| ${notation.value(node)}$ | {node.op} | `{format_shape(node.shape)}` | {formula} |"
        if values:
            shown_value = values.get(name, at.get(name) if node.is_leaf else None)
            row += f" {'' if shown_value is None else '$' + shown(shown_value, latex=True) + '$'} |"
        out.append(row)
    return out


def _local_derivatives(graph: Graph, notation: Notation) -> list[str]:
    """Each elementwise node's derivative as sympy.diff gives it, and the form graphcomp uses."""
    out = ["", "## Local derivatives", "",
           "Each elementwise node's derivative as `sympy.diff` gives it, and the form graphcomp uses "
           "(through the node's own output where that is cheaper).", ""]
    for node in graph.nodes():
        if node.is_leaf or not OPS[node.op].has_formula:
            continue
        for i, x in enumerate(node.inputs):
            if x.op == "const":
                continue
            plain = sp.diff(in_exponentials(scalar_expr(node)), placeholder(i))
            chosen = local_derivative(scalar_expr(node), i)
            lhs = partial(notation.value(node), notation.value(x))
            out.append(f"$${lhs} = {local_latex(plain, node, notation)} \\;\\to\\; {local_latex(chosen, node, notation)}$$")
    return out


def _changes(model: GeneratedModule, notation: Notation) -> list[str]:
    if not model.changes:
        return ["Nothing: the code computes the graph as written, one line per op."]
    lines = []
    names = {**{n: notation.value(n) for n in notation.nodes}, **(model.listing.symbols if model.listing else {})}
    for change in model.changes:
        if change.kind == "rewrite":
            lines.append(f"- rewrite: ${_formula(change.before, names)} \\;\\to\\; {_formula(change.after, names)}$ "
                         f"— {change.why}")
        else:
            target = names.get(change.after) or names.get(change.before) or "t"
            lines.append(f"- fused ({', '.join(change.ops)}): ${target} = {_formula(change.after, names)}$ — {change.why}")
    return lines


def _formula(node, names: dict) -> str:
    """A node's formula over the names its operands have somewhere (the graph or the code); others inline."""
    def operand(x):
        if x.op == "const":
            return x.attr("value")
        return names.get(x) or _formula(x, names)
    return OPS[node.op].latex(node, tuple(operand(x) for x in node.inputs))


def source_functions(source: str, wanted: tuple[str, ...]) -> str:
    """The source text of the module's top-level functions named `wanted`."""
    lines = source.splitlines()
    tree = ast.parse(source)
    parts = [("\n".join(lines[f.lineno - 1:f.end_lineno])) for f in tree.body
             if isinstance(f, ast.FunctionDef) and f.name in wanted]
    return "\n\n\n".join(parts)


__all__ = ["markdown", "summary", "symbol"]
