"""Ops over integer values: `take` (rows of a table picked by integer ids, an embedding's lookup) and
its adjoint, the scatter-add `take_grad`, and `as_float`, which turns integer labels into numbers of the
module's dtype for the one-hot rows of a cross-entropy.

Integers come only from inputs declared with an integer dtype (`g.input(..., dtype="int64")`), and
through the views that keep them integers (slices, reshapes, copies): `integer_input` finds the input
a value is read from. No gradient ever flows into them: every op here gives None for its ids.
"""
from __future__ import annotations

from ..errors import GraphError, ShapeError
from ..formulas.latex import group, latex_operator
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, format_shape
from .batching import materialized
from .table import Op, like, linear_in, not_differentiable, register

# The ops whose value is their integer operand's values rearranged: still integers, still ids.
INTEGER_VIEWS = ("index", "reshape", "alias")
# The operands that may hold integers, by op: the ids of take and of its gradient, the labels of one-hot
# rows (made numbers first by as_float), and the operand of a view.
INTEGER_OPERANDS = {"take": (1,), "take_grad": (2,), "as_float": (0,), "one_hot": (0,),
                    **{op: (0,) for op in INTEGER_VIEWS}}


def integer_input(node: Node) -> Node | None:
    """The integer input `node` is read from (itself, or a slice, reshape or copy of it); None when
    `node` does not hold integers."""
    while node.op in INTEGER_VIEWS:
        node = node.inputs[0]
    return node if node.is_integer_input else None


def integer_misuse(nodes: list[Node]) -> tuple[Node, Node] | None:
    """(the first node of `nodes` that computes with integers as if they were numbers, the integer input
    it reads); None when integers are only taken as ids, labels and views. An integer array meeting a
    float one would compute in NumPy (promoted) and fail in the Array API standard, which promotes
    nothing: so only the ops that read ids as ids may read them."""
    for node in nodes:
        for position, operand in enumerate(node.inputs):
            source = integer_input(operand)
            if source is not None and position not in INTEGER_OPERANDS.get(node.op, ()):
                return node, source
    return None


def id_bounds(nodes: list[Node]) -> dict[Node, int]:
    """{integer input: how many rows (or classes) its ids may pick}, read off the takes and one-hot rows of
    `nodes`: the fewest, where it picks from several. What the generated module checks at run time."""
    bounds: dict[Node, int] = {}
    for node in nodes:
        if node.op == "take":
            source, rows = integer_input(node.inputs[1]), node.inputs[0].shape[0]
        elif node.op == "one_hot" and node.inputs[0].op == "as_float":
            source, rows = integer_input(node.inputs[0].inputs[0]), node.attr("classes")
        else:
            continue
        if source is not None:
            bounds[source] = min(rows, bounds.get(source, rows))
    return bounds


def _take_shape(shapes: tuple, attrs: dict) -> Shape:
    table, ids = shapes
    if len(table) < 1 or not isinstance(table[0], int):
        raise ShapeError(f"take: the table must have a fixed number of rows on its first axis, got shape "
                         f"{format_shape(table)}")
    return tuple(ids) + tuple(table[1:])


def _take_vjp(node: Node, g: Node) -> tuple:
    """Each row of the table receives the gradients of every position that picked it: a scatter-add,
    so a row picked twice in a batch gets both."""
    table, ids = node.inputs
    return apply("take_grad", g, table, ids), None


def _take_grad_vjp(node: Node, h: Node) -> tuple:
    """take_grad is linear in its gradient operand, and its adjoint is take itself."""
    return apply("take", h, node.inputs[2]), None, None


def _moved(x: Node, source: int, target: int) -> Node:
    """x with its axis `source` moved to `target`, the others in their order."""
    axes = list(range(x.ndim))
    axes.insert(target, axes.pop(source))
    return x if axes == sorted(axes) else apply("transpose", x, axes=tuple(axes))


def _take_batch(node: Node, operands: tuple) -> Node | None:
    """k tables (k, R, ...) picked from at once: the rows of the tables laid side by side (R, k, ...), the
    batch axis then moved back to the front. Ids are never batched (nothing differentiates them)."""
    if operands[0] is None:
        return None
    ids = node.inputs[1]
    return _moved(apply("take", _moved(operands[0], 0, 1), ids), ids.ndim, 0)


def _take_grad_batch(node: Node, operands: tuple) -> Node | None:
    """k gradients scattered at once, into the k tables laid side by side, as _take_batch picks from them."""
    if operands[0] is None:
        return None
    g, table, ids = node.inputs
    tables = _moved(materialized(table, operands[0].shape[0]), 0, 1)
    return _moved(apply("take_grad", _moved(operands[0], 0, ids.ndim), tables, ids), 1, 0)


# table[ids]: the rows of `table` (its first axis) that the integer `ids` pick, shape ids.shape +
# table.shape[1:]; the ids get no gradient.
register(Op(name="take", arity=2, shape=_take_shape,
            emit=lambda node, args: f"_take(xp, {args[0]}, {args[1]})", vjp=_take_vjp,
            jvp=linear_in(0), batch=_take_batch, text=lambda node, args: f"{args[0]}[{args[1]}]",
            latex=lambda node, args: rf"{group(args[0])}\left[{args[1]}\right]"))

# The adjoint of take: a table of zeros (shaped like `table`) with each gradient row added into the row
# its id names.
register(Op(name="take_grad", arity=3, shape=like(1),
            emit=lambda node, args: f"_take_grad(xp, {args[0]}, {args[1]}, {args[2]})", vjp=_take_grad_vjp,
            jvp=linear_in(0), batch=_take_grad_batch, text=lambda node, args: f"scatter_add({args[0]}, {args[2]}, rows={node.shape[0]})",
            latex=lambda node, args: latex_operator("scatter", [args[0]], args[2])))

# Integer labels as numbers of the module's dtype (float64 or float32, whichever it computes in), so that
# their one-hot rows can meet the logits: the Array API standard adds no int64 to a float64.
register(Op(name="as_float", arity=1, shape=like(0),
            emit=lambda node, args: f"xp.astype({args[0]}, _dtype(xp))", vjp=not_differentiable,
            text=lambda node, args: f"float({args[0]})", latex=lambda node, args: str(args[0])))


def as_ids(ids: Node, what: str) -> Node:
    """`ids` if it holds integers; a GraphError saying how to declare them otherwise."""
    if not isinstance(ids, Node) or integer_input(ids) is None:
        shown = ids.name or ids.op if isinstance(ids, Node) else repr(ids)
        raise GraphError(f"{what}: the ids must be integers, an input declared with dtype='int64' (or a slice "
                         f"of one), got {shown}")
    return ids
