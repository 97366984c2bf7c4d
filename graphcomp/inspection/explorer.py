"""The explorer: one self-contained HTML page for a compiled model — the graph's picture (inline SVG),
the gradient formulas, the derivation and the generated code, cross-linked: choosing a value in the
picture (click, or Tab then Enter) shows its formula, value, gradient, local derivatives and the code
lines that compute it. Formulas are MathML (latex2mathml), so the page needs no network and works
from file://; the script is a few lines of plain JavaScript, inline.
"""
from __future__ import annotations

import html
import json

import networkx as nx

from ..codegen import GeneratedModule
from ..codegen.names import assigns_value_or_gradient, gradient_name
from ..errors import GraphcompError
from ..diff.reverse import Backward
from ..formulas.derivatives import local_derivative
from ..ir import Node
from ..ops import OPS, scalar_expr
from .derivation import AdjointRenderer, Derivation, derivation, local_text
from .equations import gradient_latex
from .export import to_networkx
from .mathml import Formulas, math_html
from .notation import Notation
from .pictures import svg_text, to_dot
from .report import source_functions

STYLE = """
body { font: 20px/1.45 system-ui, sans-serif; color: #111; margin: 0; background: #fff; }
header, main { max-width: 1600px; margin: 0 auto; padding: 0 24px; }
h1 { font-size: 1.6em; margin: 0.6em 0 0.2em; } h2 { font-size: 1.25em; margin: 1.2em 0 0.4em; }
#explore { display: grid; grid-template-columns: minmax(0, 3fr) minmax(320px, 2fr); gap: 24px; align-items: start; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 8px; padding: 8px; overflow: auto; }
figure svg { max-width: 100%; height: auto; }
#values { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
#values button { font: inherit; font-size: 0.85em; padding: 4px 10px; border: 1px solid #888; border-radius: 6px;
                 background: #fff; cursor: pointer; }
#values button[aria-pressed="true"] { background: #111; color: #fff; }
button:focus-visible, g.node:focus { outline: 3px solid #D55E00; outline-offset: 2px; }
g.node { cursor: pointer; } g.node.selected > polygon, g.node.selected > ellipse, g.node.selected > path {
  stroke: #111; stroke-width: 4px; }
aside { border: 2px solid #111; border-radius: 8px; padding: 8px 16px; position: sticky; top: 8px; }
aside dt { font-weight: 600; margin-top: 0.5em; } aside dd { margin: 0 0 0 0.5em; }
pre { font-size: 0.8em; background: #f6f6f6; border-radius: 8px; padding: 12px; overflow-x: auto; }
pre .line { display: block; } pre .line.hit { background: #FDEBD0; outline: 2px solid #E69F00; }
table.aligned td { padding: 2px 6px; vertical-align: middle; } table.aligned td.lhs { text-align: right; }
math { font-size: 1.05em; } .muted { color: #555; }
@media (max-width: 1000px) { #explore { grid-template-columns: 1fr; } aside { position: static; } }
"""

SCRIPT = """
const data = JSON.parse(document.getElementById('explorer-data').textContent);
const show = (id, content, isHtml) => {
  const element = document.getElementById(id);
  element.closest('div').hidden = !content;
  if (isHtml) { element.innerHTML = content || ''; } else { element.textContent = content || ''; }
};
function select(name) {
  const value = data.values[name];
  if (!value) { return; }
  document.querySelectorAll('g.node.selected, pre .line.hit').forEach(e => e.classList.remove('selected', 'hit'));
  document.querySelectorAll('g.node').forEach(g => { if (g.dataset.value === name) { g.classList.add('selected'); } });
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
}
document.querySelectorAll('g.node').forEach(g => {
  if (!g.id.startsWith('value-')) { return; }
  g.dataset.value = g.id.slice(6);
  g.setAttribute('tabindex', '0');
  g.setAttribute('role', 'button');
  g.setAttribute('aria-label', 'value ' + g.dataset.value);
  g.addEventListener('click', () => select(g.dataset.value));
  g.addEventListener('keydown', event => {
    if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); select(g.dataset.value); }
  });
});
document.querySelectorAll('#values button').forEach(b => b.addEventListener('click', () => select(b.dataset.value)));
select(decodeURIComponent(location.hash.slice(1)) || data.first);
"""


def explorer_html(model: GeneratedModule, at: dict | None = None) -> str:
    """The whole page. `at` (the leaves' values) puts values and gradients on every box and line."""
    graph, loss = model.graph, model.loss if model.backward is not None else None
    derived = derivation(model, at) if loss else None  # once, for the picture and the page
    view = to_networkx(graph, loss, model.wrt if loss else (), fold=False, derived=derived if at is not None else None)
    svg = svg_text(to_dot(view))
    if svg is None:
        raise GraphcompError("the explorer draws its picture with Graphviz's `dot`, which is not installed "
                             "(Debian/Ubuntu: apt-get install graphviz)")
    code = source_functions(model.source, ("forward", "_gradients")).split("\n")
    notation = Notation(graph)
    paths = _path_texts(derived.backward, notation) if derived else {}
    values = _values(view, notation, code, paths)
    payload = json.dumps({"values": values, "first": loss or next(iter(values))}, ensure_ascii=False)
    payload = payload.replace("</", "<\\/")  # no "</script>" inside the script element
    title = html.escape(graph.name)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>graphcomp: {title}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<header><h1>Model <code>{title}</code></h1><p class=\"muted\">{_summary(model, at)}</p></header>",
        "<main>", '<section id="explore">', "<div>", f'<figure aria-label="the graph of {title}">{svg}</figure>',
        '<nav id="values" aria-label="values of the graph">',
        *(f'<button type="button" data-value="{html.escape(name)}" aria-pressed="false">{html.escape(name)}</button>'
          for name in values),
        "</nav>", "</div>", _details_panel(), "</section>",
        *_formula_sections(model, derived),
        '<section id="code"><h2>Generated code</h2><p class="muted"><code>forward</code> and <code>_gradients</code> '
        "of the generated module; the lines of the chosen value are marked.</p><pre><code>",
        *(f'<span class="line" id="line-{number}">{html.escape(line) or " "}</span>' for number, line in enumerate(code)),
        "</code></pre></section>", "</main>",
        f'<script type="application/json" id="explorer-data">{payload}</script>',
        f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])


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
    return ('<aside id="details" aria-live="polite"><h2 id="details-name">Choose a value</h2><dl>'
            + "".join(items) + "</dl></aside>")


def _formula_sections(model: GeneratedModule, derived: Derivation | None) -> list[str]:
    if derived is None:
        return []
    return ['<section id="gradients"><h2>Gradients</h2>', Formulas(gradient_latex(model))._repr_html_(), "</section>",
            '<section id="derivation"><h2>Derivation</h2><p class="muted">The forward pass, then the chain rule '
            "from the loss back to the leaves, on the graph as written.</p>", math_html(derived.latex()), "</section>"]


def _path_texts(backward: Backward, notation: Notation) -> dict[tuple[Node, int], str]:
    """(user, operand index) -> the gradient that flows back along that edge, as text (d_t4 @ W2.T)."""
    renderer = AdjointRenderer(notation, backward, plain=True)
    return {(user, index): renderer.render(piece, named={backward.adjoints[user]: notation.gradient(user, plain=True)})
            for (user, index), piece in backward.paths.items() if user in notation}


def _values(view: nx.DiGraph, notation: Notation, code: list[str], paths: dict) -> dict[str, dict]:
    """What the panel shows for each value, by name."""
    values = {}
    for name, data in view.nodes(data=True):
        latex = data.get("latex") or notation.value(notation.by_name[name])
        values[name] = {
            "role": data["role"], "formula": math_html(latex), "shape": data.get("shape_text", ""),
            "value": data.get("value_text", ""), "gradient": data.get("gradient_text", ""),
            "gradient_label": data.get("gradient_label", ""),
            "locals": [html.escape(text) for text in _locals(view, name, notation, paths)],
            "lines": [number for number, line in enumerate(code) if assigns_value_or_gradient(line, name)],
        }
    return values


def _locals(view: nx.DiGraph, name: str, notation: Notation, paths: dict) -> list[str]:
    """∂user/∂name for each value this one feeds (with its number and flow when values were given)."""
    found = []
    for _, user_name, data in view.out_edges(name, data=True):
        if data.get("local_text"):
            found.append(data["local_text"] + (f" ({data['flow_text']})" if data.get("flow_text") else ""))
            continue
        user = notation.by_name[user_name]
        if OPS[user.op].has_formula:
            local = local_derivative(scalar_expr(user), data["operand"])
            found.append(f"∂{user_name}/∂{name} = {local_text(local, user, notation)}")
        elif (user, data["operand"]) in paths:  # a tensor op: the gradient its rule sends back
            found.append(f"through {user_name} = {OPS[user.op].text(user, tuple(_names(user, notation)))}: "
                         f"{gradient_name(name)} += {paths[(user, data['operand'])]}")
    return found


def _names(node: Node, notation: Notation) -> list[str]:
    return [str(x.attr("value")) if x.op == "const" else notation.name(x) for x in node.inputs]


def notebook_html(model: GeneratedModule) -> str:
    """What a notebook shows for a compiled model: its picture, then its gradient formulas."""
    loss = model.loss if model.backward is not None else None
    svg = svg_text(to_dot(to_networkx(model.graph, loss))) or f"<pre>{html.escape(repr(model))}</pre>"
    formulas = Formulas(gradient_latex(model))._repr_html_() if loss else ""
    return f'<div class="graphcomp-model">{svg}{formulas}</div>'

