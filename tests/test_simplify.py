"""The symbolic passes: derivatives through forward values, stable forms, shared subexpressions."""
import ast
import re

import numpy as np
import pytest
import sympy as sp

import graphcomp as gc
from graphcomp.formulas.derivatives import local_derivative, placeholder, sigmoid, Y
from gradcheck import check_gradients

a = placeholder(0)


@pytest.mark.parametrize("formula, derivative", [
    (1 / (1 + sp.exp(-a)), Y * (1 - Y)),                        # sigmoid typed out
    ((sp.exp(2 * a) - 1) / (sp.exp(2 * a) + 1), 1 - Y ** 2),    # tanh typed out
    (2 / (1 + sp.exp(-2 * a)) - 1, 1 - Y ** 2),                 # tanh as 2σ(2a) - 1, as the lecture notes on computational graphs write it
    (sp.tanh(a), 1 - Y ** 2),
    (sp.exp(a), Y),
    (sp.log(1 + sp.exp(a)), sigmoid(a)),                        # softplus' is σ of the input
    (sp.log(a), 1 / a),                                         # no cheaper form: kept
    (a ** 3, 3 * a ** 2),                                       # y^(2/3) fails the numeric check
])
def test_local_derivatives_are_discovered_not_looked_up(formula, derivative):
    assert sp.simplify(local_derivative(formula, 0) - derivative) == 0
    assert local_derivative(formula, 0) == derivative


def gradients_source(build, shape=(None, 4), simplify=True):
    g = gc.Graph("raw")
    x = g.input("x", shape)
    g.output("loss", gc.sum(build(x)))
    return gc.compile(g, simplify=simplify)


def gradients_body(source):
    """The code of the generated gradients function, without its comments."""
    body = source[source.index("def _gradients("):]
    body = body[:body.index("\n\n\n")]  # (train()'s in-place step follows it)
    return "\n".join(line.split("  # ")[0] for line in body.splitlines())


def counted_operations(source):
    """Arithmetic operators and calls in the generated gradients function."""
    tree = ast.parse(source)
    body = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "_gradients")
    statements = [s for s in body.body if isinstance(s, ast.Assign) and not isinstance(s.value, (ast.Dict, ast.Call))
                  or isinstance(s, ast.Assign) and isinstance(s.value, ast.Call) and getattr(s.value.func, "id", "") != "_read"]
    return sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call)) for s in statements for n in ast.walk(s.value)
               if not (isinstance(n, ast.Call) and getattr(n.func, "id", "") == "_result"))


def lines_like(pattern, source):
    """The lines of `source` that match `pattern`, where T stands for any temporary (t1, t2, ...) and
    one T means the same temporary throughout: tests do not depend on how temporaries are numbered."""
    regex = re.escape(pattern).replace("T", "(?P<t>t\\d+)", 1).replace("T", "(?P=t)")
    return [line for line in source.splitlines() if re.fullmatch(r"\s*" + regex + r"(  #.*)?", line)]


@pytest.mark.parametrize("build, forward_line, backward_line", [
    (lambda x: 1 / (1 + gc.exp(-x)), "T = _sigmoid(xp, x)", "d_x = T*(1 - T)"),
    (lambda x: (gc.exp(2 * x) - 1) / (gc.exp(2 * x) + 1), "T = xp.tanh(x)", "d_x = 1 - T**2"),
    (lambda x: gc.log(1 + gc.exp(x)), "T = xp.logaddexp(0, x)", "d_x = _sigmoid(xp, x)"),
    (lambda x: gc.exp(x) * 3, "T = 3*xp.exp(x)", "d_x = T"),
])
def test_raw_formulas_compile_to_their_whole_functions(build, forward_line, backward_line):
    fused, literal = gradients_source(build), gradients_source(build, simplify=False)
    assert lines_like(forward_line, fused.source)
    assert lines_like(backward_line, fused.source)
    assert counted_operations(fused.source) < counted_operations(literal.source)
    rng = np.random.default_rng(0)
    for model in (fused, literal):
        check_gradients(model.load(), {"x": rng.normal(size=(3, 4))}, "loss")


NAIVE_FORMS = {
    "log(sigmoid)": lambda z, y: gc.sum(gc.log(gc.sigmoid(z))),
    "log(1 - sigmoid)": lambda z, y: gc.sum(gc.log(1 - gc.sigmoid(z))),
    "log(softmax)": lambda z, y: gc.sum(gc.log(gc.softmax(z)) * y),
    "log(sum(exp))": lambda z, y: gc.sum(gc.log(gc.sum(gc.exp(z), axis=-1))),
    "softmax written out": lambda z, y: gc.sum(gc.exp(z) / gc.sum(gc.exp(z), axis=-1, keepdims=True) * y),
    "sigmoid written out": lambda z, y: gc.sum(1 / (1 + gc.exp(-z)) * y),
    "softplus written out": lambda z, y: gc.sum(gc.log(1 + gc.exp(z))),
    "binary cross-entropy of a sigmoid": lambda z, y: gc.binary_cross_entropy(gc.sigmoid(z), y),
    "cross-entropy of a softmax": lambda z, y: gc.mean(-gc.sum(y * gc.log(gc.softmax(z)), axis=-1)),
}


@pytest.mark.parametrize("build", NAIVE_FORMS.values(), ids=NAIVE_FORMS.keys())
def test_naive_forms_are_finite_at_extreme_logits(build):
    g = gc.Graph("naive")
    z, y = g.input("z", (None, 4)), g.input("y", (None, 4))
    g.output("loss", build(z, y))
    m = gc.compile(g, wrt=["z"]).load()
    logits = np.array([[800.0, -800.0, 0.0, 1.0], [-800.0, 800.0, 800.0, -3.0]])
    targets = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        outputs, grads = m.gradients(z=logits, y=targets)
    assert np.isfinite(outputs["loss"]) and np.all(np.isfinite(grads["z"]))
    moderate = np.random.default_rng(1).normal(size=(2, 4))
    check_gradients(m, {"z": moderate, "y": targets}, "loss")


def test_cross_entropy_of_a_softmax_becomes_the_fused_op():
    g = gc.Graph("ce")
    z, y = g.input("z", (None, 3)), g.input("y", (None, 3))
    g.output("loss", gc.mean(-gc.sum(y * gc.log(gc.softmax(z)), axis=-1)))
    model = gc.compile(g, wrt=["z"])
    ops = {n.op for n in model.compiled_graph.nodes()}
    assert "softmax_cross_entropy" in ops and "log" not in ops
    # one gradient line: g (p Σy - y), which is g (p - y) for probability rows y
    body = model.source[model.source.index("def _gradients("):]
    body = body[:body.index("\n\n\n")]  # (train()'s in-place step follows it)
    (lse,) = re.findall(r"^    (t\d+) = _logsumexp\(xp, z, axis=1, keepdims=True\)$", body, flags=re.M)  # computed once
    assert re.search(rf"^    P = xp\.exp\(z - {lse}\)  #", body, flags=re.M)  # the probabilities, as the lecture names them
    assert re.search(r"^    d_z = \(P\*t\d+ - y\)/t\d+\.shape\[0\]  #", body, flags=re.M)


def test_binary_cross_entropy_of_a_sigmoid_uses_softplus():
    g = gc.Graph("bce")
    z, y = g.input("z", (None, 1)), g.input("y", (None, 1))
    p = g.output("p", gc.sigmoid(z))
    g.output("loss", gc.binary_cross_entropy(p, y))
    model = gc.compile(g, loss="loss", wrt=["z"])
    assert "xp.log(" not in model.source and "xp.logaddexp(0, " in model.source
    assert lines_like("d_z = (_sigmoid(xp, z) - y)/T.shape[0]", model.source)  # the with-logits gradient, (σ(z) - y)/N


def test_shared_subexpressions_are_computed_once():
    g = gc.Graph("cse")
    x = g.input("x", (None, 3))
    g.output("loss", gc.sum(gc.exp(x) * gc.exp(x) + gc.exp(x)))
    model = gc.compile(g)
    assert gradients_body(model.source).count("xp.exp(") == 1
    # the same formula written twice by hand, in two separate nodes, is one node
    h = gc.Graph("twice")
    u = h.input("u", (None, 2))
    h.output("loss", gc.sum(gc.tanh(u * 2) + gc.tanh(u * 2)))
    assert gradients_body(gc.compile(h).source).count("xp.tanh(") == 1


def test_backward_lines_are_shared_across_operands():
    # h = σ(t1 + b1): the adjoint of t1 and of b1 (before unbroadcasting) is one line.
    g = gc.Graph("share")
    x, W, b = g.input("x", (None, 2)), g.param("W", (2, 3)), g.param("b", (3,))
    h = g.let("h", gc.sigmoid(x @ W + b))
    g.output("loss", gc.sum(h))
    fused, literal = gc.compile(g), gc.compile(g, simplify=False)
    assert gradients_body(fused.source).count("(1 - h)") == 1
    assert counted_operations(fused.source) <= counted_operations(literal.source)


def test_cse_inside_a_fused_formula():
    g = gc.Graph("cse2")
    x, y = g.input("x", (None, 2)), g.input("y", (None, 2))
    g.output("loss", gc.sum((x - y) ** 2 * 3 + (x - y) ** 3))
    source = gc.compile(g).source
    forward = source[source.index("def forward"):source.index("def gradients")]
    assert forward.count("x - y") == 1
