"""The formulas of loops, written as the lecture writes backpropagation through time: the forward
recursion h_t = f(h_{t-1}, x_t) from h_0, the backward one \\bar{h}_{t-1} = ... from \\bar{h}_T, and each
shared param's gradient as a sum over t. Every printed formula is read back by the independent reader
(tests/latex_reader.py), which runs the recursions step by step on random float64 arrays, and compared
with the generated module's own gradients to 1e-10: a plain RNN (both ways, with per-step outputs), an
LSTM and a GRU (two carries / gates), two LSTM layers, and a loop written in a spec."""
import re
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from graphcomp.frontend.cli import main
from graphcomp.frontend.spec import load
from latex_check import display_math, katex_errors
from latex_reader import Reader, bind, equations
from models import readme_rnn

BATCH, STEPS = 3, 4
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def rnn(reverse: bool = False, per_step: bool = False, last: bool = True, sigmoid: bool = False,
        h0_gradient: bool = True) -> gc.CompiledModel:
    """The RNN of the lecture notes over x (N, T, 1) from h0; the loss reads h_T, the mean of the
    per-step states, or both; the gradients of the params, and of h0 if `h0_gradient`."""
    g = gc.Graph("rnn")
    x = g.input("x", shape=(None, "T", 1))
    y = g.input("y", shape=(None, 1))
    h0 = g.input("h0", shape=(None, 8))
    Wx, Wh, b = g.param("Wx", (1, 8)), g.param("Wh", (8, 8)), g.param("b", (8,), init="zeros")
    Wy, by = g.param("Wy", (8, 1)), g.param("by", (1,), init="zeros")

    def step(h, xt):
        a = xt @ Wx + h @ Wh + b
        h = gc.sigmoid(a) if sigmoid else gc.tanh(a)
        return h, h
    hT, hs = gc.scan(step, h0, x, axis=1, reverse=reverse)
    features = [f for f, wanted in ((hT, last), (gc.mean(hs, axis=1), per_step)) if wanted]
    features = features[0] if len(features) == 1 else features[0] + features[1]
    p = g.output("prediction", features @ Wy + by)
    g.output("loss", gc.mse(p, y))
    return gc.compile(g, loss="loss", wrt=["Wx", "Wh", "b", "Wy", "by"] + ["h0"] * h0_gradient)


def recurrent(layer, layers: int = 1) -> gc.CompiledModel:
    """gc.lstm or gc.gru over x (T, N, 2), `layers` deep; the loss reads the last state and every step."""
    g = gc.Graph("recurrent")
    hs = g.input("x", shape=("T", None, 2))
    y = g.input("y", shape=(None, 1))
    for k in range(layers):
        hs, last = layer(g, hs, 3, name=f"r{k + 1}")
    h = last[0] if isinstance(last, tuple) else last
    p = g.output("prediction", h @ g.param("Wy", (3, 1)) + gc.mean(gc.sum(hs, axis=0), axis=1, keepdims=True))
    g.output("loss", gc.mse(p, y))
    return gc.compile(g, loss="loss")


def random_arrays(model, seed: int = 0) -> dict[str, np.ndarray]:
    module, rng = model.load(), np.random.default_rng(seed)
    shapes = {**module.INPUTS, **module.PARAMS}
    return {name: rng.normal(size=tuple(BATCH if d is None else STEPS if isinstance(d, str) else d for d in shape))
            for name, shape in shapes.items()}


def reader_for(model, arrays: dict, latex: str) -> tuple[Reader, list[tuple[str, str]]]:
    pairs = equations(latex)
    reader = Reader({**{symbol(name): value for name, value in arrays.items()}, "N": BATCH, "T": STEPS},
                    BATCH, STEPS)
    reader.define(pairs[1:])
    return reader, pairs


def check_read_back(model, seed: int = 0) -> None:
    """Each leaf's printed formula, evaluated step by step, is the module's gradient (1e-10)."""
    arrays = random_arrays(model, seed)
    _, grads = model.load().gradients(**arrays)
    formulas = model.gradient_latex()
    for leaf in model.wrt:
        reader, pairs = reader_for(model, arrays, formulas[leaf])
        got = np.broadcast_to(reader.evaluate(pairs[0][1]), grads[leaf].shape)
        assert np.allclose(got, grads[leaf], rtol=1e-10, atol=1e-12), f"{leaf}:\n{formulas[leaf]}"


MODELS = {
    "rnn": lambda: rnn(),
    "rnn, reversed": lambda: rnn(reverse=True),
    "rnn, per-step outputs": lambda: rnn(per_step=True, last=False),
    "rnn, reversed, both": lambda: rnn(reverse=True, per_step=True, sigmoid=True),
    "lstm": lambda: recurrent(gc.lstm),
    "gru": lambda: recurrent(gc.gru),
    "two lstm layers": lambda: recurrent(gc.lstm, layers=2),
    "spec": lambda: gc.compile(load(EXAMPLES / "rnn_loop.toml").graph, loss="loss"),
}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    return MODELS[request.param]()


def test_every_formula_read_back_step_by_step_is_the_gradient_of_the_module(model):
    check_read_back(model)


def test_no_formula_is_a_tautology_and_every_symbol_is_defined(model):
    arrays = random_arrays(model)
    for leaf, latex in model.gradient_latex().items():
        reader, pairs = reader_for(model, arrays, latex)
        for lhs, rhs in pairs:
            right = rhs.split(r"\qquad")[0].strip()
            assert lhs.replace(" ", "") != right.replace(" ", ""), f"{leaf}: {lhs} = {rhs}"
            for t in range(1, STEPS + 1) if "_{t" in rhs else (None,):  # a recursion: at every step
                reader.evaluate(right if t is None else bind(right, t))  # raises on an undefined symbol
    assert katex_errors(list(model.gradient_latex().values())) == {}


def test_the_rnn_reads_as_the_lecture_writes_it():
    latex = rnn(h0_gradient=False).gradient_latex()["Wh"]  # the model of the issue: the params' gradients
    lines, first = dict(equations(latex)), equations(latex)[0]
    assert first == (r"\overline{\mathrm{Wh}}", r"\sum_{t=1}^{T} {h_{t-1}^\top \delta_{t}}")
    assert lines[r"\delta_{t}"] == r"\bar{h}_{t} \odot \left(1 - h_{t}^{2}\right)"
    assert lines[r"\bar{h}_{t-1}"] == r"\delta_{t} \mathrm{Wh}^\top \qquad t = T, \dots, 1"
    assert lines[r"\bar{h}_{T}"] == r"\overline{\mathrm{prediction}} \mathrm{Wy}^\top"
    assert lines[r"h_{t}"].startswith(r"\tanh") and lines[r"h_{t}"].endswith(r"\qquad t = 1, \dots, T")
    assert "h_{t-1} \\mathrm{Wh}" in lines["h_{t}"] and "x_{t} \\mathrm{Wx}" in lines["h_{t}"]
    assert lines[r"\mathrm{prediction}"] == r"\mathrm{by} + h_{T} \mathrm{Wy}"  # the last state is h_T
    assert r"h_{0}" not in lines  # the first state is the input h0 itself


def test_the_gradient_of_the_first_state_is_the_backward_recursions_last_value():
    """Asked for h0's gradient, the recursion takes another stem: \bar{h}_0 is then h0's gradient only,
    the last value of the backward recursion (also with no step at all: then it is the seed)."""
    model = rnn()
    lines = dict(equations(model.gradient_latex()["h0"]))
    assert equations(model.gradient_latex()["h0"])[0] == (r"\bar{h}_{0}", r"\bar{s}_{0}")
    assert lines[r"s_{0}"] == "h_{0}" and lines[r"\bar{s}_{t-1}"].endswith(r"\qquad t = T, \dots, 1")
    arrays = {**random_arrays(model), "x": np.zeros((BATCH, 0, 1))}
    reader = Reader({**{symbol(n): v for n, v in arrays.items()}, "N": BATCH, "T": 0}, BATCH, 0)
    reader.define(equations(model.gradient_latex()["h0"])[1:])
    want = model.load().gradients(**arrays)[1]["h0"]
    assert np.allclose(reader.evaluate(r"\bar{s}_{0}"), want, rtol=1e-10, atol=1e-12)


def test_a_reversed_loop_reads_the_next_step_and_starts_after_the_last():
    latex = rnn(reverse=True).gradient_latex()
    lines = dict(equations(latex["Wh"]))
    carry = next(lhs[:-len("_{t}")] for lhs in lines if lhs.endswith("_{t}") and "bar" not in lhs and "delta" not in lhs)
    assert lines[rf"\bar{{{carry}}}_{{t+1}}"].endswith(r"\qquad t = 1, \dots, T")
    assert f"{carry}_{{t+1}}" in lines[f"{carry}_{{t}}"] and lines[f"{carry}_{{t}}"].endswith(r"t = T, \dots, 1")
    assert lines[f"{carry}_{{T+1}}"] == "h_{0}"
    assert equations(latex["h0"])[0] == (r"\bar{h}_{0}", rf"\bar{{{carry}}}_{{T+1}}")


def test_per_step_outputs_feed_the_backward_recursion():
    lines = equations(rnn(per_step=True, last=False, h0_gradient=False).gradient_latex()["Wh"])
    by_lhs = dict(lines)
    assert by_lhs[r"\delta_{t}"] == r"\left(1 - h_{t}^{2}\right) \odot \left(\bar{h}_{t} + \bar{o}_{t}\right)"
    assert by_lhs[r"\bar{h}_{T}"] == "0"  # h_T itself is not read after the loop
    stacks = [lhs for lhs, rhs in lines if rhs == r"\operatorname{stack}_{\text{axis } 1}\left(\bar{o}_{1}, \dots, \bar{o}_{T}\right)"]
    assert len(stacks) == 1 and stacks[0] in {lhs for lhs, rhs in lines if "stack" not in rhs}  # and defined


def test_an_lstm_has_one_recursion_per_carry_and_its_weights_sum_over_steps():
    model = recurrent(gc.lstm)
    lines = dict(equations(model.gradient_latex()["r1_weight_hh"]))
    for carry in ("h", "c"):
        assert lines[f"{carry}_{{t}}"].endswith(r"\qquad t = 1, \dots, T")
        assert lines[rf"\bar{{{carry}}}_{{t-1}}"].endswith(r"\qquad t = T, \dots, 1")
    assert r"c_{t-1}" in lines["c_{t}"] and r"\tanh{\left(c_{t} \right)}" in lines["h_{t}"]
    sums = [rhs for rhs in lines.values() if rhs.startswith(r"\sum_{t=1}^{T} {h_{t-1}^\top \delta_{t}^{(")]
    assert len(sums) == 4  # one per gate's rows of the hidden weights
    assert any(r"\sigma\left(" in rhs for rhs in lines.values())
    assert any(r"\left(1 - a_{t}^{(" in rhs for rhs in lines.values())  # σ(1 − σ) of a gate


def test_the_text_form_is_the_recursion_in_plain_math():
    text = rnn(h0_gradient=False).gradient_text()["Wh"]
    assert "not written out" not in text
    assert "δ_t = h̄_t ⊙ (1 − h_t²)" in text
    assert "δ_t Whᵀ    for t = T, …, 1" in text
    assert "h_t = tanh(b + x_t Wx + h[t−1] Wh)    for t = 1, …, T" in text
    assert re.fullmatch(r"# the loop over time, step by step \(t\d+ is h_T, d_t\d+ is h̄_T\):",
                        text.splitlines()[text.splitlines().index("W̅h̅ = Σ[t=1]^T h[t−1]ᵀ δ_t") - 1])
    assert text.splitlines()[-1].startswith("# d_Wh: computed by the generated loop over time")


def test_graphcomp_grad_prints_the_recursion_of_a_spec_with_a_loop(capsys):
    assert main(["grad", str(EXAMPLES / "rnn_loop.toml")]) == 0
    out = capsys.readouterr().out
    assert "Σ[t=1]^T h[t−1]ᵀ δ_t" in out and "h̄[t−1] = δ_t Whᵀ    for t = T, …, 1" in out
    assert main(["grad", str(EXAMPLES / "rnn_loop.toml"), "--latex"]) == 0
    assert r"\bar{h}_{t-1} &= \delta_{t} \mathrm{Wh}^\top \qquad t = T, \dots, 1" in capsys.readouterr().out


def test_the_report_and_the_page_show_the_recursion(tmp_path):
    model = rnn(h0_gradient=False)
    report = model.report(tmp_path / "rnn.md").read_text(encoding="utf-8")
    blocks = display_math(report)
    assert any(r"\bar{h}_{t-1} &= \delta_{t} \mathrm{Wh}^\top" in block for block in blocks)
    assert katex_errors(blocks) == {}
    page = model.explorer(tmp_path / "rnn.html").read_text(encoding="utf-8")
    assert "<math" in page and "&#x003B4;" in page and "&#x02211;" in page  # δ and Σ, as MathML writes them


def test_a_loop_inside_a_loop_says_where_its_gradient_comes_from():
    g = gc.Graph("nested")
    x = g.input("x", shape=(None, 4, 3, 1))
    y = g.input("y", shape=(None, 1))
    h0 = g.input("h0", shape=(None, 2))
    W, U, V = g.param("W", (1, 2)), g.param("U", (2, 2)), g.param("V", (2, 1))

    def outer(h, xt):
        def inner(k, xs):
            return gc.tanh(xs @ W + k @ U), None
        return gc.scan(inner, h, xt, axis=1)[0], None
    hT, _ = gc.scan(outer, h0, x, axis=1)
    g.output("loss", gc.mse(g.output("prediction", hT @ V), y))
    model = gc.compile(g, loss="loss")
    latex, text = model.gradient_latex(), model.gradient_text()
    assert "computed by the generated loops over time" in latex["W"]
    first, defined = equations(latex["V"])[0], dict(equations(latex["V"]))
    assert first[0] == r"\bar{V}" and first[1].endswith(r"^\top \overline{\mathrm{prediction}}")
    assert "computed by the generated loops over time" in defined[first[1].split("^")[0]]  # the last state
    assert all("computed by the generated loops over time" in t for t in text.values())


def test_the_page_of_a_loop_model_lays_out_its_recursions(tmp_path):
    import shutil
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the browser test needs Debian's chromium and chromium-driver (.ci/run installs them)"
    path = tmp_path / "rnn_loop.html"
    assert main(["report", str(EXAMPLES / "rnn_loop.toml"), "--html", "-o", str(path)]) == 0
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        browser.get(path.as_uri())
        recursions = [m for m in browser.find_elements("css selector", "math") if "δ" in m.text and "∑" in m.text]
        assert recursions and all(m.size["height"] > 10 and m.size["width"] > 40 for m in recursions)
        assert browser.find_element("id", "details-name").text  # the page's script ran
    finally:
        browser.quit()


def test_the_readme_shows_what_the_rnn_of_its_loop_section_prints():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Loops: `gc.scan`"):readme.index("### Examples")]
    shown = re.search(r"```tex\n(.*?)```", section, flags=re.DOTALL).group(1).strip().splitlines()
    printed = {f"{lhs} = {rhs}" for lhs, rhs in equations(gc.compile(readme_rnn()).gradient_latex()["U"])}
    assert set(shown) <= printed, set(shown) - printed
