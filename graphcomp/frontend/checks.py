"""What `graphcomp check` measures on a spec at random values: each gradient against central differences,
and, for every output, forward mode against reverse mode by the adjoint dot-product test
⟨J v, u⟩ = ⟨v, Jᵀ u⟩ (J the output's Jacobian with respect to every float leaf, v and u random): two
independent derivatives of the same function, which agree only if both are right.
"""
from __future__ import annotations

import numpy as np

from ..diff.forward import jvp
from ..errors import DifferentiationError
from ..inspection.tangents import free_name
from ..diff.gradcheck import gradient_errors
from ..diff.reverse import grad
from ..ir import Node, apply
from .model import CompiledModel, compile
from .spec import Spec


def random_arrays(model: CompiledModel, spec: Spec, seed: int = 0, batch: int = 3) -> dict[str, np.ndarray]:
    """Leaf values to check at: the module's initial params nudged off zero (where relu's kink would be),
    normal inputs, and ids or class labels within their range; a batch axis or a length of `batch`."""
    m = model.load()
    rng = np.random.default_rng(seed)
    arrays = dict(m.init_params(seed))
    classes = {**m.LABELS, **spec.classes}  # the module knows which inputs feed one-hot labels
    for name, leaf in spec.graph.inputs.items():
        shape = tuple(d if isinstance(d, int) else batch for d in leaf.shape)  # N, and a length "T": `batch`
        ids = m.INTEGERS.get(name, (None, 0))[1] or classes.get(name)  # the rows (or classes) ids pick
        arrays[name] = rng.normal(size=shape) if ids is None else rng.integers(0, ids, size=shape).astype(
            m.INTEGERS[name][0] if name in m.INTEGERS else float)
    for name in spec.graph.params:
        arrays[name] = arrays[name] + rng.normal(scale=0.1, size=np.shape(arrays[name]))
    return arrays


def spec_gradient_errors(model: CompiledModel, spec: Spec, seed: int = 0, batch: int = 3) -> dict[str, float]:
    """Worst relative error per leaf of the gradients against central differences, at random inputs."""
    return gradient_errors(model.load(), random_arrays(model, spec, seed, batch), model.loss)


def adjoint_errors(model: CompiledModel, spec: Spec, seed: int = 0, batch: int = 3) -> dict[str, float | str]:
    """{output: |⟨J v, u⟩ − ⟨v, Jᵀ u⟩| relative to their size}: forward mode (gc.jvp) against reverse mode
    (gc.grad), at random values, along a random v for every float leaf and a random u of the output's
    shape. Outputs that depend on no float leaf are left out; an output forward mode cannot go through (a
    custom op declared without a forward rule) gets the reason instead of a number."""
    source = spec.graph
    leaves = [leaf for leaf in source.leaves.values() if not leaf.is_integer_input]
    graph, pairs = source.remapped({}), {}
    tangents = {leaf: graph.input(free_name(graph, f"v_{leaf.name}"), leaf.shape) for leaf in leaves}
    skipped: dict[str, float | str] = {}
    for name, output in source.outputs.items():
        try:
            moved = jvp(output, leaves, list(tangents.values()))
        except DifferentiationError as error:
            skipped[name] = f"not checked, {error}"
            continue
        if moved.op == "zeros_like":
            continue
        u = graph.input(free_name(graph, f"u_{name}"), output.shape)
        pulled = grad(_inner(output, u), leaves)
        pairs[name] = (free_name(graph, f"Jv_{name}"), free_name(graph, f"vJu_{name}"))
        graph.output(pairs[name][0], _inner(moved, u))
        graph.output(pairs[name][1], _sum_of([_inner(g, tangents[x]) for x, g in zip(leaves, pulled)]))
    if not pairs:
        return skipped
    checked = compile(graph, loss=model.loss, wrt=[]).load()
    arrays = random_arrays(model, spec, seed, batch)
    rng = np.random.default_rng(seed + 1)
    for leaf in graph.inputs.values():
        if leaf.name not in arrays:
            arrays[leaf.name] = rng.normal(size=tuple(d if isinstance(d, int) else batch for d in leaf.shape))
    values = checked.forward(**arrays, **({"training": True} if checked.BUFFERS else {}))
    errors: dict[str, float | str] = dict(skipped)
    for name, (forward, backward) in pairs.items():
        a, b = values[forward], values[backward]
        errors[name] = abs(a - b) / max(abs(a), abs(b), 1e-300)
    return errors


def _inner(a: Node, b: Node) -> Node:
    """⟨a, b⟩: the sum of their elementwise product."""
    return apply("sum", a * b, axis=None)


def _sum_of(terms: list[Node]) -> Node:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
