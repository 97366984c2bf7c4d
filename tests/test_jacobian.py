"""gc.jacobian and gc.hessian: whole derivative matrices as graph values, against torch.func and JAX in
float64 to 1e-10, computed without a Python loop where every op has a batching rule."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import graphcomp as gc

jax.config.update("jax_enable_x64", True)
RNG = np.random.default_rng(24)


def run(g, arrays):
    """Every output of the graph's generated module at `arrays`, and the `for` loops of its forward()."""
    m = gc.compile(g, loss="loss", runtime=False)
    source = m.source
    forward = source[source.index("def forward"):source.index("def gradients")]
    return m.load().forward(**arrays), re.findall(r"^ +for \w+ in ", forward, re.M)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10)


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def test_mlp_jacobian_of_the_logits_for_one_example_and_for_a_weight():
    g = gc.Graph("mlp")
    x = g.input("x", (6,))
    W1, b1, W2, b2 = g.param("W1", (6, 5)), g.param("b1", (5,)), g.param("W2", (5, 4)), g.param("b2", (4,))
    logits = gc.tanh(x @ W1 + b1) @ W2 + b2
    g.output("Jx", gc.jacobian(logits, x))
    g.output("JW", gc.jacobian(logits, W1))
    g.output("loss", gc.sum(logits))
    P = {"W1": RNG.normal(size=(6, 5)), "b1": RNG.normal(size=5), "W2": RNG.normal(size=(5, 4)), "b2": RNG.normal(size=4)}
    X = RNG.normal(size=6)
    out, loops = run(g, {"x": X, **P})
    assert out["Jx"].shape == (4, 6) and out["JW"].shape == (4, 6, 5)
    assert not loops

    def f(x, W1):
        return jnp.tanh(x @ W1 + P["b1"]) @ P["W2"] + P["b2"]

    close(out["Jx"], jax.jacrev(f)(X, P["W1"]))
    close(out["JW"], jax.jacrev(f, 1)(X, P["W1"]))
    tf = lambda x, W1: torch.tanh(x @ W1 + t(P["b1"])) @ t(P["W2"]) + t(P["b2"])  # noqa: E731
    close(out["Jx"], torch.func.jacrev(tf)(t(X), t(P["W1"])))
    close(out["JW"], torch.func.jacfwd(tf, argnums=1)(t(X), t(P["W1"])))


def logistic_regression():
    g = gc.Graph("logreg")
    x, y = g.input("x", (None, 5)), g.input("y", (None,))
    w, b = g.param("w", (5,)), g.param("b", ())
    loss = g.output("loss", gc.binary_cross_entropy_with_logits(x @ w + b, y))
    g.output("H", gc.hessian(loss, w))
    g.output("Hb", gc.hessian(loss, b))
    return g


def test_logistic_regression_hessian():
    X, Y = RNG.normal(size=(30, 5)), (RNG.random(30) < 0.5).astype(float)
    w, b = RNG.normal(size=5), 0.3
    out, loops = run(logistic_regression(), {"x": X, "y": Y, "w": w, "b": b})
    assert out["H"].shape == (5, 5) and np.shape(out["Hb"]) == ()
    assert not loops

    def loss(w, b):
        z = X @ w + b
        return jnp.mean(jnp.logaddexp(0, z) - Y * z)

    close(out["H"], jax.hessian(loss)(w, b))
    close(out["Hb"], jax.hessian(loss, 1)(w, b))
    tloss = lambda w: torch.mean(torch.nn.functional.softplus(t(X) @ w + b) - t(Y) * (t(X) @ w + b))  # noqa: E731
    close(out["H"], torch.func.hessian(tloss)(t(w)))


def test_softmax_cross_entropy_hessian_and_softmax_jacobian():
    g = gc.Graph("softmax")
    x, y = g.input("x", (None, 4)), g.input("y", (None, 3))
    W = g.param("W", (4, 3))
    v = g.input("v", (3,))
    loss = g.output("loss", gc.softmax_cross_entropy(x @ W, y))
    g.output("H", gc.hessian(loss, W))
    g.output("Js", gc.jacobian(gc.softmax(v), v))
    g.output("Jl", gc.jacobian(gc.log_softmax(v * v), v))
    X, W0, V = RNG.normal(size=(7, 4)), RNG.normal(size=(4, 3)), RNG.normal(size=3)
    Y = np.eye(3)[RNG.integers(0, 3, size=7)]
    out, loops = run(g, {"x": X, "y": Y, "W": W0, "v": V})
    assert not loops
    loss = lambda W: -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(X @ W), axis=1))  # noqa: E731
    close(out["H"], jax.hessian(loss)(W0))
    close(out["Js"], jax.jacrev(jax.nn.softmax)(V))
    close(out["Jl"], jax.jacrev(lambda v: jax.nn.log_softmax(v * v))(V))
    tl = lambda W: torch.nn.functional.cross_entropy(t(X) @ W, t(Y))  # noqa: E731
    close(out["H"], torch.func.hessian(tl)(t(W0)))


def test_elementwise_chains_broadcasting_reductions_and_shape_ops():
    g = gc.Graph("chains")
    a = g.input("a", (2, 3))
    c = g.input("c", (3,))
    z = gc.exp(gc.tanh(a) * c) / (1 + a * a) + gc.sum(a, axis=0) * c
    z = gc.concat([z, gc.transpose(z)[0:2, :]], axis=1)
    z = gc.reshape(z, (5, 2)) @ gc.sigmoid(z)[:, 1:3] - gc.mean(z, axis=0, keepdims=True)[:, 0:2]
    g.output("J", gc.jacobian(z, a))
    g.output("Jc", gc.jacobian(gc.max(z, axis=1), c))
    g.output("loss", gc.sum(z))
    A, C = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    out, loops = run(g, {"a": A, "c": C})
    assert not loops

    def f(a, c):
        z = jnp.exp(jnp.tanh(a) * c) / (1 + a * a) + jnp.sum(a, axis=0) * c
        z = jnp.concatenate([z, z.T[0:2, :]], axis=1)
        return jnp.reshape(z, (5, 2)) @ jax.nn.sigmoid(z)[:, 1:3] - jnp.mean(z, axis=0, keepdims=True)[:, 0:2]

    close(out["J"], jax.jacrev(f)(A, C))
    close(out["Jc"], jax.jacrev(lambda c: jnp.max(f(A, c), axis=1))(C))


def test_an_op_without_a_batching_rule_is_computed_by_a_loop():
    g = gc.Graph("conv")
    x = g.input("x", (1, 1, 4, 4))
    w = g.param("w", (2, 1, 2, 2))
    y = gc.tanh(gc.conv2d(x, w))
    g.output("J", gc.jacobian(y, w))
    g.output("loss", gc.sum(y))
    X, W = RNG.normal(size=(1, 1, 4, 4)), RNG.normal(size=(2, 1, 2, 2))
    out, loops = run(g, {"x": X, "w": W})
    assert loops
    tf = lambda w: torch.tanh(torch.nn.functional.conv2d(t(X), w))  # noqa: E731
    close(out["J"], torch.func.jacrev(tf)(t(W)))


def test_a_value_that_does_not_depend_on_x_has_a_zero_jacobian():
    g = gc.Graph("zero")
    x, v = g.input("x", (3,)), g.input("v", (2,))
    g.output("J", gc.jacobian(gc.exp(v), x))
    g.output("loss", gc.sum(x))
    out, _ = run(g, {"x": np.ones(3), "v": np.ones(2)})
    close(out["J"], np.zeros((2, 3)))


def test_shapes_a_value_cannot_have_are_refused_with_what_to_do():
    g = gc.Graph("bad")
    x = g.input("x", (None, 4))
    W = g.param("W", (4, 3))
    y = x @ W
    with pytest.raises(gc.DifferentiationError, match=r"shape \(None, 3, None, 4\).*fixed sizes.*scalar"):
        gc.jacobian(y, x)
    with pytest.raises(gc.DifferentiationError, match=r"needs a scalar.*\(None, 3\)"):
        gc.hessian(y, W)
    with pytest.raises(gc.DifferentiationError, match=r"shape \(None, 4, None, 4\)"):
        gc.hessian(gc.sum(y), x)
    ids = g.input("ids", (None,), dtype="int64")
    with pytest.raises(gc.DifferentiationError, match="integer ids"):
        gc.jacobian(gc.sum(y), ids)


def test_forward_mode_for_a_batch_of_outputs_and_both_modes_agree():
    g = gc.Graph("modes")
    x = g.input("x", (None, 3))
    W, b = g.param("W", (3, 2)), g.param("b", (2,))
    v = g.input("v", (4,))
    z = gc.softplus(x @ W + b)
    assert gc.jacobian(z, b).inputs[0] is gc.jacobian(z, b, mode="forward").inputs[0]
    g.output("Jb", gc.jacobian(z, b))                   # (None, 2, 2): forward mode, the only one possible
    u = gc.concat([gc.exp(v), v * v], axis=0)
    g.output("Jf", gc.jacobian(u, v, mode="forward"))
    g.output("Jr", gc.jacobian(u, v, mode="reverse"))
    g.output("loss", gc.sum(z))
    X, W0, b0, V = RNG.normal(size=(5, 3)), RNG.normal(size=(3, 2)), RNG.normal(size=2), RNG.normal(size=4)
    out, loops = run(g, {"x": X, "W": W0, "b": b0, "v": V})
    assert not loops and out["Jb"].shape == (5, 2, 2)
    close(out["Jb"], jax.jacfwd(lambda b: jax.nn.softplus(X @ W0 + b))(b0))
    close(out["Jf"], out["Jr"])
    with pytest.raises(gc.DifferentiationError, match="forward mode"):
        gc.jacobian(z, b, mode="reverse")
    with pytest.raises(gc.DifferentiationError, match="mode must be"):
        gc.jacobian(z, b, mode="backward")


def test_the_tangent_of_an_op_whose_operands_depend_on_each_other_counts_each_path_once():
    """Forward mode's transposed rule, through concat(a, a.T[0:2]): the second operand is computed from the
    first, and the rule's own paths must stop at its operands."""
    g = gc.Graph("paths")
    a, v = g.input("a", (2, 3)), g.input("v", (2, 3))
    z = gc.concat([a, gc.transpose(a)[0:2, :]], axis=1)
    g.output("dz", gc.jvp(z, [a], [v]))
    g.output("loss", gc.sum(z))
    A, V = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    out, _ = run(g, {"a": A, "v": V})
    close(out["dz"], jax.jvp(lambda a: jnp.concatenate([a, a.T[0:2, :]], axis=1), (A,), (V,))[1])


SPEC = """
[model]
name = "newton"
loss = "loss"

[inputs]
x = ["N", 3]
y = ["N"]

[params]
w = [3]

[nodes]
z = "x @ w"

[outputs]
loss = "binary_cross_entropy_with_logits(z, y)"
H = "hessian(loss, w)"
Jz = "jacobian(z, w)"
Jt = "jacobian(tanh(w * w), w, mode='reverse')"
"""


def test_spec_files_command_line_and_formulas(tmp_path):
    from graphcomp.frontend.cli import main
    from graphcomp.frontend.spec import load
    from latex_check import katex_errors

    path = tmp_path / "newton.toml"
    path.write_text(SPEC)
    m = gc.compile(load(path).graph, loss="loss")
    X, Y, w = RNG.normal(size=(6, 3)), (RNG.random(6) < 0.5).astype(float), RNG.normal(size=3)
    out = m.load().forward(x=X, y=Y, w=w)
    p = 1 / (1 + np.exp(-X @ w))
    close(out["H"], X.T @ (X * (p * (1 - p))[:, None]) / 6)
    close(out["Jz"], X)
    close(out["Jt"], np.diag(2 * w * (1 - np.tanh(w * w) ** 2)))
    assert main(["compile", str(path), "-o", str(tmp_path / "newton.py")]) == 0
    assert main(["check", str(path)]) == 0
    np.savez(tmp_path / "at.npz", x=X, y=Y, w=w)
    assert main(["report", str(path), "-o", str(tmp_path / "r.md"), "--at", str(tmp_path / "at.npz")]) == 0
    report = (tmp_path / "r.md").read_text()
    shown = [r"\frac{\partial^{2} \mathrm{loss}}{\partial {w}^{2}}", r"\frac{\partial z}{\partial w}"]
    assert all(f in report for f in shown)
    derivation = m.derivation(at={"x": X, "y": Y, "w": w}).latex()
    assert not katex_errors(shown + [derivation, r"\mathbf{I}_{3}"])


def test_the_generated_matrices_are_array_api_code():
    """Through array-api-strict (the standard's reference implementation), the same numbers as NumPy."""
    from test_array_api import as_strict, same_results

    g = gc.Graph("strict")
    x, a = g.input("x", (None, 3)), g.input("a", (2, 3))
    W = g.param("W", (3, 2))
    z = gc.softmax(gc.tanh(x @ W), axis=1)
    loss = g.output("loss", gc.mean(gc.log(z[:, 0:1])) + gc.sum(gc.concat([a, a * a], axis=0)))
    g.output("H", gc.hessian(loss, W))
    g.output("Jz", gc.jacobian(z, W))
    g.output("Ja", gc.jacobian(gc.concat([a, a * a], axis=0), a, mode="reverse"))
    module = gc.compile(g, loss="loss").load()
    same_results(module, {"x": RNG.normal(size=(4, 3)), "a": RNG.normal(size=(2, 3)), "W": RNG.normal(size=(3, 2))},
                 as_strict)


def test_a_loss_of_a_jacobian_has_gradients_and_formulas_that_read_back():
    """The Jacobian's nodes are IR like any other: a loss reading it is differentiated through them, and the
    printed gradient formulas (the identity as I_n, the matrix as its ∂y/∂x) evaluate to the module's numbers."""
    from latex_reader import Reader, equations
    from graphcomp.formulas.symbols import symbol

    g = gc.Graph("through")
    x, W = g.input("x", (3,)), g.param("W", (3, 2))
    y = g.let("y", gc.tanh(x @ W))
    J = g.let("J", gc.jacobian(y, x))
    g.output("loss", gc.sum(J * J))
    m = gc.compile(g, wrt=["W"])
    X, W0 = RNG.normal(size=3), RNG.normal(size=(3, 2))
    _, grads = m.load().gradients(x=X, W=W0)
    close(grads["W"], jax.grad(lambda W: jnp.sum(jax.jacrev(lambda x: jnp.tanh(x @ W))(X) ** 2))(W0))
    latex = m.gradient_latex()["W"]
    assert r"\mathbf{I}_{2}" in latex and r"J &= \frac{\partial y}{\partial x}" in latex
    jacobian = np.asarray(jax.jacrev(lambda x: jnp.tanh(x @ W0))(X))  # the matrix itself, given as a leaf is
    reader = Reader({symbol("x"): X, symbol("W"): W0, r"\frac{\partial y}{\partial x}": jacobian}, 1)
    pairs = equations(latex)
    reader.define(pairs[1:])
    close(reader.evaluate(pairs[0][1]), grads["W"])


def test_a_loop_is_batched_by_a_loop_over_the_basis_in_both_modes():
    """gc.scan has no batching rule: each of the k rows (columns) runs the loop's derivative once, inside a
    `for` over the basis; the saved steps it reads stay the forward loop's list."""
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", (4, 3)), g.input("h0", (2,))
    W, U = g.param("W", (3, 2)), g.param("U", (2, 2))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs)
    for mode in ("forward", "reverse"):
        g.output(f"JW_{mode}", gc.jacobian(hT, W, mode=mode))
        g.output(f"JU_{mode}", gc.jacobian(hs, U, mode=mode))
    g.output("loss", gc.sum(hT))
    a = {"xs": RNG.normal(size=(4, 3)), "h0": RNG.normal(size=2), "W": RNG.normal(size=(3, 2)), "U": RNG.normal(size=(2, 2))}
    out, loops = run(g, a)
    assert loops

    def rnn(W, U):
        def step(h, x):
            h = jnp.tanh(x @ W + h @ U)
            return h, h
        return jax.lax.scan(step, a["h0"], a["xs"])

    for mode in ("forward", "reverse"):
        close(out[f"JW_{mode}"], jax.jacrev(lambda W: rnn(W, a["U"])[0])(a["W"]))
        close(out[f"JU_{mode}"], jax.jacfwd(lambda U: rnn(a["W"], U)[1])(a["U"]))


def test_rows_picked_by_integer_ids_in_both_modes():
    g = gc.Graph("embedding")
    E, ids = g.param("E", (5, 3)), g.input("ids", (2, 2), dtype="int64")
    y = gc.tanh(gc.take(E, ids))
    g.output("Jf", gc.jacobian(y, E, mode="forward"))
    g.output("Jr", gc.jacobian(y, E, mode="reverse"))
    g.output("loss", gc.sum(y))
    E0, I = RNG.normal(size=(5, 3)), np.array([[0, 3], [3, 1]])
    out, loops = run(g, {"E": E0, "ids": I})
    assert not loops
    want = jax.jacrev(lambda E: jnp.tanh(E[I]))(E0)
    close(out["Jf"], want)
    close(out["Jr"], want)
