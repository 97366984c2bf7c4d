"""Elementwise fusion: chains of elementwise ops merged into one formula each, where that makes the
code leaner (a derivative that reuses forward values) or stabler (a formula recognised as σ, tanh,
softplus typed out)."""
from __future__ import annotations

import functools
from typing import Optional

import sympy as sp

from ..formulas.printing import sympy_number
from ..formulas.derivatives import local_derivative, placeholder, recomputes_functions, sigmoid, softplus, stable_form
from ..ir import Graph, Node, apply, depending_on, toposort, use_counts
from ..ops import OPS, fuse, scalar_expr
from .changes import Change, rebuild

# The most ops one fused formula takes in: every SymPy call of fusion then works on a bounded
# formula, so compile time grows linearly with the graph (a 100-step chain took 300 s unbounded).
MAX_REGION = 12

def fuse_chains(graph: Graph, wrt: set[Node], log: list[Change] | None = None) -> dict[Node, Node]:
    """Merge elementwise nodes into one formula where that makes the code leaner or stabler.

    Two ways of growing a fused region from each elementwise node are tried:
    - whole: take in every elementwise value all of whose uses are inside the region; kept only
      if the formula is then recognised as a stable whole — (e^(2a) - 1)/(e^(2a) + 1) is tanh a,
      log(1 + e^a) is softplus a, 1/(1 + e^(-a)) is σ(a);
    - stepwise: take in single-use values one by one, each only if the fused formula still
      differentiates without evaluating exp, tanh, ... again (see `_fused`).
    Values the user named and outputs always stay nodes of their own. Only derivatives with
    respect to values that depend on a `wrt` leaf are weighed: the backward pass needs no others.
    """
    roots = list(graph.outputs.values()) + list(graph.labels)
    order = toposort(roots)
    regions = _Regions(use_counts(roots), set(roots), depending_on(order, wrt))
    position = {node: k for k, node in enumerate(order)}
    new: dict[Node, Node] = {}

    def transform(node: Node, remade: Node) -> Node:
        if not OPS[node.op].has_formula:
            return remade
        fused = regions.whole(node, new)
        if fused is None:
            fused = regions.stepwise(node, new)
            region, why = regions.steps[node][2], "one formula whose derivative reuses forward values"
        else:  # later nodes may take this whole formula in, step by step
            regions.steps[node] = regions.wholes[node]
            region, why = regions.wholes[node][2], "recognised as a function computed stably (σ, tanh, softplus)"
        if fused is not None and log is not None and len(region) > 1:
            ops = tuple(n.op for n in sorted(region, key=position.__getitem__))
            log.append(Change("fusion", node, fused, why, ops))
        return remade if fused is None else fused

    return rebuild(roots, transform, new)


class _Regions:
    """Fused regions: for each elementwise node, its formula over the values outside its region."""

    def __init__(self, uses: dict[Node, int], kept: set[Node], varying: set[Node]) -> None:
        self.uses, self.kept, self.varying = uses, kept, varying
        self.wholes: dict[Node, tuple] = {}   # node -> (expr, frontier, region), grown as far as possible
        self.steps: dict[Node, tuple] = {}    # node -> (expr, frontier, region) as actually fused
        self.owns: dict[Node, tuple] = {}     # node -> (expr, frontier, region) of the node alone
        self.shapes: dict[tuple, Optional[tuple]] = {}  # a trial's shape -> what `_fused` made of it
        self.absorbed: dict[tuple, sp.Expr] = {}  # the formulas `_absorb` made, by what they were made of

    def own(self, node: Node) -> tuple:
        """The node's formula over symbols of its inputs: made once, `whole` and `stepwise` start from it."""
        if node not in self.owns:
            symbols = [_slot(k) for k in range(len(node.inputs))]
            expr = scalar_expr(node).xreplace({placeholder(i): s for i, s in enumerate(symbols)})
            self.owns[node] = (expr, dict(zip(symbols, node.inputs)), frozenset({node}),
                               {symbol: (node, k) for k, symbol in enumerate(symbols)})
        return self.owns[node]

    def whole(self, node: Node, new: dict[Node, Node]) -> Optional[Node]:
        view = self.own(node)
        expr, frontier, region = view[:3]
        growing = True
        while growing:
            growing = False
            for symbol, x in list(frontier.items()):
                if (x in self.wholes and x not in self.kept and self.uses[x] == sum(r.inputs.count(x) for r in region)
                        and _pieces(expr) + _pieces(self.wholes[x][0]) == 0  # stable forms have no cases
                        and len(region) + len(self.wholes[x][2]) <= MAX_REGION):
                    view = _absorb(view, symbol, self.wholes[x], self.absorbed)
                    expr, frontier, region = view[:3]
                    growing = True
        self.wholes[node] = view
        if len(region) == 1 or not _has_exponentials(expr):  # nothing a stable form would take in
            return None
        folded = _folded(expr, frontier)
        if stable_form(folded) == folded:
            return None
        return self.fused(expr, {s: new[x] for s, x in frontier.items()}, node.shape,
                          differentiated={new[x] for x in frontier.values() if x in self.varying})

    def stepwise(self, node: Node, new: dict[Node, Node]) -> Optional[Node]:
        current, fused, rejected = self.own(node), None, set()
        growing = True
        while growing:
            growing = False
            for symbol, x in list(current[1].items()):
                if x in self.steps and x not in self.kept and self.uses[x] == 1 and symbol not in rejected:
                    if (_pieces(current[0]) + _pieces(self.steps[x][0]) > 1  # np.where in np.where: unreadable
                            or len(current[2]) + len(self.steps[x][2]) > MAX_REGION):  # and slow for SymPy
                        rejected.add(symbol)
                        continue
                    trial = _absorb(current, symbol, self.steps[x], self.absorbed)
                    # softplus differentiates to σ anyway: a region holding one may recompute σ.
                    allowed = (sigmoid,) if any(r.op == "softplus" for r in trial[2]) else ()
                    node_for_trial = self.fused(trial[0], {s: new[y] for s, y in trial[1].items()}, node.shape,
                                                allowed, {new[y] for y in trial[1].values() if y in self.varying})
                    if node_for_trial is None:
                        rejected.add(symbol)
                        continue
                    current, fused, growing = trial, node_for_trial, True
        self.steps[node] = current
        return fused

    def fused(self, expr: sp.Expr, binding: dict[sp.Symbol, Node], shape, allowed: tuple = (),
              differentiated: set[Node] | None = None) -> Optional[Node]:
        """`_fused`, worked out once per shape of trial: the same formula over operands of the same
        kinds (numbers, shapes, which are differentiated, which are one value) gives the same node
        over other operands, made here again from a template without SymPy (a 10,000-node chain
        repeats a few trials thousands of times)."""
        key = _trial_shape(expr, binding, shape, allowed, differentiated)
        if key is None:
            return _fused(expr, binding, shape, allowed, differentiated)
        operands = list(dict.fromkeys(x for x in binding.values() if x.op != "const"))
        if key not in self.shapes:
            made = _fused(expr, binding, shape, allowed, differentiated)
            self.shapes[key] = None if made is None else _template(made, {x: k for k, x in enumerate(operands)})
            if made is not None and self.shapes[key] is None:
                del self.shapes[key]  # made of values outside the trial: not a template
            return made
        template = self.shapes[key]
        return None if template is None else _from_template(template, operands)


_SPREADS = ("broadcast_like", "reshape", "div")  # `fuse` may read such operands as numbers (ops/pointwise.py)


def _trial_shape(expr: sp.Expr, binding: dict[sp.Symbol, Node], shape, allowed: tuple,
                 differentiated: set[Node] | None) -> tuple | None:
    """What `_fused` reads of a trial, with its operands as places: None where it reads more (an
    operand `fuse` may take as a spread number)."""
    first: dict[Node, int] = {}
    kinds = []
    for x in binding.values():
        if x.op == "const":
            value = x.attr("value")
            kinds.append(("number", type(value), repr(value)))
        elif x.op in _SPREADS:
            return None
        else:
            kinds.append((first.setdefault(x, len(first)), tuple(x.shape),
                          None if differentiated is None else x in differentiated))
    return expr, tuple(binding), tuple(kinds), tuple(shape), allowed


def _template(node: Node, places: dict[Node, int], depth: int = 3):
    """`node` as a recipe over the trial's operands (their places), or None where it reads another value."""
    if node in places:
        return ("operand", places[node])
    if node.op == "const":
        return ("node", node)
    if node.is_leaf or depth == 0:
        return None
    inputs = [_template(x, places, depth - 1) for x in node.inputs]
    return None if any(x is None for x in inputs) else ("apply", node.op, tuple(inputs), node.attrs)


def _from_template(template: tuple, operands: list[Node]) -> Node:
    if template[0] == "operand":
        return operands[template[1]]
    if template[0] == "node":
        return template[1]
    _, op, inputs, attrs = template
    return apply(op, *(_from_template(x, operands) for x in inputs), **dict(attrs))


def _absorb(view: tuple, symbol: sp.Symbol, inner: tuple, formulas: dict | None = None) -> tuple:
    """`view` with the operand `symbol` replaced by the formula and region of `inner`.

    A view is (formula, its operands {symbol: value}, its region, each operand's origin: the node and
    input it was first an operand of). The operands are the symbols v0, v1, ... numbered in the order
    they were taken in: the inner formula's renumbered after the view's, whose own keep their numbers
    (a caller walking the view's operands may go on with the ones it has not reached), and one that
    has the origin of an operand the view has is that operand (a value taken in twice, as e^(2a) in
    (e^(2a) - 1)/(e^(2a) + 1), reads its operands as one, so that tanh a is seen). So regions of the
    same shape are the same SymPy formula, wherever they are in the graph: SymPy's cache and
    `local_derivative`'s then compute each once, which keeps a 10,000-node chain of repeated steps
    quick to fuse. `formulas` (one fusion's) keeps the formulas made, by what they were made of."""
    expr, frontier, region, origins = view
    inner_expr, inner_frontier, inner_region, inner_origins = inner
    taken = {origins[s]: s for s in frontier if s != symbol}
    start = 1 + max(_slot_number(s) for s in (*frontier, symbol))
    renumbered, fresh = {}, start
    for s in inner_frontier:
        same = taken.get(inner_origins[s])
        if same is None:
            same, fresh = _slot(fresh), fresh + 1
        renumbered[s] = same
    key = (expr, symbol, inner_expr, tuple(renumbered.items()))
    made = None if formulas is None else formulas.get(key)
    if made is None:
        made = expr.xreplace({symbol: inner_expr.xreplace(renumbered)})
        if formulas is not None:
            formulas[key] = made
    frontier = {s: x for s, x in frontier.items() if s != symbol}
    frontier.update((renumbered[s], x) for s, x in inner_frontier.items())
    origins = {s: origins[s] for s in frontier if s in origins}
    origins.update((renumbered[s], inner_origins[s]) for s in inner_frontier)
    return made, frontier, region | inner_region, origins


@functools.lru_cache(maxsize=None)
def _slot(k: int) -> sp.Symbol:
    """The k-th operand of a formula being fused."""
    return sp.Symbol(f"v{k}", real=True)


def _slot_number(symbol: sp.Symbol) -> int:
    return int(symbol.name[1:])


@functools.lru_cache(maxsize=4096)
def _pieces(expr: sp.Expr) -> int:
    """How many case distinctions (relu, maximum, ...) a formula holds (asked of each region's formula
    again at every step of growing its users' regions)."""
    return len(expr.atoms(sp.Piecewise))


def _folded(expr: sp.Expr, frontier: dict[sp.Symbol, Node]) -> sp.Expr:
    return expr.xreplace({s: sympy_number(x.attr("value")) for s, x in frontier.items() if x.op == "const"})


def _fused(expr: sp.Expr, binding: dict[sp.Symbol, Node], shape, allowed: tuple = (),
           differentiated: set[Node] | None = None) -> Optional[Node]:
    """One node for `expr`, unless fusing would cost more than it saves.

    A fused formula must still differentiate through its output or through cheap
    operations: if its derivative had to evaluate exp or tanh again (where the
    separate nodes would reuse their forward values), the chain stays split. A
    formula recognised as σ or softplus may differentiate to σ (softplus' = σ).
    """
    expr, binding = _in_placeholders(expr, binding)
    if not expr.free_symbols:
        return None
    whole = stable_form(expr)
    fused = _formula_node(whole, binding, shape)
    if fused is None or fused.shape != shape:
        return None
    if fused.op != "formula":
        return fused
    formula = scalar_expr(fused)
    if whole != expr:
        allowed = (sigmoid, softplus)
    if _rational(formula):  # its derivatives are rational too: nothing to recompute, nothing to take
        return fused
    if any(recomputes_functions(local_derivative(formula, i), allowed)
           for i, x in enumerate(fused.inputs) if x.op != "const" and (differentiated is None or x in differentiated)):
        return None
    return fused


@functools.lru_cache(maxsize=4096)
def _rational(formula: sp.Expr) -> bool:
    """Whether a formula is sums, products and powers by numbers of its operands alone (no exp, tanh,
    |x|, cases ...): every derivative of it is then such a formula too, which evaluates no function,
    so `_fused` need not take them (a wide sum of scaled terms is thousands of such formulas, each
    with numbers of its own)."""
    return not formula.atoms(sp.Function) and all(power.exp.is_Number for power in formula.atoms(sp.Pow))


def _in_placeholders(expr: sp.Expr, binding: dict[sp.Symbol, Node]) -> tuple[sp.Expr, dict[sp.Symbol, Node]]:
    """`expr` with its constants folded in and its operands written x0, x1, ... in the order `fuse`
    numbers them, and the binding of those: one SymPy rebuild rather than two (`fuse` then finds its
    numbering made). Operands bound twice to one value are left to `fuse` to merge, as before."""
    values = [x for x in binding.values() if x.op != "const"]
    if len(set(values)) < len(values):  # merged after folding: like terms then add up in the same order
        return _folded(expr, binding), binding
    renaming, renamed = {}, {}
    for symbol, x in binding.items():
        if x.op == "const":
            renaming[symbol] = sympy_number(x.attr("value"))
        else:
            renaming[symbol] = placeholder(len(renamed))
            renamed[renaming[symbol]] = x
    return expr.xreplace(renaming), renamed


def _formula_node(expr: sp.Expr, binding: dict[sp.Symbol, Node], shape) -> Optional[Node]:
    """`fuse(expr, binding, shape)` where that is simply the formula over the bound values in their
    order (all of them read, none `fuse` might read as a spread number, the shape theirs): made
    directly, without `fuse` renaming the placeholders they already have."""
    if (any(symbol is not placeholder(k) for k, symbol in enumerate(binding))
            or len(expr.free_symbols) != len(binding) or expr in binding
            or any(x.op in _SPREADS for x in binding.values())):
        return fuse(expr, binding, shape)
    node = apply("formula", *binding.values(), expr=expr)
    return node if tuple(node.shape) == tuple(shape) else fuse(expr, binding, shape)


@functools.lru_cache(maxsize=4096)
def _has_exponentials(expr: sp.Expr) -> bool:
    """Whether a formula holds exp or log, which every stable form (σ, tanh, softplus typed out) does."""
    return expr.has(sp.exp, sp.log)
