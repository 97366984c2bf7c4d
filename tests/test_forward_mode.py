"""Forward mode (gc.jvp): every op's tangent against central differences, models against torch.func.jvp,
the generated code (tangent lines right after the values they are the tangents of, named dot_x), specs
and errors."""
import re

import numpy as np
import pytest
import torch

import graphcomp as gc
from test_op_gradients import CASES, ID_CASES, concrete

torch.set_default_dtype(torch.float64)


def _directional(module, arrays: dict, moved: dict, output: str, step: float = 1e-6) -> np.ndarray:
    """(f(x + h v) - f(x - h v)) / 2h for the inputs in `moved` (name -> v), central differences."""
    plus = {**arrays, **{k: arrays[k] + step * v for k, v in moved.items()}}
    minus = {**arrays, **{k: arrays[k] - step * v for k, v in moved.items()}}
    return (np.asarray(_run(module, plus)[output]) - np.asarray(_run(module, minus)[output])) / (2 * step)


def _run(module, arrays: dict) -> dict:
    """forward(), with the batch's own statistics where the graph has batch norm."""
    return module.forward(**arrays, **({"training": True} if module.BUFFERS else {}))


def _relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


@pytest.mark.parametrize("shapes, build, domain", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_op_tangent_matches_central_differences(shapes, build, domain):
    rng = np.random.default_rng(1)
    g = gc.Graph("case")
    operands = [g.input(name, shape) for name, shape in zip("abcd", shapes)]
    tangents = [g.input(f"dot_{x.name}", x.shape) for x in operands]
    out = g.output("out", build(*operands))
    g.output("dot_out", gc.jvp(out, operands, tangents))
    m = gc.compile(g, loss="out", wrt=[]).load() if out.shape == () else _forward_only(g)
    arrays = {x.name: rng.uniform(*domain, size=concrete(x.shape)) for x in operands}
    moved = {x.name: rng.normal(size=concrete(x.shape)) for x in operands}
    given = {**arrays, **{f"dot_{k}": v for k, v in moved.items()}}
    tangent = _run(m, given)["dot_out"]
    assert _relative(tangent, _directional(m, given, moved, "out")) < 1e-6


def _forward_only(g: gc.Graph):
    """A module for a graph whose outputs are not scalars: a scalar loss beside them, never differentiated."""
    first = next(iter(g.outputs.values()))
    g.output("total", gc.sum(first))
    return gc.compile(g, loss="total", wrt=[]).load()


@pytest.mark.parametrize("shape, ids_shape, rows, build", [c[1:] for c in ID_CASES], ids=[c[0] for c in ID_CASES])
def test_tangents_through_integer_ids_match_central_differences(shape, ids_shape, rows, build):
    rng = np.random.default_rng(2)
    g = gc.Graph("case")
    a, ids, dot_a = g.input("a", shape), g.input("ids", ids_shape, dtype="int64"), g.input("dot_a", shape)
    out = g.output("out", build(a, ids))
    g.output("dot_out", gc.jvp(out, [a], [dot_a]))
    m = gc.compile(g, loss="out", wrt=[]).load() if out.shape == () else _forward_only(g)
    arrays = {"a": rng.uniform(-1, 1, size=concrete(shape)), "ids": np.resize([1, 1, *range(rows)], concrete(ids_shape))}
    moved = {"a": rng.normal(size=concrete(shape))}
    given = {**arrays, "dot_a": moved["a"]}
    assert _relative(m.forward(**given)["dot_out"], _directional(m, given, moved, "out")) < 1e-6


def _mlp_graph():
    """A two-layer MLP's softmax cross-entropy, its tangent along (V1, v2): the directions of W1 and b2."""
    g = gc.Graph("mlp")
    x, y = g.input("x", (None, 4)), g.input("y", (None, 3))
    W1, b1, W2, b2 = g.param("W1", (4, 5)), g.param("b1", (5,)), g.param("W2", (5, 3)), g.param("b2", (3,))
    V1, v2 = g.input("V1", (4, 5)), g.input("v2", (3,))
    loss = g.output("loss", gc.softmax_cross_entropy(gc.tanh(x @ W1 + b1) @ W2 + b2, y))
    g.output("dot_loss", gc.jvp(loss, [W1, b2], [V1, v2]))
    return g


def test_mlp_tangent_matches_torch_func_jvp():
    rng = np.random.default_rng(3)
    m = gc.compile(_mlp_graph(), loss="loss").load()
    arrays = {"x": rng.normal(size=(6, 4)), "y": np.eye(3)[rng.integers(0, 3, 6)], "W1": rng.normal(size=(4, 5)),
              "b1": rng.normal(size=5), "W2": rng.normal(size=(5, 3)), "b2": rng.normal(size=3),
              "V1": rng.normal(size=(4, 5)), "v2": rng.normal(size=3)}
    t = {k: torch.tensor(v) for k, v in arrays.items()}

    def loss(W1, b2):
        z = torch.tanh(t["x"] @ W1 + t["b1"]) @ t["W2"] + b2
        return -(t["y"] * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
    value, tangent = torch.func.jvp(loss, (t["W1"], t["b2"]), (t["V1"], t["v2"]))
    out = m.forward(**arrays)
    assert abs(out["loss"] - value.item()) < 1e-10
    assert abs(out["dot_loss"] - tangent.item()) < 1e-10


def test_hessian_vector_product_forward_over_reverse_matches_torch():
    """jvp of a gradient: H v without a second reverse sweep, against torch.func's forward-over-reverse."""
    rng = np.random.default_rng(4)
    g = gc.Graph("hvp")
    x, y, w, v = g.input("x", (None, 3)), g.input("y", (None,)), g.param("w", (3,)), g.input("v", (3,))
    p = gc.sigmoid(x @ w)
    loss = g.output("loss", gc.mean(-(y * gc.log(p) + (1 - y) * gc.log(1 - p))))
    (gw,) = gc.grad(loss, [w])
    g.output("Hv", gc.jvp(gw, [w], [v]))
    m = gc.compile(g, loss="loss").load()
    arrays = {"x": rng.normal(size=(7, 3)), "y": rng.integers(0, 2, 7).astype(float), "w": rng.normal(size=3),
              "v": rng.normal(size=3)}
    t = {k: torch.tensor(a) for k, a in arrays.items()}

    def loss_of(w):
        q = torch.sigmoid(t["x"] @ w)
        return -(t["y"] * torch.log(q) + (1 - t["y"]) * torch.log(1 - q)).mean()
    _, hv = torch.func.jvp(torch.func.grad(loss_of), (t["w"],), (t["v"],))
    np.testing.assert_allclose(m.forward(**arrays)["Hv"], hv.numpy(), rtol=0, atol=1e-10)


def test_rnn_loop_tangent_matches_torch():
    """A loop's tangent (its reverse rule transposed) along the recurrent weight, against torch."""
    rng = np.random.default_rng(5)
    g = gc.Graph("rnn")
    xs, Wx, Wh, V = g.input("xs", (None, 6, 2)), g.param("Wx", (2, 4)), g.param("Wh", (4, 4)), g.input("V", (4, 4))
    h0 = gc.zeros_like(xs[:, 0, :] @ Wx)
    hT, hs = gc.scan(lambda h, x_t: (gc.tanh(x_t @ Wx + h @ Wh),) * 2, h0, xs, axis=1)
    loss = g.output("loss", gc.sum(hT * hT) + gc.mean(hs))
    g.output("dot_loss", gc.jvp(loss, [Wh], [V]))
    m = gc.compile(g, loss="loss").load()
    arrays = {"xs": rng.normal(size=(3, 6, 2)), "Wx": rng.normal(size=(2, 4)), "Wh": 0.5 * rng.normal(size=(4, 4)),
              "V": rng.normal(size=(4, 4))}
    t = {k: torch.tensor(a) for k, a in arrays.items()}

    def loss_of(Wh):
        h, steps = torch.zeros(3, 4), []
        for k in range(6):
            h = torch.tanh(t["xs"][:, k, :] @ t["Wx"] + h @ Wh)
            steps.append(h)
        return (h * h).sum() + torch.stack(steps, 1).mean()
    value, tangent = torch.func.jvp(loss_of, (t["Wh"],), (t["V"],))
    out = m.forward(**arrays)
    assert abs(out["loss"] - value.item()) < 1e-10 and abs(out["dot_loss"] - tangent.item()) < 1e-10


def test_generated_code_interleaves_tangents_named_dot():
    model = gc.compile(_mlp_graph(), loss="loss")
    body = model.source.split("def forward(")[1].split("return {")[0]
    lines = [line.strip() for line in body.splitlines() if " = " in line and not line.strip().startswith(("#", "xp,"))]
    names = [line.split(" = ")[0] for line in lines]
    assert "dot_loss" in names and "dot_t1" in names  # W1's tangent flows through x @ W1 (t1)
    for k, name in enumerate(names):  # each tangent of a value comes after that value, before the next value
        if name.startswith("dot_") and name[4:] in names:
            assert names.index(name[4:]) < k
    assert names.index("dot_t1") == names.index("t1") + 1
    assert model.source == gc.compile(_mlp_graph(), loss="loss").source  # deterministic


def test_tangent_symbols_carry_a_dot():
    from graphcomp.formulas.symbols import bar, symbol

    assert symbol("dot_x1") == r"\dot{x}_{1}" and symbol("dot_t3") == r"\dot{t}_{3}"
    assert bar("dot_x") == r"\bar{\dot{x}}" and symbol("dot_product") == r"\mathrm{dot}_{product}"


def test_numbers_as_tangents_give_partial_derivatives():
    g = gc.Graph("survey")
    x1, x2 = g.input("x1"), g.input("x2")
    f = g.output("f", gc.log(x1) + x1 * x2 - gc.tanh(x2))
    g.output("df_dx1", gc.jvp(f, [x1, x2], [1, 0]))
    g.output("df_dx2", gc.jvp(f, [x1, x2], [0, 1]))
    out = gc.compile(g, loss="f").load().forward(x1=2.0, x2=5.0)
    assert out["df_dx1"] == pytest.approx(5.5, abs=1e-12)
    assert out["df_dx2"] == pytest.approx(2 - (1 - np.tanh(5.0) ** 2), abs=1e-12)


def test_spec_files_write_jvp(tmp_path):
    spec = tmp_path / "survey.toml"
    spec.write_text('[model]\nname = "survey"\nloss = "f"\n\n[inputs]\nx1 = []\nx2 = []\n\n[outputs]\n'
                    'f = "log(x1) + x1 * x2 - tanh(x2)"\ndot_f = "jvp(f, [x1, x2], [1, 0])"\n')
    from graphcomp.frontend.spec import load

    out = gc.compile(load(spec).graph, loss="f").load().forward(x1=2.0, x2=5.0)
    assert out["dot_f"] == pytest.approx(5.5, abs=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda x, y: gc.jvp(x * x, [x], [x, x]), "1 input(s) but 2 tangent(s)"),
    (lambda x, y: gc.jvp(x * 2, [x], [y]), "has shape (4,), the input (3,)"),
    (lambda x, y: gc.jvp(x, [3.0], [1.0]), "takes graph values"),
])
def test_bad_jvp_calls_say_what_is_wrong(call, message):
    g = gc.Graph("bad")
    x, y = g.input("x", (3,)), g.input("y", (4,))
    with pytest.raises(gc.DifferentiationError, match=re.escape(message)):
        call(x, y)


def test_integer_inputs_have_no_tangent():
    g = gc.Graph("ids")
    E, ids = g.param("E", (4, 2)), g.input("ids", (None,), dtype="int64")
    with pytest.raises(gc.DifferentiationError, match="integer ids"):
        gc.jvp(gc.take(E, ids), [ids], [1])


SURVEY = ('[model]\nname = "survey"\nloss = "f"\n\n[inputs]\nx1 = []\nx2 = []\n\n[outputs]\n'
          'f = "log(x1) + x1 * x2 - tanh(x2)"\n')


def test_grad_tangent_prints_the_forward_mode_trace(tmp_path, capsys):
    """The survey's forward trace: each value, then its tangent, down to the loss's directional derivative."""
    from graphcomp.frontend.cli import main

    spec = tmp_path / "survey.toml"
    spec.write_text(SURVEY)
    assert main(["grad", str(spec), "--at", "x1=2,x2=5", "--tangent", "x1=1,x2=0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["t1 = log(x1) = 0.693147", "dot_t1 = dot_x1/x1 = 0.5"]
    assert lines[3] == "dot_t2 = dot_x1*x2 + dot_x2*x1 = 5" and lines[-1] == "dot_f = dot_t3 - dot_t4 = 5.5"
    assert main(["grad", str(spec), "--at", "x1=2,x2=5", "--tangent", "x1=1,x2=0", "--latex"]) == 0
    latex = capsys.readouterr().out
    assert r"\dot{t}_{2} &= x_{1} \dot{x}_{2} + x_{2} \dot{x}_{1} = 5" in latex and r"\dot{f} &=" in latex
    assert main(["grad", str(spec), "--tangent", "x3=1"]) == 2
    assert "'x3' is no input or param" in capsys.readouterr().err


def test_check_runs_the_adjoint_dot_product_test(tmp_path, capsys, monkeypatch):
    """graphcomp check compares forward and reverse mode on every output, and catches a wrong forward rule."""
    import dataclasses

    from graphcomp.frontend.cli import main
    from graphcomp.ops import OPS

    spec = tmp_path / "survey.toml"
    spec.write_text(SURVEY)
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"f +<J v, u> = <v, J\^T u> to \S+ +ok", out)
    wrong = dataclasses.replace(OPS["tanh"], jvp=lambda node, tangents: tangents[0])  # tanh' taken as 1
    monkeypatch.setitem(OPS, "tanh", wrong)
    assert main(["check", str(spec)]) == 1
    assert "forward and reverse mode disagree on f" in capsys.readouterr().err


def test_gaussian_nll_tangent_through_matrix_rules_matches_torch():
    """gc.jvp through logdet, solve and a matrix product (their closed-form forward rules) against torch."""
    rng = np.random.default_rng(7)
    g = gc.Graph("gauss")
    x, L, V = g.input("x", (None, 3)), g.param("L", (3, 3)), g.input("V", (3, 3))
    S = L @ gc.transpose(L) + 0.1 * gc.eye_like(L)
    nll = g.output("nll", 0.5 * gc.logdet(S) + 0.5 * gc.mean(gc.sum(x * gc.transpose(gc.solve(S, gc.transpose(x))), axis=1)))
    g.output("dot_nll", gc.jvp(nll, [L], [V]))
    m = gc.compile(g, loss="nll").load()
    arrays = {"x": rng.normal(size=(5, 3)), "L": rng.normal(size=(3, 3)) + 2 * np.eye(3), "V": rng.normal(size=(3, 3))}
    t = {k: torch.tensor(a) for k, a in arrays.items()}

    def nll_of(L):
        S = L @ L.T + 0.1 * torch.eye(3)
        return 0.5 * torch.logdet(S) + 0.5 * (t["x"] * torch.linalg.solve(S, t["x"].T).T).sum(1).mean()
    value, tangent = torch.func.jvp(nll_of, (t["L"],), (t["V"],))
    out = m.forward(**arrays)
    assert abs(out["nll"] - value.item()) < 1e-10 and abs(out["dot_nll"] - tangent.item()) < 1e-10


def test_mlp_tangent_matches_jax_jvp():
    import jax
    import jax.numpy as jnp

    was = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(8)
        m = gc.compile(_mlp_graph(), loss="loss").load()
        arrays = {"x": rng.normal(size=(6, 4)), "y": np.eye(3)[rng.integers(0, 3, 6)], "W1": rng.normal(size=(4, 5)),
                  "b1": rng.normal(size=5), "W2": rng.normal(size=(5, 3)), "b2": rng.normal(size=3),
                  "V1": rng.normal(size=(4, 5)), "v2": rng.normal(size=3)}

        def loss(W1, b2):
            z = jnp.tanh(arrays["x"] @ W1 + arrays["b1"]) @ arrays["W2"] + b2
            return -(arrays["y"] * jax.nn.log_softmax(z, axis=1)).sum(axis=1).mean()
        value, tangent = jax.jvp(loss, (arrays["W1"], arrays["b2"]), (arrays["V1"], arrays["v2"]))
        out = m.forward(**arrays)
        assert abs(out["loss"] - float(value)) < 1e-10 and abs(out["dot_loss"] - float(tangent)) < 1e-10
    finally:
        jax.config.update("jax_enable_x64", was)
