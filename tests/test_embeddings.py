"""Integer inputs, gc.take, gc.embedding, gc.linear and the softmax cross-entropy of integer labels:
values and gradients against PyTorch's autograd in float64 (to 1e-10) and central differences, the
generated module's run-time checks of ids, training on minibatches of ids, spec files, and ids given
as array-api-strict arrays."""
import ast
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import array_api_strict
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import graphcomp as gc
from graphcomp.diff.gradcheck import numeric_gradient, relative_error
from graphcomp.frontend.cli import _compiled, read_spec

HERE = Path(__file__).resolve().parent
TOLERANCE = dict(rtol=1e-10, atol=1e-12)
array_api_strict.set_array_api_strict_flags(api_version="2024.12")


def close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), **TOLERANCE)


def repeated_ids(rng, shape, rows):
    """Ids drawn from `rows` with row 1 forced to appear at least twice: its gradient adds up."""
    ids = rng.integers(0, rows, size=shape)
    ids.reshape(-1)[:2] = 1
    return ids


def lm_graph(vocab: int = 7, dim: int = 4, steps: int = 6) -> gc.Graph:
    """A next-token model: embedding -> linear -> cross-entropy against the ids one step ahead."""
    g = gc.Graph("tiny_lm")
    ids = g.input("ids", (None, steps), dtype="int64")
    h = g.let("h", gc.embedding(g, ids[:, :-1], vocab, dim, name="tok"))
    logits = g.output("logits", gc.linear(g, h, vocab, name="head"))
    g.output("loss", gc.softmax_cross_entropy(logits, ids[:, 1:]))
    return g


def lm_source() -> str:
    return gc.compile(lm_graph(), loss="loss").source


# ---- take and embedding --------------------------------------------------------------------------

@pytest.mark.parametrize("ids_shape, table_shape", [((None,), (5, 3)), ((None, 4), (6, 2, 3))],
                         ids=["ids (N,), table (V, D)", "ids (N, T), table (V, A, B)"])
def test_take_and_its_scatter_add_gradient_match_torch(ids_shape, table_shape):
    g = gc.Graph("take")
    ids, table = g.input("ids", ids_shape, dtype="int64"), g.param("E", table_shape)
    picked = gc.take(table, ids)
    assert picked.shape == ids_shape + table_shape[1:]
    g.output("picked", picked)
    g.output("loss", gc.sum(picked * g.input("r", picked.shape)))
    module = gc.compile(g, loss="loss").load()
    rng = np.random.default_rng(0)
    ids_value = repeated_ids(rng, (5,) + ids_shape[1:], table_shape[0])
    E, r = rng.normal(size=table_shape), rng.normal(size=(5,) + picked.shape[1:])
    outputs, grads = module.gradients(ids=ids_value, E=E, r=r)
    E_t = torch.tensor(E, requires_grad=True)
    picked_t = E_t[torch.tensor(ids_value)]
    (picked_t * torch.tensor(r)).sum().backward()
    close(outputs["picked"], picked_t)
    close(grads["E"], E_t.grad)
    assert np.abs(E_t.grad.numpy()[1]).sum() > 0 and np.count_nonzero(ids_value == 1) >= 2


def test_the_tables_gradient_matches_central_differences():
    g = lm_graph()
    module = gc.compile(g, loss="loss").load()
    arrays = {"ids": repeated_ids(np.random.default_rng(1), (3, 6), 7), **module.init_params(3)}
    _, grads = module.gradients(**arrays)
    loss = lambda **a: module.forward(**a)["loss"]  # noqa: E731
    for name in ("tok_weight", "head_weight", "head_bias"):
        assert relative_error(grads[name], numeric_gradient(loss, arrays, name)) < 1e-8, name


def test_embedding_makes_a_pytorch_layout_table_drawn_from_the_standard_normal():
    g = gc.Graph("emb")
    ids = g.input("ids", (None, 3), dtype="int64")
    out = gc.embedding(g, ids, 1000, 16, name="tok")
    assert out.op == "take" and out.shape == (None, 3, 16)
    assert g.params["tok_weight"].shape == (1000, 16)
    g.output("loss", gc.sum(out))
    table = gc.compile(g).load().init_params(0)["tok_weight"]
    assert abs(table.mean()) < 0.03 and abs(table.std() - 1) < 0.03


# ---- linear --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(None, 5), (None, 4, 5)], ids=["(N, D)", "(N, T, D)"])
def test_linear_matches_torch(shape):
    g = gc.Graph("lin")
    x = g.input("x", shape)
    y = gc.linear(g, x, 3, name="fc")
    assert y.shape == shape[:-1] + (3,)
    assert (g.params["fc_weight"].shape, g.params["fc_bias"].shape) == ((3, 5), (3,))
    g.output("y", y)
    g.output("loss", gc.sum(y * g.input("r", y.shape)))
    module = gc.compile(g, loss="loss", wrt=["x", "fc_weight", "fc_bias"]).load()
    rng = np.random.default_rng(2)
    arrays = {"x": rng.normal(size=(6,) + shape[1:]), "r": rng.normal(size=(6,) + y.shape[1:]),
              **module.init_params(0)}
    outputs, grads = module.gradients(**arrays)
    leaves = {name: torch.tensor(arrays[name], requires_grad=True) for name in ("x", "fc_weight", "fc_bias")}
    y_t = F.linear(leaves["x"], leaves["fc_weight"], leaves["fc_bias"])
    (y_t * torch.tensor(arrays["r"])).sum().backward()
    close(outputs["y"], y_t)
    for name, leaf in leaves.items():
        close(grads[name], leaf.grad)


def test_linear_draws_pytorchs_kaiming_uniform_bounds_and_can_leave_out_the_bias():
    g = gc.Graph("lin")
    y = gc.linear(g, g.input("x", (None, 400)), 300, name="fc")
    z = gc.linear(g, y, 2, name="out", bias=False)
    assert "out_bias" not in g.params
    g.output("loss", gc.sum(z))
    params = gc.compile(g).load().init_params(0)
    bound = 1 / np.sqrt(400)  # U(-1/sqrt(in), 1/sqrt(in)), weight and bias alike
    for name in ("fc_weight", "fc_bias"):
        assert np.abs(params[name]).max() <= bound and np.abs(params[name]).max() > 0.9 * bound
    assert abs(params["fc_weight"].std() - bound / np.sqrt(3)) < 0.01 * bound


# ---- cross-entropy of integer labels -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(None, 5), (None, 3, 5)], ids=["(N, V)", "(N, T, V)"])
def test_cross_entropy_of_integer_labels_matches_torch(shape):
    g = gc.Graph("xent")
    logits, labels = g.input("logits", shape), g.input("labels", shape[:-1], dtype="int64")
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    model = gc.compile(g, wrt=["logits"])
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(4,) + shape[1:]) * 3, rng.integers(0, 5, size=(4,) + shape[1:-1])
    outputs, grads = model.load().gradients(logits=z, labels=y)
    z_t = torch.tensor(z, requires_grad=True)
    loss_t = F.cross_entropy(z_t.reshape(-1, 5), torch.tensor(y).reshape(-1))  # the mean over every position
    loss_t.backward()
    assert outputs["loss"] == pytest.approx(loss_t.item(), rel=1e-12)
    close(grads["logits"], z_t.grad)
    positions = "N" if len(shape) == 2 else "3 N"
    assert rf"\overline{{\mathrm{{logits}}}} &= \frac{{P - Y}}{{{positions}}}" in model.gradient_latex()["logits"]
    assert "= (P - Y)/" in model.gradient_text()["logits"]


def test_labels_of_the_wrong_shape_are_one_error_naming_both_shapes():
    g = gc.Graph("xent")
    logits = g.input("logits", (None, 3, 5))
    for labels in (g.input("a", (None, 5), dtype="int64"), g.input("b", (None, 3, 5), dtype="int64")):
        with pytest.raises(gc.ShapeError, match=r"integer labels of shape \(None, (3, )?5\) do not fit logits of "
                                                r"shape \(None, 3, 5\): one label per row, shape \(None, 3\)"):
            gc.softmax_cross_entropy(logits, labels)


def test_the_lm_trains_and_the_gradient_formulas_read_as_the_lecture_writes_them():
    model = gc.compile(lm_graph(), loss="loss")
    latex = model.gradient_latex()["tok_weight"]
    assert r"\overline{\mathrm{tok}}_{weight} &= \operatorname{scatter}_{t_{1}}\left(\bar{h}\right)" in latex
    assert r"\frac{P - Y}{5 N}" in latex and r"h &= \mathrm{tok}_{weight}\left[t_{1}\right]" in latex
    assert "d_tok_weight = _take_grad(xp, d_h, tok_weight, t1)" in model.source
    module = model.load()
    data = {"ids": np.tile(np.arange(6) % 7, (12, 1))}  # the same sequence: the next id is learnable
    params, losses = module.train(module.init_params(0), data, epochs=30, lr=0.5, batch_size=5, optimizer="adam")
    assert losses[-1] < 0.1 * losses[0]
    assert np.argmax(module.forward(ids=data["ids"][:1], **params)["logits"], axis=-1).tolist() == [[1, 2, 3, 4, 5]]


# ---- the generated module's checks of ids ------------------------------------------------------

@pytest.fixture(scope="module")
def lm():
    return gc.compile(lm_graph(), loss="loss").load()


def lm_arrays(module, examples: int = 4) -> dict:
    return {"ids": np.random.default_rng(5).integers(0, 7, size=(examples, 6)), **module.init_params(0)}


@pytest.mark.parametrize("change, error, words", [
    (lambda ids: ids.astype(np.float64), ValueError,
     r"gradients\(\): input 'ids' holds integer ids \(int64\), but was given an array of float64 \(first value 3\.0\)"),
    (lambda ids: np.where(ids == ids[0, 2], 7, ids), ValueError,
     r"gradients\(\): input 'ids' holds 7 at index \[0, 2\]; its ids pick one of 7 rows \(or classes\), 0 to 6"),
    (lambda ids: np.where(ids == ids[1, 0], -1, ids), ValueError,
     r"gradients\(\): input 'ids' holds -1 at index \[1, 0\]; its ids pick one of 7 rows \(or classes\), 0 to 6"),
    (lambda ids: ids[:, :5], ValueError, r"gradients\(\): array 'ids' has shape \(4, 5\), expected \(N, 6\)"),
    (lambda ids: ids > 3, ValueError, r"input 'ids' holds integer ids \(int64\), but was given an array of bool"),
], ids=["float ids", "id = rows", "id = -1", "wrong label shape", "booleans"])
def test_a_bad_id_is_one_error_naming_the_input_and_the_value(lm, change, error, words):
    arrays = lm_arrays(lm)
    arrays["ids"][0, 0] = 3
    arrays["ids"] = change(arrays["ids"])
    with pytest.raises(error, match=words):
        lm.gradients(**arrays)


def test_ids_of_another_integer_dtype_are_read_as_the_declared_one(lm):
    arrays = lm_arrays(lm)
    want = lm.forward(**arrays)["loss"]
    assert lm.forward(**{**arrays, "ids": arrays["ids"].astype(np.int32)})["loss"] == want
    assert lm.forward(**{**arrays, "ids": arrays["ids"].tolist()})["loss"] == want
    assert lm.INTEGERS == {"ids": ("int64", 7)}


def test_integer_inputs_are_never_differentiated():
    g = gc.Graph("m")
    ids, x = g.input("ids", (None, 3), dtype="int64"), g.input("x", (None, 3, 2))
    g.output("loss", gc.sum(gc.take(g.param("E", (4, 2)), ids) * x))
    with pytest.raises(gc.GraphError, match=r"wrt: input\(s\) 'ids' hold integers \(ids, labels\), which have "
                                            r"no gradient; differentiate with respect to params or float inputs"):
        gc.compile(g, wrt=["E", "ids"])
    assert gc.compile(g).load().WRT == ("E",)
    g2 = gc.Graph("no_params")
    ids2 = g2.input("ids", (None,), dtype="int64")
    g2.output("loss", gc.softmax_cross_entropy(g2.input("z", (None, 3)), ids2))
    assert gc.compile(g2).load().WRT == ("z",)  # no params: every input of floats, not the ids
    with pytest.raises(gc.DifferentiationError, match="gc.grad: input 'ids' holds integer ids, which have no gradient"):
        gc.grad(g.outputs["loss"], [ids])


def test_integers_are_read_only_as_ids_labels_and_views():
    g = gc.Graph("m")
    ids = g.input("ids", (None, 3), dtype="int64")
    g.output("loss", gc.sum(g.param("w", (3,)) * ids))
    with pytest.raises(gc.GraphError, match=r"input 'ids' holds integers \(int64\): mul cannot compute with it"):
        gc.compile(g)
    with pytest.raises(gc.GraphError, match="take: the ids must be integers, an input declared with dtype='int64'"):
        gc.take(g.param("E", (4, 2)), g.input("f", (None, 3)))
    with pytest.raises(gc.GraphError, match="unknown dtype 'int8'; choose one of float, int64, int32"):
        g.input("q", (None,), dtype="int8")


# ---- training, other array libraries, spec files, the module's text ----------------------------

def test_training_cuts_minibatches_of_ids_and_scores_every_position():
    g = gc.Graph("tagger")
    ids, tags = g.input("ids", (None, 5), dtype="int64"), g.input("tags", (None, 5), dtype="int64")
    logits = g.output("logits", gc.linear(g, gc.embedding(g, ids, 6, 3), 2))
    g.output("loss", gc.softmax_cross_entropy(logits, tags))
    module = gc.compile(g, loss="loss", predict="logits", target="tags").load()
    rng = np.random.default_rng(6)
    data = {"ids": rng.integers(0, 6, size=(30, 5))}
    data["tags"] = data["ids"] % 2  # learnable from each id alone
    records = []
    params, losses = module.train(module.init_params(0), data, epochs=40, lr=0.3, batch_size=8, optimizer="adam",
                                  validation=0.2, on_epoch=records.append)
    assert 0 <= records[0]["val_accuracy"] <= 1 and records[-1]["val_accuracy"] == 1.0
    scores = module.evaluate(params, data)
    guessed = np.argmax(module.forward(**data, **params)["logits"], axis=-1)
    assert scores["accuracy"] == np.mean(guessed == data["tags"]) == 1.0  # per position, never above 1
    assert losses[-1] < losses[0]


def test_ids_through_array_api_strict_give_the_numpy_results(lm):
    arrays = lm_arrays(lm)
    strict = {name: array_api_strict.asarray(value) for name, value in arrays.items()}
    assert strict["ids"].dtype == array_api_strict.int64
    want_outputs, want_grads = lm.gradients(**arrays)
    got_outputs, got_grads = lm.gradients(**strict)
    assert got_outputs["loss"] == pytest.approx(want_outputs["loss"], rel=1e-12)
    for name, want in want_grads.items():
        assert "array_api_strict" in type(got_grads[name]).__module__
        np.testing.assert_allclose(np.asarray(got_grads[name]), want, **TOLERANCE)
    with pytest.raises(ValueError, match="input 'ids' holds integer ids"):
        lm.gradients(**{**strict, "ids": array_api_strict.asarray(arrays["ids"], dtype=array_api_strict.float64)})
    with pytest.raises(ValueError, match=r"input 'ids' holds 9 at index \[0, 0\]"):
        lm.gradients(**{**strict, "ids": array_api_strict.asarray(np.where(arrays["ids"] == arrays["ids"][0, 0], 9,
                                                                             arrays["ids"]))})
    settings = dict(epochs=3, lr=0.1, batch_size=3, optimizer="adam")
    _, want_losses = lm.train(lm.init_params(0), {"ids": arrays["ids"]}, **settings)
    strict_params = {name: value for name, value in strict.items() if name != "ids"}
    _, got_losses = lm.train(strict_params, {"ids": strict["ids"]}, **settings)
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-10)


def test_a_spec_with_an_integer_input_compiles_and_runs(tmp_path):
    path = tmp_path / "tiny_lm.toml"
    path.write_text('[model]\nname = "tiny_lm"\nloss = "loss"\n\n'
                    '[inputs]\nids = { shape = ["N", 6], dtype = "int64" }\n'
                    'targets = { shape = ["N", 6], dtype = "int64" }\n\n'
                    '[params]\nE = { shape = [7, 4], init = "standard_normal" }\nW = [4, 7]\n\n'
                    '[nodes]\nh = "take(E, ids)"\nlogits = "h @ W"\n\n'
                    '[outputs]\nloss = "softmax_cross_entropy(logits, targets)"\n')
    module = _compiled(read_spec(str(path))).load()
    assert module.INTEGERS == {"ids": ("int64", 7), "targets": ("int64", 7)}
    rng = np.random.default_rng(7)
    data = {"ids": rng.integers(0, 7, size=(10, 6)), "targets": rng.integers(0, 7, size=(10, 6))}
    params = module.init_params(0)
    outputs, grads = module.gradients(**data, **params)
    E, W = (torch.tensor(params[name], requires_grad=True) for name in ("E", "W"))
    logits_t = E[torch.tensor(data["ids"])] @ W
    loss_t = F.cross_entropy(logits_t.reshape(-1, 7), torch.tensor(data["targets"]).reshape(-1))
    loss_t.backward()
    assert outputs["loss"] == pytest.approx(loss_t.item(), rel=1e-12)
    close(grads["E"], E.grad)
    _, losses = module.train(params, data, epochs=5, lr=0.5, batch_size=4)
    assert losses[-1] < losses[0]


def test_the_pictures_show_the_lookup_and_its_scatter_add(tmp_path):
    from graphcomp.frontend.cli import main
    spec = tmp_path / "lookup.toml"
    spec.write_text('[inputs]\nids = { shape = ["N", 6], dtype = "int64" }\n[params]\nE = [7, 4]\n'
                    '[nodes]\nh = "take(E, ids)"\n[outputs]\nloss = "sum(tanh(h))"\n')
    for flags, *labels in (([], ">h<", "> = E[ids]<"), (["--backward"], "> = scatter_ids(h̄)<")):
        out = tmp_path / f"lookup{len(flags)}.svg"
        assert main(["graph", str(spec), "-o", str(out), *flags]) == 0
        assert all(text in out.read_text(encoding="utf-8") for text in labels)


def test_a_spec_refuses_an_unknown_dtype(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[inputs]\nids = { shape = ["N"], dtype = "int8" }\n[outputs]\nout = "ids"\n')
    with pytest.raises(gc.GraphcompError, match=r"inputs\.ids.*unknown dtype 'int8'"):
        read_spec(str(path))


def test_the_module_imports_numpy_only_compiles_and_is_the_same_in_every_process(tmp_path):
    source = lm_source()
    tree = ast.parse(source)
    assert {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names} == {"numpy"}
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))
    path = tmp_path / "tiny_lm.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)
    script = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_embeddings; "
              "sys.stdout.write(test_embeddings.lm_source())")
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        assert subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                              check=True).stdout == source
    assert "Inputs:  ids (None, 6) int64" in source


def test_forward_leaves_out_an_integer_input_no_output_needs():
    g = gc.Graph("two")
    ids, x = g.input("ids", (None,), dtype="int64"), g.input("x", (None, 2))
    g.output("y", gc.sum(x * x))
    g.output("emb", gc.take(g.param("E", (3, 2)), ids))
    module = gc.compile(g, loss="y", wrt=["x"]).load()
    assert module.forward(x=np.ones((4, 2)), E=np.ones((3, 2))) == {"y": 8.0}


def test_a_csv_data_file_gives_integer_inputs_as_integers(lm, tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(",".join(f"ids:{k}" for k in range(6)) + "\n0,1,2,3,4,5\n6,5,4,3,2,1\n")
    data = lm.load_data(str(path))
    assert data["ids"].dtype == np.int64 and data["ids"].tolist() == [[0, 1, 2, 3, 4, 5], [6, 5, 4, 3, 2, 1]]
    _, losses = lm.train(lm.init_params(0), data, epochs=2, lr=0.1, batch_size=1)
    assert len(losses) == 2
    path.write_text(",".join(f"ids:{k}" for k in range(6)) + "\n0,1,2,3,4,5.5\n")
    with pytest.raises(ValueError, match=r"input 'ids' holds integer ids \(int64\), but was given an array of float64"):
        lm.train(lm.init_params(0), lm.load_data(str(path)), epochs=1, lr=0.1, batch_size=1)
