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


class OutputError(GraphcompError, OSError):
    """A file graphcomp was asked to write that it cannot or must not write: its folder is not writable,
    the disk is full, or it is one of the command's inputs (writing it would destroy that input)."""


class InputError(GraphcompError, ValueError):
    """A file given to be read (a data set, saved params, values) that cannot be read; the message names
    that file rather than the spec."""
