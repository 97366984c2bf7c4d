"""Running statistics in the generated module: the graph forward() computes outside training, and the
batch statistics a training step returns for the buffers.

A graph with buffers (batch norm's running mean and variance, `Graph.buffers`) is compiled twice over:
its own graph, with the batch's statistics, is what gradients() differentiates and what forward(...,
training=True) computes; `inference_graph` rebuilds its outputs with every batch norm reading its
buffers instead, and that is what forward() computes by default (predict, evaluate).
"""
from __future__ import annotations

from ..errors import GraphError
from ..ir import Graph, Node, apply, toposort
from ..ops.norm import inference, statistics
from ..passes import optimize, rebuild
from .statements import ModuleCode


def buffer_rows(roots: list[Node]) -> list[Node]:
    """The nodes computing `roots` that declare buffers, in topological order."""
    return [node for node in toposort(roots) if node.attr("buffers")]


def refuse_buffers_in_loops(roots: list[Node]) -> None:
    """A loop's step keeps no buffers: a batch norm inside `gc.scan` is refused, naming its buffers."""
    for node in toposort(roots):
        body = node.attr("body")
        if body is None:
            continue
        inside = [name for row in buffer_rows(list(body.outputs)) for name, _, _ in row.attr("buffers")]
        if inside:
            raise GraphError(f"batch_norm inside a loop's step (gc.scan): its running statistics "
                             f"({', '.join(inside)}) cannot be kept per step; normalise outside the loop, "
                             "or use gc.layer_norm")
        refuse_buffers_in_loops(list(body.outputs))


def inference_graph(graph: Graph) -> Graph:
    """`graph` with each batch norm normalising by its running statistics: the buffers become leaves
    (after the inputs and params), and each row is remade on the x̂ and σ they give."""
    roots = list(graph.outputs.values())
    new: dict[Node, Node] = {}

    def transform(old: Node, remade: Node) -> Node:
        if not old.attr("buffers"):
            return remade
        x, gamma, beta = remade.inputs[:3]
        xhat, sigma = inference(old, x, graph.buffers)
        return apply(old.op, x, gamma, beta, xhat, sigma, **dict(old.attrs))

    rebuild(roots, transform, new)
    copy = graph.remapped(new)
    copy.leaves = {**graph.leaves, **graph.buffers}
    return copy


def statistics_returned(roots: list[Node]) -> list[tuple[str, Node, Node, Node]]:
    """(buffer name, batch value, the row's input x, the row) for each buffer of the rows computing
    `roots`: the batch mean for a running mean, the biased batch variance for a running variance."""
    order = toposort(roots)
    found = []
    for row in buffer_rows(roots):
        (mean_name, _, _), (var_name, _, _) = row.attr("buffers")
        mean, variance = statistics(row, order)
        found += [(mean_name, mean, row.inputs[0], row), (var_name, variance, row.inputs[0], row)]
    return found


def inference_code(graph: Graph, dtype: str, simplify: bool) -> ModuleCode:
    """The lines of forward() outside training, for a graph with buffers: `inference_graph`, through
    the same passes as the graph itself, planned under names of its own."""
    written = inference_graph(graph)
    origins: dict[Node, Node] = {}
    compiled = optimize(written, wrt=[], origins=origins) if simplify else written
    return ModuleCode(compiled, [], None, dtype, written=written, origins=origins)
