"""Every custom op's rule held to central finite differences, when a graph using it is compiled.

A rule is checked on a small graph of its own: one input per input of the op, of the shapes the graph
gives them (a batch axis None taken as 3 examples, a run-time length such as "T" as 4 steps), in
float64, at random points. Its vjp gives the gradient of sum(op(inputs) ⊙ r) for a random r, compared
with central differences of the forward (at every entry of a small input, at ENTRIES random entries of
a larger one, so that a large input costs no more than a small one); a jvp, if given, gives the
output's tangent along a random direction, compared with the central difference along it. A rule that
disagrees is one error naming the op, the input and the size of the disagreement. A rule declared
check=False (one that differs on purpose) is not checked: `unchecked_leaves` says whose gradients it
makes, for `graphcomp check`.
A rule passes once per set of shapes: the result is kept with the rule.
"""
from __future__ import annotations

import weakref
from typing import Callable, Iterator

import numpy as np

from ..codegen import generate
from ..errors import DifferentiationError, GraphError
from ..ir import Graph, Node, toposort
from ..ops.custom import CustomRule, calling, custom_node, input_name
from . import dsl

BATCH, LENGTH = 3, 4     # the sizes a batch axis and a run-time length take in the check
TOLERANCE = 1e-6         # worst error relative to the largest entry
ABSOLUTE = 1e-9          # below this, an error is finite differences' own
ENTRIES = 24             # entries of an input differentiated at most (drawn at random from a larger one)


class RuleCheckError(DifferentiationError):
    """A custom op's rule that disagrees with finite differences of its forward."""


_PASSED: "weakref.WeakKeyDictionary[CustomRule, set]" = weakref.WeakKeyDictionary()


def custom_nodes(graph: Graph) -> Iterator[Node]:
    """The graph's custom nodes, loop steps' included, in the graph's order."""
    return _custom_in(graph.nodes(), set())


def _custom_in(nodes: list[Node], seen: set[Node]) -> Iterator[Node]:
    for node in nodes:
        if node in seen:
            continue
        seen.add(node)
        if node.op == "custom":
            yield node
        if node.op == "scan":  # a loop's step is a graph of its own (ops/scan.py)
            yield from _custom_in(node.attr("body").nodes(), seen)


def check_custom_rules(graph: Graph) -> list[CustomRule]:
    """Check every custom op of `graph` whose rule says check=True; return the rules that say check=False.
    Two different rules under one name in one graph are refused: every view would print them alike."""
    rules: dict[str, CustomRule] = {}
    unchecked: list[CustomRule] = []
    for node in custom_nodes(graph):
        rule: CustomRule = node.attr("rule")
        if rules.setdefault(rule.name, rule) is not rule:
            raise GraphError(f"graph {graph.name!r} uses two different custom ops named {rule.name!r}; give each "
                             "its own name")
        if not rule.check:
            if rule not in unchecked:
                unchecked.append(rule)
            continue
        check_rule(rule, tuple(x.shape for x in node.inputs[1:]))
    return unchecked


def unchecked_leaves(graph: Graph) -> dict[str, str]:
    """{leaf name: the unchecked custom op its gradient goes through}: the leaves a check=False rule
    stands between the loss and, whose gradients differ from finite differences on purpose."""
    found: dict[str, str] = {}
    for node in custom_nodes(graph):
        if not node.attr("rule").check:
            for x in toposort(list(node.inputs[1:])):
                if x.op in ("input", "param"):
                    found.setdefault(x.name, node.attr("rule").name)
    return found


def check_rule(rule: CustomRule, shapes: tuple, seed: int = 0) -> None:
    """Hold one rule to central differences at inputs of `shapes`; an error naming the op, the input and
    the size of the disagreement when it fails."""
    concrete = tuple(tuple(BATCH if d is None else LENGTH if isinstance(d, str) else d for d in s) for s in shapes)
    if concrete in _PASSED.get(rule, set()):
        return
    graph, names = _check_graph(rule, concrete)
    module = generate(graph, wrt=names, loss="loss", simplify=False, runtime=False).load()
    rng = np.random.default_rng(seed)
    arrays = _points(rule, module, graph, names, rng)
    _, grads = module.gradients(**arrays)
    loss = lambda **a: float(module.forward(**a)["loss"])  # noqa: E731 - a one-line closure
    for k, name in enumerate(names):
        entries = _entries(np.shape(arrays[name]), rng)
        want = [_central(loss, arrays, name, index) for index in entries]
        _compare(rule, "vjp", k, [np.asarray(grads[name])[index] for index in entries], want)
    if rule.jvp is not None:
        tangent = module.forward(**arrays)["tangent"]
        output = lambda **a: np.asarray(module.forward(**a)["y"], dtype=np.float64)  # noqa: E731
        _compare(rule, "jvp", None, tangent, _directional(output, arrays, names))
    _PASSED.setdefault(rule, set()).add(concrete)


def _check_graph(rule: CustomRule, shapes: tuple) -> tuple[Graph, list[str]]:
    """The op alone: sum(op(x0, x1, ...) ⊙ r), the output y, and the jvp's tangent along dot0, dot1, ..."""
    graph = Graph(f"check_{rule.name}")
    names = [f"x{k}" for k in range(len(shapes))]
    inputs = tuple(graph.input(name, shape) for name, shape in zip(names, shapes))
    y = custom_node(rule, inputs)
    weights = graph.input("r", y.shape)
    graph.output("loss", dsl.sum(y * weights))
    graph.output("y", y)
    if rule.jvp is not None:
        tangents = tuple(graph.input(f"dot{k}", shape) for k, shape in enumerate(shapes))
        tangent = calling(rule, "jvp", rule.jvp, inputs, y, tangents)
        if not isinstance(tangent, Node) or tuple(tangent.shape) != tuple(y.shape):
            raise DifferentiationError(f"custom op {rule.name!r}: its jvp must give a graph value of the output's "
                                       f"shape, got {tangent!r}")
        graph.output("tangent", tangent)
    return graph, names


def _points(rule: CustomRule, module, graph: Graph, names: list[str], rng) -> dict[str, np.ndarray]:
    """Random inputs where the forward and its rule are finite: standard normal ones, or else positive
    ones (a forward that takes a logarithm or a square root of its input)."""
    draws: list[Callable] = [lambda shape: rng.normal(size=shape), lambda shape: 0.5 + np.abs(rng.normal(size=shape))]
    for draw in draws:
        arrays = {name: draw(graph.leaves[name].shape) for name in names}
        arrays |= {name: rng.normal(size=leaf.shape) for name, leaf in graph.leaves.items() if name not in names}
        with np.errstate(all="ignore"):
            outputs, grads = module.gradients(**arrays)
        if all(np.all(np.isfinite(v)) for v in [*outputs.values(), *grads.values()]):
            return arrays
    raise DifferentiationError(f"custom op {rule.name!r}: its forward or its rule is not finite at the random "
                               "points the check tries (standard normal, and positive); declare check=False "
                               "and test the rule yourself")


def _entries(shape: tuple, rng) -> list[tuple]:
    """The entries of an input the check differentiates: every one of a small input, ENTRIES drawn at
    random from a larger one (each costs two runs of the forward)."""
    size = int(np.prod(shape, dtype=np.int64))
    chosen = range(size) if size <= ENTRIES else sorted(rng.choice(size, ENTRIES, replace=False))
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in chosen]


def _central(loss: Callable, arrays: dict, name: str, index: tuple, eps: float = 1e-6) -> float:
    """∂loss/∂arrays[name][index] by a central difference."""
    def moved(step: float) -> float:
        shifted = np.array(arrays[name], dtype=np.float64)
        shifted[index] += step
        return loss(**{**arrays, name: shifted})
    return (moved(eps) - moved(-eps)) / (2 * eps)


def _directional(output: Callable, arrays: dict, names: list[str], eps: float = 1e-6) -> np.ndarray:
    """The central difference of the output along the tangents dot0, dot1, ..."""
    def moved(sign: int) -> dict:
        return {**arrays, **{name: arrays[name] + sign * eps * arrays[f"dot{k}"] for k, name in enumerate(names)}}
    return (output(**moved(1)) - output(**moved(-1))) / (2 * eps)


def _compare(rule: CustomRule, what: str, k: int | None, got, want: np.ndarray) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    error = float(np.max(np.abs(got - want), initial=0.0))
    scale = max(float(np.max(np.abs(want), initial=0.0)), float(np.max(np.abs(got), initial=0.0)), 1e-8)
    if error <= ABSOLUTE or error / scale <= TOLERANCE:
        return
    part = f"its vjp for input {input_name(rule, k)}" if what == "vjp" else "its jvp"
    raise RuleCheckError(
        f"custom op {rule.name!r}: {part} disagrees with central finite differences of its forward: max abs "
        f"error {error:.3g}, relative {error / scale:.3g} (tolerance {TOLERANCE:g}); fix the rule, or declare "
        "check=False if it differs on purpose")
