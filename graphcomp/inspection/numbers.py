"""Numbers and arrays as a person reads them, the same in every view: derivations, reports, pictures.

Two rules hold everywhere:

- An array of at most `SHOWN_ELEMENTS` (16) elements prints whole: a 3×3 filter stored as 1×1×3×3
  is a 3×3 matrix, a column stays a column, and an array with more axes prints its rows (the last
  axis) one after the other. A larger array prints as its shape and a summary.
- Float noise prints as 0. Backprop computes sums of products whose exact value is 0, and float64
  leaves residues such as -2.7e-16 beside values of order 1. A value whose magnitude is below
  `NOISE` (64) times float64's machine epsilon (2.2e-16) times the scale it sits in, so below
  1.4e-14 of that scale, cannot be told apart from zero by the arithmetic that made it, and prints as
  0. The scale is the largest magnitude of the same array, or one the caller gives (the gradient a
  share adds up to, so that a share of 3e-17 of a gradient of 4 is 0). A lone number has no scale
  but itself and prints as it is: 1e-20 is a number, not noise.
"""
from __future__ import annotations

import numpy as np

from ..formulas.latex import latex_number, short_number

SHOWN_ELEMENTS = 16  # arrays up to this size print whole, in boxes and edges as in derivations
NOISE = 64  # times float64's epsilon, relative to the scale of the values around: prints as 0
EPSILON = float(np.finfo(np.float64).eps)


def cleaned(value, scale: float | None = None) -> np.ndarray:
    """`value` as a float64 array with float noise (|v| < NOISE·ε·scale) set to 0. scale: the largest
    magnitude among the values `value` is compared with (default: its own largest magnitude)."""
    array = np.array(value, dtype=np.float64)
    finite = np.abs(array[np.isfinite(array)])
    largest = max([float(finite.max()) if finite.size else 0.0] + ([abs(float(scale))] if scale is not None
                                                                     and np.isfinite(scale) else []))
    array[np.abs(array) < NOISE * EPSILON * largest] = 0.0
    return array + 0.0  # no -0


def shown(value, latex: bool, scale: float | None = None) -> str:
    """A number or an array as a person reads it: whole up to 16 elements (a matrix in LaTeX), else its
    shape and a summary; float noise relative to `scale` (default: the array's largest magnitude) as 0."""
    array = cleaned(value, scale)
    if array.ndim == 0:
        return latex_number(float(array)) if latex else short_number(float(array))
    if array.size <= SHOWN_ELEMENTS:
        rows = _rows(array)
        fmt = (lambda v: latex_number(float(f"{v:.4g}"))) if latex else (lambda v: f"{v:.4g}")
        if latex:
            return r"\begin{bmatrix} " + r" \\ ".join(" & ".join(fmt(v) for v in row) for row in rows) + r" \end{bmatrix}"
        return "[" + "; ".join(" ".join(fmt(v) for v in row) for row in rows) + "]"
    shape = "×".join(map(str, array.shape)) if not latex else r" \times ".join(map(str, array.shape))
    mean = cleaned(array.mean(), float(np.abs(array).max()))  # a mean of exact zero sums to noise: 0
    summary = f"mean {_g(mean)}, min {_g(array.min())}, max {_g(array.max())}"
    return rf"\left[{shape} \text{{ array: {summary}}}\right]" if latex else f"[{shape} array: {summary}]"


def box_text(value, scale: float | None = None) -> str:
    """A value on a picture's box or edge: a number, a whole array up to 16 elements, else its shape and
    a summary (2×4 array, mean 3.5, from 0 to 7)."""
    array = cleaned(value, scale)
    if array.size <= SHOWN_ELEMENTS:
        return shown(array, latex=False)
    size = "×".join(map(str, array.shape))
    if array.min() == array.max():
        return f"{size} array, all {short_number(float(array.min()))}"
    return (f"{size} array, mean {short_number(float(cleaned(array.mean(), np.abs(array).max())))}, "
            f"from {short_number(float(array.min()))} to {short_number(float(array.max()))}")


def _rows(array: np.ndarray) -> np.ndarray:
    """The rows an array prints as: size-1 axes dropped, a vector as one row (a column as a column),
    more axes as the rows of the last axis one after the other."""
    squeezed = array.reshape([d for d in array.shape if d != 1] or [1])
    if array.ndim >= 2 and squeezed.ndim == 1 and array.shape[-1] == 1:
        return squeezed.reshape(-1, 1)  # a column stays a column
    if squeezed.ndim == 1:
        return squeezed.reshape(1, -1)
    return squeezed.reshape(-1, squeezed.shape[-1])


def _g(value: float) -> str:
    return f"{float(value) + 0.0:.4g}"
