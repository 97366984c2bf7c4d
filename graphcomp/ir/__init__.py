"""The IR: immutable nodes, the graph that names leaves and outputs, shapes and names.

Owns `Node`, `Graph`, `apply` (which checks operands and infers shapes through the op table's shape
rules), topological order, shape rules shared by every op, and which names users may give. It imports
nothing of graphcomp but `errors`; the op table registers itself into `OPS` here when `graphcomp.ops`
is imported.
"""
from .declared import Declared, declared, declaring, inherit
from .graph import DISPLAYS, INITS, INPUT_DTYPES, LEAF_OPS, OPS, Graph, Node, apply, as_node, constant, depending_on, toposort, use_counts
from .shapes import (MAX_ELEMENTS, Shape, axis_text, broadcast_shapes, check_shape, format_shape, inferred_shape,
                     normalize_axes, normalize_index, shapes_text)

__all__ = [
    "Declared", "declared", "declaring", "inherit",
    "DISPLAYS", "INITS", "INPUT_DTYPES", "LEAF_OPS", "OPS", "Graph", "Node", "apply", "as_node", "constant", "depending_on",
    "toposort", "use_counts", "MAX_ELEMENTS", "Shape", "axis_text", "broadcast_shapes", "check_shape",
    "format_shape", "inferred_shape", "normalize_axes", "normalize_index", "shapes_text"
]
