"""Graph passes run before differentiation: stable rewrites, then elementwise fusion.

Both rebuild the graph bottom-up and never touch the user's Graph: `optimize`
returns a new Graph with the same leaves whose named values and outputs point
at the rewritten nodes. Structural sharing is already done by `apply`.

Rewrites are small functions, one per pattern, `rule(node) -> Node | None`:
a naive formula is replaced by its stable form, so that a graph written the
textbook way gives finite values and gradients at logits of ±800.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import sympy as sp

from .graph import Graph, Node, apply, depending_on, toposort, use_counts
from .ops import OPS, fuse, normalize_axes, scalar_expr
from .ops_nn import cross_entropy
from .printing import sympy_number
from .simplify import local_derivative, placeholder, recomputes_functions, sigmoid, softplus, stable_form

Rule = Callable[[Node], Optional[Node]]
# The most ops one fused formula takes in: every SymPy call of fusion then works on a bounded
# formula, so compile time grows linearly with the graph (a 100-step chain took 300 s unbounded).
MAX_REGION = 12


def _is(node: Node, op: str) -> bool:
    return node.op == op


def _is_one(node: Node) -> bool:
    return node.op == "const" and node.attr("value") == 1


def log_of_sigmoid(node: Node) -> Optional[Node]:
    """log σ(z) = -softplus(-z): finite for any z, where log σ(z) is log 0 = -inf below z = -745."""
    if _is(node, "log") and _is(node.inputs[0], "sigmoid"):
        return -apply("softplus", -node.inputs[0].inputs[0])
    return None


def log_of_one_minus_sigmoid(node: Node) -> Optional[Node]:
    """log(1 - σ(z)) = -softplus(z): finite for any z, where 1 - σ(z) rounds to 0 above z = 37."""
    if _is(node, "log") and _is(node.inputs[0], "sub"):
        one, s = node.inputs[0].inputs
        if _is_one(one) and _is(s, "sigmoid"):
            return -apply("softplus", s.inputs[0])
    return None


def log_of_exp(node: Node) -> Optional[Node]:
    """log(exp(u)) = u: exact, and no overflow of exp above u = 709."""
    if _is(node, "log") and _is(node.inputs[0], "exp"):
        return node.inputs[0].inputs[0]
    return None


def log_of_softmax(node: Node) -> Optional[Node]:
    """log(softmax(x)) = log_softmax(x): finite where a probability underflows to 0."""
    if _is(node, "log") and _is(node.inputs[0], "softmax"):
        s = node.inputs[0]
        return apply("log_softmax", s.inputs[0], axis=s.attr("axis"))
    return None


def log_of_sum_of_exp(node: Node) -> Optional[Node]:
    """log(sum(exp(x), axis)) = logsumexp(x, axis): the max is taken out first, so exp never overflows."""
    if _is(node, "log") and _is(node.inputs[0], "sum") and _is(node.inputs[0].inputs[0], "exp"):
        total = node.inputs[0]
        x = total.inputs[0].inputs[0]
        axes = normalize_axes(total.attr("axis"), x.ndim, "sum")
        if len(axes) == 1:
            return apply("logsumexp", x, axis=axes[0], keepdims=bool(total.attr("keepdims")))
    return None


def softmax_written_out(node: Node) -> Optional[Node]:
    """exp(x) / sum(exp(x), axis, keepdims=True) = softmax(x, axis): no overflow, and a one-line gradient."""
    if _is(node, "div") and _is(node.inputs[0], "exp") and _is(node.inputs[1], "sum"):
        e, total = node.inputs
        if total.inputs[0] is e and total.attr("keepdims"):
            axes = normalize_axes(total.attr("axis"), e.ndim, "sum")
            if len(axes) == 1:
                return apply("softmax", e.inputs[0], axis=axes[0])
    return None


def cross_entropy_of_log_softmax(node: Node) -> Optional[Node]:
    """-sum(y * log_softmax(z), axis) = softmax_cross_entropy(z, y): its gradient is one line, p - y."""
    if not (_is(node, "neg") and _is(node.inputs[0], "sum") and _is(node.inputs[0].inputs[0], "mul")):
        return None
    total, product = node.inputs[0], node.inputs[0].inputs[0]
    for y, ls in (product.inputs, product.inputs[::-1]):
        if _is(ls, "log_softmax") and y.shape == ls.shape and not total.attr("keepdims"):
            axis = normalize_axes(total.attr("axis"), ls.ndim, "sum")
            if axis == (ls.attr("axis"),):
                return cross_entropy(ls.inputs[0], y, axis=axis[0], normalized=_is(y, "one_hot"))
    return None


RULES: tuple[Rule, ...] = (
    log_of_sigmoid, log_of_one_minus_sigmoid, log_of_exp, log_of_softmax, log_of_sum_of_exp,
    softmax_written_out, cross_entropy_of_log_softmax,
)


@dataclass(frozen=True)
class Change:
    """One thing a pass did, for the report: a rule that fired, or a fused formula."""

    kind: str          # "rewrite" or "fusion"
    before: Node       # the node as it was (a rewrite), or the last node of the fused chain
    after: Node        # what replaced it
    why: str           # the rule's own words, or why the chain was fused
    ops: tuple[str, ...] = ()   # a fusion: the ops it merged


def optimize(graph: Graph, rules: Iterable[Rule] = RULES, fuse_elementwise: bool = True,
             wrt: Iterable[Node] | None = None, log: list[Change] | None = None) -> Graph:
    """The graph with stable rewrites applied and elementwise chains fused.

    wrt: the leaves gradients will be taken for (default: all); fusion only weighs the
    derivatives that the backward pass will compute. log: receives a Change for every
    rewrite that fired and every fused formula the result keeps.
    """
    mapping = rewrite(list(graph.outputs.values()) + list(graph.labels), tuple(rules), log)
    graph = graph.remapped(mapping)
    if fuse_elementwise:
        fusions: list[Change] = []
        graph = graph.remapped(fuse_chains(graph, set(graph.leaves.values()) if wrt is None else set(wrt), fusions))
        if log is not None:
            kept = set(graph.nodes())
            log.extend(change for change in fusions if change.after in kept)
    return graph


def rebuild(roots: list[Node], transform: Callable[[Node, Node], Node],
            new: dict[Node, Node] | None = None) -> dict[Node, Node]:
    """old node -> new node, rebuilding bottom-up: each node is remade on its operands' new
    versions, and `transform(old, remade)` gives what replaces it. `new` is filled as it goes."""
    new = {} if new is None else new
    for node in toposort(roots):
        if node.is_leaf:
            new[node] = node
            continue
        inputs = tuple(new[x] for x in node.inputs)
        same = all(a is b for a, b in zip(inputs, node.inputs))
        new[node] = transform(node, node if same else apply(node.op, *inputs, **dict(node.attrs)))
    return new


def rewrite(roots: list[Node], rules: tuple[Rule, ...], log: list[Change] | None = None) -> dict[Node, Node]:
    """Apply the rules everywhere until none fires (a rule's result is rewritten too)."""
    def transform(original: Node, node: Node) -> Node:
        for _ in range(32):  # rules only shrink or stabilise a formula; this bounds a faulty one
            for rule in rules:
                replacement = rule(node)
                if replacement is not None:
                    before, node = node, rebuild([replacement], transform)[replacement]
                    if log is not None:
                        log.append(Change("rewrite", before, node, (rule.__doc__ or rule.__name__).strip()))
                    break
            else:
                return node
        return node
    return rebuild(roots, transform)


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
        if not OPS[node.op].elementwise:
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
        self.fresh = (sp.Symbol(f"v{k}", real=True) for k in itertools.count())
        self.wholes: dict[Node, tuple] = {}   # node -> (expr, frontier, region), grown as far as possible
        self.steps: dict[Node, tuple] = {}    # node -> (expr, frontier, region) as actually fused

    def own(self, node: Node) -> tuple:
        symbols = [next(self.fresh) for _ in node.inputs]
        expr = scalar_expr(node).xreplace({placeholder(i): s for i, s in enumerate(symbols)})
        return expr, dict(zip(symbols, node.inputs)), frozenset({node})

    def whole(self, node: Node, new: dict[Node, Node]) -> Optional[Node]:
        expr, frontier, region = self.own(node)
        growing = True
        while growing:
            growing = False
            for symbol, x in list(frontier.items()):
                if (x in self.wholes and x not in self.kept and self.uses[x] == sum(r.inputs.count(x) for r in region)
                        and _pieces(expr) + _pieces(self.wholes[x][0]) == 0  # stable forms have no cases
                        and len(region) + len(self.wholes[x][2]) <= MAX_REGION):
                    expr, frontier, region = _absorb((expr, frontier, region), symbol, self.wholes[x])
                    growing = True
        self.wholes[node] = (expr, frontier, region)
        if len(region) == 1:
            return None
        folded = _folded(expr, frontier)
        if stable_form(folded) == folded:
            return None
        return _fused(expr, {s: new[x] for s, x in frontier.items()}, node.shape,
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
                    trial = _absorb(current, symbol, self.steps[x])
                    # softplus differentiates to σ anyway: a region holding one may recompute σ.
                    allowed = (sigmoid,) if any(r.op == "softplus" for r in trial[2]) else ()
                    node_for_trial = _fused(trial[0], {s: new[y] for s, y in trial[1].items()}, node.shape, allowed,
                                            {new[y] for y in trial[1].values() if y in self.varying})
                    if node_for_trial is None:
                        rejected.add(symbol)
                        continue
                    current, fused, growing = trial, node_for_trial, True
        self.steps[node] = current
        return fused


def _absorb(view: tuple, symbol: sp.Symbol, inner: tuple) -> tuple:
    """`view` with the operand `symbol` replaced by the formula and region of `inner`."""
    expr, frontier, region = view
    inner_expr, inner_frontier, inner_region = inner
    frontier = {s: x for s, x in frontier.items() if s != symbol}
    frontier.update(inner_frontier)
    return expr.xreplace({symbol: inner_expr}), frontier, region | inner_region


def _pieces(expr: sp.Expr) -> int:
    """How many case distinctions (relu, maximum, ...) a formula holds."""
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
    expr = _folded(expr, binding)
    if not expr.free_symbols:
        return None
    whole = stable_form(expr)
    fused = fuse(whole, binding, shape)
    if fused is None or fused.shape != shape:
        return None
    if fused.op != "elementwise":
        return fused
    formula = scalar_expr(fused)
    if whole != expr:
        allowed = (sigmoid, softplus)
    if any(recomputes_functions(local_derivative(formula, i), allowed)
           for i, x in enumerate(fused.inputs) if x.op != "const" and (differentiated is None or x in differentiated)):
        return None
    return fused
