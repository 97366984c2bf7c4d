"""One naming authority (codegen.names.ValueNames) for every view of a graph's values, and derivations
that read the compiled module instead of differentiating and generating code a second time."""
import json
import re
import sys

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.codegen import names as value_names
from graphcomp.codegen.names import ValueNames
from graphcomp.inspection.explorer import explorer_html
from graphcomp.inspection.derivative_graph import backward_view
from graphcomp.inspection.export import to_networkx
from graphcomp.inspection.notation import Notation
from graphcomp.inspection.report import markdown


def layer() -> gc.Graph:
    """A named hidden value, unnamed temporaries, and x read twice (two gradient paths into it)."""
    g = gc.Graph("layer")
    x, W = g.input("x", (None, 2)), g.param("W", (2, 2))
    h = g.let("h", gc.tanh(x @ W))
    g.output("loss", gc.sum(h * x))
    return g


AT = {"x": np.array([[1.0, -2.0], [0.5, 3.0]]), "W": np.array([[0.1, -0.3], [0.2, 0.4]])}


def test_code_derivation_explorer_and_picture_name_each_value_alike():
    g = layer()
    model = gc.compile(g, wrt=["x", "W"], simplify=False)  # the graph as written, one line per op
    listing, derived = model.listing, model.derivation(at=AT)
    view = to_networkx(g, "loss", model.wrt, derived=derived)
    notation = Notation(g)
    assert isinstance(notation.names, ValueNames)  # the views ask the class the code asks
    for node in notation.nodes:
        name = notation.name(node)
        assert listing.symbols[node] == notation.value(node), name  # the code's symbol is the formulas'
        assert name in view and listing.names[node] == name or node.is_leaf, name
    for step in derived.forward:  # forward steps: t1 = x @ W in the derivation is t1 in the code
        assert f"    {step.target} = " in model.source, step.target
    gradients = {step.plain[0] for step in derived.steps}
    assert {"d_h", "d_t1", "d_W", "d_x"} <= gradients
    code_gradients = {listing.names.get(adjoint) for adjoint in model.backward.adjoints.values()}
    assert {"d_h", "d_t1", "d_W", "d_x"} <= code_gradients
    page = explorer_html(model, AT)
    assert '"gradient_label": "d_h"' in page and 'data-value="t1"' in page


def test_renaming_temporaries_and_gradients_in_the_authority_renames_them_in_every_view(monkeypatch):
    monkeypatch.setattr(value_names, "TEMPORARY_PREFIX", "tmp")
    monkeypatch.setattr(value_names, "GRADIENT_PREFIX", "grad_")
    g = layer()
    model = gc.compile(g, wrt=["x", "W"], simplify=False)
    lines = [line.strip() for line in model.source.splitlines() if not line.strip().startswith("#")]
    assert "tmp1 = x @ W" in lines and any(line.startswith("grad_h = ") for line in lines)
    assert not any(line.startswith(("t1 =", "d_")) for line in lines)
    text = model.derivation(at=AT).text()
    assert "tmp1 = x @ W" in text and "grad_h = " in text and not re.search(r"\b(d_|t1\b)", text)
    assert "tmp1" in to_networkx(g, "loss", model.wrt, AT)
    assert "grad_h" in backward_view(model) and "grad_h" in "\n".join(model.gradient_text().values())
    report = markdown(model, AT)
    assert "t_{1}" not in report and r"\mathrm{tmp}_{1}" in report
    page = explorer_html(model, AT)
    assert '"gradient_label": "grad_h"' in page and not re.search(r"\bd_h\b", page)


def test_a_users_t_3_keeps_temporaries_off_t3_in_code_and_views():
    g = gc.Graph("clash")
    u, v = g.input("u"), g.input("v")
    a = g.let("t_1", u * v)
    g.output("f", gc.exp(a + u) * v)
    model = gc.compile(g, simplify=False)
    assert "t2 = t_1 + u" in model.source
    assert [step.target for step in model.derivation().forward] == ["t_1", "t2", "t3", "f"]


def refuse(what):
    def refused(*args, **kwargs):
        raise AssertionError(f"the derivation {what} again")
    return refused


def forbid_differentiating_and_rendering(monkeypatch):
    """reverse_mode and the template refuse to run, wherever graphcomp imported them."""
    for module in [m for name, m in sys.modules.items() if name.startswith("graphcomp")]:
        if hasattr(module, "reverse_mode"):
            monkeypatch.setattr(module, "reverse_mode", refuse("differentiated"))
        if module.__name__ == "graphcomp.codegen.generate":
            monkeypatch.setattr(module, "render", refuse("rendered a module"))


def test_a_derivation_reads_the_compiled_module_and_runs_it_once(monkeypatch, tmp_path):
    g = layer()
    model = gc.compile(g, wrt=["x", "W"], simplify=False)
    module = model.load()
    loads, runs = [], []
    monkeypatch.setattr(type(model), "load", lambda self: loads.append(self) or module)
    run = module.gradients
    monkeypatch.setattr(module, "gradients", lambda **arrays: runs.append(arrays) or run(**arrays))
    forbid_differentiating_and_rendering(monkeypatch)
    derived = model.derivation(at=AT)
    outputs, grads = run(**AT)
    assert derived.values["loss"] == pytest.approx(outputs["loss"])
    np.testing.assert_allclose(derived.step("W").array, grads["W"])
    np.testing.assert_allclose(derived.step("x").array, grads["x"])
    assert derived.backward is model.backward  # the backward pass of the module, not a second one
    model.report(tmp_path / "report.md", AT)
    model.explorer(tmp_path / "page.html", AT)
    assert loads == [model] and len(runs) == 3  # imported once; one run per derivation


def test_a_simplified_model_compiles_the_graph_as_written_once(monkeypatch):
    model = gc.compile(layer(), wrt=["x", "W"])
    written = model.as_written()
    assert written is model.as_written() and written.compiled_graph is model.graph and written is not model
    forbid_differentiating_and_rendering(monkeypatch)
    derived = model.derivation(at=AT)
    assert derived.backward is written.backward
    assert [step.target for step in derived.forward] == ["t1", "h", "t2", "loss"]


def test_a_scalar_derivation_shows_the_numbers_the_module_computes(monkeypatch):
    g = gc.Graph("fuv")
    u, v, w = g.input("u"), g.input("v"), g.input("w")
    g.output("f", (u + v) * w)
    model = gc.compile(g, simplify=False)
    forbid_differentiating_and_rendering(monkeypatch)
    assert model.derivation(at={"u": 2, "v": 3, "w": 4}).text().splitlines()[:2] == ["t1 = u + v = 5", "f = t1 * w = 20"]


def test_views_the_code_writes_inside_a_line_still_get_their_values():
    g = gc.Graph("views")
    x = g.input("x", (None, 2))
    t = x * 2.0
    g.output("loss", gc.sum(t + t.T.T))  # the gradients through both transposes are written in place
    model = gc.compile(g, simplify=False)
    assert "xp.ones_like(" in model.source and ".T.T" in model.source
    derived = model.derivation(at={"x": np.ones((3, 2))})
    for step in derived.steps:
        assert step.array is not None, step.target
    np.testing.assert_allclose(derived.step("x").array, np.full((3, 2), 4.0))


# ---- one name per value on every view of a simplified model ----------------------------------------

def examples_graphs():
    """Graphs a lecture builds: XOR with binary cross-entropy, a softmax classifier, an RNN and gc.mlp."""
    from pathlib import Path
    from graphcomp.frontend.cli import read_spec
    examples = Path(__file__).resolve().parent.parent / "examples"
    xor = read_spec(str(examples / "xor.toml")).graph
    digits = read_spec(str(examples / "digits.toml")).graph
    sys.path.insert(0, str(examples))  # rnn_mean.py imports its neighbour example_data
    import rnn_mean
    rnn = rnn_mean.build(unrolled=True)  # the lecture's RNN, its states h1 ... h6 named
    g = gc.Graph("mlp")
    x, y = g.input("x", (None, 3)), g.input("y", (None, 1))
    g.output("loss", gc.mse(gc.mlp(g, x, [4, 1], activation="tanh"), y))
    return {"xor": xor, "digits": digits, "rnn": rnn, "mlp": g}


def values_for(graph: gc.Graph, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    at = {}
    labels = {n.inputs[0]: n.attr("classes") for n in graph.nodes() if n.op == "one_hot"}
    for name, leaf in graph.leaves.items():
        shape = tuple(3 if d is None else d for d in leaf.shape)
        classes = labels.get(leaf)
        at[name] = rng.integers(0, classes, size=shape) if classes else rng.normal(size=shape)
    return at


def code_values(model, at) -> dict[str, object]:
    """{variable: value} of every line of the simplified module's _gradients, from one traced run."""
    values = model.values_at(at)
    return {name: values[node] for node, name in model.listing.names.items() if node in values}


@pytest.mark.parametrize("example", ["xor", "digits", "rnn", "mlp"])
def test_a_name_is_one_value_in_the_code_the_derivation_the_picture_and_the_explorer(example):
    graph = examples_graphs()[example]
    model = gc.compile(graph)  # simplified: fused and rewritten, as a user gets it
    at = values_for(graph)
    in_code = code_values(model, at)
    derived = model.derivation(at=at)
    in_derivation = {**derived.values, **{step.plain[0]: step.array for step in derived.steps}}
    shared = set(in_code) & set(in_derivation)
    assert len(shared) >= 5, shared
    for name in shared:  # t12 is the same array in the code and on the slide, d_h the same gradient
        np.testing.assert_allclose(np.asarray(in_code[name], float), np.asarray(in_derivation[name], float),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    temporaries = {name for name in in_derivation if re.fullmatch(r"t\d+", name)}
    numbered_in_code = {name for name in in_code if re.fullmatch(r"t\d+", name)}
    # every temporary of the code that the graph as written has is that value: no second numbering
    assert numbered_in_code & temporaries <= shared
    view = to_networkx(graph, model.loss, model.wrt, derived=derived)
    assert set(view.nodes) <= set(derived.values) | set(graph.leaves), set(view.nodes) - set(derived.values)
    page = explorer_html(model, at)
    data = json.loads(re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page, re.S)
                      .group(1).replace("<\\/", "</"))
    assert set(data["values"]) <= set(derived.values) | set(graph.leaves)
    # the code panel shows the simplified module: each value it shares with the picture is named alike
    for name in set(data["values"]) & set(in_code) - set(graph.leaves):
        assert data["values"][name]["lines"], f"{name}: the explorer finds no code line for it"
    # the gradient formulas (LaTeX) name only values the code computes
    latex = "\n".join(model.gradient_latex().values())
    for number in set(re.findall(r"\bt_\{(\d+)\}", latex)):
        assert f"t{number}" in in_code, f"t{number} in the formulas but not in the code"


def test_a_second_name_for_a_value_is_the_duplicate_module_of_the_lecture():
    """Y1 = X, Y2 = X (the lecture notes' Duplicate module): each name is a value of its own in every
    view, and the backward pass adds their gradients, dC/dX = dC/dY1 + dC/dY2."""
    g = gc.Graph("duplicate")
    X, a, b = g.input("X", (2,)), g.input("a", (2,)), g.input("b", (2,))
    Y1, Y2 = g.let("Y1", X), g.let("Y2", X)
    assert Y1 is not Y2 and g.name_of(Y1) == "Y1" and g.name_of(Y2) == "Y2"
    g.output("C", gc.sum(a * Y1) + gc.sum(b * Y2))
    model = gc.compile(g, wrt=["X"])
    assert "    Y1 = X" in model.source and "    Y2 = X" in model.source and "d_X = d_Y1 + d_Y2" in model.source
    at = {"X": np.array([1.0, -1.0]), "a": np.array([2.0, 3.0]), "b": np.array([5.0, 7.0])}
    np.testing.assert_allclose(model.load().gradients(**at)[1]["X"], [7.0, 10.0])
    assert "d_X = d_Y1 + d_Y2 = [7 10]" in model.derivation(at=at).text()
    with pytest.raises(gc.GraphError, match="already used"):
        g.let("Y1", X)


def test_a_spec_node_that_names_another_value_keeps_its_name(tmp_path):
    from graphcomp.frontend.cli import read_spec
    spec = tmp_path / "duplicate.toml"
    spec.write_text('[model]\nname = "d"\n[inputs]\nX = [2]\n[nodes]\nY1 = "X"\nY2 = "X"\n'
                    '[outputs]\nC = "sum(Y1 * Y2)"\n', encoding="utf-8")
    graph = read_spec(str(spec)).graph
    assert sorted(graph.labels.values()) == ["Y1", "Y2"]
    assert "d_X = d_Y1 + d_Y2" in gc.compile(graph).source


def test_derivation_text_writes_a_calls_argument_without_a_second_pair_of_parentheses():
    """The lecture's softmax layer: d_Sum = sum(-d_out*t2/Sum**2, axis=0), not sum((...), axis=0)."""
    from pathlib import Path
    from graphcomp.frontend.cli import read_spec
    lectures = Path(__file__).resolve().parent.parent / "examples" / "lectures"
    spec = read_spec(str(lectures / "cnn_softmax_layer.toml"))
    with np.load(lectures / "cnn_softmax_layer.npz") as stored:
        at = {name: stored[name] for name in stored.files}
    text = gc.compile(spec.graph, loss=spec.loss).derivation(at=at).text()
    assert "d_Sum = sum(-d_out*t2/Sum**2, axis=0) = 0.1" in text.splitlines()
    assert "((" not in text and "unbroadcast" not in text


def test_views_of_a_loop_run_and_say_what_they_do_not_show_yet():
    """A scan's derivation at values runs (the loop has no one-line text to evaluate), and the plain
    gradient text says the leaf's gradient comes from the generated loop instead of stopping short."""
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", shape=(None, "T", 3)), g.input("h0", shape=(None, 4))
    W, U = g.param("W", (3, 4)), g.param("U", (4, 4))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)
    g.output("loss", gc.sum(hT) + gc.sum(hs * hs))
    model = gc.compile(g)
    rng = np.random.default_rng(0)
    at = {"xs": rng.normal(size=(2, 3, 3)), "h0": rng.normal(size=(2, 4)), "W": rng.normal(size=(3, 4)),
          "U": rng.normal(size=(4, 4))}
    derived = model.derivation(at=at)
    assert derived.values["loss"] == pytest.approx(float(model.load().forward(**at)["loss"]))
    assert model.gradient_text()["W"].splitlines()[-1].startswith("# d_W: computed by the generated loop over time")


def test_graphcomp_grad_writes_a_loop_out_step_by_step_with_its_numbers(tmp_path, capsys):
    """Backpropagation through time as the lecture writes it: h1, h2, h3 on xs_1, xs_2, xs_3, and W's
    gradient the sum of one term per step, whose value is the generated loop's."""
    from graphcomp.frontend.cli import main
    spec = tmp_path / "rnn.py"
    spec.write_text("import graphcomp as gc\ng = gc.Graph('rnn')\n"
                    "xs, h0 = g.input('xs', shape=(None, 'T', 3)), g.input('h0', shape=(None, 4))\n"
                    "W, U = g.param('W', (3, 4)), g.param('U', (4, 4))\n"
                    "hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)\n"
                    "g.output('loss', gc.sum(hT) + gc.sum(hs * hs))\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    at = {"xs": rng.normal(size=(2, 3, 3)), "h0": rng.normal(size=(2, 4)), "W": rng.normal(size=(3, 4)),
          "U": rng.normal(size=(4, 4))}
    np.savez(tmp_path / "at.npz", **at)
    assert main(["grad", str(spec), "--at", str(tmp_path / "at.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("h2 = tanh(") for line in lines)
    (w_line,) = [line for line in lines if line.startswith("d_W = ")]
    assert w_line.startswith("d_W = transpose(xs_3) @ ") and "transpose(xs_1)" in w_line
    from graphcomp.frontend.cli import _compiled, read_spec
    grads = _compiled(read_spec(str(spec))).load().gradients(**at)[1]
    shown_rows = w_line.split(" = [")[-1].rstrip("]").split("; ")
    np.testing.assert_allclose([[float(v) for v in row.split()] for row in shown_rows], grads["W"], rtol=1e-3)
    assert main(["report", str(spec), "--html", "-o", str(tmp_path / "r.html"), "--at", str(tmp_path / "at.npz")]) == 0
