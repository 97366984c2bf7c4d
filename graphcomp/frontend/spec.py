"""Model spec files: TOML in, a Graph (and training settings) out.

Expressions are strings built by `expressions.Evaluator` against a whitelist; nothing is ever passed
to eval, exec or sympify. Every problem is a SpecError that names the file, the entry and what is wrong.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ir import Declared, Graph, Node, declaring
from . import dsl, losses
from .expressions import Evaluator, SpecError, guard, parse
from .layers import mlp
from .request import TRAINING_KEYS, training_problems
from .spec_loops import build_scan, read_scans
from .spec_lines import reading
from .spec_ops import read_ops
from .spec_order import evaluation_order

BATCH = ("N", "batch")  # how a spec writes the batch dimension (TOML has no null)


@dataclass
class Spec:
    """A parsed spec: the graph, which output is the loss, and how to train it."""

    graph: Graph
    loss: str | None                    # None: gc.compile's default (the only scalar output)
    wrt: list[str] | None = None
    predict: str | None = None          # the output to score accuracy on
    target: str | None = None           # the input holding the true labels
    classes: dict[str, int] = field(default_factory=dict)  # inputs that hold integer labels
    training: dict[str, Any] = field(default_factory=dict)


def load(path: str | Path) -> Spec:
    """Read and build the spec at `path`."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(file, "", f"cannot read the file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise SpecError(file, "", f"not UTF-8 text (byte {error.start} cannot be read)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(file, "", f"not valid TOML: {error}") from None
    with reading(file, text):  # its entries' lines, for where each value was declared
        return build(data, file)


def build(data: dict, file: str = "<spec>") -> Spec:
    """Build a spec from parsed TOML data."""
    _only(data, {"model", "inputs", "params", "nodes", "outputs", "scan", "ops", "training"}, file, "")
    model = _table(data, "model", file)
    _only(model, {"name", "kind", "loss", "wrt", "predict", "target", "inputs", "layers", "activation",
                  "image", "filters", "kernel", "pool", "classes"}, file, "model")
    name = model.get("name", Path(file).stem.replace("-", "_"))
    graph = guard(file, "model.name", lambda: Graph(name))
    kind = model.get("kind", "graph")
    builders = {"graph": _general, "mlp": _mlp, "cnn": _cnn}
    if kind not in builders:
        raise SpecError(file, "model.kind", f"unknown kind {kind!r}; choose one of {', '.join(builders)}")
    with declaring(Declared(file)):  # values built outside an entry's expression (a kind's layers): the file
        spec = builders[kind](graph, data, model, file)
    spec.training = _training(data, file)
    for key in ("loss", "predict"):
        value = getattr(spec, key)
        if value is not None and value not in graph.outputs:
            raise SpecError(file, f"model.{key}", f"{value!r} is not an output (outputs: {', '.join(graph.outputs)})")
    if spec.target is not None and spec.target not in graph.inputs:
        raise SpecError(file, "model.target", f"{spec.target!r} is not an input (inputs: {', '.join(graph.inputs)})")
    return spec


# ------------------------------------------------------------------ general graphs

def _general(graph: Graph, data: dict, model: dict, file: str) -> Spec:
    """A spec of [inputs], [params], [nodes] and [outputs]: any graph of graphcomp's functions."""
    classes = _leaves(graph, data, file)
    nodes = _table(data, "nodes", file)
    outputs = _table(data, "outputs", file)
    if not outputs:
        raise SpecError(file, "outputs", "the spec declares no output; add an [outputs] table, e.g. loss = \"mean(...)\"")
    for table, names in (("nodes", nodes), ("outputs", outputs)):
        for name in names:
            if name in graph.leaves:  # it would hide the leaf from every expression after it
                raise SpecError(file, f"{table}.{name}", f"{name!r} is already the name of {graph.leaves[name].op} "
                                                         f"{name!r}; give the value another name")
    expressions = {f"nodes.{k}": (k, v) for k, v in nodes.items()}
    for name, text in outputs.items():
        if name in nodes and text != name:
            raise SpecError(file, f"outputs.{name}", f"{name!r} is also a node; name the output differently "
                                                      f"or write {name} = \"{name}\"")
        if name not in nodes:
            expressions[f"outputs.{name}"] = (name, text)
    trees = {where: parse(text, file, where) for where, (_, text) in expressions.items()}
    ops = read_ops(data.get("ops", {}), _outer_names(graph, nodes, outputs, data.get("scan")), file)
    scans = read_scans(data.get("scan", {}), _outer_names(graph, nodes, outputs, ops=ops), file)
    for name, table in scans.items():  # a loop is one entry: it reads what its expressions read
        expressions[table.where], trees[table.where] = (name, None), table.outer_tree()
    values: dict[str, Any] = {**ops, **graph.leaves}  # the spec's own ops are called by name (spec_ops.py)
    taken = set(_outer_names(graph, nodes, outputs, ops=ops))  # the names a loop's results may not take
    for where in evaluation_order(trees, expressions, file):
        name = expressions[where][0]
        if where.startswith("scan."):  # its results, read as name.result
            values[name] = build_scan(scans[name], values, graph, taken, file)
            continue
        node = _as_node(Evaluator(values, file, where).evaluate(trees[where]), file, where)
        if where.startswith("outputs."):
            values[name] = guard(file, where, lambda: graph.output(name, node))
        else:  # Y1 = "X": a second name for a value is a copy under that name (graph.let)
            values[name] = guard(file, where, lambda: graph.let(name, node))
    for name in outputs:
        if name in nodes:  # an output that is a node of the same name
            guard(file, f"outputs.{name}", lambda: graph.output(name, values[name]))
    graph.outputs = {name: graph.outputs[name] for name in outputs}  # the order the spec gives
    wrt = model.get("wrt")
    if wrt is not None and (not isinstance(wrt, list) or not all(isinstance(name, str) for name in wrt)):
        raise SpecError(file, "model.wrt", f"expected a list of leaf names, got {wrt!r}")
    return Spec(graph, model.get("loss"), wrt, model.get("predict"), model.get("target"), classes)


def _leaves(graph: Graph, data: dict, file: str) -> dict[str, int]:
    """Declare the [inputs] and [params]; returns the inputs that hold class labels, with their counts."""
    classes: dict[str, int] = {}
    for name, entry in _table(data, "inputs", file).items():
        where = f"inputs.{name}"
        dtype = "float"
        if isinstance(entry, dict):  # ids = { shape = ["N", 8], dtype = "int64" }
            _only(entry, {"shape", "classes", "dtype"}, file, where)
            if "classes" in entry:
                classes[name] = _positive_int(entry["classes"], file, f"{where}.classes")
            dtype = entry.get("dtype", dtype)
            entry = entry.get("shape", [])
        guard(file, where, lambda: graph.input(name, _shape(entry, file, where), dtype=dtype))
    for name, entry in _table(data, "params", file).items():
        where = f"params.{name}"
        if not isinstance(entry, dict):
            entry = {"shape": entry}
        _only(entry, {"shape", "init", "fan_in"}, file, where)
        guard(file, where, lambda: graph.param(name, _shape(entry.get("shape", []), file, where),
                                               init=entry.get("init", "xavier"), fan_in=entry.get("fan_in")))
    return classes


def _outer_names(graph: Graph, nodes: dict, outputs: dict, scans: Any = None, ops: Any = None) -> dict[str, str]:
    """Every name a loop's (or an op's) own names must not hide, with what it names (for the error)."""
    names = {name: f"{leaf.op} {name!r}" for name, leaf in graph.leaves.items()}
    names |= {name: f"the node {name!r}" for name in nodes} | {name: f"the output {name!r}" for name in outputs}
    return names | {name: f"the loop {name!r}" for name in (scans if isinstance(scans, dict) else ())} | {
        name: f"the op {name!r}" for name in (ops or ())}


def _as_node(value: Any, file: str, where: str) -> Node:
    if not isinstance(value, Node):
        raise SpecError(file, where, f"the expression gives {value!r}, not a graph value")
    return value


# ------------------------------------------------------------------ shorthands

_LOSSES = {"softmax_cross_entropy", "mse", "binary_cross_entropy_with_logits"}


def _mlp(graph: Graph, data: dict, model: dict, file: str) -> Spec:
    """inputs = width, layers = [...], activation, loss: x (N, width) -> logits, and the loss."""
    _no_tables(data, file, "mlp")
    width = _positive_int(model.get("inputs"), file, "model.inputs")
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError(file, "model.layers", "give the layer widths as a list, e.g. layers = [64, 10]")
    loss_kind = model.get("loss", "softmax_cross_entropy")
    if loss_kind not in _LOSSES:
        raise SpecError(file, "model.loss", f"unknown loss {loss_kind!r}; choose one of {', '.join(sorted(_LOSSES))}")
    x = graph.input("x", (None, width))
    logits = graph.output("logits", guard(file, "model", lambda: mlp(graph, x, layers, model.get("activation", "relu"))))
    return _classifier(graph, logits, loss_kind, file)


def _cnn(graph: Graph, data: dict, model: dict, file: str) -> Spec:
    """The CNN of the lecture notes on convolutional networks: conv (filters, kernel) -> max-pool -> flatten -> dense -> softmax cross-entropy."""
    _no_tables(data, file, "cnn")
    image = model.get("image")
    if not (isinstance(image, list) and len(image) == 3):
        raise SpecError(file, "model.image", "give the image shape as [channels, height, width]")
    c, h, w = (_positive_int(d, file, "model.image") for d in image)
    filters = _positive_int(model.get("filters", 8), file, "model.filters")
    kernel = _positive_int(model.get("kernel", 3), file, "model.kernel")
    pool = _positive_int(model.get("pool", 2), file, "model.pool")
    classes = _positive_int(model.get("classes"), file, "model.classes")

    def layers() -> Node:
        x = graph.input("x", (None, c, h, w))
        kernels = graph.param("kernels", (filters, c, kernel, kernel), init="kaiming")
        bias = graph.param("conv_bias", (filters,), init="zeros")
        pooled = graph.let("pooled", dsl.max_pool2d(dsl.conv2d(x, kernels, bias), size=pool, stride=pool))
        flat = dsl.flatten(pooled)
        W = graph.param("W", (flat.shape[1], classes))
        b = graph.param("b", (classes,), init="zeros")
        return flat @ W + b

    logits = graph.output("logits", guard(file, "model", layers))
    return _classifier(graph, logits, "softmax_cross_entropy", file)


def _classifier(graph: Graph, logits: Node, loss_kind: str, file: str) -> Spec:
    classes: dict[str, int] = {}
    if loss_kind == "softmax_cross_entropy":
        y = graph.input("labels", (None,))
        classes["labels"] = logits.shape[-1]
    else:
        y = graph.input("labels", logits.shape)
    graph.output("loss", getattr(losses, loss_kind)(logits, y))
    return Spec(graph, "loss", None, "logits", "labels", classes)


def _no_tables(data: dict, file: str, kind: str) -> None:
    for table in ("inputs", "params", "nodes", "outputs", "scan", "ops"):
        if table in data:
            raise SpecError(file, table, f"a kind = \"{kind}\" model builds its own {table}; remove this table "
                                         "or write the model out with kind = \"graph\"")


# ------------------------------------------------------------------ training settings

def _training(data: dict, file: str) -> dict[str, Any]:
    settings = dict(_table(data, "training", file))
    _only(settings, set(TRAINING_KEYS), file, "training")
    schedule = settings.get("schedule")
    if isinstance(schedule, dict):  # schedule = { kind = "step", step_size = 10, gamma = 0.5 }
        _only(schedule, {"kind", "step_size", "gamma"}, file, "training.schedule")
        settings.update({k: v for k, v in schedule.items() if k != "kind"})
        settings["schedule"] = schedule.get("kind")
    for key, value in settings.items():
        if key in ("optimizer", "schedule"):
            if value is not None and not isinstance(value, str):
                raise SpecError(file, f"training.{key}", f"expected a name, got {value!r}")
        elif key == "check_finite":  # true or false: training_problems says so
            continue
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SpecError(file, f"training.{key}", f"expected a number, got {value!r}")
    for key, problem in training_problems(settings).items():
        raise SpecError(file, f"training.{key}", problem)
    return settings


# ------------------------------------------------------------------ expressions

def _table(data: dict, key: str, file: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(file, key, f"expected a table [{key}]")
    return value


def _only(table: dict, allowed: set[str], file: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(file, where or "top level", f"unknown key(s) {', '.join(map(repr, unknown))}; "
                                                    f"allowed: {', '.join(sorted(allowed))}")


def _shape(value: Any, file: str, where: str) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(file, where, f"a shape is a list such as [\"N\", 4], got {value!r}")
    return tuple(None if d in BATCH else d for d in value)


def _positive_int(value: Any, file: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(file, where, f"expected a positive whole number, got {value!r}")
    return value
