"""A Gaussian with a learned covariance, fitted by maximum likelihood: the negative log-likelihood

    NLL = mean over samples of ½ (log det Σ + (x - μ)ᵀ Σ^{-1} (x - μ) + d log 2π),   Σ = L Lᵀ + ε I,

with params L (d, d) and μ (d,), so that Σ stays symmetric positive definite for any L. log det Σ is
computed through slogdet and the quadratic form through a solve (no inverse is formed); their
gradients are the Matrix Cookbook's, Σ̄ = ½ Σ^{-1} - ½ Σ^{-1} S Σ^{-1} for S the samples' scatter.
The generated module is trained with Adam on samples drawn from a known Gaussian; the fitted Σ is
compared with the samples' own covariance (the maximum-likelihood answer) and with the true Σ.
Run: python examples/gaussian_nll.py [output directory]
"""
import math
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc

D, EPS = 3, 1e-3
TRUE_MEAN = np.array([1.0, -2.0, 0.5])
TRUE_COVARIANCE = np.array([[2.0, 0.6, -0.4], [0.6, 1.0, 0.3], [-0.4, 0.3, 0.5]])

loss = "loss"
training = {"lr": 0.05, "epochs": 600, "batch_size": 2000, "optimizer": "adam", "seed": 0}  # full batch


def build(d: int = D, eps: float = EPS) -> gc.Graph:
    g = gc.Graph("gaussian")
    x = g.input("x", shape=(None, d))
    L, mu = g.param("L", (d, d)), g.param("mu", (d,), init="zeros")
    sigma = g.let("Sigma", L @ gc.transpose(L) + eps * gc.eye_like(L))
    r = g.let("r", x - mu)
    z = g.let("z", gc.solve(sigma, gc.transpose(r)))  # Σ^{-1} (x - μ) for every sample, as columns
    quadratic = gc.sum(r * gc.transpose(z), axis=1)
    g.output("loss", 0.5 * (gc.logdet(sigma) + gc.mean(quadratic) + d * math.log(2 * math.pi)))
    return g


def samples(n: int = 2000, seed: int = 0) -> np.ndarray:
    """n draws of the true Gaussian, (n, d)."""
    rng = np.random.default_rng(seed)
    return TRUE_MEAN + rng.normal(size=(n, D)) @ np.linalg.cholesky(TRUE_COVARIANCE).T


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss=loss)
    path = model.save(out_dir / "gaussian_model.py")
    print(f"wrote {path} ({len(model.source.splitlines())} lines, imports numpy only)")
    lines = model.gradient_latex()["L"].splitlines()
    print("the gradient of Sigma, as printed:", next(line for line in lines if line.startswith(r"\bar{\Sigma}")))
    m = model.load()
    x = samples()
    params, losses = m.train(m.init_params(seed=0), {"x": x}, **training)
    fitted = params["L"] @ params["L"].T + EPS * np.eye(D)
    sample = np.cov(x, rowvar=False, bias=True)  # the maximum-likelihood covariance of these samples
    figures = {"loss": losses[-1], "best possible loss": _nll(x, x.mean(axis=0), sample),
               "vs the samples' covariance": _relative(fitted, sample), "vs the true covariance": _relative(fitted, TRUE_COVARIANCE),
               "samples' covariance vs the true": _relative(sample, TRUE_COVARIANCE),
               "mean error": float(np.max(np.abs(params["mu"] - x.mean(axis=0))))}
    for epoch in (0, 9, 99, len(losses) - 1):
        print(f"epoch {epoch + 1:4d}  NLL {losses[epoch]:.6f}")
    print("fitted covariance:\n", np.array2string(fitted, precision=4))
    for name, value in figures.items():
        print(f"{name}: {value:.6g}")
    return figures


def _nll(x: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> float:
    r = x - mean
    quadratic = np.einsum("ni,ij,nj->n", r, np.linalg.inv(covariance), r)
    return float(0.5 * (np.linalg.slogdet(covariance)[1] + quadratic.mean() + D * math.log(2 * math.pi)))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """‖a - b‖ / ‖b‖ in the Frobenius norm."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
