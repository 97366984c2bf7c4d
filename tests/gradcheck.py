"""Central finite differences in float64, the reference every gradient test compares with."""
from __future__ import annotations

import numpy as np


def numeric_gradient(loss, arrays: dict, name: str, eps: float = 1e-6) -> np.ndarray:
    """∂loss/∂arrays[name] by central differences; `loss(**arrays)` returns a float."""
    base = np.array(arrays[name], dtype=np.float64)
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        for sign in (1, -1):
            shifted = base.copy()
            shifted[index] += sign * eps
            grad[index] += sign * loss(**{**arrays, name: shifted})
    return grad / (2 * eps)


def relative_error(got, want) -> float:
    """max |got - want| relative to the largest entry: finite differences cannot resolve entries far below it."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(np.max(np.abs(got), initial=0.0), np.max(np.abs(want), initial=0.0), 1e-8)
    return float(np.max(np.abs(got - want), initial=0.0) / scale)


def check_gradients(module, arrays: dict, loss_name: str, tolerance: float = 1e-6) -> dict:
    """Compare the module's gradients with finite differences; return the worst error per leaf."""
    _, grads = module.gradients(**arrays)
    loss = lambda **a: module.forward(**a)[loss_name]
    errors = {}
    for name, grad in grads.items():
        want = numeric_gradient(loss, arrays, name)
        assert np.shape(grad) == want.shape, f"{name}: gradient shape {np.shape(grad)} != {want.shape}"
        errors[name] = relative_error(grad, want)
        assert errors[name] < tolerance, f"{name}: relative error {errors[name]:.2e}\n got {grad}\n want {want}"
    return errors
