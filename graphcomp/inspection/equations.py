"""Gradient formulas a person can read: a closed form for short scalar graphs (∂f/∂u = w for
f = (u + v) w); otherwise the generated code's own equations under its names, read off its `Listing`,
with single-use unnamed values written in place.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace

import sympy as sp

from ..codegen import GeneratedModule
from ..codegen.names import gradient_name, is_lecture_name
from ..formulas.printing import plain_text, sympy_number
from ..formulas.latex import (BATCH, axis_subscript, elementwise_latex, formula_latex, latex_number, latex_operator,
                              operand_symbol, short_number)
from ..formulas.derivatives import NORMAL_LIMIT, placeholder, stable_form, textbook_form
from ..formulas.symbols import bar, partial, symbol
from ..ir import Node, toposort
from ..ir.shapes import broadcast_shapes
from ..ops import OPS, scalar_expr
from ..ops.nn import softmax_of
from .loop_equations import LoopEquations, LoopLine, forward_of, loops_of, nested, result_symbols, sequences_read
from .loop_names import LoopNames, time_pattern
from .math_text import math_text
from .mathml import Formulas


def gradient_latex(model: GeneratedModule) -> dict[str, str]:
    """{leaf: LaTeX}: closed forms for scalar graphs; for tensor graphs, the equations of the
    generated code that compute the gradient, under the code's names (see `gradient_equations`)."""
    closed = _closed_forms(model)
    equations = gradient_equations(model)
    if is_scalar_graph(model.graph.outputs[model.loss]):  # ∂f/∂t_1, as the derivation and the pictures write it
        equations = {name: _in_partials(model, lines) for name, lines in equations.items()}
    return Formulas({name: rf"{partial(symbol(model.loss), symbol(name))} = {elementwise_latex(closed[name], {}, tensor=False)}"
                     if name in closed else _aligned(equations[name]) for name in model.wrt})


def _in_partials(model: GeneratedModule, lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A graph of scalars' equations with each gradient x̄ written ∂f/∂x, as the lecture writes it."""
    loss, graph = symbol(model.loss), model.compiled_graph
    partials = {}
    for node in graph.nodes():
        if node.op != "const" and node in model.listing.names:
            label = graph.name_of(node) or model.listing.names[node]
            partials[bar(label)] = partial(loss, model.listing.symbols[node])
    pattern = re.compile("|".join(re.escape(b) for b in sorted(partials, key=len, reverse=True)))
    return [(pattern.sub(lambda m: partials[m.group(0)], lhs), pattern.sub(lambda m: partials[m.group(0)], rhs))
            for lhs, rhs in lines]


def gradient_text(model: GeneratedModule) -> dict[str, str]:
    """{leaf: plain text}: dloss/dleaf = formula for scalar graphs; for tensor graphs, the lines of
    the generated gradients() that compute d_leaf, forward values first, exactly as in the code."""
    closed = _closed_forms(model)
    listing, texts, loops = model.listing, {}, None
    for name in model.wrt:
        if name in closed:
            texts[name] = f"d{model.loss}/d{name} = {plain_text(closed[name])}"
            continue
        grad = model.backward.gradients[model.compiled_graph.leaves[name]]
        lines = [f"{s.target} = {s.expr}" for n in _slice(model, grad) for s in listing.statements[n]]
        if any(n.op == "scan" for n in toposort([grad])):  # the loop as its recursion, in plain math
            loops = loops or _equations_and_loops(model)  # made once, for every leaf
            texts[name] = "\n".join(lines + _loop_text(model, name, grad, loops))
            continue
        variable = _code_operand(listing, grad)
        if variable != gradient_name(listing.names[model.compiled_graph.leaves[name]]):
            lines.append(f"{gradient_name(name)} = {variable}")
        texts[name] = "\n".join(lines)
    return texts


def _loop_text(model: GeneratedModule, name: str, grad: Node, loops: tuple) -> list[str]:
    """The lines of a gradient that reads a loop's results: which variables the loops compute, how
    the recursion names them (t2 is h_T), then the recursion over time, in plain math (math_text)."""
    equations, loop_lhs, results = loops
    listing = model.listing
    nodes = toposort([grad])
    read = {x for n in nodes if n.op != "scan" for x in n.inputs} | {grad}  # (not what only a loop reads)
    results_read = [grad] if grad.op == "scan_result" else \
        [n for n in nodes if n.op == "scan_result" and n in read and n in listing.names]
    computed = ", ".join(listing.names[n] for n in results_read)
    written = [plain_math(f"{lhs} = {rhs}") for lhs, rhs in equations[name]
               if (lhs in loop_lhs or lhs in results.values()) and rhs != NESTED]
    if not written:
        return [(f"# {computed}: computed by the generated loops over time (a loop inside a loop's step; "
                 "graphcomp compile shows the code)")]
    named = [f"{listing.names[n]} is {plain_math(results[n])}" for n in nodes
             if n in results and n in listing.names and listing.names[n] != plain_math(results[n])]
    return ([f"# the loop over time, step by step{' (' + ', '.join(named) + ')' if named else ''}:"] + written
            + [(f"# {computed}: computed by the generated loop over time (graphcomp compile shows the code), "
                "as written above")])


GREEK = {r"\delta": "δ", r"\epsilon": "ε", r"\gamma": "γ", r"\phi": "φ", r"\psi": "ψ"}


def plain_math(latex: str) -> str:
    """A loop's equation in plain math: δ_t = h̄_t ⊙ (1 − h_t²)    t = T, …, 1."""
    for command, letter in GREEK.items():
        latex = re.sub(re.escape(command) + r"(?![A-Za-z])", letter, latex)
    equation, _, steps = latex.partition(r"\qquad")
    return math_text(equation) + (f"    for {math_text(steps)}" if steps else "")


INLINE_LIMIT = 60  # characters: a value whose formula is at most this long is written where it is used


def gradient_equations(model: GeneratedModule) -> dict[str, list[tuple[str, str]]]:
    """{leaf: [(lhs, rhs), ...]}: the leaf's gradient first, then the gradients it is computed from,
    back to the loss, then the forward values they read; no symbol is left undefined.

    The equations are the generated gradients()'s, under the code's names (d_a1 is \\bar{a}_{1}, t3 is
    t_{3}), written as a person would: the gradients of your named values and leaves keep equations
    of their own; an unnamed value used once, or a short unnamed forward value, is written where it
    is used. A loop is written as its recursion over time (loop_equations.py): h_T is the last carry,
    \\bar{W} = \\sum_t ... the gradient of a param it shares. tests/latex_reader.py evaluates every one of them.
    """
    return _equations_and_loops(model)[0]


def _equations_and_loops(model: GeneratedModule) -> tuple[dict, set[str], dict[Node, str]]:
    """({leaf: equations}, the left sides that are a loop's, {loop result: its symbol})."""
    loops = loops_of(model)
    asked = {model.listing.symbols.get(model.compiled_graph.leaves[name]) for name in model.wrt}
    names = LoopNames(loops, dict(model.listing.symbols), asked)
    results = result_symbols(model, names)
    listing = replace(model.listing, symbols={**model.listing.symbols, **results})
    equations, loop_lhs = {}, set()
    for name in model.wrt:
        equations[name] = _leaf_equations(model, listing, name, names, results, loop_lhs)
    return equations, loop_lhs, results


def _leaf_equations(model: GeneratedModule, listing, name: str, names: LoopNames,
                    results: dict[Node, str], loop_lhs: set[str]) -> list[tuple[str, str]]:
    """One leaf's equations (see `gradient_equations`): the gradient's own first, then the backward
    recursions of its loops and the gradients of the code, then the forward recursions and the
    forward values. The left sides of its loops' equations are added to `loop_lhs`."""
    forward = set(model.compiled_graph.nodes())
    grad = model.backward.gradients[model.compiled_graph.leaves[name]]
    nodes = _slice(model, grad)
    writer = _EquationWriter(listing, _inlined(model, nodes, grad, _EquationWriter(listing, set())))
    loops, aliases = _loop_lines(model, listing, grad, LoopEquations(model, names, writer, results))
    loop_lhs.update(line.lhs for lines in loops.values() for line in lines)
    patterns = {**{symbol: time_pattern(symbol) for symbol in results.values()}, **aliases}  # \bar{h}_T, used at t

    def outer(n: Node) -> LoopLine:
        symbol = listing.symbols[n]
        return LoopLine(symbol, writer.render(n), patterns.get(symbol, re.escape(symbol)))
    lines = [line for loop, own in loops.items() if loop.attr("of") is not None for line in own]
    lines += [outer(n) for n in reversed(nodes) if n not in forward and n not in writer.inline]
    first = next((k for k, line in enumerate(lines) if line.lhs == bar(name)), None)
    if first is not None:  # the gradient's own equation first (a loop's running sum, or the code's line)
        lines.insert(0, lines.pop(first))
    else:
        lines.insert(0, LoopLine(bar(name), _as_text(writer.operand(grad)), ""))
    lines += [line for loop, own in loops.items() if loop.attr("of") is None for line in own]
    lines += [outer(n) for n in nodes if n in forward and n not in writer.inline]
    return _referenced(lines)


def _loop_lines(model: GeneratedModule, listing, grad: Node, equations: LoopEquations) -> tuple[dict, dict]:
    """({loop: its equations} of the loops a gradient reads, derivatives first; {outer symbol: the
    pattern of its uses}): a loop inside a loop's step is not written out, each result says so."""
    involved = [n for n in reversed(toposort([grad])) if n.op == "scan"]
    involved += [forward_of(n) for n in involved if forward_of(n) not in involved]  # what a derivative reads
    if any(nested(forward_of(loop)) for loop in involved):
        return {involved[0]: [LoopLine(listing.symbols[n], NESTED, re.escape(listing.symbols[n]))
                              for n in toposort([grad]) if n.op == "scan_result" and n in listing.symbols]}, {}
    loops = {loop: equations.lines(loop) for loop in involved}
    return loops, equations.aliases


NESTED = r"\text{computed by the generated loops over time (a loop inside a loop's step: graphcomp compile shows the code)}"


def _inlined(model: GeneratedModule, nodes: list[Node], grad: Node, writer: _EquationWriter) -> set[Node]:
    """The values of one gradient's slice written where they are used rather than by a symbol."""
    forward = set(model.compiled_graph.nodes())
    # gradients that keep an equation of their own: those of your named values and of leaves
    kept = {adjoint for value, adjoint in model.backward.adjoints.items()
            if value.is_leaf or model.compiled_graph.name_of(value) is not None}
    uses = Counter(x for m in nodes for x in m.inputs)
    sequences = sequences_read(grad)
    near_loops = {y for n in toposort([grad]) if n.op == "scan" for x in n.inputs for y in (x, *x.inputs)}  # W[0:3]ᵀ
    for n in nodes:  # in the code's order: a node's operands are decided before it
        if n in sequences:  # a loop's sequence keeps its symbol: x = stack(x_1, ..., x_T)
            continue
        if n.op == "count":  # the batch size is N wherever it is used
            writer.inline.add(n)
            continue
        if (n is grad or n in kept or (n in forward and model.compiled_graph.name_of(n) is not None)
                or softmax_of(n) is not None  # P = softmax(z) keeps its equation: (P - Y)/N reads as such
                or n in forward and is_lecture_name(model.listing.names.get(n, ""))):  # x̂, σ_x of a norm
            continue
        limit = INLINE_LIMIT if n not in forward or n in near_loops else INLINE_LIMIT // 2
        if (uses[n] == 1 or n in forward) and len(writer.render(n)) <= limit:
            writer.inline.add(n)
    return writer.inline


def _as_text(value) -> str:
    return value if isinstance(value, str) else latex_number(value)


def _referenced(lines: list) -> list[tuple[str, str]]:
    """The first equation and those whose symbol the kept ones use: no definition nobody reads. Each
    line is (lhs, rhs) or a LoopLine, whose pattern says when it is used (a loop's equation at step t
    by any use of its symbol at another step)."""
    lines = [line if isinstance(line, LoopLine) else LoopLine(line[0], line[1], re.escape(line[0])) for line in lines]
    kept, changed = {0}, True
    while changed:
        changed = False
        for k, line in enumerate(lines):
            if k not in kept and any(re.search(line.pattern, f"{lines[j].rhs} {lines[j].reads}") for j in kept):
                kept.add(k)
                changed = True
    return [(line.lhs, line.rhs) for k, line in enumerate(lines) if k in kept]


def _slice(model: GeneratedModule, root: Node) -> list[Node]:
    """The nodes with lines of their own that `root` is computed from, in the code's order."""
    needed = set(toposort([root]))
    return [n for n in model.listing.order if n in needed]


class _EquationWriter:
    """Formulas of one gradient's equations: symbols, or formulas written in place.

    An elementwise value written in place inside another elementwise formula becomes part of that
    formula (one SymPy formula over both), so that numbers meet and the result can be put in textbook
    form: 2 (0.1 w) is 0.2 w, 2 (...) / (2 N) is (...) / N, and the binary cross-entropy's two paths
    into p add up to (p - y) / (p (1 - p)) / N. The batch size is always N, never a value of its own.
    """

    def __init__(self, listing, inline: set[Node]) -> None:
        self.listing, self.inline = listing, inline
        self.numbers: dict[Node, int | float] = {}  # values written as a number (a loop's running sum: 0)
        self._texts: dict[Node, str] = {}  # an inline decision is made before any user of the node renders

    def render(self, node: Node) -> str:
        if node not in self._texts:
            self._texts[node] = self._render(node)
        return self._texts[node]

    def _render(self, node: Node) -> str:
        softmax = softmax_of(node)
        if softmax is not None:
            return latex_operator("softmax", [self.operand(softmax[0])], axis_subscript(softmax[1]))
        if node.op == "count":
            return _latex_of_count(node)
        if OPS[node.op].has_formula:
            names: dict[sp.Symbol, str] = {}
            dummies: dict[Node, sp.Symbol] = {}
            expr, merged = self._formula(node, names, dummies)
            if merged > 1:
                expr = textbook_form(expr)
            # an operand that cancelled (x - x) may have given the value its shape: then as written
            if broadcast_shapes(tuple(x.shape for x, d in dummies.items() if d in expr.free_symbols)) == node.shape:
                return formula_latex(expr, names, tensor=node.shape != ())
        return OPS[node.op].latex(node, tuple(self.operand(x) for x in node.inputs))

    def _formula(self, node: Node, names: dict, dummies: dict) -> tuple[sp.Expr, int]:
        """The node's formula over its operands' symbols, values written in place merged in; and how
        many nodes' formulas it holds."""
        binding, merged = {}, 1
        for i, x in enumerate(node.inputs):
            while x.op == "stop_gradient" and x not in self.listing.symbols:
                x = x.inputs[0]
            if x.op == "const" or x in self.numbers:
                binding[placeholder(i)] = sympy_number(x.attr("value") if x.op == "const" else self.numbers[x])
            elif x.op == "count":
                binding[placeholder(i)] = _count(x)
            elif self._written_in_place(x) and OPS[x.op].has_formula and softmax_of(x) is None:
                binding[placeholder(i)], more = self._formula(x, names, dummies)
                merged += more
            else:
                if x not in dummies:
                    dummy, shown = operand_symbol(f"a{len(dummies)}", _as_text(self.operand(x)))
                    dummies[x], names[dummy] = dummy, shown
                binding[placeholder(i)] = dummies[x]
        return scalar_expr(node).xreplace(binding), merged

    def _written_in_place(self, node: Node) -> bool:
        return node in self.inline or (node in self.listing.inlined and node not in self.listing.symbols)

    def operand(self, node: Node) -> str | int | float:
        if node.op == "const":
            return node.attr("value")
        if node in self.numbers:
            return self.numbers[node]
        if node.op == "stop_gradient" and node not in self.listing.symbols:
            return self.operand(node.inputs[0])
        if node.op == "count" or self._written_in_place(node):
            return self.render(node)
        return self.listing.symbols[node]


def _count(node: Node) -> sp.Expr:
    """How many elements a mean divided by, as a formula of the batch size: N, 3 N."""
    x = node.inputs[0]
    axes = node.attr("axis")
    known = math.prod(x.shape[a] for a in axes if isinstance(x.shape[a], int))
    lengths = math.prod(sp.Symbol(x.shape[a], positive=True) for a in axes if isinstance(x.shape[a], str))  # T
    return known * lengths * BATCH ** sum(1 for a in axes if x.shape[a] is None)


def _latex_of_count(node: Node) -> str:
    return elementwise_latex(_count(node), {BATCH: "N"}, tensor=False)


def _code_operand(listing, node: Node) -> str:
    if node.op == "const":
        return short_number(node.attr("value"))
    return listing.inlined.get(node) or listing.names[node]


def _aligned(lines: list[tuple[str, str]]) -> str:
    if len(lines) == 1:
        return f"{lines[0][0]} = {lines[0][1]}"
    return "\\begin{aligned}\n" + " \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in lines) + "\n\\end{aligned}"


CLOSED_FORM_LIMIT = 25  # operations; a longer closed form is given as the code's equations instead


def _closed_forms(model: GeneratedModule) -> dict[str, sp.Expr]:
    """{leaf: ∂loss/∂leaf as one formula of the leaves}, for graphs of scalars and where it is short."""
    loss = model.graph.outputs[model.loss]
    if not is_scalar_graph(loss) or _names_a_value(model.graph, loss):
        return {}
    # σ, tanh and softplus typed out are seen whole first, so that they differentiate as the code
    # does: σ(a)(1 - σ(a)) for 1/(1 + e^(-a)), not e^(-a)/(1 + e^(-a))²
    expression = stable_form(_closed_form(loss))
    forms = {name: _simplest(sp.diff(expression, sp.Symbol(name, real=True))) for name in model.wrt}
    return {name: f for name, f in forms.items() if sp.count_ops(f) <= CLOSED_FORM_LIMIT}


def _names_a_value(graph, loss: Node) -> bool:
    """Whether the user named a value the loss is computed from (not a leaf, not the loss itself): then
    every leaf's gradient is written through it, as the code computes it (the δ-form ā = h̄ σ'(a),
    w̄ = ā x of the lecture notes), rather than as one closed form of the leaves."""
    return any(not n.is_leaf and n is not loss and graph.name_of(n) is not None for n in toposort([loss]))


def is_scalar_graph(loss: Node) -> bool:
    """Whether every value the loss is computed from is a scalar (closed forms and ∂ notation apply)."""
    return all(n.shape == () and (n.is_leaf or OPS[n.op].has_formula or OPS[n.op].scalar_identity)
               for n in toposort([loss]))


def _closed_form(node: Node) -> sp.Expr:
    """The scalar node as one SymPy formula of the leaves."""
    formulas: dict[Node, sp.Expr] = {}
    for n in toposort([node]):
        if n.op == "const":
            formulas[n] = sympy_number(n.attr("value"))
        elif n.is_leaf:
            formulas[n] = sp.Symbol(n.name, real=True)
        elif OPS[n.op].has_formula:
            formulas[n] = scalar_expr(n).xreplace({placeholder(i): formulas[x] for i, x in enumerate(n.inputs)})
        else:
            formulas[n] = formulas[n.inputs[0]]
    return formulas[node]


def _simplest(expr: sp.Expr) -> sp.Expr:
    """The shortest of the derivative and its factored form, with σ, tanh and softplus whole.
    (No sympy.simplify: it trades 1 - tanh² for 1/cosh², and can take minutes.)"""
    candidates = [expr] + ([sp.factor(expr)] if sp.count_ops(expr) <= NORMAL_LIMIT else [])
    return stable_form(min(candidates, key=lambda e: (sp.count_ops(e), sp.default_sort_key(e))))
