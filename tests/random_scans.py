"""Random scans: random step bodies run by `gc.scan`, checked against the same steps unrolled by Python
and against central differences.

A seeded generator draws one recipe: the carries (one value or a tuple of two; batched, unbatched or
scalar), one or two sequences (time along axis 0 or 1, a fixed length or the run-time length "T",
T = 0 only with "T"), values captured from outside (params, inputs, values computed before the loop),
a step body of a few random ops over (carry, x_t, captured) — elementwise ops, matmuls with params,
reductions, slices, concatenation, softmax — the new carries, the per-step outputs (one, two or None)
and `reverse`. The recipe is built twice: as one `gc.scan`, and unrolled by Python into a flat graph
whose sequences are one leaf per step (no slicing of the time axis at all). Both modules must agree
on every output and every gradient to 1e-10, and the loop's gradients must agree with central
differences in float64 wherever those are trustworthy (two step sizes agree: not on a kink).

`checkpoint=k` is not built yet, so no recipe uses it.

    python tests/random_scans.py --scans 500             # seeds 0..499; exit 1 on any failure
    python tests/random_scans.py --scans 300 --lines 12  # longer step bodies
    python tests/random_scans.py --seed 17 --show        # one recipe: its code and its check
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import graphcomp as gc  # noqa: E402 - after the path set-up, for `python tests/random_scans.py`
from graphcomp.diff.gradcheck import numeric_gradient, relative_error  # noqa: E402

BATCH = 2           # the size given to the batch axis None
FIXED_BATCH = 3     # a batch written as a number
AGREEMENT = 1e-10   # the loop against the unrolled graph, relative to max(largest entry, 1)
TOLERANCE = 1e-5    # the loop's gradients against central differences


@dataclass
class Line:
    """One op of the recipe: `text` formats the operands' names, `function` builds the node."""

    text: str
    function: Callable
    operands: tuple[str, ...]  # the step's values it reads, by name


@dataclass
class Recipe:
    seed: int
    length: int                    # T
    axis: int
    reverse: bool
    symbolic: bool                 # the loop's sequences are declared with the run-time length "T"
    batch: tuple                   # the batch axes of batched values: (None,), (3,) or ()
    simplify: bool
    check_shapes: bool
    leaves: dict[str, tuple] = field(default_factory=dict)       # name -> (kind, shape with "T" where time is)
    carries: list[str] = field(default_factory=list)             # the init of each carry: an outer value's name
    one_carry: bool = True
    sequences: list[str] = field(default_factory=list)           # outer values walked by the loop
    one_sequence: bool = True
    captured: list[str] = field(default_factory=list)            # outer values the step reads
    outer: dict[str, tuple] = field(default_factory=dict)        # name -> (text, function, leaf name): before the loop
    body: list[Line] = field(default_factory=list)
    new_carries: list[str] = field(default_factory=list)
    ys: list[str] | None = None
    one_y: bool = True
    y_weights: list[str] = field(default_factory=list)
    final_weights: list[str] = field(default_factory=list)
    checkpoint: int | None = None  # gc.scan(..., checkpoint=k): the backward loop computes steps again

    @property
    def sequence_leaves(self) -> set[str]:
        """Leaves with a time axis: each sequence's leaf and the weights of the stacked outputs."""
        return {name for name, (_, shape) in self.leaves.items() if "T" in shape}


# ---- drawing a recipe ----------------------------------------------------------------------------------

SMOOTH = [
    ("gc.tanh({0})", gc.tanh), ("gc.sigmoid({0})", gc.sigmoid), ("gc.softplus({0})", gc.softplus),
    ("gc.softsign({0})", gc.softsign), ("0.5 * {0}", lambda v: 0.5 * v), ("-{0}", lambda v: -v),
    ("0.3 * {0} * {0}", lambda v: 0.3 * v * v), ("gc.exp(-{0} * {0})", lambda v: gc.exp(-v * v)),
    ("gc.log({0} * {0} + 0.5)", lambda v: gc.log(v * v + 0.5)), ("gc.sqrt({0} * {0} + 0.25)", lambda v: gc.sqrt(v * v + 0.25)),
    ("1 - {0}", lambda v: 1 - v), ("{0} ** 3", lambda v: v ** 3),
]
KINKED = [("gc.relu({0})", gc.relu), ("gc.abs({0})", gc.abs), ("gc.leaky_relu({0}, slope=0.1)", lambda v: gc.leaky_relu(v, 0.1))]
BINARY = [
    ("{0} + {1}", lambda u, v: u + v), ("{0} - {1}", lambda u, v: u - v), ("{0} * {1}", lambda u, v: u * v),
    ("{0} / ({1} * {1} + 0.5)", lambda u, v: u / (v * v + 0.5)), ("gc.maximum({0}, {1})", gc.maximum),
]
MIXES = [  # how a new carry is made from the old carry {0} and a value {1} that broadcasts to its shape
    ("gc.tanh({0} + {1})", lambda c, v: gc.tanh(c + v)),
    ("0.5 * {0} + 0.5 * gc.tanh({1})", lambda c, v: 0.5 * c + 0.5 * gc.tanh(v)),
    ("{0} * gc.sigmoid({1})", lambda c, v: c * gc.sigmoid(v)),
    ("{0} + 0.3 * {1}", lambda c, v: c + 0.3 * v),
]


class _Planner:
    """Draws a recipe, building the step once on plain inputs to learn every value's shape. The step's
    values are named as the code names them: c0, c1 (carries), x0, x1 (elements), the captured values'
    outer names, v1, v2, ... (the body's lines)."""

    def __init__(self, seed: int, lines: int | None = None) -> None:
        self.r = random.Random(seed)
        self.lines_wanted = lines
        r = self.r
        length = r.choice([0, 1, 1, 2, 3, 3, 4, 5])
        axis = r.choice([0, 1])
        batch = r.choice([(None,), (None,), (FIXED_BATCH,), ()])
        symbolic = length == 0 or (batch == (None,) and axis == 0) or r.random() < 0.3
        # not time-major with a batch axis None: there the shape checks fail to compile (AssertionError:
        # a value has a batch axis, but no input with one is read)
        check_shapes = r.random() < 0.4 and not (batch == (None,) and axis == 0)
        self.recipe = Recipe(seed, length, axis, r.random() < 0.5, symbolic, batch, r.random() < 0.75, check_shapes)
        # drawn apart, so that adding it left every other draw of a seed as it was
        self.recipe.checkpoint = random.Random(f"checkpoint {seed}").choice([None, None, 1, 2, 3])
        self.batch = batch
        self.scratch = gc.Graph("plan")
        self.env: dict[str, gc.Node] = {}
        self.walked: list[str] = []    # carries and elements
        self.captured: list[str] = []
        self.lines: list[str] = []
        self.kinked = r.random() < 0.25

    def width(self) -> int:
        return self.r.choice([1, 2, 3])

    def leaf(self, kind: str, shape: tuple, prefix: str) -> str:
        name = f"{prefix}{sum(n.startswith(prefix) for n in self.recipe.leaves)}"
        self.recipe.leaves[name] = (kind, shape)
        return name

    def outer_value(self, leaf: str, derived: bool) -> str:
        """An outer value: the leaf itself, or an elementwise op of it computed before the loop."""
        if not derived:
            return leaf
        text, function = self.r.choice([("gc.tanh({0})", gc.tanh), ("2 * {0}", lambda v: 2 * v),
                                        ("{0} * {0} + 0.1", lambda v: v * v + 0.1)])
        name = f"o{len(self.recipe.outer)}"
        self.recipe.outer[name] = (text, function, leaf)
        return name

    def capture(self, name: str, shape: tuple) -> str:
        self.recipe.captured.append(name)
        self.env[name] = self.scratch.input(f"k{len(self.env)}", shape)
        self.captured.append(name)
        return name

    def draw(self) -> Recipe:
        rc, r = self.recipe, self.r
        for i in range(r.choice([1, 1, 2])):  # carries
            kind = r.random()
            shape = self.batch + (self.width(),) if kind < 0.7 else (self.width(),) if kind < 0.85 else ()
            leaf = self.leaf("param" if None not in shape and r.random() < 0.2 else "input", shape, "h")
            rc.carries.append(self.outer_value(leaf, r.random() < 0.2))
            self.env[f"c{i}"] = self.scratch.input(f"c{i}", shape)
            self.walked.append(f"c{i}")
        rc.one_carry = len(rc.carries) == 1 and r.random() < 0.8
        for k in range(r.choice([1, 1, 2])):  # sequences
            element = self.batch + (self.width(),) if rc.axis <= len(self.batch) or r.random() < 0.8 else ()
            if rc.axis == 1 and element == ():
                element = (self.width(),)
            shape = element[:rc.axis] + ("T",) + element[rc.axis:]
            leaf = self.leaf("input", shape, "xs")
            rc.sequences.append(self.outer_value(leaf, r.random() < 0.25))
            self.env[f"x{k}"] = self.scratch.input(f"x{k}", element)
            self.walked.append(f"x{k}")
        rc.one_sequence = len(rc.sequences) == 1 and r.random() < 0.8
        for _ in range(r.choice([1, 2, 3])):  # captured values
            kind = r.random()
            if kind < 0.4:
                shape, leaf_kind = (self.width(),), "param"
            elif kind < 0.6:
                shape, leaf_kind = (), "param"
            elif kind < 0.8:
                shape, leaf_kind = (self.width(), self.width()), "param"
            else:
                shape, leaf_kind = self.batch + (self.width(),), "input"
            leaf = self.leaf(leaf_kind, shape, "p" if leaf_kind == "param" else "u")
            self.capture(self.outer_value(leaf, r.random() < 0.2), shape)
        drawn = r.randint(1, 5)
        for _ in range(drawn if self.lines_wanted is None else self.lines_wanted):
            self.line()
        self.finish()
        return rc

    # ---- the body ----------------------------------------------------------------------------------
    def pick(self, first: bool = False) -> str:
        r = self.r
        if first or r.random() < 0.3:  # a carry or an element: the step reads what it walks
            return r.choice(self.walked)
        if self.lines and r.random() < 0.6:
            return r.choice(self.lines[-3:])
        return r.choice(self.walked + self.captured + self.lines)

    def add(self, text: str, function: Callable, *operands: str) -> str:
        node = function(*(self.env[o] for o in operands))  # raises a GraphcompError if it does not fit
        self.recipe.body.append(Line(text, function, operands))
        name = f"v{len(self.recipe.body)}"
        self.env[name] = node
        self.lines.append(name)
        return name

    def line(self) -> None:
        for _ in range(10):
            try:
                self.try_line(first=not self.recipe.body)
                return
            except gc.GraphcompError:
                continue

    def try_line(self, first: bool) -> None:
        r = self.r
        a = self.pick(first)
        v = self.env[a]
        kind = r.choices(["unary", "binary", "matmul", "reduce", "slice", "concat", "softmax"],
                         [4, 5, 3, 1.5, 1, 1, 1])[0]
        if kind == "unary":
            text, function = r.choice(SMOOTH + (KINKED if self.kinked else []))
            self.add(text, function, a)
        elif kind == "binary":
            text, function = r.choice(BINARY if self.kinked else BINARY[:-1])
            self.add(text, function, a, self.pick())
        elif kind == "matmul":
            if v.ndim == 0 or v.shape[-1] is None:
                raise gc.ShapeError("nothing to contract")
            self.matmul(a, self.width())
        elif kind == "reduce":
            if v.ndim == 0:
                raise gc.ShapeError("a scalar")
            choice = r.choice(["last", "last", "all", "batch"])
            name = r.choice(["sum", "mean"] + (["max"] if self.kinked else []))
            function = getattr(gc, name)
            if choice == "last":
                self.add(f"gc.{name}({{0}}, axis=-1, keepdims=True)", lambda x: function(x, axis=-1, keepdims=True), a)
            elif choice == "all":
                self.add(f"gc.{name}({{0}})", function, a)
            else:
                if v.ndim < 2:
                    raise gc.ShapeError("no batch axis")
                self.add(f"gc.{name}({{0}}, axis=0)", lambda x: function(x, axis=0), a)
        elif kind == "slice":
            if v.ndim == 0 or not v.shape[-1] or v.shape[-1] < 2:
                raise gc.ShapeError("nothing to slice")
            part = r.choice(["0:1", "1:", "::2"])
            key = (Ellipsis, slice(*[int(p) if p else None for p in part.split(":")]))
            self.add(f"{{0}}[..., {part}]", lambda x: x[key], a)
        elif kind == "concat":
            self.add("gc.concat([{0}, {1}], axis=-1)", lambda x, y: gc.concat([x, y], axis=-1), a, self.pick())
        else:
            if v.ndim == 0:
                raise gc.ShapeError("a scalar")
            text, function = r.choice([("gc.softmax({0}, axis=-1)", lambda x: gc.softmax(x, axis=-1)),
                                       ("gc.logsumexp({0}, axis=-1, keepdims=True)",
                                        lambda x: gc.logsumexp(x, axis=-1, keepdims=True))])
            self.add(text, function, a)

    def matmul(self, a: str, width: int) -> str:
        """a @ a param (n, width), or @ a (width, n) param's transpose: captured, new or already there."""
        n = self.env[a].shape[-1]
        if self.r.random() < 0.7:
            return self.add("{0} @ {1}", lambda x, w: x @ w, a, self.captured_param((n, width)))
        return self.add("{0} @ {1}.T", lambda x, w: x @ w.T, a, self.captured_param((width, n)))

    def captured_param(self, shape: tuple) -> str:
        same = [k for k in self.captured if self.env[k].shape == shape]
        if same and self.r.random() < 0.5:
            return self.r.choice(same)
        return self.capture(self.leaf("param", shape, "p"), shape)

    def fit(self, a: str, shape: tuple) -> str:
        """a made to broadcast to `shape` (never beyond it) by reductions and a matmul."""
        if shape == ():
            return a if self.env[a].ndim == 0 else self.add("gc.mean({0})", gc.mean, a)
        v = self.env[a]
        if v.ndim > len(shape) or (v.ndim == len(shape) == 2 and v.shape[0] not in (1, shape[0])):
            a = self.add("gc.sum({0}, axis=0)", lambda x: gc.sum(x, axis=0), a)  # a batch, or a param's rows
        if self.env[a].ndim and self.env[a].shape[-1] not in (1, shape[-1]):
            a = self.matmul(a, shape[-1])
        return a

    def finish(self) -> None:
        rc, r = self.recipe, self.r
        for i in range(len(rc.carries)):
            carry = f"c{i}"
            shape = self.env[carry].shape
            same = [k for k in self.env if self.env[k].shape == shape and k != carry]
            if same and r.random() < 0.12:  # a carry passed on as it is: another carry, an element, a param
                rc.new_carries.append(r.choice(same))
                continue
            if r.random() < 0.08:  # a carry the step leaves as it is
                rc.new_carries.append(carry)
                continue
            a = self.fit(r.choice((self.lines or self.walked)[-3:]), shape)
            if self.env[a].shape == shape and r.random() < 0.3:
                rc.new_carries.append(a)
                continue
            text, function = r.choice(MIXES)
            rc.new_carries.append(self.add(text, function, carry, a))
        how = r.random()
        if how < 0.2:
            return  # no per-step output
        stackable = [k for k in self.env if self.env[k].ndim >= rc.axis]
        late = [k for k in self.lines[-4:] if self.env[k].ndim >= rc.axis] or stackable
        count = 1 if how < 0.6 else 2
        rc.ys = [r.choice(late) if r.random() < 0.85 else r.choice(stackable) for _ in range(count)]
        rc.one_y = count == 1 and r.random() < 0.8


def random_recipe(seed: int, lines: int | None = None) -> Recipe:
    """The recipe of `seed`: a step body of `lines` random ops (1 to 5 by default), then the new carries."""
    recipe = _Planner(seed, lines).draw()
    recipe.final_weights = [f"wf{i}" for i in range(len(recipe.carries))]
    recipe.y_weights = [f"wy{j}" for j in range(len(recipe.ys or []))]
    return recipe


KNOWN_BUG = "running the loop failed: AttributeError: 'list' object has no attribute 'shape'"


def known_bug(recipe: Recipe, outcome: Outcome) -> str | None:
    """Why a checked recipe is skipped by the test suite: it failed only with the symptom of a bug found
    by this test and not fixed yet, under that bug's conditions (the command line reports it as a failure).

    T = 0 with a batch axis None: the empty gradient of a sequence takes the batch size from an operand
    of the backward loop that may be a list of saved values (`xp.zeros((0, t5.shape[1], 2))`, t5 a list).
    """
    if recipe.length == 0 and None in recipe.batch and outcome.problems == [KNOWN_BUG]:
        return "T = 0 with a batch axis: the empty gradient of a sequence read the batch size off a list of saved values"
    return None


# ---- building a recipe: as a loop, and unrolled -----------------------------------------------------

def _leaf_shapes(recipe: Recipe, length) -> dict[str, tuple]:
    return {name: tuple(length if d == "T" else d for d in shape) for name, (_, shape) in recipe.leaves.items()}


def _outer_nodes(g: gc.Graph, recipe: Recipe, shapes: dict, per_step: bool, length: int = 0) -> dict:
    """Every leaf and value computed before the loop. Unrolled (`per_step`), a leaf with a time axis is
    one leaf per step (`xs0_t2`), and so is a value computed from it."""
    nodes: dict = {}
    for name, (kind, shape) in recipe.leaves.items():
        if per_step and "T" in shape:
            element = tuple(d for d in shape if d != "T")
            nodes[name] = [g.input(f"{name}_t{t}", element) for t in range(length)]
        elif kind == "param":
            nodes[name] = g.param(name, shapes[name])
        else:
            nodes[name] = g.input(name, shapes[name])
    for name, (_, function, leaf) in recipe.outer.items():
        nodes[name] = [function(v) for v in nodes[leaf]] if isinstance(nodes[leaf], list) else function(nodes[leaf])
    return nodes


def _step(recipe: Recipe, captured: list) -> Callable:
    def step(carry, x):
        carries = [carry] if recipe.one_carry else list(carry)
        elements = [x] if recipe.one_sequence else list(x)
        values = {f"c{i}": c for i, c in enumerate(carries)}
        values.update({f"x{k}": e for k, e in enumerate(elements)})
        values.update(zip(recipe.captured, captured))
        for n, line in enumerate(recipe.body, 1):
            values[f"v{n}"] = line.function(*(values[o] for o in line.operands))
        new = [values[i] for i in recipe.new_carries]
        new = new[0] if recipe.one_carry else tuple(new)
        if recipe.ys is None:
            return new, None
        ys = [values[j] for j in recipe.ys]
        return new, ys[0] if recipe.one_y else tuple(ys)
    return step


def build(recipe: Recipe, looped: bool) -> tuple[gc.Graph, list[str]]:
    """The recipe's graph, as a scan or unrolled; and the names of the leaves to differentiate."""
    g = gc.Graph("loop" if looped else "flat")
    length = recipe.length
    shapes = _leaf_shapes(recipe, "T" if looped and recipe.symbolic else length)
    outer = _outer_nodes(g, recipe, shapes, per_step=not looped, length=length)
    captured = [outer[name] for name in recipe.captured]
    step = _step(recipe, captured)
    inits = [outer[name] for name in recipe.carries]
    init = inits[0] if recipe.one_carry else tuple(inits)
    if looped:
        seqs = [outer[name] for name in recipe.sequences]
        final, ys = gc.scan(step, init, seqs[0] if recipe.one_sequence else tuple(seqs),
                            axis=recipe.axis, reverse=recipe.reverse, checkpoint=recipe.checkpoint)
        finals = [final] if recipe.one_carry else list(final)
        stacked = [] if ys is None else [ys] if recipe.one_y else list(ys)
    else:
        carry, per_step = init, [None] * length
        order = range(length - 1, -1, -1) if recipe.reverse else range(length)
        for t in order:
            elements = [outer[name][t] for name in recipe.sequences]
            carry, per_step[t] = step(carry, elements[0] if recipe.one_sequence else tuple(elements))
        finals = [carry] if recipe.one_carry else list(carry)
        at_step = [y if isinstance(y, tuple) else (y,) for y in per_step]  # each step's outputs, in time order
    terms = []
    for i, final in enumerate(finals):
        w = g.input(recipe.final_weights[i], tuple(final.shape))
        terms.append(gc.sum(final * w))
        _output(g, f"final{i}", final)
    for j, name in enumerate(recipe.y_weights):
        if looped:
            w = g.input(name, tuple(stacked[j].shape))
            terms.append(gc.sum(stacked[j] * w))
            _output(g, f"ys{j}", stacked[j])
        else:
            for t in range(length):
                y = at_step[t][j]
                w = g.input(f"{name}_t{t}", tuple(y.shape))
                terms.append(gc.sum(y * w))
                _output(g, f"ys{j}_t{t}", y)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    g.output("loss", total)
    return g, [name for name in g.leaves]


def _output(g: gc.Graph, name: str, value) -> None:
    try:
        g.output(name, value)
    except gc.GraphError:  # the same value under another name already (a carry passed on as it is)
        pass


# ---- checking --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    seed: int
    problems: list[str] = field(default_factory=list)
    unsmooth: list[str] = field(default_factory=list)
    degenerate: bool = False
    compared: int = 0  # leaves compared with central differences


def arrays_for(recipe: Recipe, looped_graph: gc.Graph) -> dict[str, np.ndarray]:
    """Values for the loop's leaves (the flat graph's per-step leaves are slices of them)."""
    rng = np.random.default_rng(recipe.seed)
    arrays = {}
    for name, leaf in looped_graph.leaves.items():
        shape = tuple(recipe.length if d == "T" else BATCH if d is None else d for d in leaf.shape)
        arrays[name] = rng.normal(size=shape) * (0.7 if leaf.op == "param" else 1.0)
    return arrays


def _time_axis(recipe: Recipe, looped_graph: gc.Graph, name: str) -> int | None:
    """The time axis of a loop leaf that the flat graph splits into one leaf per step."""
    if name in recipe.sequence_leaves:
        return recipe.leaves[name][1].index("T")
    if name in recipe.y_weights:
        return recipe.axis
    return None


def flat_arrays(recipe: Recipe, looped_graph: gc.Graph, arrays: dict) -> dict:
    flat = {}
    for name, value in arrays.items():
        axis = _time_axis(recipe, looped_graph, name)
        if axis is None:
            flat[name] = value
        else:
            flat.update({f"{name}_t{t}": np.take(value, t, axis=axis) for t in range(recipe.length)})
    return flat


def check_recipe(recipe: Recipe) -> Outcome:
    outcome = Outcome(recipe.seed)
    try:
        looped_graph, wrt = build(recipe, looped=True)
        flat_graph, flat_wrt = build(recipe, looped=False)
    except Exception as error:  # noqa: BLE001 - a recipe that cannot be built is a finding
        outcome.problems.append(f"building failed: {type(error).__name__}: {error}")
        return outcome
    arrays = arrays_for(recipe, looped_graph)
    flat_in = {k: v for k, v in flat_arrays(recipe, looped_graph, arrays).items() if k in flat_graph.leaves}
    try:
        loop = gc.compile(looped_graph, wrt=wrt, loss="loss", simplify=recipe.simplify,
                          check_shapes=recipe.check_shapes, runtime=False).load()
    except Exception as error:  # noqa: BLE001
        outcome.problems.append(f"compiling the loop failed: {type(error).__name__}: {error}")
        return outcome
    try:
        flat = gc.compile(flat_graph, wrt=flat_wrt, loss="loss", runtime=False).load()
    except Exception as error:  # noqa: BLE001
        outcome.problems.append(f"compiling the unrolled graph failed: {type(error).__name__}: {error}")
        return outcome
    try:
        with np.errstate(all="ignore"):
            out_loop, grad_loop = loop.gradients(**arrays)
            forward = loop.forward(**arrays)
    except Exception as error:  # noqa: BLE001
        outcome.problems.append(f"running the loop failed: {type(error).__name__}: {error}")
        return outcome
    with np.errstate(all="ignore"):
        out_flat, grad_flat = flat.gradients(**flat_in)
    if not all(np.all(np.isfinite(v)) and np.max(np.abs(v), initial=0) < 1e6 for v in out_flat.values()):
        outcome.degenerate = True
        return outcome
    for name, value in forward.items():
        if not np.array_equal(np.asarray(value), np.asarray(out_loop[name]), equal_nan=True):
            outcome.problems.append(f"forward() and gradients() disagree on {name!r}")
    # (a) the loop against the unrolled graph
    for name in out_loop:
        if name.startswith("ys"):
            got = np.asarray(out_loop[name])
            steps = [out_flat.get(f"{name}_t{t}") for t in range(recipe.length)]
            if any(s is None for s in steps):
                continue  # not an output of the flat graph (the same value under another name)
            want = np.stack(steps, axis=recipe.axis) if steps else None
            if want is None:
                if got.shape[recipe.axis] != 0:
                    outcome.problems.append(f"output {name!r}: shape {got.shape} at T = 0")
                continue
        elif name in out_flat:
            got, want = out_loop[name], out_flat[name]
        else:
            continue
        if not _close(got, want, AGREEMENT):
            outcome.problems.append(f"output {name!r}: loop {_short(got)} but unrolled {_short(want)}")
    for name in wrt:
        got = np.asarray(grad_loop[name])
        if got.shape != arrays[name].shape:
            outcome.problems.append(f"gradient {name!r}: shape {got.shape} for a leaf of shape {arrays[name].shape}")
            continue
        axis = _time_axis(recipe, looped_graph, name)
        if axis is None:
            want = grad_flat[name]
        elif recipe.length == 0:
            want = np.zeros_like(arrays[name])
        else:
            want = np.stack([grad_flat[f"{name}_t{t}"] for t in range(recipe.length)], axis=axis)
        if not _close(got, want, AGREEMENT):
            outcome.problems.append(f"gradient {name!r}: loop {_short(got)} but unrolled {_short(want)}")
    # (b) the loop against central differences
    loss = lambda **a: loop.forward(**a)["loss"]  # noqa: E731
    for name in wrt:
        if arrays[name].size == 0:
            continue
        with np.errstate(all="ignore"):
            fine, coarse = numeric_gradient(loss, arrays, name), numeric_gradient(loss, arrays, name, 1e-4)
        if not np.all(np.isfinite(fine)) or not _close(fine, coarse, TOLERANCE, floor=1e-6):
            outcome.unsmooth.append(name)
            continue
        outcome.compared += 1
        error = relative_error(grad_loop[name], fine)
        if not _close(grad_loop[name], fine, TOLERANCE, floor=1e-6):
            outcome.problems.append(f"gradient {name!r}: relative error {error:.1e} against central differences: "
                                    f"got {_short(grad_loop[name])}, want {_short(fine)}")
    return outcome


def _close(a, b, tolerance: float, floor: float = 1.0) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), floor)
    return float(np.max(np.abs(a - b), initial=0.0)) <= tolerance * scale


def _short(value) -> str:
    return np.array2string(np.asarray(value), precision=6, threshold=8, max_line_width=120).replace("\n", "")


# ---- the recipe as code ----------------------------------------------------------------------------

def code(recipe: Recipe) -> list[str]:
    """The Python lines that build the recipe as a scan (shapes as the loop declares them)."""
    lines = ['g = gc.Graph("loop")']
    for name, (kind, shape) in recipe.leaves.items():
        shape = tuple(d if d != "T" or recipe.symbolic else recipe.length for d in shape)
        lines.append(f'{name} = g.{"param" if kind == "param" else "input"}("{name}", {shape!r})')
    for name, (text, _, leaf) in recipe.outer.items():
        lines.append(f"{name} = {text.format(leaf)}")
    n_c, n_x = len(recipe.carries), len(recipe.sequences)
    carry = "c0" if recipe.one_carry else ", ".join(f"c{i}" for i in range(n_c)) + ("," if n_c == 1 else "")
    xs = "x0" if recipe.one_sequence else ", ".join(f"x{k}" for k in range(n_x)) + ("," if n_x == 1 else "")
    lines.append("")
    lines.append(f"def step({'c0' if recipe.one_carry else 'carry'}, {'x0' if recipe.one_sequence else 'x'}):")
    if not recipe.one_carry:
        lines.append(f"    {carry} = carry")
    if not recipe.one_sequence:
        lines.append(f"    {xs} = x")
    for k, line in enumerate(recipe.body):
        lines.append(f"    v{k + 1} = {line.text.format(*line.operands)}")
    new = list(recipe.new_carries)
    new_text = new[0] if recipe.one_carry else "(" + ", ".join(new) + ("," if len(new) == 1 else "") + ")"
    if recipe.ys is None:
        y_text = "None"
    else:
        ys = list(recipe.ys)
        y_text = ys[0] if recipe.one_y else "(" + ", ".join(ys) + ("," if len(ys) == 1 else "") + ")"
    lines.append(f"    return {new_text}, {y_text}")
    lines.append("")
    init = recipe.carries[0] if recipe.one_carry else "(" + ", ".join(recipe.carries) + ("," if n_c == 1 else "") + ")"
    seqs = recipe.sequences[0] if recipe.one_sequence else "(" + ", ".join(recipe.sequences) + ("," if n_x == 1 else "") + ")"
    lines.append(f"final, ys = gc.scan(step, {init}, {seqs}, axis={recipe.axis}, reverse={recipe.reverse}, "
                 f"checkpoint={recipe.checkpoint})")
    lines.append(f"# T = {recipe.length}; loss = sum(final_i * wf_i) + sum(ys_j * wy_j); "
                 f"simplify={recipe.simplify}, check_shapes={recipe.check_shapes}")
    return lines


def report(recipe: Recipe, outcome: Outcome) -> str:
    lines = [f"seed {recipe.seed}:"] + [f"    {line}" for line in code(recipe)]
    lines += [f"  ! {problem}" for problem in outcome.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=200, help="how many seeds to run (default 200)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--lines", type=int, help="ops in each step body (default: 1 to 5 at random)")
    parser.add_argument("--show", action="store_true", help="print each recipe's code")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.scans)
    failures = unsmooth = degenerate = compared = 0
    started = time.perf_counter()
    for seed in seeds:
        recipe = random_recipe(seed, args.lines)
        outcome = check_recipe(recipe)
        if outcome.problems or args.show:
            print(report(recipe, outcome), flush=True)
        failures += bool(outcome.problems)
        unsmooth += bool(outcome.unsmooth)
        degenerate += outcome.degenerate
        compared += outcome.compared
    print(f"{len(seeds)} scans in {time.perf_counter() - started:.0f} s: {failures} failed, {degenerate} overflowed "
          f"(not compared), {unsmooth} on a kink for some leaf; {compared} gradients compared with central differences")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
