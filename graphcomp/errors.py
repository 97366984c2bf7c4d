"""The errors a user of graphcomp can see.

Every message names the thing that is wrong (the node, the shapes, the name),
so that a mistake in a model is found from the message alone.
"""


class GraphcompError(Exception):
    """Base class of every error graphcomp raises on purpose."""


class ShapeError(GraphcompError, ValueError):
    """Operand shapes that do not fit an operation."""


class GraphError(GraphcompError, ValueError):
    """A graph that cannot be built or compiled as asked (bad name, unknown leaf, ...)."""


class DifferentiationError(GraphcompError):
    """An op without a derivative rule, or a gradient asked of something that has none."""
