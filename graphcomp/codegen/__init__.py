"""Code generation: from a graph to the text of a standalone NumPy module.

Owns the names of values in the code (and their LaTeX symbols), the order and comments of statements,
which helper functions a module needs, the template context and rendering (`templates/`), loading a
module from memory, and the `Listing` that tells the inspection side what each line computes. It may
import every package above it in the pipeline: `ir`, `formulas`, `ops`, `diff`, `passes`.
"""
from .generate import GeneratedModule, generate
from .listing import Listing, Statement
from .loading import source_spec
from .defaults import DEFAULT_TRAINING, loss_name, wrt_leaves

__all__ = [
    "GeneratedModule", "generate", "Listing", "Statement", "source_spec",
    "DEFAULT_TRAINING", "loss_name", "wrt_leaves"
]
