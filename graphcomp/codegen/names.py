"""The names of values in a generated module, and the LaTeX symbols that go with them.

Users' names are kept (a clash with the module's own names gets an underscore); adjoints are
d_<name>, partial paths d_<name>_<k>, other values t1, t2, ... in the order they are first needed,
skipping any whose symbol would print like a user's (t_3).
"""
from __future__ import annotations

import itertools

from ..diff.reverse import Backward
from ..formulas.symbols import bar, symbol
from ..ir import Graph, Node
from ..ir.naming import Namer

# Names the generated file uses itself (module constants, and the locals of forward/gradients):
# a user's value that has one of them gets a variable with a trailing underscore instead.
MODULE_NAMES = ("DTYPE", "INPUTS", "PARAMS", "OUTPUTS", "LOSS", "WRT", "TRAINED", "PREDICT", "TARGET",
                "THRESHOLD", "TRAINING", "LABELS", "NEEDS", "GRADIENT_ARGS", "BACKENDS", "arrays", "outputs", "grads",
                "absent", "xp")


class CodeNames:
    """Hands out one variable name (and one LaTeX symbol) per value, the same one everywhere it is used."""

    def __init__(self, graph: Graph, backward: Backward | None) -> None:
        self.backward = backward
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
        self.symbols: dict[Node, str] = {node: symbol(name) for node, name in self._source.items()}
        self._user_symbols = set(self.symbols.values())  # t3 is skipped where a user's t_3 prints the same
        self._temporaries = (f"t{k}" for k in itertools.count(1))
        self.adjoint_of = _adjoint_owners(graph, backward)
        self.paths_into: dict[Node, int] = {}

    def __contains__(self, node: Node) -> bool:
        return node in self.names

    def name(self, node: Node) -> str:
        if node not in self.names:
            backward_name = None if node in self.forward_nodes else self._backward_name(node)
            if backward_name is None:
                backward_name = self._source[node] = self.fresh_temporary()
                self.symbols[node] = symbol(backward_name)
            self.names[node] = backward_name
        return self.names[node]

    def fresh_temporary(self) -> str:
        while True:
            name = next(self._temporaries)
            if self.namer.is_free(name) and symbol(name) not in self._user_symbols:
                return self.namer.fresh(name)

    def _backward_name(self, node: Node) -> str | None:
        if node in self.adjoint_of:
            forward = self.adjoint_of[node]
            name = self.namer.fresh(f"d_{self.name(forward)}")
            self.symbols[node] = bar(self._source[forward])
            return name
        into = self.backward.flows_into.get(node)
        if into is None:
            return None
        self.paths_into[into] = self.paths_into.get(into, 0) + 1
        name = self.namer.fresh(f"d_{self.name(into)}_{self.paths_into[into]}")
        self.symbols[node] = bar(self._source[into]) + f"^{{({self.paths_into[into]})}}"
        return name


def _adjoint_owners(graph: Graph, backward: Backward | None) -> dict[Node, Node]:
    """adjoint node -> the value it is the gradient of, for naming it d_<value>. An adjoint shared by
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
