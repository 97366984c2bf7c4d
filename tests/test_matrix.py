"""Matrix calculus: trace, diag, det, logdet, inv, solve, cholesky and einsum, each against PyTorch's
autograd in float64 (values and gradients to 1e-10) and central differences, on one matrix and on a
stack; second derivatives through the rules (gc.grad twice); the forward-mode rules against directional
differences; the generated code within the Array API standard; spec files; and one clear error each for
bad shapes and bad einsum specs."""
import numpy as np
import pytest
import torch

import array_api_strict

import graphcomp as gc
from graphcomp.ir import OPS, apply
from gradcheck import check_gradients

N = 3


def spd(rng, shape: tuple) -> np.ndarray:
    """Symmetric positive definite matrices (..., n, n), well conditioned."""
    m = rng.normal(size=shape)
    return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])


def general(rng, shape: tuple) -> np.ndarray:
    """Invertible, non-symmetric matrices with a positive determinant."""
    return rng.normal(size=shape) * 0.3 + 2 * np.eye(shape[-1])


def weighted(build, shapes: dict) -> gc.Graph:
    """out = build(leaves), loss = Σ out ⊙ r with r a fixed random weighting."""
    g = gc.Graph("case")
    out = build(*(g.input(name, shape) for name, shape in shapes.items()))
    g.output("out", out)
    g.output("loss", gc.sum(out * g.input("r", out.shape)))
    return g


def torch_values(build, arrays: dict) -> tuple:
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k != "r") for k, v in arrays.items()}
    out = build(*(v for k, v in t.items() if k != "r"))
    (out * t["r"]).sum().backward()
    return out.detach().numpy(), {k: v.grad.numpy() for k, v in t.items() if k != "r"}


# (id, shapes, our build, PyTorch's build, how each operand is drawn)
CASES = [
    ("trace", {"X": (N, N)}, gc.trace, lambda x: torch.trace(x), general),
    ("trace stack", {"X": (None, N, N)}, gc.trace, lambda x: torch.diagonal(x, dim1=-2, dim2=-1).sum(-1), general),
    ("diag", {"X": (N, N)}, gc.diag, lambda x: torch.diagonal(x), general),
    ("diag of a vector", {"v": (N,)}, gc.diag, lambda v: torch.diag(v), general),
    ("det", {"X": (N, N)}, gc.det, torch.linalg.det, general),
    ("det stack", {"X": (None, N, N)}, gc.det, torch.linalg.det, general),
    ("logdet", {"X": (N, N)}, gc.logdet, torch.logdet, general),
    ("logdet stack", {"X": (None, N, N)}, gc.logdet, torch.logdet, spd),
    ("inv", {"X": (N, N)}, gc.inv, torch.linalg.inv, general),
    ("inv stack", {"X": (None, N, N)}, gc.inv, torch.linalg.inv, general),
    ("solve vector", {"A": (N, N), "b": (N,)}, gc.solve, torch.linalg.solve, general),
    ("solve matrix", {"A": (N, N), "B": (N, 2)}, gc.solve, torch.linalg.solve, general),
    ("solve stack", {"A": (None, N, N), "B": (None, N, 2)}, gc.solve, torch.linalg.solve, general),
    ("cholesky", {"A": (N, N)}, gc.cholesky, torch.linalg.cholesky, spd),
    ("cholesky stack", {"A": (None, N, N)}, gc.cholesky, torch.linalg.cholesky, spd),
    ("einsum matmul", {"A": (N, 4), "B": (4, 2)}, lambda a, b: gc.einsum("ij,jk->ik", a, b),
     lambda a, b: torch.einsum("ij,jk->ik", a, b), general),
    ("einsum row sums", {"A": (N, 4)}, lambda a: gc.einsum("ij->i", a), lambda a: torch.einsum("ij->i", a), general),
    ("einsum batched bilinear", {"x": (None, N), "W": (N, 4), "y": (None, 4)},
     lambda x, w, y: gc.einsum("ni,ij,nj->n", x, w, y), lambda x, w, y: torch.einsum("ni,ij,nj->n", x, w, y), general),
    ("einsum outer transposed", {"a": (N,), "b": (4,)}, lambda a, b: gc.einsum("i,j->ji", a, b),
     lambda a, b: torch.einsum("i,j->ji", a, b), general),
    ("einsum total", {"A": (N, 2), "B": (2, N)}, lambda a, b: gc.einsum("ij,jk->", a, b),
     lambda a, b: torch.einsum("ij,jk->", a, b), general),
]


def case_arrays(shapes: dict, draw, out_shape, seed: int = 0, batch: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in shapes.items():
        concrete = tuple(batch if d is None else d for d in shape)
        square = len(concrete) >= 2 and concrete[-1] == concrete[-2]
        arrays[name] = draw(rng, concrete) if square else rng.normal(size=concrete)
    arrays["r"] = rng.normal(size=tuple(batch if d is None else d for d in out_shape))
    return arrays


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_op_matches_pytorch_and_central_differences(case):
    _, shapes, build, torch_build, draw = case
    g = weighted(build, shapes)
    module = gc.compile(g, wrt=list(shapes), loss="loss").load()
    arrays = case_arrays(shapes, draw, g.outputs["out"].shape)
    want_out, want_grads = torch_values(torch_build, arrays)
    np.testing.assert_allclose(module.forward(**arrays)["out"], want_out, rtol=1e-10, atol=1e-12)
    _, grads = module.gradients(**arrays)
    for name in shapes:
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    if "cholesky" not in case[0]:  # cholesky reads one triangle: its symmetric gradient is checked below
        check_gradients(module, arrays, "loss", tolerance=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_op_computes_within_the_array_api_standard(case):
    _, shapes, build, _, draw = case
    g = weighted(build, shapes)
    module = gc.compile(g, wrt=list(shapes), loss="loss").load()
    arrays = case_arrays(shapes, draw, g.outputs["out"].shape)
    want_out, want_grads = module.gradients(**arrays)
    got_out, got_grads = module.gradients(**{k: array_api_strict.asarray(v) for k, v in arrays.items()})
    for name in shapes:
        assert not isinstance(got_grads[name], np.ndarray)
        np.testing.assert_allclose(np.asarray(got_grads[name]), want_grads[name], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(got_out["loss"]), want_out["loss"], rtol=1e-10)


def test_the_cholesky_gradient_is_symmetric_and_matches_differences_along_symmetric_directions():
    """L = chol(A) reads A's lower triangle, so only symmetric perturbations stay on its domain: the
    gradient (symmetric, as PyTorch's) must give their directional derivatives."""
    g = weighted(gc.cholesky, {"A": (4, 4)})
    module = gc.compile(g, wrt=["A"], loss="loss").load()
    arrays = case_arrays({"A": (4, 4)}, spd, (4, 4), seed=3)
    grad = module.gradients(**arrays)[1]["A"]
    np.testing.assert_allclose(grad, grad.T, rtol=0, atol=1e-13)
    rng, h = np.random.default_rng(4), 1e-6
    for _ in range(5):
        e = rng.normal(size=(4, 4))
        e = e + e.T
        up = module.forward(**{**arrays, "A": arrays["A"] + h * e})["loss"]
        down = module.forward(**{**arrays, "A": arrays["A"] - h * e})["loss"]
        assert abs((up - down) / (2 * h) - np.sum(grad * e)) < 1e-7 * max(1, abs(np.sum(grad * e)))


def hessian_module(build, shape):
    """gradients of Σ ∇f(X) ⊙ V for X: the Hessian of f applied to V, through the derivative rules."""
    g = gc.Graph("second")
    x, v = g.input("X", shape), g.input("V", shape)
    (dx,) = gc.grad(build(x), [x])
    g.output("loss", gc.sum(dx * v))
    return gc.compile(g, wrt=["X"], loss="loss").load()


@pytest.mark.parametrize("name, build, torch_build", [
    ("logdet", gc.logdet, torch.logdet),
    ("inv", lambda x: gc.sum(gc.inv(x) * gc.inv(x)), lambda x: (torch.linalg.inv(x) ** 2).sum()),
    ("det", gc.det, torch.linalg.det),
    ("solve", lambda x: gc.sum(gc.solve(x, gc.diag(x)) ** 2), lambda x: (torch.linalg.solve(x, torch.diagonal(x)) ** 2).sum()),
    ("cholesky", lambda x: gc.sum(gc.cholesky(x) ** 3), lambda x: (torch.linalg.cholesky(x) ** 3).sum()),
    ("trace of a product", lambda x: gc.trace(x @ x @ x), lambda x: torch.trace(x @ x @ x)),
])
def test_second_derivatives_go_through_the_rules(name, build, torch_build):
    rng = np.random.default_rng(5)
    x = spd(rng, (N, N))
    v = rng.normal(size=(N, N))
    v = v + v.T
    module = hessian_module(build, (N, N))
    got = module.gradients(X=x, V=v)[1]["X"]
    tx = torch.tensor(x, requires_grad=True)
    (gx,) = torch.autograd.grad(torch_build(tx), tx, create_graph=True)
    (want,) = torch.autograd.grad((gx * torch.tensor(v)).sum(), tx)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-10)
    if name != "cholesky":
        check_gradients(module, {"X": x, "V": v}, "loss", tolerance=1e-5)


def tangent_module(op: str, shapes: dict, with_tangent: tuple, attrs=None):
    """A module computing an op's forward-mode rule: the node's tangent from the operands' tangents."""
    g = gc.Graph("jvp")
    operands = [g.input(name, shape) for name, shape in shapes.items()]
    tangents = [g.input("d" + name, shape) if k in with_tangent else None
                for k, (name, shape) in enumerate(shapes.items())]
    node = apply(op, *operands, **(attrs or {}))
    g.output("tangent", OPS[op].jvp(node, tuple(tangents)))
    return gc.compile(g, wrt=[], runtime=False).load(), node


@pytest.mark.parametrize("op, shapes, with_tangent, attrs", [
    ("trace", {"X": (N, N)}, (0,), None), ("diagonal", {"X": (N, N)}, (0,), None),
    ("det", {"X": (N, N)}, (0,), None), ("logdet", {"X": (None, N, N)}, (0,), None),
    ("inv", {"X": (N, N)}, (0,), None), ("solve", {"A": (N, N), "b": (N,)}, (0, 1), None),
    ("solve", {"A": (N, N), "B": (N, 2)}, (0,), None), ("solve", {"A": (N, N), "B": (N, 2)}, (1,), None),
    ("cholesky", {"A": (N, N)}, (0,), None),
    ("einsum", {"x": (None, N), "W": (N, 4), "y": (None, 4)}, (0, 2), {"spec": "ni,ij,nj->n"}),
])
def test_forward_mode_rules_give_directional_derivatives(op, shapes, with_tangent, attrs):
    module, node = tangent_module(op, shapes, with_tangent, attrs)
    rng, h = np.random.default_rng(6), 1e-6
    arrays, tangents = {}, {}
    for k, (name, shape) in enumerate(shapes.items()):
        concrete = tuple(2 if d is None else d for d in shape)
        arrays[name] = spd(rng, concrete) if len(concrete) > 1 and concrete[-1] == concrete[-2] else rng.normal(size=concrete)
        if k in with_tangent:
            t = rng.normal(size=concrete)
            tangents["d" + name] = t + np.swapaxes(t, -1, -2) if op == "cholesky" else t
    value = gc.compile(_single(op, shapes, attrs), runtime=False).load()
    moved = [value.forward(**{n: a + s * h * tangents.get("d" + n, 0) for n, a in arrays.items()})["result"] for s in (1, -1)]
    want = (moved[0] - moved[1]) / (2 * h)
    got = module.forward(**arrays, **tangents)["tangent"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _single(op, shapes, attrs):
    g = gc.Graph("value")
    g.output("result", apply(op, *(g.input(name, shape) for name, shape in shapes.items()), **(attrs or {})))
    return g


@pytest.mark.parametrize("build, shape, message", [
    (gc.det, (3, 4), r"det: expects a square matrix \(n, n\) of fixed size n, or a stack \(..., n, n\) of them, got shape \(3, 4\)"),
    (gc.logdet, (3,), r"logdet: expects a square matrix .* got shape \(3,\)"),
    (gc.inv, (None, 3), r"inv: expects a square matrix .* got shape \(None, 3\)"),
    (gc.trace, (2, 3, 4), r"trace: expects a square matrix .* got shape \(2, 3, 4\)"),
    (gc.cholesky, (None, 2, 3), r"cholesky: expects a square matrix .* got shape \(None, 2, 3\)"),
    (gc.diag, (2, 3), r"diag: expects a square matrix .* got shape \(2, 3\)"),
    (gc.eye_like, (None, 3, 3), r"eye_like: expects one square matrix \(n, n\), got shape \(None, 3, 3\)"),
])
def test_a_matrix_that_is_not_square_is_refused(build, shape, message):
    with pytest.raises(gc.ShapeError, match=message):
        build(gc.Graph("g").input("x", shape))


@pytest.mark.parametrize("a, b, message", [
    ((3, 3), (4,), r"solve: shapes \(3, 3\) and \(4,\) do not fit: b must be a vector \(3,\) beside a matrix \(3, 3\)"),
    ((None, 3, 3), (None, 3), r"solve: .* \(None, 3, k\) with A's leading axes \(write a stack of vectors as a stack of \(n, 1\)"),
    ((3, 3), (2, 3, 1), r"solve: shapes \(3, 3\) and \(2, 3, 1\) do not fit"),
])
def test_solve_refuses_a_right_side_that_does_not_fit(a, b, message):
    g = gc.Graph("g")
    with pytest.raises(gc.ShapeError, match=message):
        gc.solve(g.input("A", a), g.input("b", b))


@pytest.mark.parametrize("spec, shapes, error, message", [
    ("ij,jk", [(2, 3), (3, 4)], gc.GraphError, r"einsum: spec 'ij,jk' has no '->': write the output's indices explicitly"),
    ("...ij->...i", [(2, 3)], gc.GraphError, r"einsum: spec '...ij->...i' has an ellipsis"),
    ("i1->i", [(2, 3)], gc.GraphError, r"einsum: spec 'i1->i' must be terms of letters"),
    ("ii->i", [(3, 3)], gc.GraphError, r"einsum: index 'i' repeats within operand 0 \('ii'\): diagonals are not supported; take gc.diag"),
    ("ij->jj", [(3, 3)], gc.GraphError, r"einsum: the output 'jj' of spec 'ij->jj' repeats an index"),
    ("ij->k", [(3, 3)], gc.GraphError, r"einsum: output index 'k' of spec 'ij->k' belongs to no operand"),
    ("ij,jk->ik", [(2, 3)], gc.GraphError, r"einsum: spec 'ij,jk->ik' has 2 operand term\(s\) but 1 operand\(s\) are given"),
    ("ijk->i", [(2, 3)], gc.ShapeError, r"einsum: term 'ijk' of spec 'ijk->i' names 3 axes, but operand 0 has shape \(2, 3\)"),
    ("ij,jk->ik", [(2, 3), (4, 2)], gc.ShapeError, r"einsum: index 'j' of spec 'ij,jk->ik' has size 3 in one operand and 4 in operand 1"),
    ("ni,ni->n", [(None, 3), (4, 3)], gc.ShapeError, r"index 'n' .* has size None \(the batch axis\) in one operand and 4 in operand 1"),
    (3, [(2, 3)], gc.GraphError, r"einsum: the spec must be a string such as \"ij,jk->ik\", got 3"),
])
def test_a_bad_einsum_spec_is_named(spec, shapes, error, message):
    g = gc.Graph("g")
    with pytest.raises(error, match=message):
        gc.einsum(spec, *(g.input(f"x{k}", shape) for k, shape in enumerate(shapes)))


def test_einsum_spaces_are_one_spec_and_one_node():
    g = gc.Graph("g")
    x, w = g.input("x", (None, 3)), g.input("w", (3, 2))
    assert gc.einsum("ni, ij -> nj", x, w) is gc.einsum("ni,ij->nj", x, w)


def test_logdet_of_a_negative_determinant_is_nan_as_torch_and_singular_is_minus_inf():
    g = gc.Graph("g")
    g.output("y", gc.logdet(g.input("X", (2, 2))))
    module = gc.compile(g, runtime=False).load()
    for matrix in (np.array([[0.0, 1], [1, 0]]), np.array([[1.0, 2], [2, 4]])):
        got = module.forward(X=matrix)["y"]
        want = torch.logdet(torch.tensor(matrix)).item()
        assert (np.isnan(got) and np.isnan(want)) or got == want == -np.inf


def test_einsum_without_a_library_einsum_uses_standard_functions_only():
    from graphcomp.templates.runtime.helpers import _einsum
    rng = np.random.default_rng(7)
    x, w, y = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    strict = [array_api_strict.asarray(v) for v in (x, w, y)]
    assert not hasattr(array_api_strict, "einsum")
    for spec, operands in [("ni,ij,nj->n", (0, 1, 2)), ("ij->ji", (1,)), ("ij->", (1,)), ("ni,ij->jn", (0, 1))]:
        want = np.einsum(spec, *((x, w, y)[k] for k in operands))
        np.testing.assert_allclose(np.asarray(_einsum(array_api_strict, spec, *(strict[k] for k in operands))), want,
                                   rtol=1e-12, atol=1e-12)


SPEC = """
[model]
name = "covariance"
loss = "loss"

[inputs]
x = ["N", 3]

[params]
L = { shape = [3, 3], init = "normal" }
mu = { shape = [3], init = "zeros" }

[nodes]
S = "L @ transpose(L) + 0.1 * eye_like(L)"
r = "x - mu"
quad = "einsum(r, inv(S), r, spec='ni,ij,nj->n')"

[outputs]
loss = "0.5 * (logdet(S) + mean(quad)) + trace(S) * 0 + sum(diag(solve(S, cholesky(S)))) * 0"
"""


def test_the_matrix_functions_work_in_spec_files():
    import tomllib
    from graphcomp.frontend import spec
    from graphcomp.frontend.cli import _compiled

    read = spec.build(tomllib.loads(SPEC))
    module = _compiled(read).load()
    rng = np.random.default_rng(8)
    arrays = {"x": rng.normal(size=(5, 3)), **module.init_params(0)}
    check_gradients(module, arrays, "loss", tolerance=1e-6)
    L, mu = arrays["L"], arrays["mu"]
    s = L @ L.T + 0.1 * np.eye(3)
    d = arrays["x"] - mu
    want = 0.5 * (np.linalg.slogdet(s)[1] + np.mean(np.einsum("ni,ij,nj->n", d, np.linalg.inv(s), d)))
    np.testing.assert_allclose(module.forward(**arrays)["loss"], want, rtol=1e-12)
