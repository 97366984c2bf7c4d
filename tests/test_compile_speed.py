"""Compile time stays linear in graph size, checked without a clock: the SymPy work of compiling a
graph twice as large (subexpressions rebuilt or visited by xreplace, formulas printed, sympy.cse runs)
is at most about twice as much, and a chain that repeats one step does each shape of formula's work
once however long it is. A cache that compile fills holds no graph after it (benchmarks/bench_compile.py
gives the seconds)."""
import gc as garbage
import os
import subprocess
import sys
import weakref
from collections import Counter

import numpy as np
import pytest
import sympy as sp
from sympy.printing.printer import Printer

import graphcomp as gc
from graphcomp.ir import constant, toposort
from graphcomp.ir.graph import _ORDERS_KEPT


def chain(steps: int) -> gc.Graph:
    """h*1.01 + w and tanh(h)*0.9 + 0.1 in turn: one long candidate for fusion (as the benchmark's)."""
    g = gc.Graph("chain")
    x, w = g.input("x", (None, 4)), g.param("w", (4,))
    h = x
    for k in range(steps):
        h = h * 1.01 + w if k % 2 == 0 else gc.tanh(h) * 0.9 + 0.1
    g.output("loss", gc.sum(h))
    return g


def wide(terms: int) -> gc.Graph:
    """x * k + w for k = 1.0001, 1.0002, ..., added one after the other: every formula has numbers of its own."""
    g = gc.Graph("wide")
    x, w = g.input("x", (None, 4)), g.param("w", (4,))
    total = None
    for k in range(1, terms + 1):
        term = x * (1 + k / 10000) + w
        total = term if total is None else total + term
    g.output("loss", gc.sum(total))
    return g


def mlp(layers: int) -> gc.Graph:
    g = gc.Graph("mlp")
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, [4] * layers + [3], activation="tanh"))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def sympy_work(graph: gc.Graph, monkeypatch: pytest.MonkeyPatch, **options) -> Counter:
    """What compiling `graph` asks of SymPy: subexpressions xreplace walks (each rebuilt or looked at:
    it grows with the size of the formulas as well as their number), printings, and cse runs."""
    counts: Counter = Counter()
    walk, doprint, cse = sp.Basic._xreplace, Printer.doprint, sp.cse

    def counted(name, function):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)
        return wrapper

    with monkeypatch.context() as patch:
        patch.setattr(sp.Basic, "_xreplace", counted("xreplace", walk))
        patch.setattr(Printer, "doprint", counted("print", doprint))
        patch.setattr(sp, "cse", counted("cse", cse))
        gc.compile(graph, **options)
    return counts


@pytest.mark.parametrize("build, size", [(chain, 40), (wide, 40), (mlp, 6)])
@pytest.mark.parametrize("simplify", [True, False])
def test_a_graph_twice_as_large_asks_at_most_about_twice_the_sympy_work(build, size, simplify, monkeypatch):
    gc.compile(build(4), simplify=simplify)  # what every compile does once (σ, tanh's derivatives ...)
    small = sympy_work(build(size), monkeypatch, simplify=simplify)
    large = sympy_work(build(2 * size), monkeypatch, simplify=simplify)
    assert small["xreplace"] > 0
    for kind in ("xreplace", "print", "cse"):
        assert large[kind] <= 2.2 * small[kind] + 20, (kind, small, large)


def test_a_chain_of_one_repeated_step_does_each_shape_of_formula_once(monkeypatch):
    """Four times the chain: the fused formulas of every length are the same few up to their operands'
    names, and each is simplified (cse) and printed once (formulas/renaming.py): far less than four
    times the printing and cse (a formula printed per line would be four times, and more)."""
    gc.compile(chain(4))
    small, large = sympy_work(chain(25), monkeypatch), sympy_work(chain(100), monkeypatch)
    assert large["cse"] <= small["cse"] + 5, (small, large)
    assert large["print"] <= 2 * small["print"], (small, large)


def test_the_work_done_once_per_shape_gives_the_same_module_as_the_work_done_per_formula():
    """The chain's gradient is right (the formulas made once per shape, named back, compute what
    they say), and against the module compiled as written."""
    graph = chain(30)
    fast, literal = gc.compile(graph).load(), gc.compile(graph, simplify=False).load()
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=4)
    (outputs, grads), (outputs2, grads2) = fast.gradients(x=x, w=w), literal.gradients(x=x, w=w)
    assert np.isclose(outputs["loss"], outputs2["loss"], rtol=1e-12)
    assert np.allclose(grads["w"], grads2["w"], rtol=1e-10)
    step = 1e-6
    for k in range(4):
        e = np.zeros(4)
        e[k] = step
        up, down = fast.gradients(x=x, w=w + e)[0]["loss"], fast.gradients(x=x, w=w - e)[0]["loss"]
        assert np.isclose(grads["w"][k], (up - down) / (2 * step), rtol=1e-6)


def test_no_cache_of_a_compile_keeps_its_graph_alive():
    """Every table a compile fills keyed on nodes is its own (the order cache of ir.toposort keeps the
    last few orders only), so a compiled graph is freed with the model."""
    def compiled() -> weakref.ref:
        graph = chain(12)
        last = graph.outputs["loss"]
        model = gc.compile(graph)
        assert model.source
        return weakref.ref(last)

    last = compiled()
    for k in range(_ORDERS_KEPT + 1):  # other orders push the chain's out
        toposort([constant(k + 0.25)])
    garbage.collect()
    assert last() is None


def test_buffers_are_declared_in_the_graphs_order_whatever_the_hashes():
    """Two batch norms, one after the other: their buffers come in that order, never in the order of a
    set of nodes (which varied from run to run with Python's string hashes, and with it the module's text)."""
    orders = set()
    for seed in ("1", "2", "3"):
        script = ("import graphcomp as gc\n"
                  "g = gc.Graph('two_norms'); x = g.input('x', (None, 2))\n"
                  "h = gc.batch_norm(x, g.param('g0', (2,)), g.param('b0', (2,)), name='bn0')\n"
                  "h = gc.batch_norm(gc.tanh(h), g.param('g1', (2,)), g.param('b1', (2,)), name='bn1')\n"
                  "g.output('loss', gc.sum(h * h))\n"
                  "print(list(g.buffers))\n")
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        orders.add(run.stdout.strip())
    assert orders == {"['bn0_running_mean', 'bn0_running_var', 'bn1_running_mean', 'bn1_running_var']"}
