"""A Gaussian process's hyperparameters learned by maximising its marginal likelihood: with the RBF kernel

    K_ij = s² exp(-(x_i - x_j)² / (2 ℓ²)) + σ² δ_ij,
    -log p(y | X) = ½ yᵀ K^{-1} y + ½ log det K + n/2 log 2π,

and the three hyperparameters kept positive as exponentials of params (log s, log ℓ, log σ). The
whole data set is one example: the inputs have fixed sizes (n points), K is n × n, and yᵀ K^{-1} y is
computed by a solve. The gradient of the hyperparameters goes through K̄ = ½ K^{-1} - ½ α αᵀ
(α = K^{-1} y), the Cookbook's ∂ log det K = tr(K^{-1} ∂K) and ∂K^{-1} = -K^{-1} (∂K) K^{-1}. Data:
n points of a function drawn from a GP with known hyperparameters; the module's Adam finds the same
optimum as SciPy's L-BFGS on the same function written in NumPy.
Run: python examples/gp_marginal_likelihood.py [output directory]
"""
import math
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc

N = 40
TRUE = {"signal": 1.0, "length": 0.5, "noise": 0.1}

loss = "loss"
training = {"lr": 0.05, "epochs": 400, "batch_size": 1, "optimizer": "adam", "seed": 0}


def build(n: int = N) -> gc.Graph:
    g = gc.Graph("gp")
    x, y = g.input("x", shape=(n, 1)), g.input("y", shape=(n,))
    log_s, log_l, log_noise = (g.param(name, (), init="zeros") for name in ("log_s", "log_l", "log_noise"))
    distance = g.let("D", (x - gc.transpose(x)) ** 2)  # squared distances (n, n)
    kernel = gc.exp(2 * log_s) * gc.exp(-distance / (2 * gc.exp(2 * log_l)))
    K = g.let("K", kernel + gc.exp(2 * log_noise) * gc.eye_like(distance))
    alpha = g.let("alpha", gc.solve(K, y))
    g.output("loss", 0.5 * (y @ alpha) + 0.5 * gc.logdet(K) + n / 2 * math.log(2 * math.pi))
    return g


def data(n: int = N, seed: int = 0) -> dict:
    """n points in [-2, 2] and a draw of the GP with the TRUE hyperparameters at them (noise included)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, size=n))[:, None]
    K = _kernel(x, TRUE["signal"], TRUE["length"], TRUE["noise"])
    return {"x": x, "y": np.linalg.cholesky(K) @ rng.normal(size=n)}


def _kernel(x, signal, length, noise):
    return signal ** 2 * np.exp(-(x - x.T) ** 2 / (2 * length ** 2)) + noise ** 2 * np.eye(len(x))


def nll(logs: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The same -log p(y | X) in NumPy, of (log s, log ℓ, log σ)."""
    K = _kernel(x, *np.exp(logs))
    return float(0.5 * y @ np.linalg.solve(K, y) + 0.5 * np.linalg.slogdet(K)[1] + len(y) / 2 * math.log(2 * math.pi))


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss=loss)
    path = model.save(out_dir / "gp_model.py")
    print(f"wrote {path} ({len(model.source.splitlines())} lines, imports numpy only)")
    m = model.load()
    points = data()
    params, losses = m.train(m.init_params(seed=0), points, **training)
    learned = {name: float(np.exp(params[f"log_{key}"])) for name, key in
               (("signal", "s"), ("length", "l"), ("noise", "noise"))}
    for epoch in (0, 9, 99, len(losses) - 1):
        print(f"epoch {epoch + 1:4d}  -log p(y|X) {losses[epoch]:.6f}")
    figures = {"loss": losses[-1], "at the true hyperparameters":
               nll(np.log([TRUE["signal"], TRUE["length"], TRUE["noise"]]), points["x"], points["y"])}
    try:
        from scipy.optimize import minimize  # the reference optimum, found without graphcomp (SciPy comes with JAX)
    except ImportError:
        minimize = None
    if minimize is not None:
        best = minimize(nll, np.zeros(3), args=(points["x"], points["y"]), method="L-BFGS-B", options={"gtol": 1e-12})
        reference = dict(zip(("signal", "length", "noise"), np.exp(best.x)))
        figures["optimum"] = float(best.fun)
        figures["largest relative difference from the optimum"] = max(abs(learned[k] / reference[k] - 1) for k in learned)
    for name in learned:
        optimum = f"  SciPy's optimum {reference[name]:.4f}" if minimize is not None else ""
        print(f"{name:6s}  learned {learned[name]:.4f}{optimum}  true {TRUE[name]}")
    for name, value in figures.items():
        print(f"{name}: {value:.6g}")
    return figures


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
