"""The gradient-check assertion the tests share (the finite differences live in graphcomp.gradcheck)."""
from __future__ import annotations

from graphcomp.diff.gradcheck import gradient_errors, numeric_gradient, relative_error  # noqa: F401


def check_gradients(module, arrays: dict, loss_name: str, tolerance: float = 1e-6) -> dict:
    """Assert the module's gradients match central differences; return the worst error per leaf."""
    errors = gradient_errors(module, arrays, loss_name)
    bad = {name: error for name, error in errors.items() if error >= tolerance}
    assert not bad, f"relative errors above {tolerance:g}: {bad}"
    return errors
