"""The values --at, --params and --examples give the leaves of a spec's graph, for `graphcomp grad`,
`report` and `graph`: numbers inline, arrays from .npz files (a data set), params drawn by the generated
module's own init_params or read from a saved file, and how many of a data file's examples are used.
Each problem is one line naming the option (InputError), before anything is written."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..codegen import loss_name
from ..errors import GraphcompError, InputError
from ..files import reading
from ..ir import toposort
from ..templates.runtime.files import _load_npz as read_npz
from .model import CompiledModel, compile
from .spec import Spec


def _add_value_options(p) -> None:
    """--params and --examples, which complete --at on networks: the params, and how many of a data
    file's examples the values are computed at (see leaf_values)."""
    p.add_argument("--params", metavar="init[:SEED]|FILE.npz",
                   help="the params, with --at giving the inputs: init:SEED draws the spec's initial params as the "
                        "generated init_params(SEED) does (init: with the [training] seed, as train starts from); "
                        "FILE.npz reads saved params, e.g. from graphcomp train --out")
    p.add_argument("--examples", type=int, metavar="N",
                   help="use the first N examples of the --at data file (default: all of them)")


def _at_files(text: str | None) -> dict[str, str]:
    """The .npz files an --at reads: inputs, which no output may overwrite."""
    files = [item.strip() for item in (text or "").split(",") if item.strip().endswith((".npz", ".csv"))]
    return {("--at" if len(files) == 1 else f"--at file {k}"): file for k, file in enumerate(files, 1)}


def _value_files(args: argparse.Namespace) -> dict[str, str]:
    """Every file the values of --at and --params are read from: inputs, which no output may overwrite."""
    params = getattr(args, "params", None)
    return {**_at_files(args.at), **({"--params": params} if params and not _init_seed_text(params) else {})}


def parse_values(text: str, leaves: set[str] | None = None) -> dict[str, float | np.ndarray]:
    """"u=2,v=3,w=4" -> {"u": 2.0, "v": 3.0, "w": 4.0}; an .npz file among them gives its arrays (given
    `leaves`, only those arrays: a data set or a saved run may hold others)."""
    values = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.endswith(".npz"):
            if not Path(item).is_file():
                raise ValueError(f"--at: no such file {item!r}")
            with reading(item), np.load(item, allow_pickle=False) as arrays:
                values.update({name: arrays[name] for name in arrays.files if leaves is None or name in leaves})
            continue
        name, sep, number = item.partition("=")
        try:
            if not sep:
                raise ValueError
            values[name.strip()] = float(number)
        except ValueError:
            raise ValueError(f"--at: {item!r} is not name=number (e.g. --at u=2,v=3,w=4)") from None
    return values


class LeafValues(dict):
    """{leaf name: value} for derivation(at=...), report and picture; `described` says, for a network,
    which examples and params they are (empty for numbers typed inline)."""
    described = ""


def leaf_values(args: argparse.Namespace, spec: Spec, model: CompiledModel | None = None) -> LeafValues | None:
    """The leaves' values that --at, --params and --examples give (None when neither --at nor --params is).

    --at: numbers inline (u=2,v=3), .npz files of arrays, e.g. a data set (arrays that are not leaves
    of the graph, such as a saved run's state, are left out), and .csv data sets as `graphcomp train`
    reads them. --params: init[:SEED], the spec's initial
    params as the generated module's init_params(SEED) draws them (the [training] seed without SEED:
    where `graphcomp train` starts), or an .npz file of params (the leaves it holds that are params).
    --examples N: the first N examples of every batched input; default, all of them. Every problem is
    one line: a leaf missing or given twice, a param of the wrong shape, an unknown form of SEED."""
    params_text, examples = getattr(args, "params", None), getattr(args, "examples", None)
    if args.at is None and params_text is None:
        if examples is not None:
            raise InputError("--examples picks examples of the --at data file; give --at data.npz")
        return None
    graph = spec.graph
    items = [item.strip() for item in (args.at or "").split(",") if item.strip()]
    values = LeafValues(parse_values(",".join(i for i in items if not i.endswith(".csv")), set(graph.leaves)))
    for path in (i for i in items if i.endswith(".csv")):  # a data set as graphcomp train reads it
        with reading(path):
            values.update((model or _model_of(spec)).load().load_data(path))
    given_params = {}
    if params_text is not None:
        if not graph.params:
            raise InputError(f"--params {params_text}: graph {graph.name!r} has no params")
        given_params = _params_of(params_text, spec, model)
        twice = sorted(set(given_params) & set(values))
        if twice:
            raise InputError(f"{', '.join(twice)} given by both --at and --params {params_text}; give each value once")
        values.update(given_params)
    total = _first_examples(values, graph, examples)
    _check_missing(spec, values, params_text)
    files = ", ".join(_at_files(args.at).values())
    parts = []
    if total is not None:
        used = examples or total
        parts.append((f"the first {used} of the {total} examples" if used < total
                      else f"all {total} example{'s' * (total != 1)}") + (f" in {files}" if files else ""))
    if params_text is not None:
        parts.append(f"params {params_text}")
    values.described = "; ".join(parts)
    return values


def _first_examples(values: dict, graph, examples: int | None) -> int | None:
    """Keep the first `examples` examples of every batched input (all of them for None); returns how
    many examples the inputs held (None: no batched input was given)."""
    batched = {name: np.shape(values[name])[0] for name, leaf in graph.inputs.items()
               if name in values and leaf.shape[:1] == (None,) and np.ndim(values[name])}
    if len(set(batched.values())) > 1:
        raise InputError("--at: the inputs hold different numbers of examples: "
                         + ", ".join(f"{name} {count}" for name, count in batched.items()))
    total = next(iter(batched.values()), None)
    if examples is not None:
        if total is None:
            raise InputError(f"--examples {examples}: no --at value has examples (a batch axis) to choose from")
        if not 1 <= examples <= total:
            raise InputError(f"--examples {examples}: must be between 1 and {total}, the examples --at gives")
        values.update({name: values[name][:examples] for name in batched})
    return total


def _init_seed_text(text: str) -> bool:
    """Whether a --params value is the init form (init, init:SEED), not a file."""
    return text == "init" or text.startswith("init:")


def _params_of(text: str, spec: Spec, model: CompiledModel | None) -> dict[str, np.ndarray]:
    """The params --params gives: drawn by the generated module's own init_params, or read from a file."""
    graph = spec.graph
    if _init_seed_text(text):
        module = (model or _model_of(spec)).load()
        seed = text.partition(":")[2]
        if not seed:
            return module.init_params(module.TRAINING.get("seed", 0))
        if not (seed.isascii() and seed.isdigit()):
            raise InputError(f"--params {text}: SEED must be a whole number >= 0, as in --params init:0")
        return module.init_params(int(seed))
    if not text.endswith(".npz"):
        raise InputError(f"--params {text}: give init:SEED (the spec's initial params drawn with that seed) "
                         "or an .npz file of params")
    if not Path(text).is_file():
        raise InputError(f"--params: no such file {text!r}")
    with reading(text):  # the generated module's reader: a truncated or foreign file is one line
        stored = read_npz(text, "params")
    params = {name: value for name, value in stored.items() if name in graph.params}
    missing = [name for name in graph.params if name not in params]
    if missing:
        held = sorted(name for name in stored if not name.startswith("run:"))
        raise InputError(f"--params {text}: no array for param(s) {', '.join(missing)}"
                         + (f"; it holds {', '.join(held[:8])}" if held else "; it holds no arrays"))
    for name, value in params.items():
        want = graph.params[name].shape
        if value.shape != tuple(want):
            raise InputError(f"--params {text}: param {name} has shape {value.shape}, the spec gives {tuple(want)}")
    return params


def _check_missing(spec: Spec, values: dict, params_text: str | None) -> None:
    """One line naming the leaves the loss needs that no option gave, and how to give them."""
    graph = spec.graph
    try:
        needed = [n.name for n in toposort([graph.outputs[loss_name(graph, spec.loss)]]) if n.op in ("input", "param")]
    except GraphcompError:  # no loss to differentiate: the views say what they need
        return
    missing = [name for name in needed if name not in values]
    if not missing:
        return
    hints = []
    if any(name in graph.params for name in missing) and params_text is None:
        hints.append("give the params with --params init:0 (the spec's initial params) or --params FILE.npz")
    if any(name in graph.inputs for name in missing):
        hints.append("give the inputs with --at (name=number, or an .npz file holding them)")
    raise InputError(f"--at: missing value(s) for {', '.join(missing)}" + (f": {'; '.join(hints)}" if hints else ""))


def _model_of(spec: Spec) -> CompiledModel:
    """The spec compiled as every command compiles it (its init_params draws what training starts from)."""
    return compile(spec.graph, wrt=spec.wrt, loss=spec.loss, predict=spec.predict, target=spec.target,
                   training=spec.training)
