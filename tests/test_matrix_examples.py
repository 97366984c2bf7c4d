"""The matrix-calculus examples: the Gaussian NLL with a learned covariance and the Gaussian process's
marginal likelihood. Their modules' gradients match PyTorch's autograd of the same formulas to 1e-10
and central differences; trained by the generated module, the Gaussian recovers the samples' own
covariance (the maximum-likelihood answer) and the GP reaches SciPy's optimum of its hyperparameters."""
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import torch

import graphcomp as gc
from gradcheck import check_gradients

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"matrix_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


def torch_gradients(loss_of, values: dict, wrt: list) -> tuple:
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in wrt) for k, v in values.items()}
    loss = loss_of(**t)
    loss.backward()
    return loss.item(), {k: t[k].grad.numpy() for k in wrt}


def torch_gaussian_nll(x, L, mu, eps=1e-3):
    d = L.shape[0]
    sigma = L @ L.T + eps * torch.eye(d, dtype=torch.float64)
    r = x - mu
    quadratic = (r * torch.linalg.solve(sigma, r.T).T).sum(dim=1)
    return 0.5 * (torch.logdet(sigma) + quadratic.mean() + d * math.log(2 * math.pi))


def test_the_gaussian_nll_gradients_match_pytorch():
    gaussian = example("gaussian_nll")
    module = gc.compile(gaussian.build(), loss="loss").load()
    rng = np.random.default_rng(1)
    values = {"x": gaussian.samples(50, seed=1), "L": rng.normal(size=(3, 3)), "mu": rng.normal(size=3)}
    outputs, grads = module.gradients(**values)
    want_loss, want = torch_gradients(torch_gaussian_nll, values, ["L", "mu"])
    np.testing.assert_allclose(outputs["loss"], want_loss, rtol=1e-12)
    for name in ("L", "mu"):
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    check_gradients(module, values, "loss", tolerance=1e-6)


def test_training_the_gaussian_recovers_the_samples_covariance(tmp_path):
    figures = example("gaussian_nll").main(tmp_path)
    assert figures["vs the samples' covariance"] < 1e-8
    assert figures["mean error"] < 1e-8
    assert abs(figures["loss"] - figures["best possible loss"]) < 1e-10
    assert figures["vs the true covariance"] < 0.05  # what 2000 samples allow


def torch_gp_nll(x, y, log_s, log_l, log_noise):
    n = y.shape[0]
    K = torch.exp(2 * log_s) * torch.exp(-(x - x.T) ** 2 / (2 * torch.exp(2 * log_l))) \
        + torch.exp(2 * log_noise) * torch.eye(n, dtype=torch.float64)
    return 0.5 * y @ torch.linalg.solve(K, y) + 0.5 * torch.logdet(K) + n / 2 * math.log(2 * math.pi)


def test_the_gp_marginal_likelihood_gradients_match_pytorch():
    gp = example("gp_marginal_likelihood")
    module = gc.compile(gp.build(), loss="loss").load()
    values = {**gp.data(seed=2), "log_s": 0.3, "log_l": -0.5, "log_noise": -1.2}
    outputs, grads = module.gradients(**values)
    want_loss, want = torch_gradients(torch_gp_nll, values, ["log_s", "log_l", "log_noise"])
    np.testing.assert_allclose(outputs["loss"], want_loss, rtol=1e-12)
    for name in want:
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(outputs["loss"], gp.nll(np.array([0.3, -0.5, -1.2]), values["x"], values["y"]), rtol=1e-12)
    check_gradients(module, values, "loss", tolerance=1e-6)


def test_training_the_gp_reaches_the_optimum_of_its_hyperparameters(tmp_path):
    figures = example("gp_marginal_likelihood").main(tmp_path)
    assert figures["largest relative difference from the optimum"] < 1e-4
    assert abs(figures["loss"] - figures["optimum"]) < 1e-8
    assert figures["loss"] < figures["at the true hyperparameters"]


def test_every_printed_gradient_of_the_examples_reads_back():
    """The examples' whole gradient formulas (solve, log det, X^{-\\top}, I_n among them), read by the
    independent reader from the leaves' values alone, are the module's gradients."""
    from graphcomp.formulas.symbols import symbol
    from latex_reader import Reader, equations

    gaussian, gp = example("gaussian_nll"), example("gp_marginal_likelihood")
    rng = np.random.default_rng(3)
    cases = [(gaussian.build(), {"x": gaussian.samples(6, seed=3), "L": rng.normal(size=(3, 3)), "mu": rng.normal(size=3)}, 6),
             (gp.build(8), {**gp.data(8, seed=3), "log_s": 0.2, "log_l": -0.3, "log_noise": -1.0}, 1)]
    for graph, values, batch in cases:
        model = gc.compile(graph, loss="loss")
        grads = model.load().gradients(**values)[1]
        for leaf, latex in model.gradient_latex().items():
            lines = equations(latex)
            reader = Reader({**{symbol(name): value for name, value in values.items()}, "N": batch}, batch)
            reader.define(lines[1:])
            np.testing.assert_allclose(reader.evaluate(lines[0][1]), grads[leaf], rtol=1e-9, atol=1e-12, err_msg=leaf)
