"""`gc.custom_op`: an op of the user's own, its forward built from graphcomp's functions and its
derivative rule written by hand.

    softplus_stable = gc.custom_op(
        "softplus_stable",
        forward=lambda x: gc.maximum(x, 0) + gc.log(1 + gc.exp(-gc.abs(x))),
        vjp=lambda inputs, y, g: g * gc.sigmoid(inputs[0]))

Calling the result on graph values builds the forward on them and wraps it in one `custom` node
(ops/custom.py): its value is the forward's, its gradient the rule's. `gc.compile` holds every rule to
central finite differences at random points (frontend/custom_check.py) unless it is declared
`check=False`, as a rule that differs from its forward's derivative on purpose is (a straight-through
estimator, a clipped gradient).
"""
from __future__ import annotations

import inspect
import keyword
from typing import Any, Callable, Optional

from ..errors import GraphError
from ..ir import Node, as_node
from ..ops.custom import CustomRule, custom_node
from ..ops.indexing import integer_input
from . import dsl, losses

# Names a custom op may not take: graphcomp's own functions (a spec file calls both by name, and a
# formula would print both alike).
RESERVED = frozenset(dsl.__all__) | frozenset(losses.__all__)


class CustomOp:
    """A user's op: call it on graph values (or numbers) as any graphcomp function."""

    def __init__(self, rule: CustomRule) -> None:
        self.rule = rule
        self.__name__ = rule.name
        self.__doc__ = f"The custom op {rule.name}({', '.join(rule.inputs)})."

    def __call__(self, *inputs: Any) -> Node:
        rule = self.rule
        if len(inputs) != len(rule.inputs):
            raise GraphError(f"custom op {rule.name!r} takes {len(rule.inputs)} input(s) "
                             f"({', '.join(rule.inputs)}), got {len(inputs)}")
        nodes = tuple(as_node(x) for x in inputs)
        for name, x in zip(rule.inputs, nodes):
            if integer_input(x) is not None:
                raise GraphError(f"custom op {rule.name!r}: input {name!r} holds integer ids, which have no "
                                 "derivative; a custom op takes numbers")
        return custom_node(rule, nodes)

    def __repr__(self) -> str:
        return f"<custom op {self.rule.name}({', '.join(self.rule.inputs)})>"


def custom_op(name: str, forward: Callable[..., Node], vjp: Callable[..., Any],
              jvp: Optional[Callable[..., Node]] = None, *, check: bool = True,
              inputs: Optional[list[str]] = None) -> CustomOp:
    """An op computed by `forward` and differentiated by `vjp` instead of through forward's own ops.

    forward(*inputs) builds the value from graphcomp's functions; it may read no leaf that is not one
    of its inputs. vjp(inputs, y, g) gives one graph value (or None, no gradient) per input: the
    gradient carried back to it from g, the adjoint of the output y (a value of the broadcast shape is
    summed back to the input's, as for built-in elementwise ops). jvp(inputs, y, tangents), optional,
    gives y's tangent for forward mode. The rule is checked against central finite differences when a
    graph using it is compiled (and by `graphcomp check`); check=False declares a rule that differs
    from the forward's derivative on purpose. inputs: the inputs' names for messages (by default the
    names of forward's parameters)."""
    _check_name(name)
    for what, value in (("forward", forward), ("vjp", vjp)):
        if not callable(value):
            raise GraphError(f"custom op {name!r}: {what} must be a function, got {value!r}")
    if jvp is not None and not callable(jvp):
        raise GraphError(f"custom op {name!r}: jvp must be a function or None, got {jvp!r}")
    if check not in (True, False):
        raise GraphError(f"custom op {name!r}: check must be True or False, got {check!r}")
    names = tuple(inputs) if inputs is not None else _parameters(name, forward)
    if not names or not all(isinstance(n, str) and n.isidentifier() for n in names) or len(set(names)) < len(names):
        raise GraphError(f"custom op {name!r}: its inputs need distinct names (Python identifiers), got {list(names)}")
    return CustomOp(CustomRule(name, names, forward, vjp, jvp, bool(check)))


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise GraphError(f"a custom op's name must be a Python identifier that is not a keyword, got {name!r}")
    if name in RESERVED or name == "custom":
        raise GraphError(f"{name!r} is already a graphcomp function; give the custom op another name")


def _parameters(name: str, forward: Callable) -> tuple[str, ...]:
    """The names of forward's positional parameters: how messages name the inputs."""
    try:
        parameters = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        raise GraphError(f"custom op {name!r}: the signature of its forward cannot be read; "
                         "name the inputs with inputs=[...]") from None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind not in kinds for p in parameters):
        raise GraphError(f"custom op {name!r}: its forward must take a fixed number of inputs "
                         "(no *args or keyword-only parameters); or name them with inputs=[...]")
    return tuple(p.name for p in parameters)
