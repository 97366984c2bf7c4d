"""The lecture notes rebuilt as specs (examples/lectures/): each spec compiles, its values and gradients are the
lecture's numbers (and agree with central differences in float64), and every view shows them under the
lecture's names: `graphcomp grad --at`, the picture `graphcomp graph --at`, the backward picture and the
explorer page `graphcomp report --html --at`.

Where the notes have a slip, the expected value is the correct one and a comment says what the notes print.
Only user-named values are looked up (never a numbered temporary).
"""
import functools
import html
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import main, read_spec
from graphcomp.inspection.derivation import derivation

LECTURES = Path(__file__).parents[1] / "examples" / "lectures"
sys.path.insert(0, str(LECTURES))
from make_values import VALUES  # the arrays of the .npz --at files

sys.path.remove(str(LECTURES))


def sigma(a):
    # The notes on backpropagation print sigma(a) = a / (1 + e^{-a}); the logistic function is 1 / (1 + e^{-a}).
    return 1.0 / (1.0 + np.exp(-a))


def sigma_prime(a):
    # The notes' derivation reaches e^{a} / (1 + e^{-a})^2 (a sign lost in the exponent: at a = 1 that is 1.45);
    # the derivative is e^{-a} / (1 + e^{-a})^2 = sigma(a) (1 - sigma(a)).
    return np.exp(-a) / (1.0 + np.exp(-a)) ** 2


def nll_prime(yhat, y):
    # The notes print L'_nlv = -y/yhat - (1 - y)/(1 - yhat); the second sign is +.
    return -y / yhat + (1.0 - y) / (1.0 - yhat)


@dataclass
class Case:
    """One worked example: the spec, the values it is evaluated at, the named values and gradients expected."""

    spec: str
    at: str                                 # the --at argument: name=number list, or the stem of a .npz file here
    values: dict                            # named values computed by the graph (not leaves)
    grads: dict                             # gradient of the loss with respect to named values and wrt leaves
    kinks: dict = field(default_factory=dict)  # leaf -> flat indices where central differences straddle a kink
    shown: tuple | None = None              # names whose numbers the picture and page must show (default: all)

    @property
    def at_values(self) -> dict:
        if self.at in VALUES:
            return {k: np.asarray(v, dtype=float) for k, v in VALUES[self.at].items()}
        return {k: float(v) for k, v in (item.split("=") for item in self.at.split(","))}

    @property
    def at_argument(self) -> str:
        return str(LECTURES / f"{self.at}.npz") if self.at in VALUES else self.at


def _two_layers() -> Case:
    x, y, w1, w2 = 1.0, 0.0, 0.5, 2.0
    a1 = w1 * x
    phi1 = (math.exp(2 * a1) - 1) / (math.exp(2 * a1) + 1)
    a2 = w2 * phi1
    phi2 = sigma(a2)
    F = -y * math.log(phi2) - (1 - y) * math.log(1 - phi2)
    # The scalar K-layer algorithm of the notes: phi_K^delta = L'(phi_K, y), a_k^delta = phi_k^delta f_k'(a_k),
    # w_k^delta = a_k^delta phi_{k-1}, phi_{k-1}^delta = a_k^delta w_k.
    d_phi2 = nll_prime(phi2, y)            # 1/(1 - phi2) = 3.51994 here; the notes' sign would give -3.51994
    d_a2 = d_phi2 * sigma_prime(a2)
    d_phi1 = d_a2 * w2
    d_a1 = d_phi1 * (1 - phi1 ** 2)        # tanh' = 1 - tanh^2 = 4 sigma'(2a)
    assert math.isclose(1 - phi1 ** 2, 4 * sigma_prime(2 * a1))
    return Case("backprop_two_layers", "x=1,y=0,w1=0.5,w2=2",
                values={"a1": a1, "phi1": phi1, "a2": a2, "phi2": phi2, "F": F},
                grads={"F": 1.0, "phi2": d_phi2, "a2": d_a2, "phi1": d_phi1, "a1": d_a1,
                       "w2": d_a2 * phi1, "w1": d_a1 * x})


def _mlp() -> Case:
    v = VALUES["backprop_mlp"]
    x, y, W = v["x"], v["y"], {1: v["W1"], 2: v["W2"]}
    h, a = {0: x}, {}
    for k in (1, 2):  # a[k] = W^(k) h[k-1], h[k] = f_k(a[k])
        a[k] = W[k] @ h[k - 1]
        h[k] = np.maximum(a[k], 0) if k == 1 else sigma(a[k])
    F = float(np.sum((h[2] - y) ** 2))
    g, grad_W, grad_h, grad_a = 2 * (h[2] - y), {}, {2: 2 * (h[2] - y)}, {}
    for k in (2, 1):
        g = g * (sigma_prime(a[k]) if k == 2 else (a[k] > 0).astype(float))
        grad_a[k] = g
        # The notes print grad W[k] = g h[k]^T: a d_k x d_k matrix, not the shape of W^(k); it is g h[k-1]^T.
        grad_W[k] = np.outer(g, h[k - 1])
        assert grad_W[k].shape == W[k].shape
        g = W[k].T @ g
        grad_h[k - 1] = g
    return Case("backprop_mlp", "backprop_mlp",
                values={"a1": a[1], "h1": h[1], "a2": a[2], "h2": h[2], "F": F},
                grads={"h2": grad_h[2], "a2": grad_a[2], "h1": grad_h[1], "a1": grad_a[1],
                       "W2": grad_W[2], "W1": grad_W[1]})


def _upstream_cases() -> list[Case]:
    """The modules of the notes on neural-network modules: C = sum(dC_dY * Y), so dC/dY is the input dC_dY."""
    cases = []
    v = VALUES["modules_linear"]
    cases.append(Case("modules_linear", "modules_linear", values={"Y": v["W"] @ v["X"]},
                      grads={"Y": v["dC_dY"], "X": v["W"].T @ v["dC_dY"], "W": np.outer(v["dC_dY"], v["X"])}))
    v = VALUES["modules_relu"]
    cases.append(Case("modules_relu", "modules_relu", values={"Y": np.maximum(v["X"], 0)},
                      grads={"Y": v["dC_dY"], "X": np.where(v["X"] < 0, 0.0, v["dC_dY"])}))
    v = VALUES["modules_duplicate"]
    cases.append(Case("modules_duplicate", "modules_duplicate",
                      values={"C": float(np.sum(v["dC_dY1"] * v["X"]) + np.sum(v["dC_dY2"] * v["X"]))},
                      grads={"X": v["dC_dY1"] + v["dC_dY2"]}))
    v = VALUES["modules_add"]
    cases.append(Case("modules_add", "modules_add", values={"Y": v["X1"] + v["X2"]},
                      grads={"Y": v["dC_dY"], "X1": v["dC_dY"], "X2": v["dC_dY"]}))
    v = VALUES["modules_max"]
    wins = v["X1"] > v["X2"]   # the notes: dY/dX1 = 1 where X1 > X2, else 0; a tie goes to X2
    cases.append(Case("modules_max", "modules_max", values={"Y": np.maximum(v["X1"], v["X2"])},
                      grads={"Y": v["dC_dY"], "X1": np.where(wins, v["dC_dY"], 0.0),
                             "X2": np.where(wins, 0.0, v["dC_dY"])},
                      kinks={"X1": [2], "X2": [2]}))
    v = VALUES["modules_softmax"]
    y = np.exp(v["x"]) / np.sum(np.exp(v["x"]))
    cases.append(Case("modules_softmax", "modules_softmax", values={"y": y},
                      grads={"y": v["dC_dy"], "x": y * (v["dC_dy"] - np.sum(y * v["dC_dy"]))}))
    v = VALUES["modules_log_softmax"]
    y = np.exp(v["x"]) / np.sum(np.exp(v["x"]))
    log_y = v["x"] - np.log(np.sum(np.exp(v["x"])))   # the notes: log(y_i) = x_i - log(sum_j exp(x_j))
    cases.append(Case("modules_log_softmax", "modules_log_softmax", values={"y": y, "log_y": log_y},
                      grads={"log_y": v["dC_dlog_y"], "y": v["dC_dlog_y"] / y,
                             "x": v["dC_dlog_y"] - y * np.sum(v["dC_dlog_y"])}))
    v = VALUES["modules_weight_decay"]
    # dL/dw_i = dC/dw_i + 2 alpha w_i (the notes write this 2 w_i as the derivative of an undefined R:
    # it is the derivative of ||w||^2).
    cases.append(Case("modules_weight_decay", "modules_weight_decay",
                      values={"C": float(v["dC_dw"] @ v["w"]), "L": float(v["dC_dw"] @ v["w"] + v["alpha"] * v["w"] @ v["w"])},
                      grads={"L": 1.0, "C": 1.0, "w": v["dC_dw"] + 2 * v["alpha"] * v["w"]}))
    return cases


def _flow_mlp() -> Case:
    v = VALUES["flow_graph_mlp"]
    h1 = np.tanh(v["x"] @ v["W1"])
    h2 = np.tanh(h1 @ v["W2"])
    out = float(h2 @ v["W3"])
    d_out = 2 * (out - v["y"])
    d_h2 = d_out * v["W3"]
    d_h1 = v["W2"] @ (d_h2 * (1 - h2 ** 2))
    return Case("flow_graph_mlp", "flow_graph_mlp", values={"h1": h1, "h2": h2, "out": out, "error": (out - v["y"]) ** 2},
                grads={"out": d_out, "h2": d_h2, "h1": d_h1, "W3": d_out * h2,
                       "W2": np.outer(h1, d_h2 * (1 - h2 ** 2)), "W1": np.outer(v["x"], d_h1 * (1 - h1 ** 2))})


def _softmax_layer() -> Case:
    v = VALUES["cnn_softmax_layer"]
    t = v["input"] @ v["W"] + v["b"]
    out = np.exp(t) / np.sum(np.exp(t))
    assert np.allclose(out, [0.6, 0.1, 0.1, 0.1, 0.1])   # out(c) = 0.6, the notes' example probability
    # eq. 3 prints dL/dout(i) = -1/y_i for i = c; it is -1/out(c) = -1/0.6 (y_c = 1 would make it -1).
    d_out = np.array([-1 / 0.6, 0, 0, 0, 0])
    # eqs. 7 and 9: dout(c)/dt_i = -exp(t_c) exp(t_i)/Sum^2 = -0.06, dout(c)/dt_c = exp(t_c)(Sum - exp(t_c))/Sum^2 = 0.24
    dout_c_dt = np.array([0.24, -0.06, -0.06, -0.06, -0.06])
    d_t = d_out[0] * dout_c_dt
    assert np.allclose(d_t, out - v["y"])                 # = [-0.4, 0.1, 0.1, 0.1, 0.1]
    return Case("cnn_softmax_layer", "cnn_softmax_layer",
                values={"t": t, "Sum": 10.0, "out": out, "L": -math.log(0.6)},
                grads={"L": 1.0, "out": d_out, "t": d_t, "b": d_t, "W": np.outer(v["input"], d_t),
                       "input": v["W"] @ d_t},
                shown=("t", "Sum", "out", "L", "b", "input"))


def _max_pooling() -> Case:
    v = VALUES["cnn_max_pooling"]
    x, up = v["input"][0, 0], v["upstream"][0, 0]
    output = x.reshape(2, 2, 2, 2).max(axis=(1, 3))
    d_input = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):  # the upstream gradient goes to the window's maximum, 0 elsewhere
            window = x[2 * i:2 * i + 2, 2 * j:2 * j + 2]
            r, c = np.unravel_index(np.argmax(window), (2, 2))
            d_input[2 * i + r, 2 * j + c] = up[i, j]
    return Case("cnn_max_pooling", "cnn_max_pooling", values={"output": output[None, None]},
                grads={"output": up[None, None], "input": d_input[None, None]})


def _cases() -> list[Case]:
    e = math.e
    image = VALUES["cnn_convolution"]["Image"]
    return [
        # f = (u + v) w at u = 2, v = 3, w = 4: t1 = 5, f = 20, df/dt1 = 4, df/du = df/dv = 4, df/dw = 5.
        Case("backprop_fuv", "u=2,v=3,w=4", values={"t1": 5.0, "f": 20.0},
             grads={"f": 1.0, "t1": 4.0, "w": 5.0, "u": 4.0, "v": 4.0}),
        # F(x) = (2x + 3)^2, h = 2x + 3: dF/dx = 2 h(x) * 2 = 4 (2x + 3); x = 1 is ours.
        Case("backprop_chain_rule", "x=1", values={"h": 5.0, "F": 25.0}, grads={"F": 1.0, "h": 10.0, "x": 20.0}),
        _two_layers(),
        _mlp(),
        *_upstream_cases(),
        # log(exp(s)/(exp(s) + 1)) = s - log(1 + exp(s)); at s = 0 (ours): -log 2, slope 1 - h(0) = 0.5.
        Case("modules_log_sigmoid", "s=0", values={"log_h": -math.log(2)}, grads={"log_h": 1.0, "s": 0.5}),
        # dz/dx = dz/dy1 dy1/dx + dz/dy2 dy2/dx with y1 = exp(x), y2 = x^2 (ours), at x = 1: e * 1 + 1 * 2e... = 3e.
        Case("flow_graph_paths", "x=1", values={"y1": e, "y2": 1.0, "z": e},
             grads={"z": 1.0, "y1": 1.0, "y2": e, "x": 3 * e}),
        _flow_mlp(),
        _softmax_layer(),
        # A 3x3 image and the filter with centre weight 1: out = the image's centre, 31 (the notes' value);
        # dL/dFiltre(x, y) = Image(i + x, j + y) (eq. 15) with dL/dout = 1.
        Case("cnn_convolution", "cnn_convolution", values={"out": np.array([[[[31.0]]]]), "L": 31.0},
             grads={"out": np.ones((1, 1, 1, 1)), "Filtre": image}),
        # The filter of zeros: out = 0 (figure 6); the gradient with respect to the filter is still the image.
        Case("cnn_convolution", "cnn_convolution_zeros", values={"out": np.zeros((1, 1, 1, 1)), "L": 0.0},
             grads={"Filtre": image}),
        _max_pooling(),
        # x = 2, y = -3: a = -1, b = 3, da = -3, grad_x = -3, grad_y = dy_1 + dy_2 = -3 + (-1) = -4.
        Case("autograd_fan_out", "x=2,y=-3", values={"a": -1.0, "b": 3.0},
             grads={"b": 1.0, "a": -3.0, "x": -3.0, "y": -4.0}),
        # XOR by hand (our weights): y = |x1 - x2| = 0, 1, 1, 0, so the loss and every gradient are 0.
        Case("autograd_xor", "autograd_xor",
             values={"h": np.array([[0, 0], [0, 1], [1, 0], [0, 0]], dtype=float), "y": np.array([0.0, 1.0, 1.0, 0.0]),
                     "loss": 0.0},
             grads={"loss": 1.0, "y": np.zeros(4), "h": np.zeros((4, 2)), "W1": np.zeros((2, 2)), "W2": np.zeros(2)}),
    ]


CASES = _cases()
IDS = [case.at if case.at in VALUES and case.at != case.spec else case.spec for case in CASES]


def test_every_spec_of_the_folder_has_a_case_and_the_npz_files_hold_make_values():
    assert {case.spec for case in CASES} == {p.stem for p in LECTURES.glob("*.toml")}
    for stem, arrays in VALUES.items():
        with np.load(LECTURES / f"{stem}.npz") as shipped:
            assert sorted(shipped.files) == sorted(arrays)
            for name, value in arrays.items():
                assert np.array_equal(shipped[name], value), (stem, name)


@functools.cache
def _compiled_spec(name: str):
    spec = read_spec(str(LECTURES / f"{name}.toml"))
    return gc.compile(spec.graph, wrt=spec.wrt, loss=spec.loss)


def _compiled(case: Case):
    return _compiled_spec(case.spec)


def _close(actual, expected, rtol=1e-9, atol=1e-12) -> bool:
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    return actual.shape == expected.shape and np.allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_and_gradients_are_the_lectures(case):
    model = _compiled(case)
    at = case.at_values
    m = model.load()
    outputs, grads = m.gradients(**at)
    steps = derivation(model, at)
    named = getattr(steps, "named_values", steps.values)  # every computed value by name
    for name, expected in case.values.items():
        value = outputs[name] if name in outputs else named[name]
        assert _close(value, expected), (name, value, expected)
    for name, expected in case.grads.items():
        if name in model.wrt:
            assert _close(grads[name], expected), (name, grads[name], expected)
        step = steps.step(name)
        value = step.value if step.value is not None else step.array
        assert _close(value, expected), (name, value, expected)
    # Central differences in float64, for every element of every leaf differentiated.
    eps = 1e-6
    for leaf in model.wrt:
        base = np.asarray(at[leaf], dtype=float)
        numeric = np.zeros(base.shape)
        for index in np.ndindex(base.shape):
            flat = int(np.ravel_multi_index(index, base.shape)) if base.shape else 0
            if flat in case.kinks.get(leaf, ()):
                numeric[index] = np.asarray(grads[leaf])[index]   # a kink: one-sided slopes differ
                continue
            plus, minus = base.copy(), base.copy()
            plus[index] += eps
            minus[index] -= eps
            f_plus = float(np.sum(m.forward(**{**at, leaf: plus})[model.loss]))
            f_minus = float(np.sum(m.forward(**{**at, leaf: minus})[model.loss]))
            numeric[index] = (f_plus - f_minus) / (2 * eps)
        assert _close(grads[leaf], numeric, rtol=1e-6, atol=1e-6), (leaf, grads[leaf], numeric)


NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")


def _numbers(text: str) -> np.ndarray:
    text = html.unescape(text).replace("−", "-").replace("(-", "-").replace("(", "").replace(")", "")
    return np.array([float(n) for n in NUMBER.findall(text)])


def _shown(text: str, expected) -> bool:
    """Does the printed value (6 significant digits for numbers, 4 for the elements of arrays) show `expected`?"""
    numbers, expected = _numbers(text), np.asarray(expected, dtype=float).ravel()
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return numbers.shape == expected.shape and np.allclose(numbers, expected, rtol=1e-3, atol=1e-3 * scale)


def _gradient_names(loss: str, name: str) -> tuple[str, ...]:
    return f"d{loss}/d{name}", f"∂{loss}/∂{name}", f"d_{name}"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grad_at_prints_the_lectures_numbers(case, capsys):
    model = _compiled(case)
    out = _run(capsys, "grad", LECTURES / f"{case.spec}.toml", "--at", case.at_argument)
    lines = {}
    for line in out.splitlines():
        lhs, _, rest = line.partition(" = ")
        lines.setdefault(lhs.strip(), rest.rpartition(" = ")[2] if " = " in rest else rest)
    for name, expected in case.values.items():
        assert name in lines, f"no line for {name} in:\n{out}"
        assert _shown(lines[name], expected), (name, lines[name], expected)
    for name, expected in case.grads.items():
        found = [lines[key] for key in _gradient_names(model.loss, name) if key in lines]
        assert found, f"no gradient line for {name} in:\n{out}"
        assert _shown(found[0], expected), (name, found[0], expected)


def _svg_nodes(path: Path) -> dict[str, list[str]]:
    """The texts of each value's box in a picture, by the value's name (its <title>)."""
    tree = ET.parse(path)
    ns = "{http://www.w3.org/2000/svg}"
    nodes = {}
    for g in tree.iter(f"{ns}g"):
        if "node" in (g.get("class") or "").split():
            title = g.find(f"{ns}title")
            if title is not None:
                nodes[title.text] = ["".join(t.itertext()) for t in g.iter(f"{ns}text")]
    return nodes


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_picture_at_the_lectures_values_shows_them(case, capsys, tmp_path):
    model = _compiled(case)
    svg = tmp_path / f"{case.spec}.svg"
    _run(capsys, "graph", LECTURES / f"{case.spec}.toml", "--at", case.at_argument, "-o", svg)
    nodes = _svg_nodes(svg)
    shown = case.shown or tuple(case.values) + tuple(case.grads)
    for name in shown:
        assert name in nodes, f"no box for {name}; boxes: {sorted(nodes)}"
        texts = [t.strip() for t in nodes[name]]
        if name in case.values:
            values = [t[1:].strip() for t in texts if t.startswith("=") and not re.match(r"=\s*[A-Za-z_]", t)]
            assert any(_shown(v, case.values[name]) for v in values), (name, texts)
        if name in case.grads:
            grads = [t.partition(" = ")[2] for t in texts if t.partition(" = ")[0] in _gradient_names(model.loss, name)]
            assert any(_shown(g, case.grads[name]) for g in grads), (name, texts)


@pytest.mark.parametrize("case", [c for c in CASES if c.at not in ("cnn_convolution_zeros",)], ids=lambda c: c.spec)
def test_the_backward_picture_is_written_and_names_the_leaves(case, capsys, tmp_path):
    model = _compiled(case)
    svg = tmp_path / f"{case.spec}_backward.svg"
    _run(capsys, "graph", LECTURES / f"{case.spec}.toml", "--backward", "-o", svg)
    # The picture may write names as mathematics: W̄₁ is the gradient of W1, phi₂ is phi2.
    text = " ".join(" ".join(texts) for texts in _svg_nodes(svg).values())
    text = re.sub("[\u0304\u0305]", "", text).translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg", "<!--"))
    for leaf in model.wrt:
        assert re.search(rf"\b{re.escape(leaf)}\b", text), (leaf, text)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_explorer_page_at_the_lectures_values_shows_them(case, capsys, tmp_path):
    page_path = tmp_path / f"{case.spec}.html"
    _run(capsys, "report", LECTURES / f"{case.spec}.toml", "--html", "--at", case.at_argument, "-o", page_path)
    page = page_path.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page, re.DOTALL).group(1))
    shown = case.shown or tuple(case.values) + tuple(case.grads)
    for name in shown:
        entry = data["values"][name]
        if name in case.values:
            assert _shown(entry["value"], case.values[name]), (name, entry)
        if name in case.grads:
            assert _shown(entry["gradient"], case.grads[name]), (name, entry)


def test_formulas_are_the_lectures():
    # F(x) = (2x + 3)^2: dF/dx = 4 (2x + 3), as the slide concludes, at several x.
    model = _compiled(Case("backprop_chain_rule", "x=1", {}, {}))
    m = model.load()
    for x in (-2.0, -1.5, 0.0, 0.25, 3.0):
        assert _close(m.gradients(x=x)[1]["x"], 4 * (2 * x + 3))
    # The two-layer chain: the code uses tanh' = 1 - tanh^2 and sigma' = sigma (1 - sigma), found from the
    # typed-out formulas, and L' with a + before its second term.
    model = _compiled(Case("backprop_two_layers", "x=1,y=0,w1=0.5,w2=2", {}, {}))
    assert "d_phi2 = (1 - y)/(1 - phi2) - y/phi2" in model.source
    assert "d_a2 = d_phi2*phi2*(1 - phi2)" in model.source
    assert "d_a1 = d_phi1*(1 - phi1**2)" in model.source


def test_weight_decay_step_is_the_lectures():
    # w - eta dL/dw = (1 - 2 eta alpha) w - eta dC/dw.
    v = VALUES["modules_weight_decay"]
    model = _compiled(Case("modules_weight_decay", "modules_weight_decay", {}, {}))
    _, grads = model.load().gradients(**v)
    eta = 0.5
    assert _close(v["w"] - eta * grads["w"], (1 - 2 * eta * v["alpha"]) * v["w"] - eta * v["dC_dw"])


@pytest.mark.parametrize("case", [c for c in CASES if "=" in c.at], ids=lambda c: c.spec)
def test_the_backward_picture_at_the_lectures_values_shows_the_gradients(case, capsys, tmp_path):
    model = _compiled(case)
    svg = tmp_path / f"{case.spec}_backward.svg"
    _run(capsys, "graph", LECTURES / f"{case.spec}.toml", "--backward", "--at", case.at_argument, "-o", svg)
    checked = set()
    for texts in _svg_nodes(svg).values():
        texts = [t.strip().translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")) for t in texts]
        for name in [n for n in case.grads if texts and texts[0] in _gradient_names(model.loss, n)]:
            values = [t[1:].strip() for t in texts[1:] if re.fullmatch(r"=\s*[-\d.e]+", t)]
            assert any(_shown(v, case.grads[name]) for v in values), (name, texts)
            checked.add(name)
    assert set(model.wrt) <= checked, (checked, model.wrt)
    # every gradient of a leaf differentiated has its box
    text = " ".join(t for texts in _svg_nodes(svg).values() for t in texts).translate(
        str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
    for leaf in model.wrt:
        assert f"∂{model.loss}/∂{leaf}" in text, (leaf, text)
