"""gc.gradient_errors as the README shows it: a generated module, its arrays and its loss's name give the
worst relative error of each gradient against central differences."""
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import graphcomp as gc
from models import readme_xor
from graphcomp.diff.gradcheck import gradient_errors

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def xor_module():
    """The XOR network of the README."""
    return gc.compile(readme_xor(), loss="loss").load()


def test_the_readme_documents_the_exported_function():
    assert "`gc.gradient_errors(module, arrays, loss_name)`" in README
    assert "from graphcomp.diff.gradcheck import\n  gradient_errors" in README
    assert gc.gradient_errors is gradient_errors and "gradient_errors" in gc.__all__


def test_gradient_errors_as_the_readme_calls_it():
    m = xor_module()
    X, Y = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([[0.0], [1.0], [1.0], [0.0]])
    example = re.search(r"`(gc\.gradient_errors\(m, .*?\))`", README.replace("\n  ", " "))[1]
    assert example == 'gc.gradient_errors(m, {"x": X, "y": Y, **m.init_params(0)}, "loss")'
    errors = gc.gradient_errors(m, {"x": X, "y": Y, **m.init_params(0)}, "loss")
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    assert max(errors.values()) < 1e-6, errors


def test_a_wrong_gradient_is_found():
    m = xor_module()
    arrays = {"x": np.eye(2), "y": np.array([[1.0], [0.0]]), **m.init_params(1)}

    def doubled(**given):  # every gradient twice what it should be: off by half of the largest entry
        outputs, grads = m.gradients(**given)
        return outputs, {name: 2 * grad for name, grad in grads.items()}
    wrong = SimpleNamespace(gradients=doubled, forward=m.forward)
    errors = gc.gradient_errors(wrong, arrays, "loss")
    assert all(abs(error - 0.5) < 1e-6 for error in errors.values()), errors
