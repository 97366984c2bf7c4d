"""Users' own derivative rules: the `custom` op.

A custom op is a forward built from ordinary ops, with a derivative rule the user writes instead of the
one the forward's own ops would give (a straight-through estimator, a clipped gradient, a stable
formula). One call is one `custom` node whose operands are the forward's result (operand 0) and then the
call's inputs. Its value is the forward's result, bound to a name of its own and copied nowhere (`t9 =
t8`: t9 is what every view calls softplus_stable(t1)); its derivative rule calls the user's `vjp` and gives
the forward's result no adjoint, so no gradient flows through the forward's own ops. The
rule object is the node's one attribute: hashed by identity, so equal calls of one rule share a node and
two rules never do; it prints as its name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import DifferentiationError, GraphcompError, GraphError, ShapeError
from ..formulas.latex import latex_operator
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, broadcast_shapes, format_shape
from .pointwise import expand
from .shape import sum_to
from .table import Op, register


@dataclass(frozen=True, eq=False)
class CustomRule:
    """One user-declared op: its name, its inputs' names (for messages), its forward and rules.

    forward(*inputs) -> a graph value; vjp(inputs, output, g) -> one graph value or None per input;
    jvp(inputs, output, tangents) -> the output's tangent (tangents: one graph value per input).
    check: False when the rule differs from the forward's derivative on purpose (a straight-through
    estimator), so that no finite-difference check holds it to it."""

    name: str
    inputs: tuple[str, ...]
    forward: Callable[..., Node]
    vjp: Callable[..., object]
    jvp: Optional[Callable[..., Node]] = None
    check: bool = True

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__


def custom_node(rule: CustomRule, inputs: tuple[Node, ...]) -> Node:
    """rule(*inputs) as one `custom` node: the forward built from ordinary ops on `inputs`, then
    wrapped. A forward that reads a leaf other than its inputs is refused: that leaf's gradient would
    silently be zero, since no gradient flows through the forward's own ops."""
    result = calling(rule, "forward", rule.forward, *inputs)
    if not isinstance(result, Node):
        raise GraphError(f"custom op {rule.name!r}: its forward gave {type(result).__name__}, not a graph value")
    stack, seen = [result], set(inputs)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(node.inputs)
        if node.op in ("input", "param"):
            raise GraphError(f"custom op {rule.name!r}: its forward reads {node.op} {node.name!r}, which is not "
                             f"one of its inputs; pass it as an input, so that its gradient follows the rule")
    return apply("custom", result, *inputs, rule=rule)


def _shape(shapes: tuple, attrs: dict) -> Shape:
    return shapes[0]


def _vjp(node: Node, g: Node) -> tuple:
    """The user's rule, each piece held to its input's shape; None for the forward's result."""
    rule: CustomRule = node.attr("rule")
    inputs = node.inputs[1:]
    pieces = calling(rule, "vjp", rule.vjp, inputs, node, g)
    pieces = tuple(pieces) if isinstance(pieces, (tuple, list)) else (pieces,)
    if len(pieces) != len(inputs):
        raise DifferentiationError(f"custom op {rule.name!r}: its vjp gave {len(pieces)} value(s) for "
                                   f"{len(inputs)} input(s); give one (or None) per input")
    return (None,) + tuple(_fitted(rule, k, x, piece) for k, (x, piece) in enumerate(zip(inputs, pieces)))


def _fitted(rule: CustomRule, k: int, x: Node, piece: object) -> Node | None:
    """A piece of the rule shaped like its input: a value of the broadcast shape summed back (as every
    elementwise op's gradient is), a smaller one spread over the input; any other shape is an error."""
    if piece is None:
        return None
    if not isinstance(piece, Node):
        raise DifferentiationError(f"custom op {rule.name!r}: its vjp gave {type(piece).__name__} for input "
                                   f"{input_name(rule, k)}; give a graph value or None")
    if tuple(piece.shape) == tuple(x.shape):
        return piece
    try:
        joint = tuple(broadcast_shapes((piece.shape, x.shape)))
    except ShapeError:
        joint = None
    if joint == tuple(piece.shape):
        return sum_to(piece, x.shape)
    if joint == tuple(x.shape):
        return expand(piece, x.shape, [x])
    raise DifferentiationError(f"custom op {rule.name!r}: its vjp gave shape {format_shape(piece.shape)} for "
                               f"input {input_name(rule, k)}, of shape {format_shape(x.shape)}")


def _jvp(node: Node, tangents: tuple) -> Node | None:
    """The user's forward-mode rule, given every input's tangent (zeros where there is none)."""
    rule: CustomRule = node.attr("rule")
    if rule.jvp is None:
        raise DifferentiationError(f"custom op {rule.name!r} has no forward-mode rule: give it jvp=... "
                                   "(the output's tangent from the inputs' tangents)")
    inputs = node.inputs[1:]
    if all(t is None for t in tangents[1:]):
        return None
    given = tuple(apply("expand", 0, x) if t is None else t for x, t in zip(inputs, tangents[1:]))
    tangent = calling(rule, "jvp", rule.jvp, inputs, node, given)
    if not isinstance(tangent, Node) or tuple(tangent.shape) != tuple(node.shape):
        got = format_shape(tangent.shape) if isinstance(tangent, Node) else type(tangent).__name__
        raise DifferentiationError(f"custom op {rule.name!r}: its jvp gave {got}, not a graph value of the "
                                   f"output's shape {format_shape(node.shape)}")
    return tangent


def calling(rule: CustomRule, what: str, function: Callable, *args: object) -> object:
    """The user's function called, an error in it named with the op: graphcomp's own errors keep their
    kind (one that names its own entry, a spec's, as it is), any other is a GraphError."""
    try:
        return function(*args)
    except GraphcompError as error:
        if hasattr(error, "entry"):
            raise
        raise type(error)(f"custom op {rule.name!r}, in its {what}: {error}") from None
    except Exception as error:  # noqa: BLE001 - the user's code: any error becomes one line naming the op
        raise GraphError(f"custom op {rule.name!r}: its {what} raised {type(error).__name__}: {error}") from None


def input_name(rule: CustomRule, k: int) -> str:
    """How messages name input k of a rule: its name, and its position when there are several."""
    name = rule.inputs[k] if k < len(rule.inputs) else f"#{k}"
    return f"{name!r}" if len(rule.inputs) == 1 else f"{name!r} (input {k + 1})"


def _operator_name(rule: CustomRule) -> str:
    return rule.name.replace("_", r"\_")


register(Op(name="custom", arity=None, shape=_shape, emit=lambda node, args: str(args[0]),
            vjp=_vjp, jvp=_jvp, number_operands=True,
            text=lambda node, args: f"{node.attr('rule')}({', '.join(map(str, args[1:]))})",
            latex=lambda node, args: latex_operator(_operator_name(node.attr("rule")), args[1:])))
