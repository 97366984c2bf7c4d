"""graphcomp: a symbolic computation-graph compiler.

Declare a static graph, get its reverse-mode derivatives as formulas and as a
standalone NumPy module with forward, gradients and a training loop.
"""
__version__ = "0.1.0"

from .errors import DifferentiationError, GraphcompError, GraphError, ShapeError
from .graph import Graph, Node
from . import ops_nn  # noqa: F401 - registers the CNN and dropout ops
from . import dsl
from .dsl import *  # noqa: F403 - the functions users build graphs with
from . import losses
from .losses import *  # noqa: F403 - softmax family and losses
from . import nn
from .nn import mlp
from .autodiff import grad
from .codegen import CompiledModel, compile

__all__ = [
    "Graph", "Node", "CompiledModel", "compile",
    "GraphcompError", "GraphError", "ShapeError", "DifferentiationError",
    *dsl.__all__,
    *losses.__all__,
    "mlp", "grad",
]
