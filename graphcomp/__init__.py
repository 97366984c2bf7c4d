"""graphcomp: a symbolic computation-graph compiler.

Declare a static graph, get its reverse-mode derivatives as formulas and as a
standalone NumPy module with forward, gradients and a training loop.
"""
from .version import __version__
from .errors import DifferentiationError, GraphcompError, GraphError, ShapeError
from .ir import Graph, Node
from . import ops  # noqa: F401 - registers every op of the table
from .frontend import dsl, losses
from .frontend.dsl import *  # noqa: F403 - the functions users build graphs with
from .frontend.losses import *  # noqa: F403 - softmax family and losses
from .frontend.layers import embedding, linear, mlp
from .frontend.recurrent import gru, lstm, scan
from .diff.reverse import grad
from .diff.forward import jvp
from .diff.gradcheck import gradient_errors
from .frontend.model import CompiledModel, compile

__all__ = [
    "__version__", "Graph", "Node", "CompiledModel", "compile",
    "GraphcompError", "GraphError", "ShapeError", "DifferentiationError",
    *dsl.__all__,
    *losses.__all__,
    "mlp", "scan", "lstm", "gru", "grad", "jvp", "gradient_errors", "embedding", "linear",
]
