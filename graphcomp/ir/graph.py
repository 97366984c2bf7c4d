"""The IR: immutable nodes, and the Graph that owns leaves and named outputs.

A Node is `(op, inputs, attrs, shape)`. Inputs are a tuple, so the order of
everything built from a graph is fixed by the graph itself (never by hashing),
which keeps generated code deterministic. Shapes are inferred when a node is
made; `None` in a shape is the batch dimension, known only at run time.
"""
from __future__ import annotations

import numbers
import weakref
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import GraphError
from .declared import record
from .naming import check_user_name
from .shapes import Shape, check_shape, format_shape, normalize_index

# The op table, filled by graphcomp.ops when it is imported: op name -> its rules (an `ops.table.Op`).
# The IR reads only each op's arity, canonical-attribute hook and shape rule from it, to check operands,
# share equal nodes and infer shapes.
OPS: dict[str, Any] = {}

# How a graph shows itself in a notebook: graphcomp.inspection registers its picture here (the IR
# imports nothing above it); without Graphviz the picture is None and the notebook prints the repr.
DISPLAYS: dict[str, Any] = {}

# "buffer": state a model keeps beside its params and never differentiates (batch norm's running
# statistics), declared by the node that owns it (attr `buffers`) and found by the graph; see Graph.buffers.
LEAF_OPS = ("input", "param", "const", "buffer")
# "standard_normal" is N(0, 1), PyTorch's nn.Embedding; "uniform" is U(-1/√fan_in, 1/√fan_in), PyTorch's
# nn.Linear (its weight and its bias both read the layer's fan-in); "ones" is a scale that starts at 1
# (PyTorch's LayerNorm and BatchNorm weights).
INITS = ("xavier", "kaiming", "zeros", "ones", "normal", "standard_normal", "uniform")
# The dtypes an input may hold: "float" is the module's dtype (float64 or float32, chosen at compile time);
# integers are indices (gc.take) and class labels, never differentiated.
INPUT_DTYPES = ("float", "int64", "int32")
# How a buffer starts: all zeros (a running mean) or all ones (a running variance).
BUFFER_INITS = ("zeros", "ones")


@dataclass(frozen=True, eq=False)
class Node:
    """One value of the graph. Identity is the node itself: two equal-looking nodes are two values."""

    op: str
    inputs: tuple["Node", ...]
    attrs: tuple[tuple[str, Any], ...]
    shape: Shape
    name: str | None = None

    # NumPy must hand `array * node` over to Node.__rmul__ instead of looping over the array.
    __array_ufunc__ = None

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAF_OPS

    @property
    def is_integer_input(self) -> bool:
        """An input declared with an integer dtype: indices or class labels, never differentiated."""
        return self.op == "input" and self.attr("dtype") is not None

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<Node {self.op}{label} shape={format_shape(self.shape)}>"

    def __bool__(self) -> bool:
        raise GraphError("a graph node has no truth value while the graph is being built (x > 0 is a 0/1 mask "
                         "value of the graph); use gc.where(x > 0, a, b), gc.maximum or gc.relu instead of "
                         "Python's if/and/or/max")

    # Arithmetic builds new nodes; the op table decides shapes and derivatives.
    def __add__(self, other): return apply("add", self, other)
    def __radd__(self, other): return apply("add", other, self)
    def __sub__(self, other): return apply("sub", self, other)
    def __rsub__(self, other): return apply("sub", other, self)
    def __mul__(self, other): return apply("mul", self, other)
    def __rmul__(self, other): return apply("mul", other, self)
    def __truediv__(self, other): return _divide(self, other)
    def __rtruediv__(self, other): return _divide(other, self)
    def __pow__(self, other): return apply("pow", self, other)
    def __rpow__(self, other): return apply("pow", other, self)
    def __neg__(self): return apply("neg", self)
    def __pos__(self): return self
    def __matmul__(self, other): return apply("matmul", self, other)
    # Comparisons are 0/1 masks (gc.where reads them as its condition); == and != stay identity, as
    # nodes are keys of dicts and sets: gc.equal and gc.not_equal write those.
    def __gt__(self, other): return apply("compare", self, other, relation=">")
    def __lt__(self, other): return apply("compare", self, other, relation="<")
    def __ge__(self, other): return apply("compare", self, other, relation=">=")
    def __le__(self, other): return apply("compare", self, other, relation="<=")

    def __getitem__(self, index):
        """Basic slicing: ints, slices and '...'; the batch axis is only taken whole."""
        return apply("index", self, index=normalize_index(index, self.shape))

    @property
    def T(self) -> "Node":
        return apply("transpose", self, axes=None)
    def __rmatmul__(self, other): return apply("matmul", other, self)


def _divide(numerator: Any, denominator: Any) -> "Node":
    """numerator / denominator as written by a user: dividing by the number 0 is refused here, where
    it is written, rather than compiled to inf or nan."""
    if isinstance(denominator, numbers.Real) and not isinstance(denominator, Node) and denominator == 0:
        raise GraphError("division by the constant 0")
    return apply("div", numerator, denominator)


def constant(value: int | float) -> Node:
    """A constant leaf; whole numbers stay ints, so that they print as `2`, not `2.0`."""
    return Node("const", (), (("value", value),), ())


def as_node(value: Any) -> Node:
    """A node as is, a real Python/NumPy number as a constant leaf; anything else is an error."""
    if isinstance(value, Node):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return constant(int(value) if isinstance(value, numbers.Integral) else float(value))
    raise GraphError(f"cannot use a {type(value).__name__} ({value!r}) in a graph: "
                     "only graph nodes and real numbers are operands (declare arrays with g.input or g.param)")


# Structural sharing: the same op on the same operands is the same node, wherever it is built
# (the user's graph, a rewrite, the backward pass). Nodes are immutable, so sharing is safe;
# entries vanish with their nodes, and a live node keeps its operands (and their ids) alive.
_INTERNED: "weakref.WeakValueDictionary[tuple, Node]" = weakref.WeakValueDictionary()


def apply(op_name: str, *operands: Any, **attrs: Any) -> Node:
    """The node `op_name(*operands)`, its shape inferred from the op table."""
    op = OPS[op_name]
    inputs = tuple(as_node(x) for x in operands)
    if op.arity is not None and len(inputs) != op.arity:
        raise GraphError(f"{op_name} takes {op.arity} operand(s), got {len(inputs)}")
    if op.canonical is not None:  # attrs written one way (axis=-1 is axis=1), so equal computations share
        attrs = op.canonical(attrs, tuple(x.shape for x in inputs))
    frozen = tuple(sorted(attrs.items()))
    key = (op_name, tuple(id(x) if x.op != "const" else ("const", x.attr("value")) for x in inputs), frozen)
    node = _INTERNED.get(key)
    if node is None:
        shape = op.shape(tuple(x.shape for x in inputs), dict(frozen))
        node = Node(op_name, inputs, frozen, tuple(shape))
        _INTERNED[key] = node
        record(node)  # where the user built it, for reports of its value (ir/declared.py)
    return node


# The orders last asked for, by their roots: a compile sorts the same graph from several places
# (fusion, reverse mode, codegen's planning, checks and context); nodes never change, so neither do they.
_ORDERS: dict[tuple[Node, ...], tuple[Node, ...]] = {}
_ORDERS_KEPT = 8


def toposort(roots: Iterable[Node]) -> list[Node]:
    """Every node the roots depend on, inputs before users, in a deterministic order."""
    roots = tuple(roots)
    if roots not in _ORDERS:
        if len(_ORDERS) >= _ORDERS_KEPT:
            del _ORDERS[next(iter(_ORDERS))]
        _ORDERS[roots] = tuple(_sorted(roots))
    return list(_ORDERS[roots])


def _sorted(roots: tuple[Node, ...]) -> list[Node]:
    order: list[Node] = []
    seen: set[Node] = set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node in seen:
                continue
            seen.add(node)
            stack.append((node, True))
            for x in reversed(node.inputs):
                if x not in seen:
                    stack.append((x, False))
    return order


def depending_on(order: list[Node], sources: set[Node]) -> set[Node]:
    """The nodes of a topological `order` that are, or are computed from, one of `sources`."""
    found: set[Node] = set()
    for node in order:
        if node in sources or any(x in found for x in node.inputs):
            found.add(node)
    return found


def use_counts(roots: list[Node]) -> dict[Node, int]:
    """How many times each node is read by the nodes computing `roots`; being a root counts once."""
    uses: dict[Node, int] = {}
    for node in toposort(roots):
        for x in node.inputs:
            uses[x] = uses.get(x, 0) + 1
    for root in roots:
        uses[root] = uses.get(root, 0) + 1
    return uses


class Graph:
    """A named computation: its leaves (inputs, params) and its named outputs."""

    def __init__(self, name: str = "model") -> None:
        self.name = check_user_name(name, "graph")
        self.leaves: dict[str, Node] = {}
        self.outputs: dict[str, Node] = {}
        self.labels: dict[Node, str] = {}  # names users gave to intermediate nodes
        # Values already found to be built from this graph's own leaves: each new name checks only
        # what is new, so naming every value of a long chain stays linear in its length.
        self._owned: set[Node] = set()
        self._labels_seen: set[str] = set()
        # State beside the params (batch norm's running statistics): name -> a "buffer" leaf. Declared by
        # the nodes that own them (attr `buffers`: (name, shape, init) triples) and found as they are named
        # or made outputs; never an operand of the graph's own nodes, so never differentiated.
        self.buffers: dict[str, Node] = {}
        self._buffer_owners: dict[str, Node] = {}

    # ---- leaves -------------------------------------------------------
    def input(self, name: str, shape: Any = (), dtype: str = "float") -> Node:
        """A value given at each call, e.g. `shape=(None, 4)` for a batch of 4-vectors, or
        `shape=(None, 8), dtype="int64"` for a batch of 8 token ids. An integer input carries its dtype
        as an attribute (a float input none, so that float graphs are what they always were); the
        generated module checks at run time that it is given integers."""
        shape = check_shape(shape, f"input {name!r}", allow_batch=True)
        if dtype not in INPUT_DTYPES:
            raise GraphError(f"input {name!r}: unknown dtype {dtype!r}; choose one of {', '.join(INPUT_DTYPES)}")
        attrs = () if dtype == "float" else (("dtype", dtype),)
        return self._leaf(Node("input", (), attrs, shape, self._new_name(name, "input")))

    def param(self, name: str, shape: Any = (), init: str = "xavier", fan_in: int | None = None) -> Node:
        """A trained value, created by the generated `init_params`. `fan_in`: the fan-in the "uniform"
        init reads (a bias has none of its own; gc.linear gives it its layer's); by default the shape's."""
        shape = check_shape(shape, f"param {name!r}", allow_batch=False)
        if init not in INITS:
            raise GraphError(f"param {name!r}: unknown init {init!r}; choose one of {', '.join(INITS)}")
        attrs: tuple = (("init", init),)
        if fan_in is not None:
            if init != "uniform" or not isinstance(fan_in, int) or isinstance(fan_in, bool) or fan_in < 1:
                raise GraphError(f"param {name!r}: fan_in must be a positive int, given with init='uniform'; "
                                 f"got fan_in={fan_in!r} with init={init!r}")
            attrs += (("fan_in", fan_in),)
        return self._leaf(Node("param", (), attrs, shape, self._new_name(name, "param")))

    # ---- names --------------------------------------------------------
    def let(self, name: str, node: Node) -> Node:
        """Give an intermediate value a name, used in the generated code and the formulas. A value that
        has a name already (a leaf, or a named node) gets a second one as a copy of itself: Y1 = X and
        Y2 = X are the lecture's Duplicate module, whose two gradients add up in X's."""
        node = self._own(node, f"node {name!r}")
        self._new_name(name, "node")
        if node.is_leaf or node in self.labels:  # a copy of its own for each further name
            node = apply("alias", node, copy=name)
        self._label_names().add(name)
        self.labels[node] = name
        return node

    def output(self, name: str, node: Any) -> Node:
        """Declare a named result of the graph; `forward` returns every output by name."""
        node = self._own(as_node(node), f"output {name!r}")
        if name in self.outputs:
            raise GraphError(f"output {name!r} is declared twice")
        if self.labels.get(node) != name:  # g.output("h", g.let("h", ...)) names one value once
            self._new_name(name, "output")
        self.outputs[name] = node
        return node

    def name_of(self, node: Node) -> str | None:
        """The user's name for a value, if it has one."""
        if node.is_leaf:
            return node.name
        return self.labels.get(node) or next((k for k, v in self.outputs.items() if v is node), None)

    # ---- queries ------------------------------------------------------
    @property
    def inputs(self) -> dict[str, Node]:
        return {k: v for k, v in self.leaves.items() if v.op == "input"}

    @property
    def params(self) -> dict[str, Node]:
        return {k: v for k, v in self.leaves.items() if v.op == "param"}

    def nodes(self) -> list[Node]:
        """Every node the outputs depend on, in topological order."""
        return toposort(self.outputs.values())

    def remapped(self, mapping: dict[Node, Node]) -> "Graph":
        """A copy whose named values and outputs are `mapping[value]` (leaves stay): a pass's result."""
        copy = Graph(self.name)
        copy.leaves = dict(self.leaves)
        copy.buffers, copy._buffer_owners = dict(self.buffers), dict(self._buffer_owners)
        for node, name in self.labels.items():
            copy.labels.setdefault(mapping.get(node, node), name)
        copy.outputs = {name: mapping.get(node, node) for name, node in self.outputs.items()}
        return copy

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.leaves)} leaves, outputs {list(self.outputs)}>"

    def _repr_svg_(self) -> str | None:
        """The graph's picture, for notebooks."""
        return DISPLAYS["svg"](self) if "svg" in DISPLAYS else None

    # ---- helpers ------------------------------------------------------
    def _leaf(self, node: Node) -> Node:
        self.leaves[node.name] = node
        record(node)
        return node

    def _new_name(self, name: str, what: str) -> str:
        check_user_name(name, what)
        if name in self.leaves or name in self.outputs or name in self._label_names() or name in self.buffers:
            raise GraphError(f"{what} name {name!r} is already used in graph {self.name!r}")
        return name

    def _label_names(self) -> set[str]:
        """The names in `labels` as a set, kept up to date by `let` (and rebuilt if `labels` was changed
        elsewhere), so that a new name is checked in constant time, not against every name."""
        if len(self._labels_seen) != len(self.labels):
            self._labels_seen = set(self.labels.values())
        return self._labels_seen

    def _own(self, node: Node, what: str) -> Node:
        """Refuse values built from another graph's leaves: they cannot be computed here. Only the
        nodes not already checked for an earlier name are visited."""
        if not isinstance(node, Node):
            raise GraphError(f"{what}: expected a graph node, got {type(node).__name__}")
        stack, seen, found = [node], set(), []
        while stack:
            x = stack.pop()
            if x in self._owned or x in seen:
                continue
            if x.op in ("input", "param") and self.leaves.get(x.name) is not x:
                raise GraphError(f"{what} uses {x.op} {x.name!r}, which belongs to another graph")
            seen.add(x)
            found.append(x)
            stack.extend(x.inputs)
        for x in reversed(found):  # operands mostly before their users; never the order of a set (hashes vary by run)
            self._declare_buffers(x)
        self._owned |= seen
        return node

    def _declare_buffers(self, node: Node) -> None:
        """The buffers a node declares (attr `buffers`), made leaves of this graph once; a name another
        node of the graph, or any other value, already has is refused."""
        for name, shape, init in node.attr("buffers", ()):
            if self._buffer_owners.get(name) is node:
                continue
            if name in self.buffers:
                raise GraphError(f"buffer name {name!r} is already used in graph {self.name!r} by another "
                                 f"{node.op}: give each {node.op} its own name=...")
            self._new_name(name, "buffer")
            self.buffers[name] = Node("buffer", (), (("init", init),), tuple(shape), name)
            self._buffer_owners[name] = node
