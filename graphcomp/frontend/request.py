"""What compile() may be asked for, checked before anything is generated: the graph, the dtype, the
loss, the leaves to differentiate, the outputs that score accuracy, and the training loop's settings
(also checked when a spec file is read, so that a wrong setting is reported with its file and entry).

The checks are the front end's: `generate` receives arguments that passed them. Which leaves and which
loss a request means when it names none is codegen's (`wrt_leaves`, `loss_name`), since every
module it generates is made by that rule.
"""
from __future__ import annotations

from typing import Sequence

from ..codegen import loss_name, wrt_leaves
from ..errors import GraphError
from ..ir import Graph, Node, format_shape
from ..ops.indexing import integer_misuse
from ..templates.runtime.settings import SETTINGS, setting_problems

DTYPES = ("float64", "float32")
# The settings train() takes besides params and data: the runtime's one table (templates/runtime/settings.py).
TRAINING_KEYS = tuple(SETTINGS)


def training_problems(settings: dict) -> dict[str, str]:
    """{setting: what is wrong with it} for training settings (empty when all are fine), by the table
    train() checks with: checked when a spec is read and when a model is compiled, not when training
    starts."""
    return setting_problems(settings)


def check_request(graph: Graph, wrt: Sequence[str] | None, loss: str | None, dtype: str,
                  predict: str | None, target: str | None, training: dict | None) -> None:
    """Raise GraphError for the first argument of compile() that cannot be honoured."""
    if not isinstance(graph, Graph):
        raise GraphError(f"compile expects a gc.Graph, got {type(graph).__name__}")
    if not graph.outputs:
        raise GraphError(f"graph {graph.name!r} has no output; declare one with g.output(name, value)")
    if dtype not in DTYPES:
        raise GraphError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    _check_integers(graph, wrt_leaves(graph, wrt))
    loss_name(graph, loss)
    _check_scoring(graph, predict, target)
    unknown = sorted(set(training or {}) - set(TRAINING_KEYS))
    if unknown:
        raise GraphError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(TRAINING_KEYS)}")
    for key, problem in training_problems(training or {}).items():
        raise GraphError(f"training setting {key} {problem}")


def _check_integers(graph: Graph, leaves: list[Node]) -> None:
    """Integer inputs are ids and labels: never differentiated, and read only by the ops that read ids
    (take, one-hot labels) and by slices and reshapes of them."""
    integers = [leaf.name for leaf in leaves if leaf.is_integer_input]
    if integers:
        names = ", ".join(map(repr, integers))
        raise GraphError(f"wrt: input(s) {names} hold integers (ids, labels), which have no gradient; "
                         "differentiate with respect to params or float inputs")
    misuse = integer_misuse(graph.nodes())
    if misuse is not None:
        node, source = misuse
        raise GraphError(f"input {source.name!r} holds integers ({source.attr('dtype')}): {node.op} cannot compute "
                         "with it; integer inputs are ids (gc.take, gc.embedding) and class labels "
                         "(gc.softmax_cross_entropy, gc.one_hot), and may be sliced or reshaped")


def _check_scoring(graph: Graph, predict: str | None, target: str | None) -> None:
    if (predict is None) != (target is None):
        raise GraphError("accuracy needs both predict (an output) and target (an input)")
    if predict is not None and predict not in graph.outputs:
        raise GraphError(f"predict {predict!r} is not an output of graph {graph.name!r}; outputs: {', '.join(graph.outputs)}")
    if target is not None and target not in graph.inputs:
        raise GraphError(f"target {target!r} is not an input of graph {graph.name!r}; inputs: {', '.join(graph.inputs)}")
    if target is not None and graph.inputs[target].is_integer_input:  # a class per row, or per position
        scores, labels = graph.outputs[predict].shape, graph.inputs[target].shape
        if labels != scores[:-1]:
            raise GraphError(f"target {target!r} of shape {format_shape(labels)} holds integer labels, which must "
                             f"have the shape of predict {predict!r} {format_shape(scores)} without its last axis")
