"""LaTeX formulas as MathML, for pages and notebooks that must work offline: latex2mathml converts
each piece, and the `aligned` blocks graphcomp writes become a table of rows (lhs | = rhs), which
MathML in browsers lays out where latex2mathml's own line breaks are not drawn."""
from __future__ import annotations

import html

ALIGNED = (r"\begin{aligned}", r"\end{aligned}")


def math_html(latex: str) -> str:
    """HTML for one formula: a MathML block, or a table of MathML rows for an aligned block."""
    text = latex.strip()
    if not (text.startswith(ALIGNED[0]) and text.endswith(ALIGNED[1])):
        return _math(text, "block")
    rows = [row.strip() for row in text[len(ALIGNED[0]):-len(ALIGNED[1])].split("\\\\")]
    cells = []
    for row in filter(None, rows):
        lhs, _, rhs = row.partition("&")
        cells.append(f'<tr><td class="lhs">{_math(lhs)}</td><td class="rhs">{_math(rhs)}</td></tr>')
    return f'<table class="aligned">{"".join(cells)}</table>'


def _math(latex: str, display: str = "inline") -> str:
    from latex2mathml.converter import convert  # here: every `graphcomp` command would pay its 30 ms import

    try:
        return convert(latex.strip(), display=display)
    except Exception:  # noqa: BLE001 - a formula the converter cannot read is still shown, as its source
        return f'<code class="latex">{html.escape(latex.strip())}</code>'


class Formulas(dict):
    """{name: LaTeX}, as gradient_latex() returns it, that a notebook shows as math."""

    def _repr_markdown_(self) -> str:
        return "\n\n".join(f"**{name}**\n\n$$\n{latex}\n$$" for name, latex in self.items())

    def _repr_html_(self) -> str:
        return "".join(f"<p><b>{html.escape(name)}</b></p>{math_html(latex)}" for name, latex in self.items())
