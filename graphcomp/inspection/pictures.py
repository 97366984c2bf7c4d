"""Pictures of a graph for a slide: Graphviz DOT drawn from the networkx view of `export.py`.

Each value is a box coloured by its role (input, param, op, output, loss, gradient) under one legend;
scalars print no shape, the batch axis prints as N. Values named k (a1, h1, W1, b1 ...) share a
cluster, so an MLP or an unrolled RNN reads as layers or time steps. With values given, each box shows
its value and gradient, and each edge its local derivative and the gradient that flowed along it.

Automatic layout keeps a picture between 1:2.5 and 2.5:1, so that it fills a slide: it draws the
graph with Graphviz in the natural direction (left to right for scalars, top to bottom for networks),
measures it, tries the other direction, and if both are long strips wraps the graph's levels into
rows (or columns) like the lines of a text.
"""
from __future__ import annotations

import html
import math
import re
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
    "definition": ("note", "filled", "#FFFFFF", "#999999"),
}
LEGEND = {"input": "input", "param": "parameter", "op": "operation", "output": "output", "loss": "loss",
          "gradient": "gradient (backward pass)", "definition": "forward values the formulas read"}
VALUE_COLOUR, GRADIENT_COLOUR = "#0072B2", "#D55E00"


class PictureError(GraphcompError):
    """A picture that cannot be drawn (no Graphviz, or Graphviz failed)."""


def to_dot(view: nx.MultiDiGraph, rankdir: str = "auto", legend: bool = True) -> str:
    """Graphviz DOT text of a view made by `export.to_networkx` or `derivative_graph.backward_view`. rankdir:
    LR (left to right), TB (top to bottom) or auto: the natural direction (LR for a lecture's graph of
    scalars, TB for a network, whose wide formula boxes stack better than they line up), else the
    other, else the levels wrapped in rows, whichever first draws between 1:2.5 and 2.5:1 (measured
    with Graphviz when it is installed)."""
    view = _without_shared_edges(view)
    if rankdir != "auto":
        return _dot(view, rankdir, legend)
    natural = "TB" if any(data.get("shape_text") for _, data in view.nodes(data=True)) else "LR"
    other = "LR" if natural == "TB" else "TB"
    candidates = [_dot(view, natural, legend), _dot(view, other, legend)]
    if shutil.which("dot") is None:
        return candidates[0]
    ratios = [aspect_ratio(text) for text in candidates]
    for text, ratio in zip(candidates, ratios):
        if ratio is not None and 1 / MAX_RATIO <= ratio <= MAX_RATIO:
            return text
    levels = _levels(view)
    best = (abs(math.log(ratios[0] or 1.0)), candidates[0])
    strip = max(ratios[0] or 1.0, 1 / (ratios[0] or 1.0))
    first = max(2, math.floor(math.sqrt(strip)))
    for rows in range(first, min(first + WRAP_TRIES, max(levels.values(), default=0) + 2)):
        text = _dot(view, other, legend, rows=_rows(levels, rows))  # rows across the natural direction
        ratio = aspect_ratio(text)
        if ratio is None:
            break
        if 1 / MAX_RATIO <= ratio <= MAX_RATIO:
            return text
        best = min(best, (abs(math.log(ratio)), text))
        if (ratio < 1) != (ratios[0] < 1):  # more rows only lengthen the other way
            break
    text = best[1]  # still a strip: Graphviz spreads the boxes along the short side until it fits
    ratio = aspect_ratio(text) or 1.0
    target = MAX_RATIO * 0.96 if ratio > 1 else 1 / (MAX_RATIO * 0.96)
    return text.replace("newrank=true];", f"newrank=true, ratio={1 / target:.3f}];", 1)


WRAP_TRIES = 8  # numbers of rows tried, from about the square root of how long the strip is


MAX_RATIO = 2.5  # the widest (and tallest) picture automatic layout draws, width to height


def aspect_ratio(dot_text: str) -> float | None:
    """Width over height of the picture Graphviz draws from `dot_text`; None when it cannot draw it."""
    try:
        svg = render(dot_text, "svg").decode("utf-8")
    except PictureError:
        return None
    return svg_ratio(svg)


def svg_ratio(svg: str) -> float:
    """Width over height of an SVG drawn by Graphviz (its width="..pt" height="..pt")."""
    width, height = (float(n) for n in re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    return width / height


def _levels(view: nx.MultiDiGraph) -> dict[str, int]:
    """Each box's level: the longest path to it from a box nothing flows into (Graphviz's ranks)."""
    levels: dict[str, int] = {}
    acyclic = nx.DiGraph(view)
    acyclic.remove_edges_from(list(nx.selfloop_edges(acyclic)))  # a loop's edge to itself sets no level
    for name in nx.topological_sort(acyclic):
        levels[name] = max((levels[p] + 1 for p in acyclic.predecessors(name)), default=0)
    return levels


def _rows(levels: dict[str, int], rows: int) -> list[list[str]]:
    """The boxes in `rows` groups of consecutive levels, as even as the levels allow."""
    count = max(levels.values()) + 1
    per_row = math.ceil(count / rows)
    grouped: list[list[str]] = [[] for _ in range(math.ceil(count / per_row))]
    for name, level in levels.items():
        grouped[level // per_row].append(name)
    return grouped


def _dot(view: nx.MultiDiGraph, rankdir: str, legend: bool, rows: list[list[str]] | None = None) -> str:
    """The DOT text in one direction; `rows`: groups of boxes each drawn on one rank (a wrapped strip)."""
    lines = [f"digraph {_quote(view.graph.get('name', 'graph'))} {{",
             f'  graph [rankdir={rankdir}, fontname="Helvetica", fontsize=14, nodesep=0.3, ranksep=0.45, '
             'pad=0.2, newrank=true];',
             '  node [fontname="Helvetica", fontsize=14, margin="0.12,0.06"];',
             '  edge [fontname="Helvetica", fontsize=12, color="#777777", arrowsize=0.7];']
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
    row_of = {name: k for k, row in enumerate(rows or []) for name in row}
    for k, row in enumerate(rows or []):  # a wrapped strip: each row one rank, rows one below the other,
        lines.append("  { rank=same; " + " ".join(_quote(name) for name in row) + " }")
        if k:  # their first boxes aligned as the lines of a text
            lines.append(f"  {_quote(rows[k - 1][0])} -> {_quote(row[0])} [style=invis, weight=20];")
    for source, target, data in view.edges(data=True):
        crossing = row_of and row_of[source] != row_of[target]  # from a row's end to the next one's start
        lines.append(f"  {_quote(source)} -> {_quote(target)}{_edge_attributes(data, weight=0 if crossing else None)};")
    if legend:
        lines += _legend({data["role"] for _, data in view.nodes(data=True)})
    lines.append("}")
    return "\n".join(lines) + "\n"


SHARED_ABOVE = 3  # a leaf read by more boxes than this is drawn without its edges (an RNN's weights)


def _without_shared_edges(view: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """The view without the edges of widely shared leaves: the formulas name them, and the leaf says
    which boxes read it (in a derivative graph, which gradients add up in it), so that an unrolled RNN
    reads as a chain of steps rather than a web."""
    backward = bool(view.graph.get("derivative"))
    shared = [name for name, data in view.nodes(data=True)
              if (data.get("leaf") if backward else data["role"] in ("input", "param"))
              and len(set(view.predecessors(name) if backward else view.successors(name))) > SHARED_ABOVE]
    if not shared:
        return view
    view = view.copy()
    for name in shared:
        edges = list(view.in_edges(name, keys=True) if backward else view.out_edges(name, keys=True))
        others = list(dict.fromkeys(edge[0] if backward else edge[1] for edge in edges))
        if backward:
            others = [view.nodes[other].get("title", other) for other in others]
        listed = ", ".join(others) if len(others) <= 4 else f"{others[0]}, {others[1]}, … {others[-1]}"
        view.nodes[name]["read_by"] = f"sum over {listed}" if backward else f"read by {listed}"
        view.remove_edges_from(edges)
    return view


def _node_line(name: str, data: dict) -> str:
    shape, style, fill, border = ROLES[data["role"]]
    rows = [_title(name, data)]
    if data.get("shape_text"):
        rows.append(f'<font point-size="11" color="#666666">{html.escape(data["shape_text"])}</font>')
    if data.get("read_by"):
        rows.append(f'<font point-size="11" color="#666666">{html.escape(data["read_by"])}</font>')
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
    """The box's first lines: the name (a gradient's math symbol) in bold, then its formula."""
    formula, name = data.get("label_formula") or "", data.get("title") or name
    if not formula:
        return f"<b>{html.escape(name)}</b>"
    lines = []
    for line in formula.split("\n"):
        pieces = [html.escape(piece) for piece in wrapped(line)]
        if line.startswith(name + " = "):  # the line computing this box's own value: its name in bold
            pieces[0] = f"<b>{html.escape(name)}</b>{pieces[0][len(html.escape(name)):]}"
        lines += pieces
    return "<br/>".join(lines)


WRAP = 44  # characters: a longer formula breaks after the commas of its outer call, or before its + and −


def wrapped(line: str, width: int = WRAP) -> list[str]:
    """A long formula as several lines, broken after the commas that separate its outermost call's
    arguments (max_pool2d(t1 + b, | size=2, stride=2)), or, a sum, before its outermost + and −
    (W̄ = t₁ᵀ ā₁ | + t₂ᵀ ā₂)."""
    if len(line) <= width:
        return [line]
    pieces, depth, start = [], 0, 0
    for at, char in enumerate(line):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 1:
            pieces.append(line[start:at + 1])
            start = at + 1
    if not pieces:  # no call to break: break a sum before its terms, past the "name = "
        head = line.index(" = ") + 3 if " = " in line else 0
        depth, start = 0, 0
        for at, char in enumerate(line):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
            if depth == 0 and at > head and line[at - 1:at + 2] in (" + ", " − "):
                pieces.append(line[start:at - 1])
                start = at - 1
    pieces.append(line[start:])
    pieces = [part for piece in pieces for part in _at_spaces(piece, width + width // 2)]
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + len(piece) > width:
            lines.append("    " + piece.lstrip())
        else:
            lines[-1] += piece
    return lines


def _at_spaces(text: str, width: int) -> list[str]:
    """A piece still too long for any box (a deep nest of calls) cut at the last space, or after the
    last opening parenthesis, before `width` characters."""
    pieces = []
    while len(text) > width:
        cut = max(text.rfind(" ", 1, width), text.rfind("(", 1, width - 1) + 1)
        if cut <= 0:
            break
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces + [text]


def _edge_attributes(data: dict, weight: int | None = None) -> str:
    attributes = [] if weight is None else [f"weight={weight}"]
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
