"""What compile() may be asked for, checked before anything is generated: the dtype, the loss, the
leaves to differentiate, the outputs that score accuracy, and the training loop's settings (also
checked when a spec file is read, so that a wrong setting is reported with its file and entry).
"""
from __future__ import annotations

import math
from typing import Sequence

from ..errors import GraphError
from ..ir import Graph, Node

DTYPES = ("float64", "float32")
# The settings train() takes besides params and data, and the defaults of the module's command line.
TRAINING_KEYS = ("optimizer", "lr", "epochs", "batch_size", "seed", "momentum", "beta1", "beta2",
                 "schedule", "step_size", "gamma", "weight_decay", "l1", "validation")
DEFAULT_TRAINING = {"epochs": 10, "lr": 0.1, "batch_size": 32}
OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = (None, "step", "exponential", "cosine")


def training_problems(settings: dict) -> dict[str, str]:
    """{setting: what is wrong with it} for training settings (empty when all are fine): checked
    when a spec is read and when a model is compiled, not when training starts."""
    def whole(value, least):
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    rules = {
        "epochs": (lambda v: whole(v, 0), "a whole number >= 0"),
        "batch_size": (lambda v: whole(v, 1), "a whole number >= 1"),
        "seed": (lambda v: whole(v, 0), "a whole number >= 0"),
        "step_size": (lambda v: whole(v, 1), "a whole number >= 1"),
        "lr": (lambda v: number(v) and v > 0, "a number > 0"),
        "gamma": (lambda v: number(v) and v > 0, "a number > 0"),
        "momentum": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "beta1": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "beta2": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "weight_decay": (lambda v: number(v) and v >= 0, "a number >= 0"),
        "l1": (lambda v: number(v) and v >= 0, "a number >= 0"),
        "validation": (lambda v: number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
        "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
        "schedule": (lambda v: v in SCHEDULES, "none, or one of step, exponential, cosine"),
    }
    return {key: f"must be {rules[key][1]}, got {value!r}" for key, value in settings.items()
            if key in rules and not rules[key][0](value)}


def held_out(validation: float, examples: int) -> int:
    """How many of `examples` the generated train() holds out for a `validation` fraction."""
    return int(round(validation * examples))


def check_training_data(settings: dict, data: dict, inputs: dict) -> None:
    """Refuse, before anything is written, training settings that leave `data` (arrays by input
    name) no example to train on: a validation fraction below 1 still holds out every example when
    it rounds up to all of them (0.9 of 3 examples is 2.7, held out as 3). `inputs` maps input names
    to shapes (a module's INPUTS); the examples are the first axis of the batched ones."""
    sizes = [value.shape[0] for name, value in data.items()
             if tuple(inputs.get(name, ()))[:1] == (None,) and getattr(value, "ndim", 0) >= 1]
    validation = settings.get("validation", 0.0)
    if sizes and sizes[0] and held_out(validation, sizes[0]) >= sizes[0]:
        raise ValueError(f"validation {validation} holds out all {sizes[0]} examples of the data, leaving "
                         "none to train on; use a smaller fraction (or 0) or more examples")


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
