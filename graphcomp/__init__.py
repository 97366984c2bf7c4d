"""graphcomp: a symbolic computation-graph compiler.

Declare a static graph, get its reverse-mode derivatives as formulas and as a
standalone NumPy module with forward, gradients and a training loop.
"""
__version__ = "0.1.0"

from .errors import DifferentiationError, GraphcompError, GraphError, ShapeError
from .graph import Graph, Node
from .dsl import exp, log, matmul, mean, relu, sigmoid, sum, tanh
from .codegen import CompiledModel, compile

__all__ = [
    "Graph", "Node", "CompiledModel", "compile",
    "exp", "log", "matmul", "mean", "relu", "sigmoid", "sum", "tanh",
    "GraphcompError", "GraphError", "ShapeError", "DifferentiationError",
]
