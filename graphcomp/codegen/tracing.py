"""One traced run of a generated module: every value its `_gradients` computes, by node, read off the
function's own variables as it returns. A derivation shows these numbers: the code's own, computed once."""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Callable

from ..errors import GraphcompError
from ..ir import Node, toposort
from ..ops import OPS
from .listing import Listing


def traced_run(module: ModuleType, listing: Listing, arrays: dict) -> dict[Node, object]:
    """Every value and gradient that `module.gradients(**arrays)` computes, by node: the variables of its
    `_gradients`, and the cheap views it writes inside their user's line, evaluated where they stand."""
    variables = _variables_on_return(module._gradients, lambda: module.gradients(**arrays))
    values = {node: variables[name] for node, name in listing.names.items() if name in variables}
    for node, text in listing.inlined.items():  # in the code's order: a view may read one before it
        values[node] = eval(text, vars(module), variables)  # the module's own text, over its own values
    return values


def evaluated(module: ModuleType, nodes: list[Node], values: dict[Node, object]) -> dict[Node, object]:
    """`values` with the values of `nodes` added where the run did not compute them (a gradient that a
    rule folded into the next line, such as the mean's 1/N before a softmax's cross-entropy): each node
    evaluated from its operands' values by the op's own NumPy text, as the code would write it."""
    values = dict(values)
    names = vars(module)
    for node in toposort(nodes):
        if node.op == "const":
            values[node] = names["np"].float64(node.attr("value"))
        if node in values or node.is_leaf:
            continue
        if any(x not in values for x in node.inputs):
            continue
        operands = {f"_operand{k}": values[x] for k, x in enumerate(node.inputs)}
        try:
            text = OPS[node.op].emit(node, tuple(operands))  # a loop has no one-expression text: left out
            values[node] = eval(text, names, {"xp": names["np"], **operands})  # the op's own text, over computed values
        except (GraphcompError, NameError, TypeError, ValueError, AttributeError, IndexError):  # e.g. a helper this module does not carry
            continue
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
