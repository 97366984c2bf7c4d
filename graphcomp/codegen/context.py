"""The template context of one generated module: plain data (names, shapes, statements, the helper
functions the code calls) that `templates/module.py.j2` lays out."""
from __future__ import annotations

import math

from ..diff.reverse import Backward
from ..formulas.printing import helpers_in, tuple_text
from ..ir import Graph, Node, format_shape, toposort, use_counts
from ..ops import OPS, scalar_expr
from ..version import __version__
from .checks import HELPER as CHECK_HELPER, checked_lines, checked_statements
from .listing import Listing
from .names import CodeNames
from .runtime import runtime_source
from .statements import Statements


def module_context(graph: Graph, wrt: list[Node], loss: str | None, backward: Backward | None, dtype: str,
                   inline: bool = True, check_shapes: bool = False,
                   runtime: bool = True) -> tuple[dict, Listing | None, Statements]:
    """(context, listing of gradients() or None without a loss, the statements planned).

    check_shapes: every line of forward and _gradients is followed by a check of the shape it computed.
    runtime: the module carries the training loop, its files and its command line (else only
    forward and gradients, with the functions they call).
    """
    lines = Statements(CodeNames(graph, backward), backward, dtype, inline)
    outputs = list(graph.outputs.values())
    roots = outputs if backward is None else outputs + [backward.gradients[leaf] for leaf in wrt]
    lines.uses = use_counts(roots)
    context = _forward_context(graph, wrt, loss, dtype, lines, roots)
    listing = None
    if backward is None:
        shape = graph.outputs[loss].shape if loss else None
        context["gradients_error"] = (
            f"gradients need a scalar loss, but output {loss!r} has shape {format_shape(shape)}; "
            "reduce it with gc.sum or gc.mean" if loss else "no loss was chosen at compile time")
    else:
        listing = _gradients_context(context, graph, wrt, backward, lines, roots)
    if check_shapes:
        _add_shape_checks(context, graph, lines, roots)
    context["runtime"] = runtime_source(context["helpers"], training=runtime)
    context["with_training"] = runtime
    return context, listing, lines


def _gradients_context(context: dict, graph: Graph, wrt: list[Node], backward: Backward, lines: Statements,
                       roots: list[Node]) -> Listing:
    """Adds what _gradients computes to `context`; the listing of its lines."""
    forward, backward_lines, inlined = lines.plan(roots)
    order = [n for n in toposort(roots) if n in lines.statement_of and n not in inlined]
    context.update({
        "gradient_reads": _reads(graph, lines.names, roots),
        "gradient_forward": forward,
        "backward": backward_lines,
        "gradient_outputs": [(name, lines.operand(n, inlined)) for name, n in graph.outputs.items()],
        "gradient_values": [(leaf.name, lines.operand(backward.gradients[leaf], inlined)) for leaf in wrt],
    })
    return Listing(dict(lines.names.names), dict(lines.names.symbols), inlined, dict(lines.statement_of), order)


def _add_shape_checks(context: dict, graph: Graph, lines: Statements, roots: list[Node]) -> None:
    """A shape check after every line of forward and _gradients, and the helper they call."""
    batch = lines.names.namer.fresh("N")  # the number of examples, as the README writes it
    (context["forward"],) = checked_statements(lines, [context["forward"]], graph, list(graph.outputs.values()), batch)
    if "backward" in context:
        context["gradient_forward"], context["backward"] = checked_statements(
            lines, [context["gradient_forward"], context["backward"]], graph, roots, batch)
    context["checked_lines"] = checked_lines(
        context["forward"] + context.get("gradient_forward", []) + context.get("backward", []))
    context["helpers"] = sorted({*context["helpers"], CHECK_HELPER})


def _forward_context(graph: Graph, wrt: list[Node], loss: str | None, dtype: str, lines: Statements,
                     roots: list[Node]) -> dict:
    """Everything but the gradients: constants, params, forward() and the helpers."""
    outputs = list(graph.outputs.values())
    forward, _, inlined = lines.plan(outputs)
    helpers = helpers_for(roots)
    return {
        "graph_name": graph.name,
        "version": __version__,
        "dtype": dtype,
        "inputs": [(name, format_shape(n.shape)) for name, n in graph.inputs.items()],
        "params": [_param_context(name, n) for name, n in graph.params.items()],
        "input_shapes": {name: n.shape for name, n in graph.inputs.items()},
        "param_shapes": {name: n.shape for name, n in graph.params.items()},
        "output_names": tuple(graph.outputs),
        "outputs": [(name, lines.operand(n, inlined)) for name, n in graph.outputs.items()],
        "forward_reads": _reads(graph, lines.names, outputs),
        "forward": forward,
        "loss": loss,
        "wrt": tuple(leaf.name for leaf in wrt),
        "trained": tuple(leaf.name for leaf in wrt if leaf.op == "param"),
        "gradients_error": None,
        "labels": {n.inputs[0].name: n.attr("classes") for n in toposort(roots)
                   if n.op == "one_hot" and n.inputs[0].op == "input"},
        "needs": {name: tuple(leaf_name for leaf_name, leaf in graph.inputs.items() if leaf in toposort([node]))
                  for name, node in graph.outputs.items()},
        "helpers": helpers,
        "checked_lines": {},  # with check_shapes: {variable: its line's formula}, for the checks' errors
        "uses_dropout": "dropout_mask" in helpers,
    }


def helpers_for(roots: list[Node]) -> list[str]:
    """Names of the helper functions (templates/helpers.py.j2) the code computing `roots` calls."""
    names = set()
    for node in toposort(roots):
        if not node.is_leaf:
            names.update(OPS[node.op].helpers)
            if node.op == "elementwise":
                names.update(helpers_in(scalar_expr(node)))
    return sorted(names)


def _reads(graph: Graph, names: CodeNames, roots: list[Node]) -> dict:
    """The leaves the roots depend on, in declaration order: their keys, and the unpacking target."""
    needed = {n for n in toposort(roots) if n.op in ("input", "param")}
    leaves = [(name, leaf) for name, leaf in graph.leaves.items() if leaf in needed]
    targets = ", ".join(names.names[leaf] for _, leaf in leaves)
    return {"names": tuple(name for name, _ in leaves), "targets": targets + ("," if len(leaves) == 1 else "")}


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
    shape = tuple_text(leaf.shape)  # a param's shape has no batch axis: the same as users write it
    fan_in, fan_out = _fans(leaf.shape)
    init = leaf.attr("init")
    value = {
        "xavier": f"np.sqrt(6 / ({fan_in} + {fan_out})) * rng.uniform(-1.0, 1.0, size={shape})",
        "kaiming": f"np.sqrt(2 / {fan_in}) * rng.standard_normal({shape})",
        "zeros": f"np.zeros({shape})",
        "normal": f"0.01 * rng.standard_normal({shape})",
    }[init]
    return {"name": name, "shape": format_shape(leaf.shape), "init": init, "value": value}
