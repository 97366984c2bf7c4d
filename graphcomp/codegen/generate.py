"""From a graph to the text of a standalone NumPy module: the passes, the reverse pass, the template
context, rendering. The same graph always gives the same text: every order comes from the graph's own
tuples and declaration order, never from hashing.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Sequence

from ..diff.reverse import Backward, reverse_mode
from ..errors import DifferentiationError
from ..files import write_atomic
from ..ir import Graph, Node, declaring
from ..passes import optimize
from .context import module_context
from .finite import number_lines
from .defaults import DEFAULT_TRAINING, loss_name, wrt_leaves
from .listing import Listing
from .loading import source_spec
from .render import render
from .running import inference_code
from .statements import ModuleCode
from .tracing import evaluated, traced_run


class GeneratedModule:
    """A compiled graph: its generated source, what it was made from, and ways to save and import it."""

    def __init__(self, graph: Graph, compiled_graph: Graph, source: str, wrt: tuple[str, ...],
                 loss: str | None, backward: Backward | None, listing: Listing | None = None,
                 changes: Sequence = (), dtype: str = "float64") -> None:
        self.graph = graph                    # as the user wrote it
        self.compiled_graph = compiled_graph  # after the passes: what the source computes
        self.source = source
        self.wrt = wrt
        self.loss = loss
        self.backward = backward
        self.listing = listing                # None when there is no loss to differentiate
        self.changes = list(changes)          # what the passes changed (passes.Change), for the report
        self.dtype = dtype
        self._path: Path | None = None
        self._as_written: GeneratedModule | None = None
        self._imported: ModuleType | None = None   # the module values_at runs, imported once

    def save(self, path: str | Path) -> Path:
        """Write the generated module to `path` (a .py file), atomically: an interrupted or failed save
        leaves the old file as it was (graphcomp.files.write_atomic)."""
        path = write_atomic(path, self.source)
        self._path = path
        return path

    def load(self) -> ModuleType:
        """Import the generated module: from where it was saved, or from memory (no file is left
        behind; tracebacks still show its lines)."""
        path = self._path
        if path is not None and path.exists() and path.read_text(encoding="utf-8") == self.source:
            spec = importlib.util.spec_from_file_location(f"graphcomp_model_{self.graph.name}", path)
        else:
            spec = source_spec(f"graphcomp_model_{self.graph.name}", self.source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def loss_or_error(self) -> str:
        """The loss output's name; an error naming the model when it has no scalar loss."""
        if self.backward is None:
            raise DifferentiationError(f"model {self.graph.name!r} has no scalar loss to differentiate")
        return self.loss

    def as_written(self) -> GeneratedModule:
        """The graph compiled as written (simplify=False, float64), made once: the module whose backward
        pass, lines and values a derivation reads. A model compiled that way is its own."""
        if self._as_written is None:
            literal = self.compiled_graph is self.graph and self.dtype == "float64"
            self._as_written = self if literal else generate(self.graph, self.wrt, self.loss, simplify=False)
        return self._as_written

    def values_at(self, arrays: dict, also: Sequence[Node] = ()) -> dict[Node, object]:
        """Every value and gradient the module's gradients() computes at `arrays`, by node (one traced
        run), and the values of the nodes `also` that the code folds into other lines."""
        self.loss_or_error()
        if self._imported is None:
            self._imported = self.load()
        return evaluated(self._imported, list(also), traced_run(self._imported, self.listing, arrays))


def generate(graph: Graph, wrt: Sequence[str] | None = None, loss: str | None = None,
             dtype: str = "float64", simplify: bool = True, predict: str | None = None,
             target: str | None = None, training: dict | None = None, check_shapes: bool = False,
             runtime: bool = True, model_class: type[GeneratedModule] = GeneratedModule,
             check_finite: bool = False) -> GeneratedModule:
    """Differentiate `graph` and generate its NumPy module (the arguments of `gc.compile`); the
    result is a `model_class`. check_shapes: the module checks the shape of every value it computes
    against the graph's (a debug mode; off, the code is exactly as without it). check_finite: the
    module stops at the first value that is not finite, with a report (codegen/finite.py; off, the code
    is exactly as without it). runtime: False leaves out the training loop, its files and command line
    (forward and gradients only). The arguments are taken as checked (`gc.compile` checks them first,
    frontend/request.py). The values graphcomp builds here are its own: they get no place of
    declaration (ir/declared.py)."""
    leaves, loss_output = wrt_leaves(graph, wrt), loss_name(graph, loss)
    source_graph = graph
    changes: list = []
    origins: dict[Node, Node] = {}
    with declaring(None):
        if simplify:
            graph = optimize(graph, wrt=leaves, log=changes, origins=origins)
        backward = None
        if loss_output is not None and graph.outputs[loss_output].shape == ():
            backward = reverse_mode(graph.outputs[loss_output], leaves)
        code = ModuleCode(graph, leaves, backward, dtype, written=source_graph, origins=origins)
        inference = inference_code(source_graph, dtype, simplify) if source_graph.buffers else None
        context = module_context(code, loss_output, check_shapes=check_shapes, runtime=runtime, inference=inference,
                                 check_finite=check_finite)
    context.update(predict=predict, target=target, training={**DEFAULT_TRAINING, **(training or {})},
                   threshold=0.5 if predict and source_graph.outputs[predict].op == "sigmoid" else 0.0)
    source = render(context)
    return model_class(source_graph, graph, number_lines(source) if check_finite else source,
                       tuple(x.name for x in leaves), loss_output, backward, code.listing(), changes, dtype=dtype)
