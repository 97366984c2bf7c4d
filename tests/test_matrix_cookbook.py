"""Every Matrix Cookbook identity the matrix ops implement, one named test each: the gradient formula
graphcomp prints is pinned, rendered by KaTeX, read back by the independent LaTeX reader and evaluated;
its value must be the module's gradient, PyTorch's, and the Cookbook's closed form computed here with
NumPy."""
import numpy as np
import pytest
import torch

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from latex_check import katex_errors
from latex_reader import Reader, equations

RNG = np.random.default_rng(11)
A, B, X = (RNG.normal(size=(3, 3)) for _ in range(3))
X = X * 0.3 + 2 * np.eye(3)  # invertible, det > 0
SPD = A @ A.T + 3 * np.eye(3)
a, b, r = (RNG.normal(size=3) for _ in range(3))
R = RNG.normal(size=(3, 3))


def printed_gradient(build, values: dict, wrt: str):
    """(the printed formula of ∂loss/∂wrt, its value read back, the module's gradient) of loss = build(leaves)."""
    g = gc.Graph("cookbook")
    leaves = {name: g.input(name, np.shape(value)) for name, value in values.items()}
    g.output("loss", build(**leaves))
    model = gc.compile(g, wrt=[wrt], loss="loss")
    latex = model.gradient_latex()[wrt]
    assert not katex_errors([latex]), latex
    lines = equations(latex)
    reader = Reader({symbol(name): value for name, value in values.items()}, 1)
    reader.define(lines[1:])
    read = reader.evaluate(lines[0][1])
    return latex, read, model.load().gradients(**values)[1][wrt]


def torch_gradient(build, values: dict, wrt: str) -> np.ndarray:
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k == wrt) for k, v in values.items()}
    build(**t).backward()
    return t[wrt].grad.numpy()


def check(build, torch_build, values, wrt, printed, closed_form):
    latex, read, module = printed_gradient(build, values, wrt)
    assert latex == printed
    for got in (read, module, torch_gradient(torch_build, values, wrt)):
        np.testing.assert_allclose(got, closed_form, rtol=1e-10, atol=1e-12)


def test_cookbook_trace():
    """∂ tr(X) / ∂X = I."""
    check(lambda X: gc.trace(X), lambda X: torch.trace(X), {"X": X}, "X", r"\bar{X} = I_{3}", np.eye(3))


def test_cookbook_trace_of_product():
    """∂ tr(AX) / ∂X = Aᵀ."""
    check(lambda A, X: gc.trace(A @ X), lambda A, X: torch.trace(A @ X), {"A": A, "X": X}, "X",
          r"\bar{X} = A^\top I_{3}", A.T)


def test_cookbook_trace_of_a_product_around_x():
    """∂ tr(AXB) / ∂X = Aᵀ Bᵀ."""
    check(lambda A, X, B: gc.trace(A @ X @ B), lambda A, X, B: torch.trace(A @ X @ B), {"A": A, "X": X, "B": B}, "X",
          r"\bar{X} = A^\top \left(I_{3} B^\top\right)",
          A.T @ B.T)


def test_cookbook_det():
    """∂ det(X) / ∂X = det(X) X^{-T}."""
    check(lambda X: gc.det(X), lambda X: torch.linalg.det(X), {"X": X}, "X",
          r"\begin{aligned}" "\n" r"\bar{X} &= \mathrm{loss} \odot X^{-\top} \\" "\n" r"\mathrm{loss} &= \det X" "\n"
          r"\end{aligned}", np.linalg.det(X) * np.linalg.inv(X).T)


def test_cookbook_logdet():
    """∂ log det X / ∂X = X^{-T}."""
    check(lambda X: gc.logdet(X), lambda X: torch.logdet(X), {"X": X}, "X", r"\bar{X} = X^{-\top}", np.linalg.inv(X).T)


def test_cookbook_inverse():
    """∂ aᵀ X^{-1} b / ∂X = -X^{-T} a bᵀ X^{-T} (from ∂X^{-1} = -X^{-1} (∂X) X^{-1})."""
    inv_t = np.linalg.inv(X).T
    latex, read, module = printed_gradient(lambda X, a, b: a @ gc.inv(X) @ b, {"X": X, "a": a, "b": b}, "X")
    assert r"X^{-\top}" in latex and latex.count("-") >= 2
    want = -inv_t @ np.outer(a, b) @ inv_t
    for got in (read, module, torch_gradient(lambda X, a, b: a @ torch.linalg.inv(X) @ b, {"X": X, "a": a, "b": b}, "X")):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_cookbook_inverse_adjoint():
    """X̄ = -Yᵀ Ȳ Yᵀ for Y = X^{-1}: with loss Σ Y ⊙ R, Ȳ = R."""
    check(lambda X, R: gc.sum(gc.inv(X) * R), lambda X, R: (torch.linalg.inv(X) * R).sum(), {"X": X, "R": R}, "X",
          r"\begin{aligned}" "\n" r"\bar{X} &= - \left(t_{3} R\right) t_{3} \\" "\n" r"t_{3} &= X^{-\top}" "\n"
          r"\end{aligned}", -np.linalg.inv(X).T @ R @ np.linalg.inv(X).T)


@pytest.mark.parametrize("wrt", ["A", "b"])
def test_cookbook_solve(wrt):
    """x = A^{-1} b: b̄ = A^{-T} x̄ and Ā = -b̄ xᵀ (∂A^{-1} = -A^{-1} (∂A) A^{-1} applied to b)."""
    x = np.linalg.solve(X, b)
    db = np.linalg.solve(X.T, r)
    printed = {"b": r"\bar{b} = A^{-\top} r",
               "A": r"\bar{A} = - \left(A^{-\top} r\right) \left(A^{-1} b\right)^\top"}[wrt]
    check(lambda A, b, r: gc.sum(gc.solve(A, b) * r), lambda A, b, r: (torch.linalg.solve(A, b) * r).sum(),
          {"A": X, "b": b, "r": r}, wrt, printed, {"b": db, "A": -np.outer(db, x)}[wrt])


def test_cookbook_quadratic_form():
    """∂ xᵀ A x / ∂x = (A + Aᵀ) x."""
    check(lambda x, A: x @ A @ x, lambda x, A: x @ A @ x, {"x": a, "A": A}, "x", r"\bar{x} = x A + A x", (A + A.T) @ a)


def test_cookbook_logdet_of_a_learned_covariance():
    """∂ log det(L Lᵀ) / ∂L = 2 (L Lᵀ)^{-1} L, read through the chain the module prints."""
    L = np.linalg.cholesky(SPD)
    latex, read, module = printed_gradient(lambda L: gc.logdet(L @ L.T), {"L": L}, "L")
    want = 2 * np.linalg.inv(L @ L.T) @ L
    for got in (read, module, torch_gradient(lambda L: torch.logdet(L @ L.T), {"L": L}, "L")):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_cookbook_cholesky():
    """L = chol(A): Ā = ½(S + Sᵀ), S = L^{-T} Φ(Lᵀ L̄) L^{-1}, Φ the lower triangle with halved diagonal."""
    L = np.linalg.cholesky(SPD)
    phi = np.tril(L.T @ R) - 0.5 * np.diag(np.diag(L.T @ R))
    s = np.linalg.inv(L).T @ phi @ np.linalg.inv(L)
    latex, read, module = printed_gradient(lambda A, R: gc.sum(gc.cholesky(A) * R), {"A": SPD, "R": R}, "A")
    assert r"\Phi\left(t_{1}^\top R\right)" in latex and r"t_{1}^{-\top}" in latex
    for got in (read, module, torch_gradient(lambda A, R: (torch.linalg.cholesky(A) * R).sum(), {"A": SPD, "R": R}, "A")):
        np.testing.assert_allclose(got, 0.5 * (s + s.T), rtol=1e-10, atol=1e-12)


def test_cookbook_diag():
    """∂ Σ diag(X) ⊙ r / ∂X = Diag(r)."""
    check(lambda X, r: gc.sum(gc.diag(X) * r), lambda X, r: (torch.diagonal(X) * r).sum(), {"X": X, "r": r}, "X",
          r"\bar{X} = \operatorname{Diag}\left(r\right)", np.diag(r))


def test_einsum_gradients_are_einsums_over_the_other_operands():
    """C = einsum(ij,jk->ik)(A, B), loss Σ C ⊙ R: Ā = einsum(ik,jk->ij)(R, B) = R Bᵀ, B̄ = Aᵀ R."""
    values = {"A": A, "B": B, "R": R}
    build = (lambda A, B, R: gc.sum(gc.einsum("ij,jk->ik", A, B) * R))
    torch_build = (lambda A, B, R: (torch.einsum("ij,jk->ik", A, B) * R).sum())
    check(build, torch_build, values, "A", r"\bar{A} = \operatorname{einsum}_{ik,jk \to ij}\left(R, B\right)", R @ B.T)
    check(build, torch_build, values, "B", r"\bar{B} = \operatorname{einsum}_{ik,ij \to jk}\left(R, A\right)", A.T @ R)


def test_the_readme_quotes_the_printed_gradients():
    from pathlib import Path
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    values = {"A": X, "b": b, "r": r}
    quoted = [printed_gradient(lambda X: gc.logdet(X), {"X": X}, "X")[0],
              printed_gradient(lambda A, X: gc.trace(A @ X), {"A": A, "X": X}, "X")[0],
              printed_gradient(lambda A, b, r: gc.sum(gc.solve(A, b) * r), values, "b")[0],
              printed_gradient(lambda A, b, r: gc.sum(gc.solve(A, b) * r), values, "A")[0]]
    for latex in quoted:
        assert f"`{latex}`" in readme.replace("\n", " "), latex
