"""graphcomp in a notebook: a real kernel runs a notebook (nbclient), and the rich outputs it produced
are checked — a graph shows its picture, a model its picture and formulas, a derivation its math
(as LaTeX, and as MathML in text/html, which an HTML export of the notebook shows)."""
import re

import nbformat
from nbclient import NotebookClient

CELLS = [
    "import graphcomp as gc\n"
    "g = gc.Graph('fuv')\n"
    "u, v, w = g.input('u'), g.input('v'), g.input('w')\n"
    "g.output('f', (u + v) * w)",
    "g",
    "model = gc.compile(g)\nmodel",
    "model.gradient_latex()",
    "model.derivation(at={'u': 2, 'v': 3, 'w': 4})",
]


def test_a_notebook_shows_graphs_models_and_formulas(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.outputs[0]["data"] if cell.outputs else {} for cell in notebook.cells]
    picture = outputs[1]["image/svg+xml"]
    assert picture.lstrip().startswith("<svg") and ">t1<" in picture and "u + v" in picture
    model = outputs[2]["text/html"]
    assert "<svg" in model and "<math" in model  # the picture, then the formulas in MathML
    formulas = outputs[3]
    assert "\\frac{\\partial f}{\\partial u} = w" in formulas["text/markdown"] and "<math" in formulas["text/html"]
    assert "\\\\\\\\" not in formulas["text/markdown"]  # math, not a dict's repr with doubled backslashes
    derivation = outputs[4]["text/latex"]
    assert derivation.startswith("$$") and "= 20" in derivation
    # an HTML export shows text/html first: math there, never the LaTeX source
    for shown in (model, formulas["text/html"], outputs[4]["text/html"]):
        assert "<math" in shown and "\\begin{aligned}" not in shown and 'class="latex"' not in shown
        assert not re.search(r"\\(frac|partial|bar|overline|mathrm)\b", shown), shown[:300]
    steps = outputs[4]["text/html"]
    assert steps.count("<tr>") >= 7 and "<mn>20</mn>" in steps  # t1, f forward; f, w, t1, u, v back
