"""graphcomp: a symbolic computation-graph compiler.

Declare a static graph, get its reverse-mode derivatives as formulas and as a
standalone NumPy module with forward, gradients and a training loop.
"""
__version__ = "0.1.0"

from .errors import DifferentiationError, GraphcompError, GraphError, ShapeError
from .graph import Graph, Node
from . import dsl
from .dsl import *  # noqa: F403 - the functions users build graphs with
from .codegen import CompiledModel, compile

__all__ = [
    "Graph", "Node", "CompiledModel", "compile",
    "GraphcompError", "GraphError", "ShapeError", "DifferentiationError",
    *dsl.__all__,
]
