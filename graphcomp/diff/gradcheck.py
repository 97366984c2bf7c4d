"""Gradients checked against central finite differences in float64.

The reference the test suite and `graphcomp check` compare compiled gradients with.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np


def numeric_gradient(loss: Callable[..., float], arrays: Mapping[str, np.ndarray], name: str,
                     eps: float = 1e-6) -> np.ndarray:
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


def gradient_errors(module, arrays: Mapping[str, np.ndarray], loss_name: str) -> dict[str, float]:
    """{leaf: worst relative error} of a generated module's gradients at `arrays`."""
    _, grads = module.gradients(**arrays)
    mode = {"training": True} if getattr(module, "BUFFERS", None) else {}  # batch norm: the batch's statistics, as gradients()
    loss = lambda **a: module.forward(**mode, **a)[loss_name]  # noqa: E731 - a one-line closure
    errors = {}
    for name, grad in grads.items():
        want = numeric_gradient(loss, arrays, name)
        if np.shape(grad) != want.shape:
            raise ValueError(f"{name}: gradient shape {np.shape(grad)} differs from the leaf's {want.shape}")
        errors[name] = relative_error(grad, want)
    return errors
