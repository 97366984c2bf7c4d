"""The ops for token ids, normalisation and attention in TOML specs: each spec builds the module its
Python graph builds (the same source), and `graphcomp check` passes at two batch sizes; the layers that
declare params (gc.embedding, gc.linear) are written with declared params, and calling them says how;
examples/char_lm.toml compiles, checks, prints its gradients and trains on data made as its comment says."""
import math
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend import spec
from graphcomp.frontend.cli import _compiled, main, spec_gradient_errors
from graphcomp.frontend.expressions import SpecError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHAR_LM = EXAMPLES / "char_lm.toml"


def _layer_norm(g):
    x, w = g.input("x", (None, 3, 4)), g.input("w", (None, 3, 4))
    gamma, beta = g.param("gamma", (3, 4)), g.param("beta", (3, 4), init="zeros")
    g.output("loss", gc.mean(gc.tanh(gc.layer_norm(x, gamma, beta, axis=-2, eps=1e-3)) * w))


def _batch_norm(g):
    x = g.input("x", (None, 2, 3))
    W, gamma, beta = g.param("W", (3, 3)), g.param("gamma", (3,), init="normal"), g.param("beta", (3,))
    h = gc.batch_norm(x @ W, gamma, beta, momentum=0.25, eps=1e-4, name="bn1")
    g.output("loss", gc.mean(gc.tanh(h) ** 2))


def _gelu(g):
    x, W = g.input("x", (None, 3)), g.param("W", (3, 2))
    g.output("loss", gc.sum(gc.gelu(x @ W)) + gc.sum(gc.gelu(x, approximate="none")))


def _causal_softmax(g):
    x, y, A = g.input("x", (None, 3, 3)), g.input("y", (None, 3, 3)), g.param("A", (3, 3))
    g.output("loss", gc.sum(gc.softmax(gc.causal_mask(x @ A), axis=-1) * y))


def _attention(g):
    x, m = g.input("x", (None, 2, 3, 4)), g.input("m", (None, 2, 5, 4))
    Wq, Wk, Wv = g.param("Wq", (4, 4)), g.param("Wk", (4, 4)), g.param("Wv", (4, 2))
    causal = gc.attention(x @ Wq, x @ Wk, x @ Wv)
    free = g.let("free", gc.attention(x @ Wq, m @ Wk, m @ Wv, causal=False))
    g.output("loss", gc.sum(gc.tanh(causal)) + gc.mean(free * free))


def _take(g):
    ids = g.input("ids", (None, 2), dtype="int64")
    E, W = g.param("E", (5, 3), init="standard_normal"), g.param("W", (3, 1))
    g.output("loss", gc.sum(gc.tanh(gc.take(E, ids) @ W)))


def _labels(g):
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,), dtype="int64")
    W, b = g.param("W", (4, 3), init="uniform"), g.param("b", (3,), init="uniform", fan_in=4)
    g.output("logits", x @ W + b)
    g.output("loss", gc.softmax_cross_entropy(x @ W + b, labels))


CASES = {
    "layer_norm": (_layer_norm, """
        [inputs]
        x = ["N", 3, 4]
        w = ["N", 3, 4]
        [params]
        gamma = [3, 4]
        beta = { shape = [3, 4], init = "zeros" }
        [outputs]
        loss = "mean(tanh(layer_norm(x, gamma, beta, axis=-2, eps=0.001)) * w)"
        """),
    "batch_norm": (_batch_norm, """
        [inputs]
        x = ["N", 2, 3]
        [params]
        W = [3, 3]
        gamma = { shape = [3], init = "normal" }
        beta = [3]
        [outputs]
        loss = "mean(tanh(batch_norm(x @ W, gamma, beta, momentum=0.25, eps=0.0001, name='bn1')) ** 2)"
        """),
    "gelu": (_gelu, """
        [inputs]
        x = ["N", 3]
        [params]
        W = [3, 2]
        [outputs]
        loss = "sum(gelu(x @ W)) + sum(gelu(x, approximate='none'))"
        """),
    "causal_mask": (_causal_softmax, """
        [inputs]
        x = ["N", 3, 3]
        y = ["N", 3, 3]
        [params]
        A = [3, 3]
        [outputs]
        loss = "sum(softmax(causal_mask(x @ A), axis=-1) * y)"
        """),
    "attention": (_attention, """
        [inputs]
        x = ["N", 2, 3, 4]
        m = ["N", 2, 5, 4]
        [params]
        Wq = [4, 4]
        Wk = [4, 4]
        Wv = [4, 2]
        [nodes]
        free = "attention(x @ Wq, m @ Wk, m @ Wv, causal=False)"
        [outputs]
        loss = "sum(tanh(attention(x @ Wq, x @ Wk, x @ Wv))) + mean(free * free)"
        """),
    "take": (_take, """
        [inputs]
        ids = { shape = ["N", 2], dtype = "int64" }
        [params]
        E = { shape = [5, 3], init = "standard_normal" }
        W = [3, 1]
        [outputs]
        loss = "sum(tanh(take(E, ids) @ W))"
        """),
    "integer labels": (_labels, """
        [inputs]
        x = ["N", 4]
        labels = { shape = ["N"], dtype = "int64" }
        [params]
        W = { shape = [4, 3], init = "uniform" }
        b = { shape = [3], init = "uniform", fan_in = 4 }
        [outputs]
        logits = "x @ W + b"
        loss = "softmax_cross_entropy(x @ W + b, labels)"
        """),
}


def _spec(text: str) -> spec.Spec:
    return spec.build(tomllib.loads('[model]\nname = "t"\nloss = "loss"\n' + _dedent(text)), "t.toml")


def _dedent(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())


@pytest.mark.parametrize("kind", CASES)
def test_a_spec_builds_the_module_its_python_graph_builds(kind):
    build, text = CASES[kind]
    g = gc.Graph("t")
    build(g)
    want = gc.compile(g, loss="loss").source
    got = gc.compile(_spec(text).graph, loss="loss").source
    assert got == want


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("batch", [2, 5])
def test_a_spec_of_each_new_op_passes_the_gradient_check(kind, batch):
    loaded = _spec(CASES[kind][1])
    errors = spec_gradient_errors(_compiled(loaded), loaded, seed=batch, batch=batch)
    assert set(errors) == set(loaded.graph.params)  # a spec's params, by default
    assert max(errors.values()) < 1e-6, errors


def test_batch_norm_in_a_spec_declares_its_running_statistics_under_its_name():
    module = gc.compile(_spec(CASES["batch_norm"][1]).graph, loss="loss").load()
    assert module.BUFFERS == {"bn1_running_mean": (3,), "bn1_running_var": (3,)}
    assert set(module.RUNNING_MOMENTUM.values()) == {0.25}
    params = module.init_params(0)
    np.testing.assert_array_equal(params["bn1_running_mean"], np.zeros(3))
    np.testing.assert_array_equal(params["bn1_running_var"], np.ones(3))


def test_integer_ids_in_a_spec_are_checked_at_run_time():
    module = gc.compile(_spec(CASES["take"][1]).graph, loss="loss").load()
    params = module.init_params(0)
    assert module.INTEGERS["ids"][1] == 5  # the table's rows
    out, grads = module.gradients(ids=np.array([[0, 4], [4, 4]]), **params)
    assert set(grads) == {"E", "W"} and math.isfinite(out["loss"])
    np.testing.assert_array_equal(grads["E"][1:4], 0.0)  # rows no id picked
    with pytest.raises(ValueError, match="ids"):
        module.gradients(ids=np.array([[0, 5], [1, 2]]), **params)


@pytest.mark.parametrize("expression, message", [
    ("sum(embedding(ids, 5, 3))", r"embedding\(\) declares params, which a spec declares in \[params\]: "
                                  r"write take\(E, ids\)"),
    ("sum(linear(x, 3))", r"linear\(\) declares params.*write x @ W \+ b"),
    ("sum(take(E, x))", "take: the ids must be integers, an input declared with dtype='int64'"),
    ("sum(batch_norm(x, g3, g3, momentum=2))", "batch_norm: momentum must be a number in"),
    ("sum(gelu(x, approximate='erf'))", 'gelu: approximate must be "tanh"'),
    ("sum(causal_mask(x))", r"causal_mask: the scores \(None, 3\) must end in a square matrix"),
    ("sum(attention(x, x, x, causal='yes'))", "attention: causal must be True or False"),
])
def test_a_new_op_misused_in_a_spec_is_one_error_naming_the_entry(expression, message):
    text = f"""
        [inputs]
        x = ["N", 3]
        ids = {{ shape = ["N"], dtype = "int64" }}
        [params]
        E = [5, 3]
        g3 = [3]
        [outputs]
        loss = "{expression}"
        """
    with pytest.raises(SpecError, match=rf"t\.toml: outputs\.loss: .*{message}"):
        _spec(text)


def test_fan_in_is_given_with_the_uniform_init_only():
    with pytest.raises(SpecError, match=r"params\.b: param 'b': fan_in must be a positive int, given with init='uniform'"):
        _spec('[inputs]\nx = ["N", 3]\n[params]\nb = { shape = [3], init = "xavier", fan_in = 3 }\n'
              '[outputs]\nloss = "sum(x + b)"')


def test_the_char_lm_example_compiles_checks_and_prints_its_gradients(tmp_path, capsys):
    out = tmp_path / "char_lm.py"
    assert main(["compile", str(CHAR_LM), "-o", str(out)]) == 0
    assert "_take(xp, C, context)" in out.read_text(encoding="utf-8")
    assert main(["check", str(CHAR_LM)]) == 0
    checked = capsys.readouterr().out
    for name in ("C", "Wq", "Wk", "Wv", "ln_g", "ln_b", "W1", "bn_g", "bn_b", "W2", "b2"):
        assert f"{name} " in checked
    assert "FAIL" not in checked
    assert main(["grad", str(CHAR_LM)]) == 0
    formulas = capsys.readouterr().out
    assert "# gradient of loss with respect to C" in formulas and "_take_grad(" in formulas


def test_the_char_lm_example_trains_on_the_names_made_as_its_comment_says(tmp_path, capsys):
    """Its comment makes the data with examples/bengio_lm.py's examples(): here from 300 names."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import bengio_lm
    finally:
        sys.path.remove(str(EXAMPLES))
    assert "bengio_lm as lm; np.savez('out/names_ids.npz', **lm.examples(lm.read_names()))" in \
        CHAR_LM.read_text(encoding="utf-8")
    data = tmp_path / "names_ids.npz"
    np.savez(data, **bengio_lm.examples(bengio_lm.read_names()[:300]))
    params = tmp_path / "params.npz"
    assert main(["train", str(CHAR_LM), "--data", str(data), "--epochs", "2", "--out", str(params), "--quiet"]) == 0
    trained = np.load(params)
    assert trained["C"].shape == (27, 8) and trained["bn_running_var"].shape == (64,)
    assert not np.allclose(trained["bn_running_mean"], 0.0)  # train() blended batch statistics into it
