"""What a compile request means where it leaves something out: the leaves to differentiate (every param,
else every input), the loss (the only output, else the only scalar one), and the defaults of the module's
command line. The request itself is checked by the front end (`frontend/request.py`) before `generate`.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import GraphError
from ..ir import Graph, Node
from .runtime import SETTINGS

# The defaults of the module's command line that compile() writes into TRAINING.
DEFAULT_TRAINING = {name: SETTINGS[name].default for name in ("epochs", "lr", "batch_size")}


def wrt_leaves(graph: Graph, wrt: Sequence[str] | None) -> list[Node]:
    """The leaves to differentiate for: those named, else every param, else every input of floats."""
    if wrt is None:
        floats = [x for x in graph.inputs.values() if not x.is_integer_input]  # ids have no gradient
        return list(graph.params.values()) if graph.params else floats
    if isinstance(wrt, str):
        wrt = [wrt]
    unknown = [name for name in wrt if name not in graph.leaves]
    if unknown:
        raise GraphError(f"wrt names {', '.join(map(repr, unknown))}, which graph {graph.name!r} does not have; "
                         f"its leaves are {', '.join(graph.leaves)}")
    return [graph.leaves[name] for name in dict.fromkeys(wrt)]


def loss_name(graph: Graph, loss: str | None) -> str | None:
    """The output to differentiate: the one named, else the only output, else the only scalar one."""
    if loss is not None:
        if loss not in graph.outputs:
            raise GraphError(f"loss {loss!r} is not an output of graph {graph.name!r}; outputs: {', '.join(graph.outputs)}")
        return loss
    if len(graph.outputs) == 1:
        return next(iter(graph.outputs))
    scalars = [name for name, node in graph.outputs.items() if node.shape == ()]
    if len(scalars) == 1:
        return scalars[0]
    raise GraphError(f"graph {graph.name!r} has several outputs ({', '.join(graph.outputs)}); "
                     "say which is the loss: gc.compile(g, loss=...)")
