"""The one authority for the names of a graph's values: every variable of a generated module, and every
name and LaTeX symbol that the formulas, derivations, report, pictures and explorer show, comes from a
`ValueNames`; nothing else numbers values or writes the `d_` of a gradient.

- A user's name is kept. In code, one that clashes with the module's own names or a Python builtin gets
  a trailing underscore (`outputs_`); views and symbols keep the user's spelling (\\mathrm{outputs}).
- Every other value of the graph as written is a temporary t1, t2, ... numbered once, in the graph's
  topological order, skipping any whose symbol would print like a user's (t3 where the user has a t_3).
  The simplified graph the code computes keeps those names: a fused formula is named after the last
  value of its chain, a rewritten value after the value it replaces (`passes.optimize` says which);
  values only the code has (a rewrite's log-sum-exp, a formula's repeated part) are numbered after
  the graph's own. So t4 is the same value in the picture, the formulas, the derivation and the code.
- The gradient of a value x is d_x (LaTeX: x's symbol with a bar); where x is used more than once,
  the gradient along its k-th use (users in topological order) is d_x_k (\\bar{x}^{(k)}): b = a y with
  a = x + y names the product's path into y d_y_2, as the lecture on micro-autograd numbers them.
- The tangent of a value x in forward mode (gc.jvp) is dot_x (LaTeX: x's symbol with a dot, ẋ).
"""
from __future__ import annotations

import itertools
import re
from types import MappingProxyType
from typing import Mapping

from ..diff.forward import TANGENT_OF
from ..diff.reverse import Backward
from ..formulas.symbols import TANGENT_PREFIX, bar, dot, symbol
from ..ir import Graph, Node
from ..ir.naming import Namer
from ..ops.nn import softmax_of

# Names the generated file uses itself (module constants, and the locals of forward/gradients):
# a user's value that has one of them gets a variable with a trailing underscore instead.
MODULE_NAMES = ("DTYPE", "INPUTS", "PARAMS", "OUTPUTS", "LOSS", "WRT", "TRAINED", "PREDICT", "TARGET",
                "THRESHOLD", "TRAINING", "LABELS", "NEEDS", "GRADIENT_ARGS", "BACKENDS", "INTEGERS", "BUFFERS",
                "RUNNING_MOMENTUM", "arrays", "outputs", "grads",
                "absent", "xp")
TEMPORARY_PREFIX = "t"   # unnamed values: t1, t2, ...
GRADIENT_PREFIX = "d_"   # gradients: d_x, and d_x_2 for the gradient along x's second use


def gradient_name(name: str) -> str:
    """The name of the gradient of the value `name`: d_<name>."""
    return GRADIENT_PREFIX + name


def path_name(name: str, path: int) -> str:
    """The name of the gradient along the `path`-th use of a value used several times: d_<name>_<k>."""
    return f"{gradient_name(name)}_{path}"


def assigns_value_or_gradient(line: str, name: str) -> bool:
    """Whether a line of code assigns the value `name`, its gradient or one path of it (d_name_2)."""
    prefix = re.escape(GRADIENT_PREFIX)
    return re.match(rf"\s*({prefix})?{re.escape(name)}(_\d+)? = ", line) is not None and not line.lstrip().startswith("#")


class ValueNames:
    """The names of one graph's values (and of the gradients of one backward pass): one variable, one
    name as the user reads it and one LaTeX symbol per value, the same everywhere it is used."""

    def __init__(self, graph: Graph, backward: Backward | None = None, written: Graph | None = None,
                 origins: Mapping[Node, Node] | None = None) -> None:
        """`graph`: the graph the code computes; `written`: the graph as the user wrote it (default: the
        same), whose values are numbered; `origins`: which value of `written` each value of `graph`
        stands for (`passes.optimize`)."""
        self._forward = set(graph.nodes())
        self._variables: dict[Node, str] = {}
        self._labels: dict[Node, str] = {}   # a user's name as typed (its variable may carry an underscore)
        self._symbols: dict[Node, str] = {}
        self._namer = Namer(reserved=MODULE_NAMES)
        for node, name in _user_names(graph):
            if node not in self._variables:
                self._variables[node] = self._namer.reserve(name)
                self._labels[node] = name
                self._symbols[node] = symbol(name)
        self._user_symbols = set(self._symbols.values())
        self._numbers = itertools.count(1)
        self._origins: Mapping[Node, Node] = origins or {}
        self._numbered: dict[Node, str] = {}  # the unnamed values of the graph as written: t1, t2, ...
        self._tangent_symbols: dict[str, str] = {}  # dot_t3 -> \\dot{t}_{3}
        written = written or graph
        self._parts = {**_lecture_parts(graph), **_lecture_parts(written)}
        named = {node for node, _ in _user_names(written)}
        tangents = []
        for node in written.nodes():
            if node in TANGENT_OF and node not in named:
                tangents.append(node)
            elif node.op != "const" and node not in named:
                self._numbered[node] = self._lecture_name(node) or self.temporary()
        for node in tangents:  # after the values they are the tangents of, which give their names
            self._numbered[node] = self._tangent_name(node)
        self._given: set[str] = set()  # the temporaries of `_numbered` that a value of `graph` has taken
        self._gradient_of = _gradient_owners(graph, backward)
        self._flows_into = backward.flows_into if backward is not None else {}
        self._use_number = _use_numbers(graph, backward)
        self._paths_into: dict[Node, int] = {}

    @classmethod
    def as_written(cls, graph: Graph) -> ValueNames:
        """The names a view of the graph as written shows: every value but the numbers."""
        names = cls(graph)
        for node in graph.nodes():
            if node.op != "const":
                names.variable(node)
        return names

    def __contains__(self, node: Node) -> bool:
        return node in self._variables

    # ---- handing names out (code generation plans its lines with these) ----
    def variable(self, node: Node) -> str:
        """The value's variable in the generated code, handed out the first time it is asked for."""
        if node not in self._variables:
            numbered = self._numbered.get(self._origins.get(node, node))
            if numbered is not None and numbered not in self._given:
                self._given.add(numbered)
                self._variables[node] = numbered
                self._symbols[node] = self._tangent_symbols.get(numbered) or symbol(numbered)
            else:
                self._variables[node] = (self._gradient_variable(node) or self._lecture_name(node)
                                         or self.temporary(node))
        return self._variables[node]

    def temporary(self, node: Node | None = None) -> str:
        """The next free temporary, t<k>; given a node, it becomes that value's name."""
        while True:
            name = f"{TEMPORARY_PREFIX}{next(self._numbers)}"
            if self._namer.is_free(name) and symbol(name) not in self._user_symbols:
                name = self._namer.fresh(name)
                if node is not None:
                    self._symbols[node] = symbol(name)
                return name

    def _lecture_name(self, node: Node) -> str | None:
        """The lecture's name for an unnamed value it always names: Y for the one-hot labels, P for the
        probabilities softmax(z) of a softmax cross-entropy's gradient, so that it reads (P - Y)/N, and
        of an attention; xhat (x̂) and sigma_x (σ_x) for a norm's normalised value and standard
        deviation, so that its gradient reads γ/(N σ_x)(N ȳ - Σȳ - x̂ ⊙ Σ(ȳ ⊙ x̂)). A second one is
        P2, xhat2, ..."""
        if node.op == "one_hot":
            base = "Y"
        elif softmax_of(node) is not None:
            base = "P"
        elif node in self._parts:
            base = self._parts[node]
        else:
            return None
        name, k = base, 2
        while not self._namer.is_free(name) or symbol(name) in self._user_symbols:
            name, k = f"{base}{k}", k + 1
        self._namer.fresh(name)
        self._symbols[node] = symbol(name)
        return name

    def _tangent_name(self, node: Node) -> str:
        """dot_<x> (LaTeX ẋ) for the tangent of x in forward mode; a temporary if x has no name here."""
        value = TANGENT_OF[node]
        base = self._labels.get(value) or self._numbered.get(value)
        if base is None:
            return self.temporary()
        name = self._namer.fresh(TANGENT_PREFIX + self._variables.get(value, base))
        self._tangent_symbols[name] = dot(base)
        return name

    def part_of_formula(self, written: Node) -> str | None:
        """The name of a value of the graph as written that the code computes as a repeated part of a
        fused formula (b1 + t2 inside relu's formula is still t3); None if that name is taken."""
        name = self._numbered.get(written)
        if name is None or name in self._given:
            return None
        self._given.add(name)
        return name

    def origin(self, node: Node) -> Node | None:
        """The value of the graph as written that a value of the code's graph stands for, if any."""
        return self._origins.get(node)

    @property
    def origins(self) -> Mapping[Node, Node]:
        """Each value of the code's graph -> the value of the graph as written it stands for."""
        return MappingProxyType(self._origins)

    def local(self, base: str) -> str:
        """A variable of the generated function that is no value of the graph (N, the batch size)."""
        return self._namer.fresh(base)

    # ---- reading names (every view) ----
    @property
    def variables(self) -> Mapping[Node, str]:
        """Each named value's variable in the code."""
        return MappingProxyType(self._variables)

    @property
    def symbols(self) -> Mapping[Node, str]:
        """Each named value's LaTeX symbol (W_{1}, t_{3}, \\bar{h}, ...)."""
        return MappingProxyType(self._symbols)

    def label(self, node: Node) -> str:
        """The value's name as a reader sees it: the user's spelling, or its temporary."""
        return self._labels.get(node) or self._variables[node]

    def symbol(self, node: Node) -> str:
        return self._symbols[node]

    def gradient_label(self, node: Node) -> str:
        """The gradient of a value as a reader sees it: d_<label>."""
        return gradient_name(self.label(node))

    def gradient_symbol(self, node: Node) -> str:
        """The gradient of a value in LaTeX: its symbol with a bar."""
        return bar(self.label(node))

    def _gradient_variable(self, node: Node) -> str | None:
        """d_<x> for the gradient of x, d_<x>_<k> for its part along x's k-th use; None for other values."""
        if node in self._forward:
            return None
        if node in self._gradient_of:
            value = self._gradient_of[node]
            variable = self.variable(value)
            self._symbols[node] = self.gradient_symbol(value)
            return self._namer.fresh(gradient_name(variable))
        into = self._flows_into.get(node)
        if into is None:
            return None
        path = self._use_number.get(node) or self._paths_into.get(into, 0) + 1
        self._paths_into[into] = path
        variable = self.variable(into)
        self._symbols[node] = f"{self.gradient_symbol(into)}^{{({path})}}"
        return self._namer.fresh(path_name(variable, path))


NORM_PARTS = {3: "xhat", 4: "sigma_x"}  # a norm row's operands x̂ and σ (ops/norm.py)
LECTURE_NAMES = re.compile(r"(Y|P|xhat|sigma_x)\d*")


def is_lecture_name(name: str) -> bool:
    """Whether a name is one the lecture gives an unnamed value (Y, P, xhat, sigma_x, P2, ...): the
    formulas then keep that value's equation, as they do for a value the user named."""
    return LECTURE_NAMES.fullmatch(name) is not None


def _lecture_parts(graph: Graph) -> dict[Node, str]:
    """The values the lecture names by what they are to the op that reads them: a batch or layer norm's
    x̂ and σ, an attention's probabilities P = softmax(q kᵀ/√d) (the softmax its product with v reads)."""
    parts: dict[Node, str] = {}
    for node in graph.nodes():
        if node.op in ("batch_norm", "layer_norm"):
            parts.update({node.inputs[k]: base for k, base in NORM_PARTS.items()})
        elif node.op == "matmul" and node.inputs[0].op == "softmax":
            parts[node.inputs[0]] = "P"
    return parts


def _user_names(graph: Graph) -> list[tuple[Node, str]]:
    """Every value a user named, leaves first, then named intermediate values and outputs."""
    return ([(leaf, leaf.name) for leaf in graph.leaves.values()] + list(graph.labels.items())
            + [(node, name) for name, node in graph.outputs.items()])


def _use_numbers(graph: Graph, backward: Backward | None) -> dict[Node, int]:
    """gradient along one use of a value -> which use of that value it is (1, 2, ...), its users taken in
    the graph's topological order: b = a * y with a = x + y names the product's path d_y_2, as the
    lecture on micro-autograd numbers y's paths."""
    if backward is None:
        return {}
    position = {node: k for k, node in enumerate(graph.nodes())}
    uses: dict[Node, list[tuple[int, int, Node]]] = {}
    for (user, index), piece in backward.paths.items():
        uses.setdefault(user.inputs[index], []).append((position.get(user, len(position)), index, piece))
    numbers: dict[Node, int] = {}
    for found in uses.values():
        for k, (_, _, piece) in enumerate(sorted(found, key=lambda use: use[:2]), start=1):
            numbers.setdefault(piece, k)
    return numbers


def _gradient_owners(graph: Graph, backward: Backward | None) -> dict[Node, Node]:
    """gradient node -> the value it is the gradient of, for naming it d_<value>. A gradient shared by
    several values is named after the one nearest the loss (d_t1 rather than d_u for t1 = u + v), or
    else the first leaf declared."""
    owners: dict[Node, Node] = {}
    if backward is None:
        return owners
    shared = sorted(backward.adjoints.items(), key=lambda item: item[0].is_leaf)  # stable: keeps order
    for forward, adjoint in shared:
        if forward.is_leaf:
            break
        owners.setdefault(adjoint, forward)
    for leaf in graph.leaves.values():
        if leaf in backward.adjoints:
            owners.setdefault(backward.adjoints[leaf], leaf)
        elif leaf in backward.gradients:  # the loss does not depend on it: d_x = np.zeros_like(x)
            owners.setdefault(backward.gradients[leaf], leaf)
    return owners
