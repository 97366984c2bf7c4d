"""Random graphs over every op, differentiated by graphcomp and checked against central differences.

A seeded generator builds a DAG (fan-out, broadcasting, keepdims, reshapes, slicing, the softmax
family, losses, convolutions, named values and extra outputs), writing down the Python lines
that build it. With `new_ops=True` (the suite's run and the command line's), a second generator seeded
from the seed inserts the ops added since: take on integer ids (gc.embedding, integer labels of a
cross-entropy, gc.linear), layer norm, batch norm (compared in training mode: gradients() and central
differences of forward(training=True); forward() on running statistics compared between the two
modules), GELU in both forms, the causal mask before a softmax, attention. Seeds where it inserts
nothing build what they always built; where it does, the old graph plus the new ops. A third generator,
seeded apart again, inserts the elementwise functions added after those (sin, cos, tan, arcsin, arctan, sinh,
cosh, log1p, expm1, square, comparisons, where, clip), each on values in its domain: the graphs of the first
two stay as they were. Each graph is compiled with and without simplification; both modules must load,
agree with each other on every output and gradient, and agree with central differences in
float64 wherever those are trustworthy (two step sizes agree: the point is not on a kink).

The test suite runs a few hundred graphs (tests/test_random_graphs.py). The longer run:

    python tests/random_graphs.py --graphs 2000            # seeds 0..1999
    python tests/random_graphs.py --graphs 2000 --old-ops  # the same seeds without the new ops
    python tests/random_graphs.py --seed 1234 --show       # one graph: its code and its check

Every failure it finds becomes a named test in tests/test_regressions.py.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import graphcomp as gc  # noqa: E402 - after the path set-up, for `python tests/random_graphs.py`
from graphcomp.diff.gradcheck import numeric_gradient, relative_error  # noqa: E402
from graphcomp.ir import toposort  # noqa: E402

BATCH = 2
SHAPES = [(), (3,), (4,), (2, 3), (3, 3), (None, 3), (None, 1), (1, 3), (3, 1), (None, 2, 3)]
IMAGES = [(None, 1, 5, 5), (2, 2, 4, 4)]
TOLERANCE = 1e-5      # relative error of a gradient against central differences
AGREEMENT = 1e-8      # relative difference between the simplified and the literal module
COMPILE_BUDGET = 5.0  # seconds to compile one graph, both ways (the long run reports the slowest)


@dataclass
class Case:
    """One random graph: how to rebuild it (`code`), the arrays to check it at, the leaves to differentiate."""

    seed: int
    graph: gc.Graph
    code: list[str]
    arrays: dict[str, np.ndarray]
    wrt: list[str]

    @property
    def size(self) -> int:
        return len(self.graph.nodes())


@dataclass
class Entry:
    node: gc.Node
    text: str  # the Python expression that names it in `code`


@dataclass
class _Stream:
    """Where a builder draws from: its generator, the values it picks operands from, the values it built,
    and the prefixes of what it names (variables, names in the graph, leaves)."""

    r: random.Random
    pool: list[Entry]
    own: list[Entry]
    value: str
    named: str
    leaf: str
    leaves: int = 0


class _Builder:
    """Grows one graph at random; every node it adds is also a line of `code`.

    The ops of the first generator (`r`, seeded with the seed) are drawn as they always were. The ops added
    since (integer ids, take, normalisation, GELU, the causal mask, attention) come from a second
    generator (`new`), which decides where to insert them and draws everything they need: their values
    read the old ones, the old ones never read theirs, and the loss adds their terms after the old terms.
    So a seed builds the graph it always built, plus the new ops where the second generator put them."""

    def __init__(self, seed: int) -> None:
        values: list[Entry] = []
        self.old = _Stream(random.Random(seed), values, values, "n", "h", "x")
        self.every: list[Entry] = []  # every value built, old and new, in order: what new ops pick from
        self.new = _Stream(random.Random(f"new ops {seed}"), self.every, [], "m", "k", "z")
        # the elementwise functions: a third generator, whose values only it reads (so `every` stays as it was)
        self.anything: list[Entry] = []
        self.third = _Stream(random.Random(f"elementwise ops {seed}"), self.anything, [], "e", "q", "w")
        self.third_leaves: set[str] = set()
        self.derivatives: frozenset = frozenset()  # the third generator's second derivatives (ids of their nodes)
        self.s = self.old
        self.g = gc.Graph(f"random{seed}")
        self.code = [f'g = gc.Graph("random{seed}")']
        self.data: dict[str, Callable[[np.random.Generator, tuple], np.ndarray]] = {}
        self.no_gradient: set[str] = set()
        self.new_leaves: set[str] = set()
        self.rows: dict[str, int] = {}  # integer input -> how many rows its ids may pick
        self.every_ids: list[Entry] = []
        self.serial = itertools.count()  # numbers the names of layers and batch norms

    @property
    def r(self) -> random.Random:
        return self.s.r

    @property
    def pool(self) -> list[Entry]:
        return self.s.pool

    @contextlib.contextmanager
    def drawing_new(self, stream: _Stream | None = None):
        """Build with the second generator (or `stream`, the third), picking from every value."""
        self.s = stream or self.new
        try:
            yield
        finally:
            self.s = self.old

    # ---- leaves and values ----------------------------------------------
    def leaf(self, shape: tuple, data: str = "normal", classes: int = 0) -> Entry:
        name = f"{self.s.leaf}{self.s.leaves}"  # counted once declared: a shape refused leaves the name free
        param = None not in shape and data == "normal" and self.r.random() < 0.3
        if param:
            node = self.g.param(name, shape)
            self.code.append(f'{name} = g.param("{name}", {shape!r})')
        else:
            node = self.g.input(name, shape=shape)
            self.code.append(f'{name} = g.input("{name}", shape={shape!r})')
        self.s.leaves += 1
        if self.s is self.new:
            self.new_leaves.add(name)
        elif self.s is self.third:
            self.third_leaves.add(name)
        self.data[name] = {
            "normal": lambda rng, s: rng.normal(size=s),
            "unit": lambda rng, s: rng.uniform(0.05, 0.95, size=s),
            "labels": lambda rng, s: rng.integers(0, classes, size=s).astype(float),
        }[data]
        if data == "labels":
            self.no_gradient.add(name)
        return Entry(node, name)

    def like_leaf(self, shape: tuple) -> Entry:
        """A value already built of `shape` (fan-out), or a new leaf of it."""
        same = [e for e in self.pool if e.node.shape == shape]
        if same and self.r.random() < 0.4:
            return self.r.choice(same)
        return self.leaf(shape)

    def ids(self, shape: tuple, rows: int) -> Entry:
        """An integer input of ids, drawn below the fewest rows any of its uses picks from."""
        name = f"ids{len(self.rows)}"
        self.new_leaves.add(name)
        node = self.g.input(name, shape=shape, dtype="int64")
        self.code.append(f'{name} = g.input("{name}", shape={shape!r}, dtype="int64")')
        self.rows[name] = rows
        self.data[name] = lambda rng, s: rng.integers(0, self.rows[name], size=s)
        self.no_gradient.add(name)
        return Entry(node, name)

    def add(self, node: gc.Node, text: str) -> Entry:
        k = len(self.s.own)
        var = f"{self.s.value}{k}"
        if self.r.random() < 0.12:
            try:
                self.g.let(f"{self.s.named}{k}", node)
                text = f'g.let("{self.s.named}{k}", {text})'
            except gc.GraphError:  # already named (the same value was built before): leave it
                pass
        self.code.append(f"{var} = {text}")
        entry = Entry(node, var)
        self.s.own.append(entry)
        if self.s is not self.third:
            self.every.append(entry)
        self.anything.append(entry)
        return entry

    def pick(self, ndim_at_least: int = 0) -> Entry:
        choices = [e for e in self.pool if e.node.ndim >= ndim_at_least]
        if not choices:
            raise gc.ShapeError("no value of that rank yet")
        if self.r.random() < 0.6:
            return self.r.choice(choices[-3:])
        return self.r.choice(choices)

    def axis(self, node: gc.Node):
        """A random axis argument for a reduction: None, an int (maybe negative), or a tuple."""
        if node.ndim == 0 or self.r.random() < 0.3:
            return None
        axes = list(range(node.ndim))
        if node.ndim > 1 and self.r.random() < 0.25:
            return tuple(sorted(self.r.sample(axes, 2)))
        a = self.r.choice(axes)
        return a - node.ndim if self.r.random() < 0.3 else a

    def like(self, node: gc.Node, data: str = "normal") -> Entry:
        """An existing value of the same shape (fan-out), or a new leaf of that shape."""
        same = [e for e in self.pool if e.node.shape == node.shape and e.node is not node]
        if same and data == "normal" and self.r.random() < 0.5:
            return self.r.choice(same)
        return self.leaf(node.shape, data)

    # ---- building ---------------------------------------------------------
    def step(self) -> None:
        make = self.r.choices([m for m, _ in MAKERS], weights=[w for _, w in MAKERS])[0]
        for _ in range(8):  # operands that do not fit (a ShapeError) are drawn again
            try:
                node, text = make(self)
            except gc.GraphcompError:
                continue
            self.add(node, text)
            return

    def new_step(self) -> None:
        """One new op where the second generator says so (or, now and then, an old op on a new value:
        reductions, reshapes, second derivatives of what the new ops built)."""
        with self.drawing_new():
            if self.new.own and self.r.random() < 0.3:
                self.step()
                return
            make = self.r.choices([m for m, _ in NEW_MAKERS], weights=[w for _, w in NEW_MAKERS])[0]
            for _ in range(8):
                try:
                    node, text = make(self)
                except gc.GraphcompError:
                    continue
                self.add(node, text)
                if self.r.random() < 0.25:  # and its second derivative
                    try:
                        self.add(*_second_order_new(self))
                    except gc.GraphcompError:
                        pass
                return

    def elementwise_step(self) -> None:
        """One elementwise function where the third generator says so, now and then with a second derivative."""
        with self.drawing_new(self.third):
            make = self.r.choices([m for m, _ in ELEMENTWISE_MAKERS], weights=[w for _, w in ELEMENTWISE_MAKERS])[0]
            for _ in range(8):
                try:
                    node, text = make(self)
                except gc.GraphcompError:
                    continue
                self.add(node, text)
                if self.r.random() < 0.2:  # not through a derivative: a third derivative's graph is many times larger
                    try:
                        self.derivatives |= {id(self.add(*_second_order_of(self, self.third, self.derivatives)).node)}
                    except gc.GraphcompError:
                        pass
                return

    def loss(self) -> None:
        """Every value nothing else reads, reduced to a scalar and added up: all of them feed the loss. The
        old values' terms first, as they always were, then the new values' terms, drawn by their generator."""
        terms, texts = self._terms(self.old.own, set())
        with self.drawing_new():
            more, more_texts = self._terms(self.new.own, {id(t) for t in terms})
        terms, texts = terms + more, texts + more_texts
        with self.drawing_new(self.third):
            more, more_texts = self._terms(self.third.own, {id(t) for t in terms})
        terms, texts = terms + more, texts + more_texts
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        self.g.output("loss", total)
        self.code.append(f'g.output("loss", {" + ".join(texts)})')
        outputs = [e for e in self.pool if e.node.ndim and e.node is not total]
        if outputs and self.r.random() < 0.3:
            extra = self.r.choice(outputs)
            try:
                self.g.output("extra", extra.node)
                self.code.append(f'g.output("extra", {extra.text})')
            except gc.GraphError:
                pass

    def _terms(self, values: list[Entry], taken: set[int]) -> tuple[list, list]:
        """The loss terms of the values of `values` that no other of them reads (and that are not already
        a term: `taken`, by identity), with the Python that writes each."""
        read = {x for e in values for x in toposort([e.node]) if x is not e.node}
        sinks = [e for e in values if e.node not in read and not e.node.is_leaf and id(e.node) not in taken]
        sinks = list({id(e.node): e for e in sinks}.values())
        terms, texts = [], []
        for e in sinks:
            kind = self.r.choice(["sum", "mean", "square", "weighted"]) if e.node.ndim else "itself"
            if kind == "weighted" and None in e.node.shape[1:]:  # no leaf can have that shape
                kind = "sum"
            if kind == "itself":
                terms.append(e.node), texts.append(e.text)
            elif kind == "sum":
                terms.append(gc.sum(e.node)), texts.append(f"gc.sum({e.text})")
            elif kind == "mean":
                terms.append(gc.mean(e.node)), texts.append(f"gc.mean({e.text})")
            elif kind == "square":
                terms.append(gc.sum(e.node * e.node)), texts.append(f"gc.sum({e.text} * {e.text})")
            else:
                w = self.leaf(e.node.shape)
                terms.append(gc.sum(e.node * w.node)), texts.append(f"gc.sum({e.text} * {w.text})")
        return terms, texts


def _call(template: str, function: Callable, *entries: Entry) -> tuple[gc.Node, str]:
    return function(*(e.node for e in entries)), template.format(*(e.text for e in entries))


def _unary(template: str, function: Callable) -> Callable[[_Builder], tuple]:
    return lambda b: _call(template, function, b.pick())


def _binary(template: str, function: Callable) -> Callable[[_Builder], tuple]:
    return lambda b: _call(template, function, b.pick(), b.pick())


def _reduction(b: _Builder) -> tuple:
    name = b.r.choice(["sum", "mean", "max", "min"])
    x = b.pick(1)
    axis, keepdims = b.axis(x.node), b.r.random() < 0.4
    node = getattr(gc, name)(x.node, axis=axis, keepdims=keepdims)
    return node, f"gc.{name}({x.text}, axis={axis!r}, keepdims={keepdims})"


def _matmul(b: _Builder) -> tuple:
    a = b.pick(1)
    n = a.node.shape[-1]
    if n is None:
        raise gc.ShapeError("contracting the batch axis")
    kind = b.r.choice(["matrix", "vector", "left", "pool"])
    if kind == "matrix":
        w = b.leaf((n, b.r.choice([1, 2, 3])))
        return _call("{0} @ {1}", lambda x, y: x @ y, a, w)
    if kind == "vector":
        w = b.leaf((n,))
        return _call("{0} @ {1}", lambda x, y: x @ y, a, w)
    if kind == "left":
        m = a.node.shape[-2] if a.node.ndim >= 2 else a.node.shape[0]
        if m is None:
            raise gc.ShapeError("contracting the batch axis")
        w = b.leaf((b.r.choice([2, 3]), m) if b.r.random() < 0.7 else (m,))
        return _call("gc.matmul({0}, {1})", gc.matmul, w, a)
    return _call("{0} @ {1}", lambda x, y: x @ y, a, b.pick(1))


def _transpose(b: _Builder) -> tuple:
    x = b.pick(2)
    if b.r.random() < 0.5:
        return _call("gc.transpose({0})", gc.transpose, x)
    axes = list(range(x.node.ndim))
    b.r.shuffle(axes)
    return _call(f"gc.transpose({{0}}, {tuple(axes)!r})", lambda v: gc.transpose(v, tuple(axes)), x)


def _reshape(b: _Builder) -> tuple:
    x = b.pick(1)
    shape = x.node.shape
    if None in shape[1:]:
        raise gc.ShapeError("the batch axis has moved")
    if shape[0] is None:
        rest = int(np.prod(shape[1:], dtype=int))
        target = b.r.choice([(None, rest), (None, rest, 1), (None, 1, rest)])
    else:
        size = int(np.prod(shape, dtype=int))
        target = b.r.choice([(size,), (-1,), (1, size), (size, 1)] + ([(2, size // 2)] if size % 2 == 0 else []))
    return _call(f"gc.reshape({{0}}, {target!r})", lambda v: gc.reshape(v, target), x)


def _slice(b: _Builder) -> tuple:
    x = b.pick(1)
    axes = [a for a, d in enumerate(x.node.shape) if d is not None and d > 1]
    if not axes:
        raise gc.ShapeError("nothing to slice")
    axis = b.r.choice(axes)
    d = x.node.shape[axis]
    part = b.r.choice([f"1:{d}", "0", f"{d - 1}", "::2", f"0:{d - 1}"])
    index = ", ".join([":"] * axis + [part])
    key = tuple([slice(None)] * axis + [_parse_part(part)])
    return _call(f"{{0}}[{index}]", lambda v: v[key], x)


def _parse_part(part: str):
    if ":" not in part:
        return int(part)
    bits = [int(p) if p else None for p in part.split(":")]
    return slice(*bits)


def _concat(b: _Builder) -> tuple:
    x = b.pick(1)
    axes = [a for a, d in enumerate(x.node.shape) if d is not None]
    if not axes:
        raise gc.ShapeError("only a batch axis")
    axis = b.r.choice(axes)
    other = b.like(x.node)
    return _call(f"gc.concat([{{0}}, {{1}}, {{0}}], axis={axis})", lambda u, v: gc.concat([u, v, u], axis=axis), x, other)


def _softmax_family(b: _Builder) -> tuple:
    x = b.pick(1)
    axis = b.r.choice(range(x.node.ndim)) - (x.node.ndim if b.r.random() < 0.5 else 0)
    kind = b.r.choice(["softmax", "log_softmax", "logsumexp", "logsumexp keep", "log softmax", "log sum exp",
                       "softmax typed", "cross-entropy typed"])
    if kind == "logsumexp keep":
        return _call(f"gc.logsumexp({{0}}, axis={axis}, keepdims=True)", lambda v: gc.logsumexp(v, axis, True), x)
    if kind == "log softmax":
        return _call(f"gc.log(gc.softmax({{0}}, axis={axis}))", lambda v: gc.log(gc.softmax(v, axis)), x)
    if kind == "log sum exp":
        return _call(f"gc.log(gc.sum(gc.exp({{0}}), axis={axis}))", lambda v: gc.log(gc.sum(gc.exp(v), axis=axis)), x)
    if kind == "softmax typed":
        return _call(f"gc.exp({{0}}) / gc.sum(gc.exp({{0}}), axis={axis}, keepdims=True)",
                     lambda v: gc.exp(v) / gc.sum(gc.exp(v), axis=axis, keepdims=True), x)
    if kind == "cross-entropy typed":
        y = b.like(x.node, "unit")
        return _call(f"-gc.sum({{1}} * gc.log_softmax({{0}}, axis={axis}), axis={axis})",
                     lambda v, t: -gc.sum(t * gc.log_softmax(v, axis), axis=axis), x, y)
    return _call(f"gc.{kind}({{0}}, axis={axis})", lambda v: getattr(gc, kind)(v, axis=axis), x)


def _loss(b: _Builder) -> tuple:
    x = b.pick(1)
    kind = b.r.choice(["mse", "bce", "bce logits", "softmax ce", "softmax ce labels", "nll labels"])
    if kind == "mse":
        return _call("gc.mse({0}, {1})", gc.mse, x, b.like(x.node))
    if kind == "bce":
        return _call("gc.binary_cross_entropy(gc.sigmoid({0}), {1})",
                     lambda v, t: gc.binary_cross_entropy(gc.sigmoid(v), t), x, b.like(x.node, "unit"))
    if kind == "bce logits":
        return _call("gc.binary_cross_entropy_with_logits({0}, {1})", gc.binary_cross_entropy_with_logits,
                     x, b.like(x.node, "unit"))
    if kind == "softmax ce":
        return _call("gc.softmax_cross_entropy({0}, {1})", gc.softmax_cross_entropy, x, b.like(x.node, "unit"))
    classes = x.node.shape[-1]
    if classes is None:
        raise gc.ShapeError("classes along the batch axis")
    labels = b.leaf(x.node.shape[:-1], "labels", classes)
    if kind == "nll labels":
        return _call("gc.nll(gc.log_softmax({0}), {1})", lambda v, t: gc.nll(gc.log_softmax(v), t), x, labels)
    return _call("gc.softmax_cross_entropy({0}, {1})", gc.softmax_cross_entropy, x, labels)


def _conv(b: _Builder) -> tuple:
    images = [e for e in b.pool if e.node.ndim == 4]
    x = b.r.choice(images) if images and b.r.random() < 0.7 else b.leaf(b.r.choice(IMAGES))
    if b.r.random() < 0.4:
        return _call("gc.max_pool2d({0}, size=2, stride=2)", lambda v: gc.max_pool2d(v, 2, 2), x)
    channels = x.node.shape[1]
    w = b.leaf((b.r.choice([1, 2]), channels, 2, 2))
    bias = b.leaf((w.node.shape[0],))
    stride, padding = b.r.choice([1, 2]), b.r.choice([0, 1])
    return _call(f"gc.conv2d({{0}}, {{1}}, {{2}}, stride={stride}, padding={padding})",
                 lambda v, k, c: gc.conv2d(v, k, c, stride=stride, padding=padding), x, w, bias)


def _second_order(b: _Builder) -> tuple:
    x = b.pick(1)
    leaves = [leaf for leaf in toposort([x.node])
              if leaf.op in ("input", "param") and leaf.name not in b.no_gradient]
    if not leaves:
        raise gc.ShapeError("no leaf to differentiate")
    leaf = b.r.choice(leaves)
    return _call(f"gc.grad(gc.sum({{0}} * {{0}}), [{leaf.name}])[0]",
                 lambda v: gc.grad(gc.sum(v * v), [leaf])[0], x)


def _elementwise_of_pool(b: _Builder) -> tuple:
    """A binary op of two values already built: fan-out and broadcasting."""
    template, function = b.r.choice(BINARY)
    return _call(template, function, b.pick(), b.pick())


UNARY = [
    ("gc.exp({0})", gc.exp), ("gc.tanh({0})", gc.tanh), ("gc.sigmoid({0})", gc.sigmoid),
    ("gc.relu({0})", gc.relu), ("gc.leaky_relu({0}, slope=0.1)", lambda v: gc.leaky_relu(v, 0.1)),
    ("gc.softplus({0})", gc.softplus), ("gc.abs({0})", gc.abs), ("-{0}", lambda v: -v),
    ("{0} ** 2", lambda v: v ** 2), ("{0} ** 3", lambda v: v ** 3), ("0.5 * {0}", lambda v: 0.5 * v),
    ("1 - {0}", lambda v: 1 - v), ("{0} + 1", lambda v: v + 1),
    ("gc.log({0} * {0} + 0.5)", lambda v: gc.log(v * v + 0.5)),
    ("gc.sqrt({0} * {0} + 0.25)", lambda v: gc.sqrt(v * v + 0.25)),
    ("1 / ({0} * {0} + 1)", lambda v: 1 / (v * v + 1)),
    ("1 / (1 + gc.exp(-{0}))", lambda v: 1 / (1 + gc.exp(-v))),
    ("(gc.exp(2 * {0}) - 1) / (gc.exp(2 * {0}) + 1)", lambda v: (gc.exp(2 * v) - 1) / (gc.exp(2 * v) + 1)),
    ("gc.log(1 + gc.exp({0}))", lambda v: gc.log(1 + gc.exp(v))),
    ("gc.log(gc.sigmoid({0}))", lambda v: gc.log(gc.sigmoid(v))),
    ("gc.log(1 - gc.sigmoid({0}))", lambda v: gc.log(1 - gc.sigmoid(v))),
    ("gc.log(gc.exp({0}))", lambda v: gc.log(gc.exp(v))),
    ("gc.dropout({0}, 0.5)", lambda v: gc.dropout(v, 0.5)),
    ("{0} - {0}", lambda v: v - v), ("gc.exp({0} - {0})", lambda v: gc.exp(v - v)),
]
BINARY = [
    ("{0} + {1}", lambda u, v: u + v), ("{0} - {1}", lambda u, v: u - v), ("{0} * {1}", lambda u, v: u * v),
    ("{0} / ({1} * {1} + 0.5)", lambda u, v: u / (v * v + 0.5)),
    ("gc.maximum({0}, {1})", gc.maximum), ("gc.minimum({0}, {1})", gc.minimum),
    ("({0} * {0} + 0.5) ** {1}", lambda u, v: (u * u + 0.5) ** v),
    ("gc.minimum({1}, gc.maximum(-{1}, {0}))", lambda u, v: gc.minimum(v, gc.maximum(-v, u))),
]
MAKERS: list[tuple[Callable[[_Builder], tuple], float]] = [
    *[(_unary(t, f), 1.0) for t, f in UNARY],
    (_elementwise_of_pool, 12.0), (_reduction, 5.0), (_matmul, 5.0), (_transpose, 1.5), (_reshape, 2.0),
    (_slice, 2.0), (_concat, 1.5), (_softmax_family, 4.0), (_loss, 2.0), (_conv, 1.0), (_second_order, 0.7),
]


# ---------------------------------------------------------------- the new ops (the second generator)

TABLES = [(4,), (4, 3), (5, 2), (3, 2, 2)]
IDS = [(None,), (None, 2), (3,), (2, 2), ()]
SQUARES = [(3, 3), (None, 3, 3), (2, 2, 2), (None, 2, 4, 4)]
QUERIES = [(3, 2), (None, 3, 2), (None, 2, 3, 2), (2, 4, 3)]


def _fitting(b: _Builder, fits: Callable[[tuple], bool], shapes: list[tuple]) -> Entry:
    """A value already built whose shape `fits` (recent ones first, as `pick`), or a new leaf."""
    choices = [e for e in b.pool if fits(e.node.shape)]
    if choices and b.r.random() < 0.6:
        return b.r.choice(choices[-3:]) if b.r.random() < 0.6 else b.r.choice(choices)
    return b.leaf(b.r.choice([s for s in shapes if fits(s)]))


def _ids_for(b: _Builder, shape_choices: list[tuple], rows: int) -> Entry:
    """Integer ids below `rows`: an integer input already declared (its bound lowered to `rows`), now and
    then a slice of one, or a new one."""
    known = [e for e in b.every_ids if e.node.shape in shape_choices or e.node.ndim == 2]
    if known and b.r.random() < 0.5:
        ids = b.r.choice(known)
        b.rows[ids.text] = min(rows, b.rows[ids.text])
        sliced = ids.node.ndim == 2 and (ids.node.shape[0],) in shape_choices
        if ids.node.shape in shape_choices and not (sliced and b.r.random() < 0.5):
            return ids
        if sliced:
            column = b.r.choice([0, 1])
            return Entry(ids.node[:, column], f"{ids.text}[:, {column}]")
    shape = b.r.choice(shape_choices)
    if shape == (None,) and b.r.random() < 0.3:  # a column of (N, 2) ids: ids read through a view
        ids = b.ids((None, 2), rows)
        b.every_ids.append(ids)
        return Entry(ids.node[:, 1], f"{ids.text}[:, 1]")
    ids = b.ids(shape, rows)
    b.every_ids.append(ids)
    return ids


def _take(b: _Builder) -> tuple:
    """Rows of a table picked by integer ids: a leaf, a computed value, or gc.embedding's own table."""
    kind = b.r.choice(["table", "table", "embedding"])
    if kind == "embedding":
        vocab, dim = b.r.choice([3, 5]), b.r.choice([1, 2])
        ids = _ids_for(b, IDS, vocab)
        name = f"emb{next(b.serial)}"
        node = gc.embedding(b.g, ids.node, vocab, dim, name=name)
        b.data[f"{name}_weight"] = lambda rng, s: rng.normal(size=s)
        b.new_leaves.add(f"{name}_weight")
        return node, f'gc.embedding(g, {ids.text}, {vocab}, {dim}, name="{name}")'
    table = _fitting(b, lambda s: len(s) >= 1 and isinstance(s[0], int) and s[0] > 1, TABLES)
    ids = _ids_for(b, IDS, table.node.shape[0])
    return _call("gc.take({0}, {1})", gc.take, table, ids)


def _labels(b: _Builder) -> tuple:
    """Cross-entropy against integer labels (an int64 input), and gc.linear's logits now and then."""
    x = b.pick(1)
    if b.r.random() < 0.4 and isinstance(x.node.shape[-1], int):
        out, name = b.r.choice([2, 3]), f"linear{next(b.serial)}"
        for suffix in ("weight", "bias"):
            b.data[f"{name}_{suffix}"] = lambda rng, s: rng.normal(size=s)
            b.new_leaves.add(f"{name}_{suffix}")
        x = Entry(gc.linear(b.g, x.node, out, name=name), f'gc.linear(g, {x.text}, {out}, name="{name}")')
    classes = x.node.shape[-1]
    if not isinstance(classes, int) or classes < 2:
        raise gc.ShapeError("classes along the batch axis, or one class")
    labels = _ids_for(b, [x.node.shape[:-1]], classes)
    return _call("gc.softmax_cross_entropy({0}, {1})", gc.softmax_cross_entropy, x, labels)


def _layer_norm(b: _Builder) -> tuple:
    x = b.pick(1)
    shape = x.node.shape
    axes = [a for a in range(len(shape)) if None not in shape[a:] and int(np.prod(shape[a:], dtype=int)) > 1]
    if not axes:
        raise gc.ShapeError("no trailing axes of two or more values")
    axis = b.r.choice(axes)
    axis -= len(shape) if b.r.random() < 0.5 else 0
    gamma, beta = b.like_leaf(shape[axis:]), b.like_leaf(shape[axis:])
    eps = b.r.choice([1e-5, 1e-3])
    return _bent(b, *_call(f"gc.layer_norm({{0}}, {{1}}, {{2}}, axis={axis}, eps={eps})",
                           lambda v, c, d: gc.layer_norm(v, c, d, axis=axis, eps=eps), x, gamma, beta))


def _bent(b: _Builder, node: gc.Node, text: str) -> tuple:
    """A normalised value, now and then bent or weighted: the loss's sum, mean or square of x̂ hardly
    depends on x (Σ x̂ = 0, Σ x̂² ≈ M), so x's gradient there is too small for central differences to check."""
    kind = b.r.choice(["as is", "tanh", "tanh", "weighted"])
    if kind == "tanh":
        return gc.tanh(node), f"gc.tanh({text})"
    if kind == "weighted":
        w = b.leaf(node.shape)
        return node * w.node, f"{text} * {w.text}"
    return node, text


def _statistic_of_three(shape: tuple) -> bool:
    """Batch norm's statistics over three or more values per channel: over two (a batch of BATCH = 2),
    x̂ is ±1 whatever x is, and the gradients left are rounding noise that central differences cannot check."""
    return (len(shape) >= 2 and isinstance(shape[-1], int) and None not in shape[1:]
            and int(np.prod([BATCH if d is None else d for d in shape[:-1]])) >= 3)


def _batch_norm(b: _Builder) -> tuple:
    x = _fitting(b, _statistic_of_three, [(None, 2, 3), (4, 3), (None, 3, 2)])
    shape = x.node.shape
    # statistics over the batch axis 0 and every later axis but the channels: with the batch axis further in
    # they are one per leading index and channel, which running statistics of shape (C,) cannot hold
    axis = 0
    gamma, beta = b.like_leaf(shape[-1:]), b.like_leaf(shape[-1:])
    momentum, name = b.r.choice([0.1, 0.5]), f"bn{next(b.serial)}"
    return _bent(b, *_call(f'gc.batch_norm({{0}}, {{1}}, {{2}}, axis={axis}, momentum={momentum}, name="{name}")',
                           lambda v, c, d: gc.batch_norm(v, c, d, axis=axis, momentum=momentum, name=name),
                           x, gamma, beta))


def _gelu(b: _Builder) -> tuple:
    if b.r.random() < 0.5:
        return _call("gc.gelu({0})", gc.gelu, b.pick())
    return _call('gc.gelu({0}, approximate="none")', lambda v: gc.gelu(v, approximate="none"), b.pick())


def _causal_softmax(b: _Builder) -> tuple:
    """Scores with their future masked, then a softmax (over the keys; over the queries now and then)."""
    x = _fitting(b, lambda s: len(s) >= 2 and isinstance(s[-1], int) and s[-1] == s[-2], SQUARES)
    axis = -1 if b.r.random() < 0.8 else -2
    return _call(f"gc.softmax(gc.causal_mask({{0}}), axis={axis})", lambda v: gc.softmax(gc.causal_mask(v), axis), x)


def _attention(b: _Builder) -> tuple:
    """softmax(q kᵀ/√d) v over a few leading axes, causal or not (then keys may outnumber queries)."""
    q = _fitting(b, lambda s: len(s) >= 2 and isinstance(s[-1], int) and isinstance(s[-2], int), QUERIES)
    causal = b.r.random() < 0.6
    keys = q.node.shape[-2] if causal else b.r.choice([q.node.shape[-2], 2])
    k = b.like_leaf(q.node.shape[:-2] + (keys, q.node.shape[-1]))
    v = b.like_leaf(k.node.shape[:-1] + (b.r.choice([1, 2]),))
    return _call(f"gc.attention({{0}}, {{1}}, {{2}}, causal={causal})",
                 lambda x, y, z: gc.attention(x, y, z, causal=causal), q, k, v)


def _second_order_new(b: _Builder) -> tuple:
    """A second derivative through a new op: the gradient of Σ v², v one of the new values."""
    return _second_order_of(b, b.new)


def _second_order_of(b: _Builder, stream: _Stream, skip: frozenset = frozenset()) -> tuple:
    """A second derivative through a value `stream` built, but not through those in `skip`."""
    pool, stream.pool = stream.pool, [e for e in stream.own if id(e.node) not in skip]
    try:
        return _second_order(b)
    finally:
        stream.pool = pool


NEW_MAKERS: list[tuple[Callable[[_Builder], tuple], float]] = [
    (_take, 2.0), (_labels, 1.0), (_layer_norm, 2.0), (_batch_norm, 2.0), (_gelu, 1.5), (_causal_softmax, 1.5),
    (_attention, 2.0),
]  # each followed now and then by a second derivative through it (_second_order_new)


NEW_OPS = 0.08  # the chance, before each step, that the second generator inserts a new op


# ---------------------------------------------------------------- the elementwise functions (the third generator)

def _in_domain(b: _Builder, v: Entry, name: str) -> tuple[gc.Node, str]:
    """v brought into the domain of `name` (and, for tan, away from its poles) where needed."""
    if name == "arcsin":
        return 0.9 * gc.tanh(v.node), f"0.9 * gc.tanh({v.text})"
    if name == "tan":
        return gc.tanh(v.node), f"gc.tanh({v.text})"
    if name == "log1p":
        inner = b.r.choice(["abs", "softplus"])
        return getattr(gc, inner)(v.node), f"gc.{inner}({v.text})"
    return v.node, v.text


def _function(b: _Builder) -> tuple:
    name = b.r.choice(["sin", "cos", "tan", "arcsin", "arctan", "sinh", "cosh", "log1p", "expm1", "square"])
    node, text = _in_domain(b, b.pick(), name)
    return getattr(gc, name)(node), f"gc.{name}({text})"


COMPARISONS = {">": lambda p, q: p > q, "<": lambda p, q: p < q, ">=": lambda p, q: p >= q, "<=": lambda p, q: p <= q}


def _condition(b: _Builder) -> tuple[gc.Node, str]:
    """A comparison of two values, or of a value and a number; now and then a value itself (true where not 0)."""
    u = b.pick()
    kind = b.r.choice(["values", "number", "number", "value"])
    if kind == "value":
        return u.node, u.text
    relation = b.r.choice(list(COMPARISONS))
    if kind == "number":
        number = b.r.choice([0, 0.5, -0.25])
        return COMPARISONS[relation](u.node, number), f"{u.text} {relation} {number}"
    v = b.pick()
    return COMPARISONS[relation](u.node, v.node), f"{u.text} {relation} {v.text}"


def _where(b: _Builder) -> tuple:
    condition, text = _condition(b)
    a = b.pick()
    if b.r.random() < 0.3:
        number = b.r.choice([0, 1.5])
        return gc.where(condition, a.node, number), f"gc.where({text}, {a.text}, {number})"
    c = b.pick()
    return gc.where(condition, a.node, c.node), f"gc.where({text}, {a.text}, {c.text})"


def _clip(b: _Builder) -> tuple:
    lo, hi = b.r.choice([-1.0, -0.5, 0.0, None]), b.r.choice([0.5, 1.0, None])
    if lo is None and hi is None:
        hi = 1.0
    return _call(f"gc.clip({{0}}, {lo}, {hi})", lambda v: gc.clip(v, lo, hi), b.pick())


def _mask(b: _Builder) -> tuple:
    """A comparison's 0/1 mask times a value."""
    condition, text = _condition(b)
    if condition.op != "compare":  # a value is no mask of its own: compare it
        condition, text = condition > 0, f"{text} > 0"
    v = b.pick()
    return condition * v.node, f"({text}) * {v.text}"


ELEMENTWISE_MAKERS: list[tuple[Callable[[_Builder], tuple], float]] = [
    (_function, 5.0), (_where, 2.0), (_clip, 1.5), (_mask, 1.0),
]
ELEMENTWISE_OPS = 0.12  # the chance, before each step, that the third generator inserts one


def random_case(seed: int, steps: int | None = None, new_ops: bool = False, elementwise: bool | None = None) -> Case:
    """The random graph of `seed`: 1 to 3 leaves, then `steps` ops (2 to 12 by default). With `new_ops`,
    before each step, now and then, one of the ops added since (drawn by the second generator): the graph
    is then the one `new_ops=False` builds, the same lines and the same arrays, plus the new ops and
    their loss terms. `elementwise` (by default as `new_ops`) lets the third generator insert the elementwise
    functions too."""
    elementwise = new_ops if elementwise is None else elementwise
    b = _Builder(seed)
    for _ in range(b.r.randint(1, 3)):
        first = b.leaf(b.r.choice(SHAPES))
        b.old.own.append(first), b.every.append(first), b.anything.append(first)
    for _ in range(b.r.randint(2, 12) if steps is None else steps):
        if new_ops and b.new.r.random() < NEW_OPS:
            b.new_step()
        if elementwise and b.third.r.random() < ELEMENTWISE_OPS:
            b.elementwise_step()
        b.step()
    if all(e.node.is_leaf for e in b.pool):
        b.add(*_call("gc.tanh({0})", gc.tanh, b.pool[0]))
    b.loss()
    rng, new_rng, third_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1]), np.random.default_rng([seed, 3])
    arrays = {}
    for name, leaf in b.g.leaves.items():
        shape = tuple(BATCH if d is None else d for d in leaf.shape)
        value = b.data[name](new_rng if name in b.new_leaves else third_rng if name in b.third_leaves else rng, shape)
        arrays[name] = value if name in b.rows else np.asarray(value, dtype=np.float64)
    wrt = [name for name in b.g.leaves if name not in b.no_gradient]
    return Case(seed, b.g, b.code, arrays, wrt)


# ---------------------------------------------------------------- checking

@dataclass
class Outcome:
    seed: int
    nodes: int
    compile_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    degenerate: bool = False   # the literal graph overflows at this point: nothing to compare
    unsmooth: list[str] = field(default_factory=list)  # leaves whose finite differences are untrustworthy here


def check_case(case: Case) -> Outcome:
    """Compile both ways, run (every computed shape checked against the graph's: check_shapes), compare
    with each other and with central differences."""
    outcome = Outcome(case.seed, case.size)
    results = {}
    for simplify in (False, True):
        what = "simplified" if simplify else "literal"
        start = time.perf_counter()
        try:
            model = gc.compile(case.graph, wrt=case.wrt, loss="loss", simplify=simplify, check_shapes=True)
        except Exception as error:  # noqa: BLE001 - any compile failure is a finding
            outcome.problems.append(f"{what}: compile failed: {type(error).__name__}: {error}")
            return outcome
        outcome.compile_seconds += time.perf_counter() - start
        try:
            module = model.load()
            training = {"training": True} if module.BUFFERS else {}  # batch norm: the batch's statistics
            with np.errstate(all="ignore"):
                outputs, grads = module.gradients(**case.arrays)
                forward = module.forward(**training, **case.arrays)
                inference = module.forward(**case.arrays, **_buffers(module, case.seed)) if training else {}
        except Exception as error:  # noqa: BLE001 - a generated module that fails is a finding
            outcome.problems.append(f"{what}: running failed: {type(error).__name__}: {error}")
            return outcome
        for name, value in forward.items():
            if not _same(value, outputs[name], 0.0):
                outcome.problems.append(f"{what}: forward() and gradients() disagree on {name!r}")
        results[simplify] = (module, outputs, grads, inference)
        if not simplify:
            extended = _extended_precision(model, case.arrays)

    literal, simplified = results[False], results[True]
    if not _tame(literal[1]) or not _tame(literal[2]):
        outcome.degenerate = True
        return outcome
    for name in literal[1]:
        if not _agree(literal[1][name], simplified[1][name], lambda: extended()[0][name]):
            outcome.problems.append(f"output {name!r}: literal {_short(literal[1][name])} "
                                    f"but simplified {_short(simplified[1][name])}")
    for name, value in literal[3].items():  # forward() outside training: the running statistics
        if _tame({name: value}) and not _same(value, simplified[3][name], AGREEMENT):
            outcome.problems.append(f"forward() with running statistics, output {name!r}: literal {_short(value)} "
                                    f"but simplified {_short(simplified[3][name])}")
    training = {"training": True} if literal[0].BUFFERS else {}
    loss = lambda **a: literal[0].forward(**training, **a)["loss"]  # noqa: E731
    for name in case.wrt:
        got = {k: np.asarray(r[2][name]) for k, r in (("literal", literal), ("simplified", simplified))}
        if any(g.shape != case.arrays[name].shape for g in got.values()):
            outcome.problems.append(f"gradient {name!r}: shapes {[g.shape for g in got.values()]} "
                                    f"for a leaf of shape {case.arrays[name].shape}")
            continue
        with np.errstate(all="ignore"):
            fine, coarse = numeric_gradient(loss, case.arrays, name), numeric_gradient(loss, case.arrays, name, 1e-4)
        if not np.all(np.isfinite(fine)) or not _same(fine, coarse, TOLERANCE):
            outcome.unsmooth.append(name)  # on a kink or a tie: compare the two modules only
            if not _agree(got["literal"], got["simplified"], lambda: extended()[1][name]):
                outcome.problems.append(f"gradient {name!r}: literal {_short(got['literal'])} "
                                        f"but simplified {_short(got['simplified'])}")
            continue
        for what, g in got.items():
            if not _same(g, fine, TOLERANCE):
                outcome.problems.append(f"gradient {name!r} ({what}): relative error {relative_error(g, fine):.1e} "
                                        f"against central differences: got {_short(g)}, want {_short(fine)}")
    return outcome


def _buffers(module, seed: int) -> dict[str, np.ndarray]:
    """Running statistics for forward() outside training: means around 0, variances around 1."""
    rng = np.random.default_rng([seed, 2])
    return {name: rng.normal(size=shape) if name.endswith("_mean") else rng.uniform(0.5, 2.0, size=shape)
            for name, shape in module.BUFFERS.items()}


def _extended_precision(model: gc.CompiledModel, arrays: dict) -> Callable[[], tuple]:
    """(outputs, grads) of the literal module run in long double, computed on first use."""
    @functools.cache
    def run() -> tuple:
        module = model.load()
        module.DTYPE = np.longdouble
        with np.errstate(all="ignore"):
            return module.gradients(**arrays)
    return run


def _agree(literal, simplified, reference: Callable[[], np.ndarray]) -> bool:
    """The two modules agree; or, where they do not, the simplified one is the closer to the literal graph
    run in long double: a naive form such as log(1 - σ(z)) at z = 30 loses digits its stable form keeps."""
    if _same(literal, simplified, AGREEMENT):
        return True
    if np.shape(literal) != np.shape(simplified) or np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        return False
    exact = np.asarray(reference(), dtype=np.longdouble)
    error = {k: float(np.max(np.abs(np.asarray(v, dtype=np.longdouble) - exact), initial=0.0))
             for k, v in (("literal", literal), ("simplified", simplified))}
    scale = max(float(np.max(np.abs(exact), initial=0.0)), 1e-6)
    return error["simplified"] <= error["literal"] + AGREEMENT * scale


def _tame(values: dict) -> bool:
    return all(np.all(np.isfinite(v)) and np.max(np.abs(v), initial=0.0) < 1e6 for v in values.values())


def _same(a, b, tolerance: float) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if tolerance == 0.0:
        return bool(np.array_equal(a, b, equal_nan=True))
    # relative to the larger entry, but never below 1e-6: a gradient that is 0 up to rounding
    # (±2e-16) may round differently in two modules
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-6)
    return float(np.max(np.abs(a - b), initial=0.0)) <= tolerance * scale


def _short(value) -> str:
    return np.array2string(np.asarray(value), precision=5, threshold=8, max_line_width=120).replace("\n", "")


def report(case: Case, outcome: Outcome) -> str:
    """A failure as something to paste into a test: the graph's code and what went wrong."""
    lines = [f"seed {case.seed} ({outcome.nodes} nodes):"]
    lines += [f"    {line}" for line in case.code]
    lines += [f"  ! {problem}" for problem in outcome.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", type=int, default=300, help="how many seeds to run (default 300)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--steps", type=int, help="ops per graph (default: 2 to 12 at random)")
    parser.add_argument("--show", action="store_true", help="print each graph's code")
    parser.add_argument("--old-ops", action="store_true",
                        help="build only the ops the generator drew before integer ids, normalisation and attention "
                             "(the graphs tests/test_regressions.py names)")
    parser.add_argument("--no-elementwise", action="store_true",
                        help="leave out the elementwise functions (sin, ..., where, clip) of the third generator")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.graphs)
    failures = degenerate = unsmooth = 0
    slowest = (0.0, -1, 0)
    largest = 0
    started = time.perf_counter()
    for seed in seeds:
        case = random_case(seed, args.steps, new_ops=not args.old_ops,
                           elementwise=not args.old_ops and not args.no_elementwise)
        outcome = check_case(case)
        largest = max(largest, outcome.nodes)
        slowest = max(slowest, (outcome.compile_seconds, seed, outcome.nodes))
        degenerate += outcome.degenerate
        unsmooth += bool(outcome.unsmooth)
        if outcome.compile_seconds > COMPILE_BUDGET:
            outcome.problems.append(f"compiling took {outcome.compile_seconds:.1f} s (budget {COMPILE_BUDGET} s)")
        if outcome.problems or args.show:
            print(report(case, outcome), flush=True)
        failures += bool(outcome.problems)
    print(f"{len(seeds)} graphs (up to {largest} nodes) in {time.perf_counter() - started:.0f} s: "
          f"{failures} failed, {degenerate} overflowed in the literal graph (not compared), "
          f"{unsmooth} on a kink for some leaf (modules compared with each other only); "
          f"slowest compile {slowest[0]:.2f} s (seed {slowest[1]}, {slowest[2]} nodes)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
