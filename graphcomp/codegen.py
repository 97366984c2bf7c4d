"""From a graph to a standalone NumPy module.

Python prepares plain data — ordered statements (target, expression, comment),
names, shapes — and the Jinja template in `templates/` only lays it out. The
same graph always gives the same text: every order here comes from the graph's
own tuples and declaration order, never from hashing.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.resources
import importlib.util
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Iterable, Sequence

import jinja2
import sympy as sp

from . import __version__, latex, report
from .autodiff import Backward, reverse_mode
from .errors import DifferentiationError, GraphError
from .graph import Graph, Node, format_shape, toposort, use_counts
from .naming import Namer
from .ops import OPS, in_terms_of, scalar_expr
from .passes import optimize
from .printing import helpers_in, number_text, numpy_text, plain_text, sympy_number
from .simplify import local_derivative, placeholder

# Names the generated file uses itself (module constants, and the locals of forward/gradients):
# a user's value that has one of them gets a variable with a trailing underscore instead.
MODULE_NAMES = ("DTYPE", "INPUTS", "PARAMS", "OUTPUTS", "LOSS", "WRT", "TRAINED", "PREDICT", "TARGET",
                "THRESHOLD", "TRAINING", "LABELS", "NEEDS", "GRADIENT_ARGS", "arrays", "outputs", "grads", "absent")
DTYPES = ("float64", "float32")
# The settings train() takes besides params and data, and the defaults of the module's command line.
TRAINING_KEYS = ("optimizer", "lr", "epochs", "batch_size", "seed", "momentum", "beta1", "beta2",
                 "schedule", "step_size", "gamma", "weight_decay", "l1", "validation")
DEFAULT_TRAINING = {"epochs": 10, "lr": 0.1, "batch_size": 32}
OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = (None, "step", "exponential", "cosine")


def training_problems(settings: dict) -> dict[str, str]:
    """{setting: what is wrong with it} for training settings (empty when all are fine): checked
    when a spec is read and when a model is compiled, not when training starts."""
    def whole(value, least):
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    rules = {
        "epochs": (lambda v: whole(v, 0), "a whole number >= 0"),
        "batch_size": (lambda v: whole(v, 1), "a whole number >= 1"),
        "seed": (lambda v: whole(v, 0), "a whole number >= 0"),
        "step_size": (lambda v: whole(v, 1), "a whole number >= 1"),
        "lr": (lambda v: number(v) and v > 0, "a number > 0"),
        "gamma": (lambda v: number(v) and v > 0, "a number > 0"),
        "momentum": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "beta1": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "beta2": (lambda v: number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "weight_decay": (lambda v: number(v) and v >= 0, "a number >= 0"),
        "l1": (lambda v: number(v) and v >= 0, "a number >= 0"),
        "validation": (lambda v: number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
        "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
        "schedule": (lambda v: v in SCHEDULES, "none, or one of step, exponential, cosine"),
    }
    return {key: f"must be {rules[key][1]}, got {value!r}" for key, value in settings.items()
            if key in rules and not rules[key][0](value)}
# Cheap views that read better inside the line that uses them: `d_z @ W.T`.
INLINED_OPS = ("transpose", "reshape", "broadcast_like", "count")
# Ops whose emitted code takes a plain number as an operand (others call array methods on it).
NUMBER_OPERANDS = ("broadcast_like", "expand", "sum", "mean", "alias")
# Ops that only matter to differentiation: their value is their operand's, under the same name.
TRANSPARENT_OPS = ("stop_gradient",)


@dataclass(frozen=True)
class Statement:
    target: str
    expr: str
    comment: str = ""


@dataclass
class Listing:
    """What the generated gradients() computes, node by node, under the names the code uses:
    the formulas (latex.py) and `graphcomp grad` read it, so that they name values as the code does."""

    names: dict[Node, str]                  # node -> its variable
    symbols: dict[Node, str]                # node -> its LaTeX symbol (W_{1}, t_{3}, \bar{h}, ...)
    inlined: dict[Node, str]                # node -> the code text written inside its user's line
    statements: dict[Node, list[Statement]]  # node -> the lines computing it (common parts first)
    order: list[Node]                       # the nodes with lines of their own, in the order of gradients()


class _SourceLoader(importlib.abc.SourceLoader):
    """Imports generated source held in memory; `get_source` lets tracebacks show its lines."""

    def __init__(self, source: str, filename: str) -> None:
        self.source, self.filename = source, filename

    def get_filename(self, fullname: str) -> str:
        return self.filename

    def get_data(self, path: str) -> bytes:
        return self.source.encode("utf-8")


def source_spec(name: str, source: str) -> importlib.machinery.ModuleSpec:
    """An import spec for a generated module that exists only in memory."""
    filename = f"graphcomp-generated:{name}.py"  # not <...>: linecache shows lines of such names
    return importlib.util.spec_from_loader(name, _SourceLoader(source, filename), origin=filename)


class CompiledModel:
    """A compiled graph: its generated source, and ways to save and import it."""

    def __init__(self, graph: Graph, compiled_graph: Graph, source: str, wrt: tuple[str, ...],
                 loss: str | None, backward: Backward | None, listing: Listing | None = None,
                 changes: Sequence = ()) -> None:
        self.graph = graph                    # as the user wrote it
        self.compiled_graph = compiled_graph  # after the passes: what the source computes
        self.source = source
        self.wrt = wrt
        self.loss = loss
        self.backward = backward
        self.listing = listing                # None when there is no loss to differentiate
        self.changes = list(changes)          # what the passes changed (passes.Change), for the report
        self._path: Path | None = None

    def save(self, path: str | Path) -> Path:
        """Write the generated module to `path` (a .py file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source, encoding="utf-8")
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

    def gradient_latex(self) -> dict[str, str]:
        """{leaf: LaTeX} of each gradient: a closed form for short scalar graphs (∂f/∂u = w for
        f = (u + v) w); otherwise the generated code's equations under its names (README, "Reading
        the formulas")."""
        self._loss_or_error()
        return latex.gradient_latex(self)

    def gradient_text(self) -> dict[str, str]:
        """{leaf: plain text} of each gradient, as `graphcomp grad` prints them: the closed form, or the
        generated code's lines that compute it."""
        self._loss_or_error()
        return latex.gradient_text(self)

    def derivation(self, at: dict | None = None) -> latex.Derivation:
        """Both passes node by node, on the graph as written: each value forward, then the chain rule
        from the loss back to the leaves; with numbers (and arrays) when the leaves' values are given:
        derivation(at={"u": 2, "v": 3, "w": 4})."""
        return latex.derivation(self.graph, self._loss_or_error(), self.wrt, at)

    def report(self, path: str | Path, at: dict | None = None) -> Path:
        """Write a Markdown report: the forward pass (with values, given `at`), local derivatives before
        and after simplification, what the passes changed and why, the gradient equations, the
        derivation, and the forward/gradients part of the generated code."""
        text = report.markdown(self, at)  # a bad `at` raises here, before anything is written
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def _repr_markdown_(self) -> str:
        return report.summary(self)

    def _loss_or_error(self) -> str:
        if self.backward is None:
            raise DifferentiationError(f"model {self.graph.name!r} has no scalar loss to differentiate")
        return self.loss

    def __repr__(self) -> str:
        return f"<CompiledModel {self.graph.name!r}: loss {self.loss!r}, wrt {list(self.wrt)}>"


def compile(graph: Graph, wrt: Sequence[str] | None = None, loss: str | None = None,
            dtype: str = "float64", simplify: bool = True, predict: str | None = None,
            target: str | None = None, training: dict | None = None) -> CompiledModel:
    """Differentiate `graph` and generate its NumPy module.

    wrt: leaf names to differentiate with respect to; by default every param,
    or every input when the graph has none. loss: the output to differentiate;
    by default the only output, or the only scalar one. simplify: rewrite naive
    formulas into stable ones and fuse elementwise chains first (False: emit the
    graph exactly as written, one line per op). predict / target: an output and
    an input the training loop scores accuracy with. training: default settings
    of the generated train() and command line (epochs, lr, batch_size, optimizer, ...).
    """
    if not isinstance(graph, Graph):
        raise GraphError(f"compile expects a gc.Graph, got {type(graph).__name__}")
    if not graph.outputs:
        raise GraphError(f"graph {graph.name!r} has no output; declare one with g.output(name, value)")
    if dtype not in DTYPES:
        raise GraphError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    leaves = wrt_leaves(graph, wrt)
    loss_output = loss_name(graph, loss)
    _check_scoring(graph, predict, target)
    unknown = sorted(set(training or {}) - set(TRAINING_KEYS))
    if unknown:
        raise GraphError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(TRAINING_KEYS)}")
    for key, problem in training_problems(training or {}).items():
        raise GraphError(f"training setting {key} {problem}")
    source_graph = graph
    changes: list = []
    if simplify:
        graph = optimize(graph, wrt=leaves, log=changes)
    backward = None
    if loss_output is not None and graph.outputs[loss_output].shape == ():
        backward = reverse_mode(graph.outputs[loss_output], leaves)
    module = _Module(graph, leaves, loss_output, backward, dtype)
    context = module.context()
    context.update(predict=predict, target=target, training={**DEFAULT_TRAINING, **(training or {})},
                   threshold=0.5 if predict and source_graph.outputs[predict].op == "sigmoid" else 0.0, trace=False)
    source = _render(context)
    return CompiledModel(source_graph, graph, source, tuple(x.name for x in leaves), loss_output, backward,
                         module.listing, changes)


def traced_values(graph: Graph, wrt: Sequence[str], loss: str, arrays: dict) -> dict[Node, object]:
    """Every value the literal graph's gradients() computes at `arrays`, by node: forward values and
    gradients as the generated code computes them (numeric derivations show these numbers). The module
    is generated with a line for every value, even the cheap views code would write inline."""
    leaves = wrt_leaves(graph, wrt)
    module = _Module(graph, leaves, loss, reverse_mode(graph.outputs[loss], leaves), "float64", inline=False)
    context = module.context()
    context.update(predict=None, target=None, training=DEFAULT_TRAINING, threshold=0.0, trace=True)
    spec = source_spec(f"graphcomp_trace_{graph.name}", _render(context))
    traced = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(traced)
    _, _, variables = traced.gradients(**arrays)
    values = {node: variables[name] for node, name in module.names.items() if name in variables}
    for node in module.statement_of:  # stop_gradient: its operand's value under another name
        if node not in values and node.op in TRANSPARENT_OPS and node.inputs[0] in values:
            values[node] = values[node.inputs[0]]
    return values


def _check_scoring(graph: Graph, predict: str | None, target: str | None) -> None:
    if (predict is None) != (target is None):
        raise GraphError("accuracy needs both predict (an output) and target (an input)")
    if predict is not None and predict not in graph.outputs:
        raise GraphError(f"predict {predict!r} is not an output of graph {graph.name!r}; outputs: {', '.join(graph.outputs)}")
    if target is not None and target not in graph.inputs:
        raise GraphError(f"target {target!r} is not an input of graph {graph.name!r}; inputs: {', '.join(graph.inputs)}")


def wrt_leaves(graph: Graph, wrt: Sequence[str] | None) -> list[Node]:
    """The leaves to differentiate for: those named, else every param, else every input."""
    if wrt is None:
        return list((graph.params or graph.inputs).values())
    if isinstance(wrt, str):
        wrt = [wrt]
    unknown = [name for name in wrt if name not in graph.leaves]
    if unknown:
        raise GraphError(f"wrt names {', '.join(map(repr, unknown))}, which graph {graph.name!r} does not have; "
                         f"its leaves are {', '.join(graph.leaves)}")
    return [graph.leaves[name] for name in dict.fromkeys(wrt)]


def loss_name(graph: Graph, loss: str | None) -> str | None:
    """The output to differentiate: the one named, else the only output, else the only scalar one."""
    if loss is not None:
        if loss not in graph.outputs:
            raise GraphError(f"loss {loss!r} is not an output of graph {graph.name!r}; outputs: {', '.join(graph.outputs)}")
        return loss
    if len(graph.outputs) == 1:
        return next(iter(graph.outputs))
    scalars = [name for name, node in graph.outputs.items() if node.shape == ()]
    if len(scalars) == 1:
        return scalars[0]
    raise GraphError(f"graph {graph.name!r} has several outputs ({', '.join(graph.outputs)}); "
                     "say which is the loss: gc.compile(g, loss=...)")


class _Module:
    """The render context of one generated module."""

    def __init__(self, graph: Graph, wrt: list[Node], loss: str | None, backward: Backward | None, dtype: str,
                 inline: bool = True):
        self.graph, self.wrt, self.loss, self.backward, self.dtype = graph, wrt, loss, backward, dtype
        self.inline = inline  # False: every value gets a line (and a name), as a traced derivation needs
        self.forward_nodes = set(graph.nodes())
        self.names: dict[Node, str] = {}
        self._source: dict[Node, str] = {}       # the name a LaTeX symbol is made from: the user's, or t3
        self.namer = Namer(reserved=MODULE_NAMES)
        for leaf in graph.leaves.values():
            self.names[leaf] = self.namer.reserve(leaf.name)
            self._source[leaf] = leaf.name
        for node, name in list(graph.labels.items()) + [(v, k) for k, v in graph.outputs.items()]:
            if node not in self.names:
                self.names[node] = self.namer.reserve(name)
                self._source[node] = name
        # LaTeX symbols, from the user's names (a variable outputs_ still prints as \mathrm{outputs})
        self.symbols: dict[Node, str] = {node: latex.symbol(name) for node, name in self._source.items()}
        self._user_symbols = set(self.symbols.values())  # t3 is skipped where a user's t_3 prints the same
        self.temporaries = (f"t{k}" for k in itertools.count(1))
        self.statement_of: dict[Node, list[Statement]] = {}
        self.listing: Listing | None = None
        self._cse: dict[Node, tuple[list[tuple[str, str]], str]] = {}
        self._emitted: dict[Node, str] = {}  # a node's NumPy text, the same in forward() and gradients()
        self.adjoint_of: dict[Node, Node] = {}
        self.paths_into: dict[Node, int] = {}
        if backward is not None:
            # An adjoint shared by several values is named after the one nearest the loss
            # (d_t1 rather than d_u for t1 = u + v), or else the first leaf declared.
            shared = sorted(backward.adjoints.items(), key=lambda item: item[0].is_leaf)  # stable: keeps order
            for forward, adjoint in shared:
                if forward.is_leaf:
                    break
                self.adjoint_of.setdefault(adjoint, forward)
            for leaf in graph.leaves.values():
                if leaf in backward.adjoints:
                    self.adjoint_of.setdefault(backward.adjoints[leaf], leaf)
                elif leaf in backward.gradients:  # the loss does not depend on it: d_x = np.zeros_like(x)
                    self.adjoint_of.setdefault(backward.gradients[leaf], leaf)

    # ---- names and operands ------------------------------------------
    def name(self, node: Node) -> str:
        if node not in self.names:
            backward_name = None if node in self.forward_nodes else self._backward_name(node)
            if backward_name is None:
                backward_name = self._source[node] = self._fresh_temporary()
                self.symbols[node] = latex.symbol(backward_name)
            self.names[node] = backward_name
        return self.names[node]

    def _fresh_temporary(self) -> str:
        while True:
            name = next(self.temporaries)
            if self.namer.is_free(name) and latex.symbol(name) not in self._user_symbols:
                return self.namer.fresh(name)

    def _backward_name(self, node: Node) -> str | None:
        if node in self.adjoint_of:
            forward = self.adjoint_of[node]
            name = self.namer.fresh(f"d_{self.name(forward)}")
            self.symbols[node] = latex.bar(self._source[forward])
            return name
        into = self.backward.flows_into.get(node)
        if into is None:
            return None
        self.paths_into[into] = self.paths_into.get(into, 0) + 1
        name = self.namer.fresh(f"d_{self.name(into)}_{self.paths_into[into]}")
        self.symbols[node] = latex.bar(self._source[into]) + f"^{{({self.paths_into[into]})}}"
        return name

    def operand(self, node: Node, inlined: dict[Node, str]) -> str | int | float:
        if node.op == "const":
            return node.attr("value")
        return inlined.get(node) or self.name(node)

    # ---- statements ---------------------------------------------------
    def statements(self, roots: Iterable[Node]) -> tuple[list[Statement], list[Statement], dict[Node, str]]:
        """Forward and backward statements computing `roots`, and the text of inlined nodes."""
        order = [n for n in toposort(roots) if not n.is_leaf]
        forward, backward, inlined = [], [], {}
        for node in order:
            args = tuple(self.operand(x, inlined) for x in node.inputs)
            if node.op in TRANSPARENT_OPS and node not in self.names:
                inlined[node] = _literal(args[0])
                continue
            if node not in self._emitted:  # forward() and gradients() both emit the forward nodes
                self._emitted[node] = OPS[node.op].emit(node, tuple(self._operand_text(node, a) for a in args))
            expr = self._emitted[node]
            if self._inlined(node):
                inlined[node] = expr
                continue
            shared, expr = self._common_parts(node, args, expr)
            self.statement_of[node] = [Statement(name, text) for name, text in shared] + [Statement(self.name(node), expr)]
            if node in self.forward_nodes:
                forward.extend(Statement(name, text) for name, text in shared)
                forward.append(Statement(self.name(node), expr))
            else:
                comment = self.comment(node, inlined)
                backward.extend(Statement(name, text, comment) for name, text in shared)
                backward.append(Statement(self.name(node), expr, comment))
        return forward, backward, inlined

    @staticmethod
    def _operand_text(node: Node, arg: str | int | float) -> str:
        """A variable name, or a number; a number read by an array method (reshape, .T, ...) is an array."""
        if isinstance(arg, str) or OPS[node.op].elementwise or node.op in NUMBER_OPERANDS:
            return _literal(arg)
        return f"np.asarray({number_text(arg)}, dtype=DTYPE)"

    def _common_parts(self, node: Node, args: tuple, expr: str) -> tuple[list[tuple[str, str]], str]:
        """A fused formula's repeated subexpressions, computed once each (sympy.cse): ([(name, text)], main text).

        Cached per node, so `forward` and `gradients` give them the same names.
        """
        if node.op != "elementwise":
            return [], expr
        if node not in self._cse:
            bound = scalar_expr(node).xreplace({
                placeholder(i): sympy_number(a) if not isinstance(a, str) else sp.Symbol(a, real=True)
                for i, a in enumerate(args)})
            names = (sp.Symbol(self._fresh_temporary(), real=True) for _ in itertools.count())
            replacements, (reduced,) = sp.cse(bound, symbols=names, order="none")
            self._cse[node] = ([(str(name), numpy_text(part)) for name, part in replacements],
                               numpy_text(reduced) if replacements else expr)
        return self._cse[node]

    def _inlined(self, node: Node) -> bool:
        """A cheap view used once, with no name of its own to show: written inside its user's line.

        The same decision holds in `forward` and `gradients`, so temporaries keep one numbering.
        """
        has_adjoint = self.backward is not None and node in self.backward.adjoints
        return (self.inline and node.op in INLINED_OPS and self.uses.get(node) == 1 and not has_adjoint
                and node not in self.names)

    def formula(self, node: Node, inlined: dict[Node, str]) -> str:
        args = tuple(self.operand(x, inlined) for x in node.inputs)
        return OPS[node.op].text(node, tuple(_literal(a) for a in args))

    def comment(self, node: Node, inlined: dict[Node, str]) -> str:
        b = self.backward
        if node in b.fan_out:
            return f"{self.name(b.fan_out[node])} is used more than once: sum of its paths"
        owner = b.made_by.get(node)
        if owner is None:
            return ""
        text = f"{self.name(owner)} = {self.formula(owner, inlined)}"
        into = b.flows_into.get(node)
        if into is None:
            return text
        # every operand this line is the gradient path into (u and v share one in f = w*(u + v))
        indices = [i for i, x in enumerate(owner.inputs) if b.paths.get((owner, i)) is node] or [owner.inputs.index(into)]
        operands = list(dict.fromkeys(self.name(owner.inputs[i]) for i in indices))
        if OPS[owner.op].elementwise:
            local = local_derivative(scalar_expr(owner), indices[0])
            partials = " = ".join(f"d{self.name(owner)}/d{name}" for name in operands)
            return f"{text}; {partials} = {self._local_text(owner, local)}"
        return f"{text}; into {', '.join(operands)}"

    def _local_text(self, owner: Node, local: sp.Expr) -> str:
        return plain_text(in_terms_of(local, owner, lambda value: sp.Symbol(self.name(value), real=True)))

    # ---- the whole module ---------------------------------------------
    def context(self) -> dict:
        graph, b = self.graph, self.backward
        outputs = list(graph.outputs.values())
        roots = outputs if b is None else outputs + [b.gradients[leaf] for leaf in self.wrt]
        self.uses = use_counts(roots)
        fwd, _, fwd_inlined = self.statements(outputs)
        helpers = self.helpers(roots)
        context = {
            "graph_name": graph.name,
            "version": __version__,
            "dtype": self.dtype,
            "inputs": [(name, format_shape(n.shape)) for name, n in graph.inputs.items()],
            "params": [_param_context(name, n) for name, n in graph.params.items()],
            "input_shapes": {name: n.shape for name, n in graph.inputs.items()},
            "param_shapes": {name: n.shape for name, n in graph.params.items()},
            "output_names": tuple(graph.outputs),
            "outputs": [(name, self.operand(n, fwd_inlined)) for name, n in graph.outputs.items()],
            "forward_reads": self._reads(outputs),
            "forward": fwd,
            "loss": self.loss,
            "wrt": tuple(leaf.name for leaf in self.wrt),
            "trained": tuple(leaf.name for leaf in self.wrt if leaf.op == "param"),
            "gradients_error": None,
            "labels": {n.inputs[0].name: n.attr("classes") for n in toposort(roots)
                       if n.op == "one_hot" and n.inputs[0].op == "input"},
            "needs": {name: tuple(leaf_name for leaf_name, leaf in graph.inputs.items() if leaf in toposort([node]))
                      for name, node in graph.outputs.items()},
            "helpers": helpers,
            "uses_dropout": "dropout_mask" in helpers,
        }
        if b is None:
            shape = graph.outputs[self.loss].shape if self.loss else None
            context["gradients_error"] = (
                f"gradients need a scalar loss, but output {self.loss!r} has shape {format_shape(shape)}; "
                "reduce it with gc.sum or gc.mean" if self.loss else "no loss was chosen at compile time")
            return context
        fwd_all, bwd, inlined = self.statements(roots)
        order = [n for n in toposort(roots) if n in self.statement_of and n not in inlined]
        self.listing = Listing(dict(self.names), dict(self.symbols), inlined, dict(self.statement_of), order)
        context.update({
            "gradient_reads": self._reads(roots),
            "gradient_forward": fwd_all,
            "backward": bwd,
            "gradient_outputs": [(name, self.operand(n, inlined)) for name, n in graph.outputs.items()],
            "gradient_values": [(leaf.name, self.operand(b.gradients[leaf], inlined)) for leaf in self.wrt],
        })
        return context

    @staticmethod
    def helpers(roots: list[Node]) -> list[str]:
        """Names of the helper functions the code computing `roots` calls."""
        names = set()
        for node in toposort(roots):
            if not node.is_leaf:
                names.update(OPS[node.op].helpers)
                if node.op == "elementwise":
                    names.update(helpers_in(scalar_expr(node)))
        return sorted(names)

    def _reads(self, roots: list[Node]) -> dict:
        """The leaves the roots depend on, in declaration order: their keys, and the unpacking target."""
        needed = {n for n in toposort(roots) if n.op in ("input", "param")}
        leaves = [(name, leaf) for name, leaf in self.graph.leaves.items() if leaf in needed]
        targets = ", ".join(self.names[leaf] for _, leaf in leaves)
        return {"names": tuple(name for name, _ in leaves), "targets": targets + ("," if len(leaves) == 1 else "")}


def _literal(arg: str | int | float) -> str:
    return arg if isinstance(arg, str) else number_text(arg)


def _fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: (in, out) matrices, (out, in, kh, kw) kernels."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    if len(shape) == 2:
        return shape[0], shape[1]
    return shape[1] * receptive, shape[0] * receptive


def _param_context(name: str, leaf: Node) -> dict:
    shape = format_shape(leaf.shape)
    fan_in, fan_out = _fans(leaf.shape)
    init = leaf.attr("init")
    value = {
        "xavier": f"np.sqrt(6 / ({fan_in} + {fan_out})) * rng.uniform(-1.0, 1.0, size={shape})",
        "kaiming": f"np.sqrt(2 / {fan_in}) * rng.standard_normal({shape})",
        "zeros": f"np.zeros({shape})",
        "normal": f"0.01 * rng.standard_normal({shape})",
    }[init]
    return {"name": name, "shape": shape, "init": init, "value": value}


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(importlib.resources.files("graphcomp.templates"))),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_ENVIRONMENT.filters["pyrepr"] = repr  # Python literals, not JSON: the output is Python source


def _render(context: dict) -> str:
    return _ENVIRONMENT.get_template("module.py.j2").render(**context)
