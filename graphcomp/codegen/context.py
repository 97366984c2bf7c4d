"""The template context of one generated module: plain data (names, shapes, statements, the helper
functions the code calls) that `templates/module.py.j2` lays out."""
from __future__ import annotations

import math
import re

from ..errors import GraphError
from ..formulas.printing import tuple_text
from ..ir import Graph, Node, format_shape, toposort
from ..ops.indexing import id_bounds
from ..version import __version__
from .checks import checked_lines, checked_statements
from .finite import add_finite_checks
from .in_place import in_place_code, unpacking
from .names import ValueNames
from .running import buffer_rows, refuse_buffers_in_loops, statistics_returned
from .runtime import helpers_called, runtime_source
from .statements import ModuleCode


def module_context(code: ModuleCode, loss: str | None, check_shapes: bool = False, runtime: bool = True,
                   inference: ModuleCode | None = None, check_finite: bool = False) -> dict:
    """The context of the module whose lines `code` planned; `loss` is the output it differentiates.

    check_shapes: every line of forward and _gradients is followed by a check of the shape it computed.
    check_finite: every line computing a value is followed by a check that it is finite (codegen/finite.py).
    runtime: the module carries the training loop, its files and its command line (else only
    forward and gradients, with the functions they call). inference: for a graph with buffers, the
    lines of forward() outside training (codegen/running.py); `code`'s forward lines are then
    forward(..., training=True).
    """
    context = _forward_context(code, loss)
    context.update(_buffers_context(code, inference))
    if code.gradients is None:
        shape = code.graph.outputs[loss].shape if loss else None
        context["gradients_error"] = (
            f"gradients need a scalar loss, but output {loss!r} has shape {format_shape(shape)}; "
            "reduce it with gc.sum or gc.mean" if loss else "no loss was chosen at compile time")
    else:
        context.update(_gradients_context(code))
    if check_shapes:
        _add_shape_checks(context, code, inference)
    if check_finite:  # (after the shape checks, which insert lines reading the batch size)
        add_finite_checks(context, code, inference)
    if code.gradients is not None and runtime and not (check_shapes or check_finite):  # (those check every line)
        context.update(_in_place_context(code, context["gradient_forward"] + context["backward"], context))
    functions = ("forward", "gradient_forward", "backward", "inference", "in_place")
    lines = [s.expr for key in functions for top in context.get(key, ()) for _, s in top.nested()]  # a loop's lines too
    lines += [s.check for key in functions for s in context.get(key, ()) if s.check]
    lines += [operand for key in ("outputs", "gradient_outputs", "gradient_values", "inference_outputs")
              for _, operand in context.get(key, ())]
    context["helpers"] = helpers_called(lines)
    context["uses_dropout"] = "dropout_mask" in context["helpers"]
    context["runtime"] = runtime_source(context["helpers"], training=runtime)
    context["with_training"] = runtime
    return context


def _gradients_context(code: ModuleCode) -> dict:
    """What _gradients computes."""
    function, graph = code.gradients, code.graph
    return {
        "gradient_reads": _reads(graph, code.names, code.roots),
        "gradient_forward": function.forward_lines,
        "backward": function.backward_lines,
        "gradient_outputs": [(name, function.operand(n)) for name, n in graph.outputs.items()],
        "gradient_values": [(leaf.name, function.operand(code.backward.gradients[leaf])) for leaf in code.wrt],
        "gradient_statistics": [(name, _statistic_text(function.operand(value), function.operand(x), row, name))
                                for name, value, x, row in statistics_returned(code.roots) if name in graph.buffers],
    }


def _in_place_context(code: ModuleCode, statements: list, context: dict) -> dict:
    """_gradients_in_place and _buffers, train()'s step on NumPy arrays (codegen/in_place.py)."""
    returned = {name for key in ("gradient_outputs", "gradient_values", "gradient_statistics")
                for _, text in context.get(key, ()) for name in re.findall(r"[A-Za-z_]\w*", str(text))}
    written = in_place_code(code, statements, returned)
    if written is None:
        return {}
    return {"in_place": written.lines, "in_place_buffers": written.buffers,
            "in_place_unpacking": unpacking(written.buffers)}


def _statistic_text(value: str, x: str, row: Node, name: str) -> str:
    """What a training step returns for buffer `name`: the batch mean as one value per channel, or the
    biased batch variance made unbiased, times n/(n - 1) with n the values per channel (PyTorch's)."""
    channels = tuple_text(row.inputs[1].shape)
    if name == row.attr("buffers")[0][0]:
        return f"xp.reshape({value}, {channels})"
    x = x if x.isidentifier() else f"({x})"
    count = " * ".join(f"{x}.shape[{axis}]" for axis in row.attr("axis"))
    return f"xp.reshape({value}, {channels}) * ({count} / ({count} - 1))"


def _buffers_context(code: ModuleCode, inference: ModuleCode | None) -> dict:
    """The buffers (batch norm's running statistics) and forward()'s lines outside training."""
    graph = code.graph
    refuse_buffers_in_loops(code.roots)
    buffers = {"buffers": [_buffer_context(name, leaf) for name, leaf in graph.buffers.items()],
               "buffer_shapes": {name: leaf.shape for name, leaf in graph.buffers.items()},
               "momenta": {name: row.attr("momentum") for row in buffer_rows(list(graph.outputs.values()))
                           for name, _, _ in row.attr("buffers") if name in graph.buffers}}
    if inference is None:
        return buffers
    if "training" in graph.leaves:
        raise GraphError("a model with batch norm's running statistics takes forward(..., training=True), so "
                         "none of its inputs or params may be named 'training'")
    return {**buffers, "inference": inference.forward.forward_lines,
            "inference_reads": _reads(inference.graph, inference.names, inference.outputs),
            "inference_outputs": [(name, inference.forward.operand(n)) for name, n in inference.graph.outputs.items()]}


def _buffer_context(name: str, leaf: Node) -> dict:
    shape = tuple_text(leaf.shape)
    init = leaf.attr("init")
    return {"name": name, "shape": format_shape(leaf.shape), "init": init, "value": f"np.{init}({shape})"}


def _add_shape_checks(context: dict, code: ModuleCode, inference: ModuleCode | None) -> None:
    """A shape check after every line of forward and _gradients, and the helper they call."""
    batch = code.names.local("N")  # the number of examples, as the README writes it
    (context["forward"],) = checked_statements(code, [context["forward"]], code.outputs, batch)
    if "backward" in context:
        context["gradient_forward"], context["backward"] = checked_statements(
            code, [context["gradient_forward"], context["backward"]], code.roots, batch)
    if inference is not None:
        (context["inference"],) = checked_statements(inference, [context["inference"]], inference.outputs,
                                                     inference.names.local("N"))
    context["checked_lines"] = checked_lines(
        context["forward"] + context.get("gradient_forward", []) + context.get("backward", [])
        + context.get("inference", []))


def _forward_context(code: ModuleCode, loss: str | None) -> dict:
    """Everything but the gradients: constants, params, forward() and the helpers."""
    graph, wrt, roots = code.graph, code.wrt, code.roots
    return {
        "graph_name": graph.name,
        "version": __version__,
        "dtype": code.dtype,
        "inputs": [(name, format_shape(n.shape) + (f" {n.attr('dtype')}" if n.is_integer_input else ""))
                   for name, n in graph.inputs.items()],
        "params": [_param_context(name, n) for name, n in graph.params.items()],
        "input_shapes": {name: n.shape for name, n in graph.inputs.items()},
        "param_shapes": {name: n.shape for name, n in graph.params.items()},
        "output_names": tuple(graph.outputs),
        "outputs": [(name, code.forward.operand(n)) for name, n in graph.outputs.items()],
        "forward_reads": _reads(graph, code.names, code.outputs),
        "forward": code.forward.forward_lines,
        "loss": loss,
        "wrt": tuple(leaf.name for leaf in wrt),
        "trained": tuple(leaf.name for leaf in wrt if leaf.op == "param"),
        "gradients_error": None,
        "labels": {n.inputs[0].name: n.attr("classes") for n in toposort(roots)
                   if n.op == "one_hot" and n.inputs[0].op == "input"},
        "integers": _integers(graph, roots),
        "needs": {name: tuple(leaf_name for leaf_name, leaf in graph.inputs.items() if leaf in toposort([node]))
                  for name, node in graph.outputs.items()},
        "checked_lines": {},  # with check_shapes: {variable: its line's formula}, for the checks' errors
        "finite_lines": [],  # with check_finite: the rows of _FINITE_LINES, by marker (codegen/finite.py)
    }


def _integers(graph: Graph, roots: list[Node]) -> dict[str, tuple[str, int | None]]:
    """{integer input: (its dtype, how many rows or classes its ids pick, None if none)}: what the module
    checks of the ids it is given, so that a bad id is an error naming it, not a wrong row or a traceback."""
    bounds = id_bounds(toposort(roots))
    return {name: (leaf.attr("dtype"), bounds.get(leaf))
            for name, leaf in graph.inputs.items() if leaf.is_integer_input}


def _reads(graph: Graph, names: ValueNames, roots: list[Node]) -> dict:
    """The leaves the roots depend on, in declaration order: their keys, and the unpacking target."""
    needed = {n for n in toposort(roots) if n.op in ("input", "param", "buffer")}
    leaves = [(name, leaf) for name, leaf in graph.leaves.items() if leaf in needed]
    targets = ", ".join(names.variables[leaf] for _, leaf in leaves)
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
        "ones": f"np.ones({shape})",
        "normal": f"0.01 * rng.standard_normal({shape})",
        "standard_normal": f"rng.standard_normal({shape})",
        "uniform": f"rng.uniform(-1.0, 1.0, size={shape}) / np.sqrt({leaf.attr('fan_in', fan_in)})",
    }[init]
    return {"name": name, "shape": format_shape(leaf.shape), "init": init, "value": value}
