"""How numbers and counts print inside a tensor formula: ε = 1e-5 as 1.0 · 10^{-5} (a product of two
numbers, never the formula's ⊙ or nothing), and the batch size N as a scalar factor, N ȳ, not N ⊙ ȳ;
both in the batch-norm gradient of the lecture, read back by tests/latex_reader.py."""
import re

import numpy as np
import pytest
import sympy as sp

import graphcomp as gc
from graphcomp.formulas.latex import BATCH, elementwise_latex
from graphcomp.formulas.symbols import symbol
from latex_reader import Reader, equations

BATCH_SIZE = 4


def batch_norm_model(shape=(None, 3)):
    g = gc.Graph("bn")
    x, r = g.input("x", shape), g.input("r", shape)
    g.output("loss", gc.sum(gc.batch_norm(x, g.param("gamma", (3,)), g.param("beta", (3,))) * r))
    return gc.compile(g, wrt=["x", "gamma", "beta"])


@pytest.mark.parametrize("shape, count", [((None, 3), "N"), ((None, 2, 3), "2 N")])
def test_the_batch_norm_gradient_prints_its_count_and_epsilon_as_the_lecture_does(shape, count):
    model = batch_norm_model(shape)
    latex = model.gradient_latex()["x"]
    pairs = dict(equations(latex))
    first = equations(latex)[0][1]
    assert rf"\left({count} \bar{{" in first, first  # N ȳ: a count times a tensor, no ⊙
    assert r"N \odot" not in latex
    assert pairs[r"\sigma_{x}"].endswith(r" + 1.0 \cdot 10^{-5}}"), pairs[r"\sigma_{x}"]
    assert not re.search(r"\d 10\^", latex)  # no power of ten glued to its mantissa
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(BATCH_SIZE,) + shape[1:]), "r": rng.normal(size=(BATCH_SIZE,) + shape[1:]),
              "gamma": rng.normal(size=3), "beta": rng.normal(size=3)}
    _, grads = model.load().gradients(**arrays)
    reader = Reader({**{symbol(name): value for name, value in arrays.items()}, "N": BATCH_SIZE}, BATCH_SIZE)
    reader.define(equations(latex)[1:])
    np.testing.assert_allclose(reader.evaluate(first), grads["x"], rtol=1e-9, atol=1e-12)


def test_small_numbers_print_with_cdot_and_counts_without_odot():
    a, b = sp.Symbol("a0", real=True), sp.Symbol("a1", real=True)
    text = elementwise_latex(BATCH * a + sp.Float(2.5e-7) * b, {a: "x", b: "y", BATCH: "N"}, tensor=True)
    assert "N x" in text and r"2.5 \cdot 10^{-7} y" in text, text
    assert elementwise_latex(a * b, {a: "x", b: "y"}, tensor=True) == r"x \odot y"  # two tensors keep ⊙
