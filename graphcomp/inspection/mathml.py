"""LaTeX formulas as MathML, for pages and notebooks that must work offline: latex2mathml converts
each piece, and the `aligned` blocks graphcomp writes become a table of rows (lhs | = rhs), which
MathML in browsers lays out where latex2mathml's own line breaks are not drawn.

A bar (\\bar{W}, \\overline{\\mathrm{logits}}) becomes a line drawn over its whole base by CSS: latex2mathml
writes it as an over-script glyph (U+00AF, U+2015) that browsers without a math font neither stretch
nor place as an accent, so it sat over one letter of a word, or floated above it."""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

ALIGNED = (r"\begin{aligned}", r"\end{aligned}")


def math_html(latex: str) -> str:
    """HTML for one formula: a MathML block, or a table of MathML rows for an aligned block."""
    text = latex.strip()
    if not (text.startswith(ALIGNED[0]) and text.endswith(ALIGNED[1])):
        return _math(text, "block")
    rows = _rows(text[len(ALIGNED[0]):-len(ALIGNED[1])])
    cells = []
    for row in filter(None, rows):
        lhs, _, rhs = row.partition("&")
        cells.append(f'<tr><td class="lhs">{_math(lhs)}</td><td class="rhs">{_math(rhs)}</td></tr>')
    return f'<table class="aligned">{"".join(cells)}</table>'


def _rows(body: str) -> list[str]:
    """The rows of an aligned block: split at its own \\\\, not at those of a matrix inside a row."""
    rows, depth, start = [], 0, 0
    for match in re.finditer(r"\\begin\{|\\end\{|\\\\", body):
        token = match.group()
        if token == "\\begin{":
            depth += 1
        elif token == "\\end{":
            depth -= 1
        elif depth == 0:
            rows.append(body[start:match.start()].strip())
            start = match.end()
    return rows + [body[start:].strip()]


def _math(latex: str, display: str = "inline") -> str:
    from latex2mathml.converter import convert  # here: every `graphcomp` command would pay its 30 ms import

    try:
        return _bars_drawn(convert(latex.strip(), display=display))
    except Exception:  # noqa: BLE001 - a formula the converter cannot read is still shown, as its source
        return f'<code class="latex">{html.escape(latex.strip())}</code>'


MATHML = "http://www.w3.org/1998/Math/MathML"
BARS = ("\u00af", "\u2015")  # what latex2mathml writes for \\bar and \\overline
BAR_STYLE = "border-top: 0.065em solid; padding-top: 0.08em"
ET.register_namespace("", MATHML)


def _bars_drawn(mathml: str) -> str:
    """Each <mover> of a bar replaced by its base with a line over the whole of it (a CSS border)."""
    if "&#x000AF;" not in mathml and "&#x02015;" not in mathml:
        return mathml
    root = ET.fromstring(mathml)
    for parent in root.iter():
        for k, child in enumerate(parent):
            if (child.tag == f"{{{MATHML}}}mover" and len(child) == 2 and child[1].tag == f"{{{MATHML}}}mo"
                    and (child[1].text or "").strip() in BARS):
                base = child[0]
                if base.tag != f"{{{MATHML}}}mrow":
                    base = ET.Element(f"{{{MATHML}}}mrow")
                    base.append(child[0])
                base.set("class", "bar")
                base.set("style", BAR_STYLE)
                parent[k] = base
    return ET.tostring(root, encoding="unicode")


class Formulas(dict):
    """{name: LaTeX}, as gradient_latex() returns it, that a notebook shows as math."""

    def _repr_markdown_(self) -> str:
        return "\n\n".join(f"**{name}**\n\n$$\n{latex}\n$$" for name, latex in self.items())

    def _repr_html_(self) -> str:
        return "".join(f"<p><b>{html.escape(name)}</b></p>{math_html(latex)}" for name, latex in self.items())
