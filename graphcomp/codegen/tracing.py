"""One traced run of a generated module: every value its `_gradients` computes, by node, read off the
function's own variables as it returns. A derivation shows these numbers: the code's own, computed once."""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Callable

from ..ir import Node
from .listing import Listing


def traced_run(module: ModuleType, listing: Listing, arrays: dict) -> dict[Node, object]:
    """Every value and gradient that `module.gradients(**arrays)` computes, by node: the variables of its
    `_gradients`, and the cheap views it writes inside their user's line, evaluated where they stand."""
    variables = _variables_on_return(module._gradients, lambda: module.gradients(**arrays))
    values = {node: variables[name] for node, name in listing.names.items() if name in variables}
    for node, text in listing.inlined.items():  # in the code's order: a view may read one before it
        values[node] = eval(text, vars(module), variables)  # the module's own text, over its own values
    return values


def _variables_on_return(function, call: Callable[[], object]) -> dict[str, object]:
    """The local variables of `function` as it returns, during `call()` (a profiling hook reads them)."""
    code, found = function.__code__, {}

    def hook(frame, event, arg):
        if event == "return" and frame.f_code is code:
            found.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        call()
    finally:
        sys.setprofile(previous)
    return found
