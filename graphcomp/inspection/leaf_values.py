"""The leaves' values a derivation is made at, checked and given to one traced run of the module
compiled as written: arrays as float64, an integer input's (token ids, labels) in its own dtype."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..codegen import GeneratedModule
from ..errors import GraphError
from ..ir import Graph, Node, depending_on, toposort


def batch_size(graph: Graph, at: Mapping | None) -> int | None:
    """N, the length of the batch axis of the inputs given (None when no values were given)."""
    for name, leaf in graph.inputs.items():
        if at is not None and name in at and leaf.shape[:1] == (None,) and np.ndim(at[name]):
            return int(np.shape(at[name])[0])
    return None


def check_leaves(loss: Node, graph: Graph, at: Mapping) -> None:
    needed = [n for n in toposort([loss]) if n.op in ("input", "param")]
    missing = [n.name for n in needed if n.name not in at]
    unknown = [name for name in at if name not in graph.leaves]
    if missing or unknown:
        problems = ([f"missing value(s) for {', '.join(missing)}"] if missing else []) + \
                   ([f"unknown name(s) {', '.join(unknown)}"] if unknown else [])
        raise GraphError(f"derivation at: {'; '.join(problems)}")


def computed_values(written: GeneratedModule, at: Mapping, scalar: bool) -> dict[Node, object]:
    """Every value and gradient the module compiled as written computes at the leaves' values `at`, from
    one traced run of it; for a graph of scalars, the loss's forward values (numbers included) as floats."""
    graph, loss = written.graph, written.graph.outputs[written.loss]
    if scalar:
        arrays = {name: np.float64(_as_float(value, name)) for name, value in at.items()}
    else:
        arrays = {name: _as_array(value, name, graph.leaves.get(name)) for name, value in at.items()}
    unread = _unread_leaves(graph, loss, arrays)
    try:
        with np.errstate(all="ignore"):
            values = written.values_at({**arrays, **unread}, also=list(written.backward.adjoints.values()))
    except (TypeError, ValueError) as error:  # the module names the array and the shape it expected
        raise GraphError(f"derivation at: {error}") from None
    if scalar:
        outputs = [loss] + [n for n in graph.outputs.values() if n is not loss]  # (the loss's first: its order)
        return {n: float(n.attr("value") if n.op == "const" else values[n]) for n in toposort(outputs) if n in values
                or n.op == "const" or n.is_leaf}
    made_up = depending_on(graph.nodes(), {graph.leaves[name] for name in unread})
    return {n: v for n, v in values.items() if n not in made_up}


def _unread_leaves(graph: Graph, loss: Node, arrays: dict) -> dict[str, np.ndarray]:
    """Zeros for the leaves that only other outputs read: the module computes every output, the
    derivation needs only the loss (and shows no value computed from these)."""
    needed = set(toposort([loss]))
    batched = [np.shape(arrays[name])[0] for name, leaf in graph.inputs.items()
               if name in arrays and leaf.shape[:1] == (None,) and np.ndim(arrays[name])]
    return {name: np.zeros(tuple((batched[0] if batched else 1) if d is None else d for d in leaf.shape))
            for name, leaf in graph.leaves.items() if name not in arrays and leaf not in needed}


def _as_array(value, name: str, leaf: Node | None = None) -> np.ndarray:
    """A leaf's value as an array: float64, or, for an integer input (token ids, labels), its integer dtype."""
    try:
        if leaf is not None and leaf.is_integer_input:
            array = np.asarray(value)
            if array.dtype.kind not in "iub" and not np.array_equal(array, np.round(array)):
                raise GraphError(f"derivation at: {name!r} holds integer ids ({leaf.attr('dtype')}); got values "
                                 f"that are not whole numbers")
            return array.astype(leaf.attr("dtype"))
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphError(f"derivation at: the value of {name!r} must be a number or an array, got {value!r}") from None


def _as_float(value, name: str) -> float:
    try:
        number = float(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise GraphError(f"derivation at: the value of {name!r} must be a number, got {value!r}") from None
    return number
