"""Pictures of a graph for a slide: Graphviz DOT drawn from the networkx view of `export.py`.

Each value is a box coloured by its role (input, param, op, output, loss, gradient) under one legend;
scalars print no shape, the batch axis prints as N. Values named k (a1, h1, W1, b1 ...) share a
cluster, so an MLP or an unrolled RNN reads as layers or time steps. With values given, each box shows
its value and gradient, and each edge its local derivative and the gradient that flowed along it.
"""
from __future__ import annotations

import html
import shutil
import subprocess

import networkx as nx

from ..errors import GraphcompError

PICTURE_FORMATS = ("svg", "png", "pdf")
DEFAULT_DPI = 192  # PNG: sharp on a projector

# role: (Graphviz shape, style, fill colour, border colour) — Okabe–Ito colours, readable in grey too
ROLES = {
    "input": ("ellipse", "filled", "#DCEBF7", "#0072B2"),
    "param": ("box", "filled", "#FDEBD0", "#E69F00"),
    "op": ("box", "rounded,filled", "#FFFFFF", "#555555"),
    "output": ("box", "rounded,filled,bold", "#DFF2E1", "#009E73"),
    "loss": ("box", "rounded,filled", "#F9DCDC", "#D55E00"),
    "gradient": ("box", "rounded,filled", "#F3E5F5", "#CC79A7"),
}
LEGEND = {"input": "input", "param": "parameter", "op": "operation", "output": "output", "loss": "loss",
          "gradient": "gradient (backward pass)"}
VALUE_COLOUR, GRADIENT_COLOUR = "#0072B2", "#D55E00"


class PictureError(GraphcompError):
    """A picture that cannot be drawn (no Graphviz, or Graphviz failed)."""


def to_dot(view: nx.DiGraph, rankdir: str = "auto", legend: bool = True) -> str:
    """Graphviz DOT text of a view made by `export.to_networkx` or `export.backward_view`. rankdir:
    LR (left to right), TB (top to bottom) or auto: LR for a lecture's graph of scalars, TB for a
    network, whose wide formula boxes stack better than they line up."""
    if rankdir == "auto":
        rankdir = "TB" if any(data.get("shape_text") for _, data in view.nodes(data=True)) else "LR"
    lines = [f"digraph {_quote(view.graph.get('name', 'graph'))} {{",
             f'  graph [rankdir={rankdir}, fontname="Helvetica", fontsize=14, nodesep=0.3, ranksep=0.45, '
             'pad=0.2, newrank=true];',
             '  node [fontname="Helvetica", fontsize=14, margin="0.12,0.06"];',
             '  edge [fontname="Helvetica", fontsize=12, color="#777777", arrowsize=0.7];']
    view = _without_shared_edges(view)
    clusters: dict[str, list[str]] = {}
    for name, data in view.nodes(data=True):
        clusters.setdefault(data.get("cluster", ""), []).append(name)
    for number, (cluster, members) in enumerate(clusters.items()):
        indent = "  "
        if cluster:
            lines += [f"  subgraph cluster_{number} {{", f"    label={_quote(cluster)};",
                      '    style="rounded,filled"; fillcolor="#F6F6F6"; color="#CCCCCC"; fontcolor="#555555";']
            indent = "    "
        lines += [indent + _node_line(name, view.nodes[name]) for name in members]
        if cluster:
            lines.append("  }")
    for source, target, data in view.edges(data=True):
        lines.append(f"  {_quote(source)} -> {_quote(target)}{_edge_attributes(data)};")
    if legend:
        lines += _legend({data["role"] for _, data in view.nodes(data=True)})
    lines.append("}")
    return "\n".join(lines) + "\n"


SHARED_ABOVE = 3  # a leaf read by more boxes than this is drawn without its edges (an RNN's weights)


def _without_shared_edges(view: nx.DiGraph) -> nx.DiGraph:
    """The view without the edges of widely shared leaves: the formulas name them, and the leaf says
    which boxes read it, so that an unrolled RNN reads as a chain of steps rather than a web."""
    shared = [name for name, data in view.nodes(data=True)
              if data["role"] in ("input", "param") and view.out_degree(name) > SHARED_ABOVE]
    if not shared:
        return view
    view = view.copy()
    for name in shared:
        users = list(view.successors(name))
        view.nodes[name]["read_by"] = ", ".join(users) if len(users) <= 4 else f"{users[0]}, {users[1]}, … {users[-1]}"
        view.remove_edges_from([(name, user) for user in users])
    return view


def _node_line(name: str, data: dict) -> str:
    shape, style, fill, border = ROLES[data["role"]]
    rows = [_title(name, data)]
    if data.get("shape_text"):
        rows.append(f'<font point-size="11" color="#666666">{html.escape(data["shape_text"])}</font>')
    if data.get("read_by"):
        rows.append(f'<font point-size="11" color="#666666">read by {html.escape(data["read_by"])}</font>')
    if data.get("value_text"):
        rows.append(f'<font color="{VALUE_COLOUR}">= {html.escape(data["value_text"])}</font>')
    if data.get("gradient_of"):
        rows.append(f'<font color="{GRADIENT_COLOUR}">gradient of {html.escape(data["gradient_of"])}</font>')
    if data.get("gradient_text"):
        rows.append(f'<font color="{GRADIENT_COLOUR}">{html.escape(data["gradient_label"])} = '
                    f'{html.escape(data["gradient_text"])}</font>')
    periphery = ", peripheries=2" if data["role"] == "loss" else ""
    return (f"{_quote(name)} [id={_quote('value-' + name)}, shape={shape}, style={_quote(style)}, "
            f'fillcolor="{fill}", color="{border}"{periphery}, label=<{"<br/>".join(rows)}>];')


def _title(name: str, data: dict) -> str:
    """The box's first lines: the name in bold, then its formula (code-like lines stay left-aligned)."""
    formula = data.get("label_formula") or ""
    if not formula:
        return f"<b>{html.escape(name)}</b>"
    lines = []
    for line in formula.split("\n"):
        pieces = [html.escape(piece) for piece in wrapped(line)]
        if line.startswith(name + " = "):  # the line computing this box's own value: its name in bold
            pieces[0] = f"<b>{html.escape(name)}</b>{pieces[0][len(html.escape(name)):]}"
        lines += pieces
    return "<br/>".join(lines)


WRAP = 44  # characters: a longer formula breaks after the commas of its outer call


def wrapped(line: str, width: int = WRAP) -> list[str]:
    """A long formula as several lines, broken after the commas that separate its outermost call's
    arguments: max_pool2d(t1 + b, | size=2, stride=2)."""
    if len(line) <= width:
        return [line]
    pieces, depth, start = [], 0, 0
    for at, char in enumerate(line):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 1:
            pieces.append(line[start:at + 1])
            start = at + 1
    pieces.append(line[start:])
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + len(piece) > width:
            lines.append("    " + piece.lstrip())
        else:
            lines[-1] += piece
    return lines


def _edge_attributes(data: dict) -> str:
    attributes = []
    if data.get("backward"):
        attributes.append('color="#CC79A7"')
    if data.get("reads"):
        attributes.append('style=dashed, color="#BBBBBB"')
    label = [text for text in (data.get("local_text"), data.get("flow_text")) if text]
    if label:
        attributes.append(f'label=<{"<br/>".join(_edge_row(k, text) for k, text in enumerate(label))}>')
        attributes.append(f'fontcolor="{GRADIENT_COLOUR}"')
    return f" [{', '.join(attributes)}]" if attributes else ""


def _edge_row(index: int, text: str) -> str:
    return html.escape(text) if index == 0 else f"<b>{html.escape(text)}</b>"


def _legend(roles: set[str]) -> list[str]:
    """One small table beside the picture: a swatch of each role the picture uses."""
    rows = []
    for role in (role for role in ROLES if role in roles):
        _, style, fill, border = ROLES[role]
        rounded = ' style="rounded"' if "rounded" in style else ""
        rows.append(f'<tr><td bgcolor="{fill}" color="{border}" border="1" width="28"{rounded}>&nbsp;</td>'
                    f'<td align="left">{LEGEND[role]}</td></tr>')
    table = f'<table border="0" cellspacing="4" cellpadding="2">{"".join(rows)}</table>'
    return [f'  legend [shape=plain, fontsize=11, fontcolor="#444444", label=<{table}>];']


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render(dot_text: str, fmt: str, dpi: int = DEFAULT_DPI) -> bytes:
    """The picture as SVG, PNG or PDF bytes, drawn by Graphviz's `dot`."""
    if fmt not in PICTURE_FORMATS:
        raise PictureError(f"unknown picture format {fmt!r}; choose one of {', '.join(PICTURE_FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise PictureError(f"{fmt.upper()} pictures need Graphviz's `dot` program, which is not installed "
                           "(Debian/Ubuntu: apt-get install graphviz); --format dot writes the text instead")
    options = [f"-Gdpi={dpi}"] if fmt == "png" else []
    result = subprocess.run([dot, f"-T{fmt}", *options], input=dot_text.encode("utf-8"), capture_output=True)
    if result.returncode != 0:
        raise PictureError(f"Graphviz failed: {result.stderr.decode('utf-8', 'replace').strip()}")
    return result.stdout


def svg_text(dot_text: str) -> str | None:
    """The SVG of a picture for a notebook or a page (without the XML prologue); None without Graphviz."""
    try:
        svg = render(dot_text, "svg").decode("utf-8")
    except PictureError:
        return None
    return svg[svg.index("<svg"):]
