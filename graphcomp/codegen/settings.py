"""What compile() may be asked for, checked before anything is generated: the dtype, the loss, the
leaves to differentiate, the outputs that score accuracy, and the training loop's settings (also
checked when a spec file is read, so that a wrong setting is reported with its file and entry).
"""
from __future__ import annotations

from typing import Sequence

from ..errors import GraphError
from ..ir import Graph, Node
from .runtime import SETTINGS, setting_problems

DTYPES = ("float64", "float32")
# The settings train() takes besides params and data: the runtime's one table (templates/runtime/settings.py).
TRAINING_KEYS = tuple(SETTINGS)
# The defaults of the module's command line that compile() writes into TRAINING.
DEFAULT_TRAINING = {name: SETTINGS[name].default for name in ("epochs", "lr", "batch_size")}


def training_problems(settings: dict) -> dict[str, str]:
    """{setting: what is wrong with it} for training settings (empty when all are fine), by the table
    train() checks with: checked when a spec is read and when a model is compiled, not when training
    starts."""
    return setting_problems(settings)


def check_scoring(graph: Graph, predict: str | None, target: str | None) -> None:
    if (predict is None) != (target is None):
        raise GraphError("accuracy needs both predict (an output) and target (an input)")
    if predict is not None and predict not in graph.outputs:
        raise GraphError(f"predict {predict!r} is not an output of graph {graph.name!r}; outputs: {', '.join(graph.outputs)}")
    if target is not None and target not in graph.inputs:
        raise GraphError(f"target {target!r} is not an input of graph {graph.name!r}; inputs: {', '.join(graph.inputs)}")


def wrt_leaves(graph: Graph, wrt: Sequence[str] | None) -> list[Node]:
    """The leaves to differentiate for: those named, else every param, else every input."""
    if wrt is None:
        return list((graph.params or graph.inputs).values())
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
