"""The explorer: one self-contained HTML page for a compiled model — the graph's picture (inline SVG),
the gradient formulas, the derivation and the generated code, cross-linked: choosing a value in the
picture (click, or Tab then Enter) shows its formula, value, gradient, local derivatives and the code
lines that compute it. Formulas are MathML (latex2mathml), so the page needs no network and works
from file://; the script is plain JavaScript, inline. The picture is the one `graphcomp graph` draws
(`picture_view`), at the page's full width: drag it to move it, zoom with the wheel, the buttons or + and −.
"""
from __future__ import annotations

import html
import json
from typing import Mapping, Sequence

import networkx as nx

from ..codegen import GeneratedModule
from ..errors import GraphcompError
from ..ir import Graph
from .derivation import Derivation, derivation
from .equations import gradient_latex
from .export import to_networkx
from .mathml import Formulas, math_html
from .notation import Notation
from .panel import panel_values
from .pictures import svg_text, to_dot
from .report import source_functions

STYLE = """
body { font: 20px/1.45 system-ui, sans-serif; color: #111; margin: 0; background: #fff; }
header, main { max-width: 1800px; margin: 0 auto; padding: 0 20px; }
h1 { font-size: 1.5em; margin: 0.4em 0 0.1em; } h2 { font-size: 1.25em; margin: 1.2em 0 0.4em; }
header p { margin: 0 0 0.4em; }
#toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin: 4px 0 6px; }
#toolbar button, #values button { font: inherit; font-size: 0.85em; padding: 4px 12px; border: 1px solid #888;
  border-radius: 6px; background: #fff; cursor: pointer; }
#toolbar button.zoom { min-width: 2.4em; font-weight: 600; }
#zoom-level { min-width: 4.2em; text-align: right; font-variant-numeric: tabular-nums; }
#toolbar .hint { font-size: 0.8em; }
#stage { position: relative; }
#picture { position: relative; height: max(420px, calc(100vh - 190px)); border: 1px solid #ccc; border-radius: 8px;
  overflow: hidden; cursor: grab; touch-action: none; user-select: none; background: #fff; }
#picture.dragging { cursor: grabbing; }
#picture > svg { display: block; width: 100%; height: 100%; }
#details { position: absolute; top: 10px; right: 10px; width: min(36%, 580px); max-height: calc(100% - 22px);
  overflow: auto; box-sizing: border-box; background: rgba(255, 255, 255, 0.96); border: 2px solid #111;
  border-radius: 8px; padding: 4px 16px 8px; box-shadow: 0 2px 12px rgba(0, 0, 0, 0.18); }
#details[hidden] { display: none; }
#details h2 { margin-top: 0.4em; } #details dt { font-weight: 600; margin-top: 0.5em; }
#details dd { margin: 0 0 0 0.5em; overflow-x: auto; overflow-y: hidden; padding: 2px 0; } #details ul { margin: 0.2em 0; padding-left: 1.2em; }
#details li { margin: 0.15em 0; }
#values { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
#values button[aria-pressed="true"], #toolbar button[aria-pressed="true"] { background: #111; color: #fff; }
button:focus-visible, g.node:focus, #picture:focus-visible { outline: 3px solid #D55E00; outline-offset: 2px; }
g.node { cursor: pointer; } g.node.selected > polygon, g.node.selected > ellipse, g.node.selected > path {
  stroke: #111; stroke-width: 4px; }
pre { font-size: 0.85em; background: #f6f6f6; border-radius: 8px; padding: 12px; white-space: pre-wrap;
  overflow-wrap: anywhere; }
pre .line { display: block; padding-left: calc(var(--indent, 0ch) + 4ch); text-indent: calc(-1 * (var(--indent, 0ch) + 4ch)); }
pre .line.hit { background: #FDEBD0; outline: 2px solid #E69F00; }
.formulas { overflow-x: auto; }
table.aligned td { padding: 3px 6px; vertical-align: middle; } table.aligned td.lhs { text-align: right; }
math { font-size: 1.25em; } .muted { color: #555; }
"""

SCRIPT = """
const data = JSON.parse(document.getElementById('explorer-data').textContent);
const picture = document.getElementById('picture');
const svg = picture.querySelector('svg');
const panel = document.getElementById('details');
const show = (id, content, isHtml) => {
  const element = document.getElementById(id);
  element.closest('div').hidden = !content;
  if (isHtml) { element.innerHTML = content || ''; } else { element.textContent = content || ''; }
};

// The picture: its viewBox is the window onto the drawing (Graphviz's units: points, 4/3 px at 100 %).
const NATURAL = 4 / 3, READABLE = 0.8 * NATURAL;
const whole = svg ? svg.viewBox.baseVal : {x: 0, y: 0, width: 1, height: 1};
const drawing = {x: whole.x, y: whole.y, width: whole.width, height: whole.height};
const view = {scale: NATURAL, x: drawing.x, y: drawing.y};
if (svg) { svg.removeAttribute('width'); svg.removeAttribute('height'); }
const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
function area() {  // the part of the picture the details panel does not cover, in px from its left
  const width = picture.clientWidth, covered = panel.hidden ? 0 : panel.offsetWidth + 20;
  return {left: 0, width: Math.max(width - covered, width / 2), height: picture.clientHeight};
}
function fitScale() { const a = area(); return Math.min(a.width / drawing.width, a.height / drawing.height); }
function draw() {
  if (!svg) { return; }
  const low = Math.min(fitScale() / 2, NATURAL / 4);
  view.scale = clamp(view.scale, low, 8 * NATURAL);
  svg.setAttribute('viewBox', [view.x, view.y, picture.clientWidth / view.scale, picture.clientHeight / view.scale].join(' '));
  document.getElementById('zoom-level').textContent = Math.round(100 * view.scale / NATURAL) + ' %';
}
function zoomAt(factor, px, py) {  // px, py: the point of the picture that stays put, in px
  const x = view.x + px / view.scale, y = view.y + py / view.scale;
  view.scale = clamp(view.scale * factor, Math.min(fitScale() / 2, NATURAL / 4), 8 * NATURAL);
  view.x = x - px / view.scale; view.y = y - py / view.scale;
  draw();
}
function zoomCentre(factor) { const a = area(); zoomAt(factor, a.width / 2, a.height / 2); }
function place(scale, top) {  // the drawing at this scale, centred in the free area (or from its top)
  const a = area();
  view.scale = scale;
  view.x = drawing.x - Math.max(0, (a.width / scale - drawing.width) / 2);
  view.y = top ? drawing.y : drawing.y - (a.height / scale - drawing.height) / 2;
  if (drawing.width * scale > a.width) { view.x = drawing.x; }
  draw();
}
function fitWhole() { place(fitScale(), false); }
function reset() {  // the whole drawing when it is legible so, else at full size from its top
  const scale = fitScale();
  if (scale >= READABLE) { place(Math.min(scale, 2 * NATURAL), false); } else { place(NATURAL, true); }
}
function reveal(element) {  // pan so that a box of the picture is inside the free area
  const box = element.getBoundingClientRect(), frame = picture.getBoundingClientRect(), a = area();
  const left = box.left - frame.left, top = box.top - frame.top;
  if (left >= 0 && top >= 0 && left + box.width <= a.width && top + box.height <= a.height) { return; }
  view.x += (left + box.width / 2 - a.width / 2) / view.scale;
  view.y += (top + box.height / 2 - a.height / 2) / view.scale;
  draw();
}
let drag = null, dragged = false;
picture.addEventListener('pointerdown', event => {
  if (event.button !== 0) { return; }
  drag = {id: event.pointerId, x: event.clientX, y: event.clientY, viewX: view.x, viewY: view.y};
  dragged = false;
});
picture.addEventListener('pointermove', event => {
  if (!drag || event.pointerId !== drag.id) { return; }
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (!dragged && Math.hypot(dx, dy) < 5) { return; }
  if (!dragged) { dragged = true; picture.classList.add('dragging'); picture.setPointerCapture(event.pointerId); }
  view.x = drag.viewX - dx / view.scale; view.y = drag.viewY - dy / view.scale;
  draw();
});
const stop = event => { if (drag && event.pointerId === drag.id) { drag = null; picture.classList.remove('dragging'); } };
picture.addEventListener('pointerup', stop);
picture.addEventListener('pointercancel', stop);
picture.addEventListener('click', event => {  // the end of a drag chooses nothing
  if (dragged) { event.stopPropagation(); event.preventDefault(); dragged = false; }
}, true);
picture.addEventListener('wheel', event => {
  event.preventDefault();
  const frame = picture.getBoundingClientRect(), step = event.deltaMode ? 40 * event.deltaY : event.deltaY;
  zoomAt(Math.exp(-clamp(step, -300, 300) / 500), event.clientX - frame.left, event.clientY - frame.top);
}, {passive: false});
document.addEventListener('keydown', event => {
  if (event.ctrlKey || event.metaKey || event.altKey) { return; }  // Ctrl + and Ctrl - stay the browser's zoom
  const keys = {'+': () => zoomCentre(1.25), '=': () => zoomCentre(1.25), '-': () => zoomCentre(0.8),
                '_': () => zoomCentre(0.8), '0': reset};
  const arrows = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); return; }
  if (arrows[event.key] && picture.contains(document.activeElement)) {  // elsewhere the arrows scroll the page
    event.preventDefault();
    view.x += arrows[event.key][0] * 80 / view.scale; view.y += arrows[event.key][1] * 80 / view.scale;
    draw();
  }
});
document.getElementById('zoom-in').addEventListener('click', () => zoomCentre(1.25));
document.getElementById('zoom-out').addEventListener('click', () => zoomCentre(0.8));
document.getElementById('zoom-reset').addEventListener('click', reset);
document.getElementById('zoom-whole').addEventListener('click', fitWhole);
const toggle = document.getElementById('details-toggle');
toggle.addEventListener('click', () => {
  panel.hidden = !panel.hidden;
  toggle.setAttribute('aria-pressed', String(!panel.hidden));
  draw();
});
window.addEventListener('resize', draw);

function select(name, move) {
  const value = data.values[name];
  if (!value) { return; }
  document.querySelectorAll('g.node.selected, pre .line.hit').forEach(e => e.classList.remove('selected', 'hit'));
  let box = null;
  document.querySelectorAll('g.node').forEach(g => { if (g.dataset.value === name) { g.classList.add('selected'); box = g; } });
  document.querySelectorAll('#values button').forEach(b => b.setAttribute('aria-pressed', String(b.dataset.value === name)));
  document.getElementById('details-name').textContent = name + ' (' + value.role + ')';
  show('details-formula', value.formula, true);
  show('details-shape', value.shape, false);
  show('details-value', value.value, false);
  show('details-gradient', value.gradient ? value.gradient_label + ' = ' + value.gradient : '', false);
  show('details-locals', value.locals.map(text => '<li>' + text + '</li>').join(''), true);
  const lines = value.lines.map(n => document.getElementById('line-' + n));
  lines.forEach(line => line.classList.add('hit'));
  show('details-code', [...new Set(lines.map(line => line.textContent.trim()))].join('\\n'), false);
  history.replaceState(null, '', '#' + encodeURIComponent(name));
  if (move && box) { reveal(box); }
}
document.querySelectorAll('g.node').forEach(g => {
  if (!g.id.startsWith('value-')) { return; }
  g.dataset.value = g.id.slice(6);
  g.setAttribute('tabindex', '0');
  g.setAttribute('role', 'button');
  g.setAttribute('aria-label', 'value ' + g.dataset.value);
  g.addEventListener('click', () => select(g.dataset.value, false));
  g.addEventListener('focus', () => reveal(g));
  g.addEventListener('keydown', event => {
    if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); select(g.dataset.value, false); }
  });
});
document.querySelectorAll('#values button').forEach(b => b.addEventListener('click', () => select(b.dataset.value, true)));
reset();
const asked = decodeURIComponent(location.hash.slice(1));
select(data.values[asked] ? asked : data.first, Boolean(data.values[asked]));
"""


def picture_view(graph: Graph, loss: str | None, wrt: Sequence[str] = (), at: Mapping[str, object] | None = None,
                 unfold: bool = False, derived: Derivation | None = None) -> nx.DiGraph:
    """The view `graphcomp graph` draws and the explorer shows: one picture of a graph, whoever draws it.
    Values given (`at`, or `derived` made at them) put values, gradients and each edge's share on it;
    unfold: a box for every operation even where a large graph would write single-use values inside
    their user's box."""
    return to_networkx(graph, loss, tuple(wrt), at, fold=False if unfold else None, derived=derived)


def explorer_html(model: GeneratedModule, at: dict | None = None) -> str:
    """The whole page. `at` (the leaves' values) puts values and gradients on every box and line."""
    graph, loss = model.graph, model.loss if model.backward is not None else None
    derived = derivation(model, at) if loss else None  # once, for the picture and the page
    view = picture_view(graph, loss, model.wrt if loss else (), derived=derived if at is not None else None)
    svg = svg_text(to_dot(view))
    if svg is None:
        raise GraphcompError("the explorer draws its picture with Graphviz's `dot`, which is not installed "
                             "(Debian/Ubuntu: apt-get install graphviz)")
    code = source_functions(model.source, ("forward", "_gradients")).split("\n")
    notation = Notation(graph)
    values = panel_values(view, notation, code, derived, with_values=at is not None)
    payload = json.dumps({"values": values, "first": loss or next(iter(values))}, ensure_ascii=False)
    payload = payload.replace("</", "<\\/")  # no "</script>" inside the script element
    title = html.escape(graph.name)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>graphcomp: {title}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<header><h1>Model <code>{title}</code></h1><p class=\"muted\">{_summary(model, at)}</p></header>",
        "<main>", '<section id="explore">', _toolbar(), '<div id="stage">',
        f'<div id="picture" tabindex="0" aria-label="the graph of {title}: drag to move it, + and − to zoom, 0 to '
        f'reset">{svg}</div>', _details_panel(), "</div>",
        '<nav id="values" aria-label="values of the graph">',
        *(f'<button type="button" data-value="{html.escape(name)}" aria-pressed="false">{html.escape(name)}</button>'
          for name in values),
        "</nav>", "</section>",
        *_formula_sections(model, derived),
        '<section id="code"><h2>Generated code</h2><p class="muted"><code>forward</code> and <code>_gradients</code> '
        "of the generated module; the lines of the chosen value are marked.</p><pre><code>",
        "".join(_code_line(number, line) for number, line in enumerate(code)),  # blocks: no newline between
        "</code></pre></section>", "</main>",
        f'<script type="application/json" id="explorer-data">{payload}</script>',
        f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])


def _toolbar() -> str:
    buttons = [("zoom-out", "zoom", "−", "zoom out (−)"), ("zoom-in", "zoom", "+", "zoom in (+)"),
               ("zoom-reset", "", "Reset", "the starting view (0)"), ("zoom-whole", "", "Whole picture", "")]
    return ('<div id="toolbar" role="toolbar" aria-label="the picture">'
            + "".join(f'<button type="button" id="{key}" class="{kind}" title="{help or text}" aria-label="{help or text}">'
                      f"{text}</button>" for key, kind, text, help in buttons)
            + '<span id="zoom-level" aria-live="polite">100 %</span>'
            + '<button type="button" id="details-toggle" aria-pressed="true" aria-controls="details">Details</button>'
            + '<span class="hint muted">Drag to move, wheel or + / − to zoom, 0 to reset.</span></div>')


def _code_line(number: int, line: str) -> str:
    """A line of code that wraps under its own indentation, four columns further in."""
    indent = len(line) - len(line.lstrip(" "))
    return (f'<span class="line" id="line-{number}" style="--indent: {indent}ch">'
            f"{html.escape(line) or ' '}</span>")


def _summary(model: GeneratedModule, at: dict | None) -> str:
    if model.backward is None:
        return "No scalar loss: the picture and the code of the forward pass."
    leaves = ", ".join(f"<code>{html.escape(name)}</code>" for name in model.wrt)
    where = " at the values given" if at is not None else ""
    return (f"Loss <code>{html.escape(model.loss)}</code>, differentiated with respect to {leaves}{where}. "
            "Choose a value in the picture (click it, or Tab to it and press Enter).")


def _details_panel() -> str:
    rows = [("formula", "Formula"), ("shape", "Shape"), ("value", "Value"), ("gradient", "Gradient"),
            ("locals", "Local derivatives (to the values it feeds)"), ("code", "Code")]
    items = []
    for key, title in rows:
        body = {"locals": f'<ul id="details-{key}"></ul>', "code": f'<pre id="details-{key}"></pre>'}.get(
            key, f'<span id="details-{key}"></span>')
        items.append(f"<div hidden><dt>{title}</dt><dd>{body}</dd></div>")
    return ('<aside id="details" aria-live="polite" aria-label="the chosen value"><h2 id="details-name">'
            'Choose a value</h2><dl>' + "".join(items) + "</dl></aside>")


def _formula_sections(model: GeneratedModule, derived: Derivation | None) -> list[str]:
    if derived is None:
        return []
    return ['<section id="gradients"><h2>Gradients</h2><div class="formulas">',
            Formulas(gradient_latex(model))._repr_html_(), "</div></section>",
            '<section id="derivation"><h2>Derivation</h2><p class="muted">The forward pass, then the chain rule '
            'from the loss back to the leaves, on the graph as written.</p><div class="formulas">',
            math_html(derived.latex()), "</div></section>"]


def notebook_html(model: GeneratedModule) -> str:
    """What a notebook shows for a compiled model: its picture, then its gradient formulas."""
    loss = model.loss if model.backward is not None else None
    svg = svg_text(to_dot(picture_view(model.graph, loss, model.wrt if loss else ()))) or \
        f"<pre>{html.escape(repr(model))}</pre>"
    formulas = Formulas(gradient_latex(model))._repr_html_() if loss else ""
    return f'<div class="graphcomp-model">{svg}{formulas}</div>'

