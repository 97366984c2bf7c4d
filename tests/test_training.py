"""The generated training loop: optimizers, schedules, regularisation, validation, files."""
import numpy as np
import pytest

import graphcomp as gc


def regression(seed=0):
    g = gc.Graph("reg")
    x, y = g.input("x", (None, 3)), g.input("y", (None,))
    w, b = g.param("w", (3,), init="zeros"), g.param("b", (), init="zeros")
    g.output("loss", gc.mse(x @ w + b, y))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 3))
    return gc.compile(g).load(), {"x": X, "y": X @ np.array([1.0, -2.0, 0.5]) + 0.25}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_every_optimizer_fits_a_linear_model(optimizer):
    m, data = regression()
    lr = {"sgd": 0.1, "momentum": 0.05, "adam": 0.05}[optimizer]
    params, losses = m.train(m.init_params(), data, epochs=60, lr=lr, batch_size=16, optimizer=optimizer)
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(params["w"], [1.0, -2.0, 0.5], atol=0.02)


def test_adam_first_step_moves_each_param_by_lr():
    # Adam's bias-corrected first step is lr * g / |g| for every coordinate.
    m, data = regression()
    params, _ = m.train(m.init_params(), {k: v[:4] for k, v in data.items()}, epochs=1, lr=0.01, batch_size=4,
                        optimizer="adam")
    np.testing.assert_allclose(np.abs(params["w"]), 0.01, rtol=1e-6)


def test_schedules_give_the_documented_rates():
    m, data = regression()
    for schedule, expected in [(None, [0.1] * 4), ("step", [0.1, 0.1, 0.05, 0.05]),
                               ("exponential", [0.1, 0.05, 0.025, 0.0125]),
                               ("cosine", [0.1 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)])]:
        records = []
        m.train(m.init_params(), data, epochs=4, lr=0.1, batch_size=64, schedule=schedule, step_size=2,
                gamma=0.5, on_epoch=records.append)
        np.testing.assert_allclose([r["lr"] for r in records], expected)


def test_weight_decay_and_l1_shrink_the_weights():
    m, data = regression()
    plain, _ = m.train(m.init_params(), data, epochs=40, lr=0.1, batch_size=16)
    decayed, _ = m.train(m.init_params(), data, epochs=40, lr=0.1, batch_size=16, weight_decay=0.5)
    sparse, _ = m.train(m.init_params(), data, epochs=40, lr=0.1, batch_size=16, l1=0.5)
    assert np.linalg.norm(decayed["w"]) < 0.8 * np.linalg.norm(plain["w"])
    assert np.abs(sparse["w"]).sum() < 0.9 * np.abs(plain["w"]).sum()


def test_validation_split_is_held_out_and_scored():
    m, data = regression()
    records = []
    m.train(m.init_params(), data, epochs=3, lr=0.1, batch_size=8, validation=0.25, on_epoch=records.append)
    assert set(records[0]) == {"epoch", "loss", "lr", "seconds", "val_loss"}
    assert records[-1]["val_loss"] < records[0]["val_loss"]


def test_progress_lines(capsys):
    m, data = regression()
    m.train(m.init_params(), data, epochs=2, lr=0.1, batch_size=8, validation=0.25, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  loss ") and "val loss" in lines[0]
    assert lines[0].endswith("s")


def test_params_round_trip_through_npz(tmp_path):
    m, _ = regression()
    params = m.init_params(seed=3)
    params["w"] = np.array([1.0, 2.0, 3.0])
    m.save_params(tmp_path / "p.npz", params)
    loaded = m.load_params(tmp_path / "p.npz")
    assert set(loaded) == {"w", "b"} and np.array_equal(loaded["w"], params["w"])
    np.savez(tmp_path / "wrong.npz", w=np.zeros(4), b=np.zeros(()))
    with pytest.raises(ValueError, match=r"'w' has shape \(4,\), expected \(3,\)"):
        m.load_params(tmp_path / "wrong.npz")


def test_data_files(tmp_path):
    m, data = regression()
    np.savez(tmp_path / "d.npz", x=data["x"], y=data["y"], extra=np.zeros(3))
    loaded = m.load_data(tmp_path / "d.npz")
    assert set(loaded) == {"x", "y"}
    rows = ["x:0,x:1,x:2,y"] + [",".join(map(str, list(x) + [y])) for x, y in zip(data["x"][:5], data["y"][:5])]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    loaded = m.load_data(tmp_path / "d.csv")
    np.testing.assert_allclose(loaded["x"], data["x"][:5])
    (tmp_path / "bad.csv").write_text("x:0,x:1,y\n1,2,3\n")
    with pytest.raises(ValueError, match="no column\\(s\\) x:2 for input 'x'"):
        m.load_data(tmp_path / "bad.csv")


def test_bad_settings_are_named():
    m, data = regression()
    for settings, message in [({"optimizer": "rmsprop"}, "optimizer"), ({"schedule": "linear"}, "schedule"),
                              ({"validation": 1.5}, "validation")]:
        with pytest.raises(ValueError, match=message):
            m.train(m.init_params(), data, epochs=1, lr=0.1, batch_size=8, **settings)


def test_predict_needs_no_labels():
    g = gc.Graph("clf")
    x, labels = g.input("x", (None, 2)), g.input("labels", (None,))
    W = g.param("W", (2, 3))
    logits = g.output("logits", x @ W)
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    m = gc.compile(g, loss="loss", predict="logits", target="labels").load()
    params = m.init_params()
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_allclose(m.predict(params, {"x": X}), X @ params["W"])
    assert set(m.evaluate(params, {"x": X, "labels": [0, 2]})) == {"loss", "accuracy"}
