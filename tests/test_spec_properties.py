"""Property-based tests of the command line's contract: whatever expression a spec holds, compiling it
either writes a module that compiles, or prints one line naming the file and exits 2 — never a
traceback, never a half-written file."""
import py_compile
import tomllib

import graphcomp as gc
from graphcomp.frontend.spec import build
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphcomp.frontend.cli import main

NAMES = st.sampled_from(["x", "W", "labels", "q", "v", "__class__", "None", "True"])
NUMBERS = st.sampled_from(["0", "1", "-2", "0.5", "1e308", "3", "(1, 2)", "(None, 3)", "-1", "(None, -1)", "(-1, 3)"])
FUNCTIONS = st.sampled_from(["sum", "mean", "max", "softmax", "log_softmax", "logsumexp", "tanh", "exp", "log",
                             "relu", "reshape", "flatten", "transpose", "concat", "conv2d", "max_pool2d",
                             "softmax_cross_entropy", "mse", "fft", "__import__", "eval", "leaky_relu", "dropout"])
KEYWORDS = st.sampled_from(["", ", axis=0", ", axis=-1", ", axis=(0, 1)", ", keepdims=True", ", slope=0.1",
                            ", axis='a'", ", padding=1", ", stride=0", ", slope='nan'", ", slope=-1e999",
                            ", keepdims='no'", ", axis=1.5", ", rate=True", ", rate=0.5"])


def expressions():
    leaves = st.one_of(NAMES, NUMBERS)
    return st.recursive(leaves, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" + ", " - ", " * ", " / ", " ** ", " @ "]), inner).map("".join),
        st.tuples(FUNCTIONS, inner, KEYWORDS).map(lambda t: f"{t[0]}({t[1]}{t[2]})"),
        st.tuples(st.sampled_from(["-", "(", ""]), inner).map(lambda t: t[0] + t[1] + (")" if t[0] == "(" else "")),
        st.tuples(inner, st.sampled_from(["[0]", "[:, 1:2]", "[..., 0]", ".T", "[5]", "["])).map("".join),
    ), max_leaves=8)


SPEC = """[model]
name = "fuzz"
[inputs]
x = ["N", 3]
labels = {{ shape = ["N"], classes = 3 }}
[params]
W = {{ shape = [3, 3] }}
[outputs]
loss = {loss}
"""


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expression=expressions())
def test_any_expression_compiles_or_gets_one_line(tmp_path, capsys, expression):
    spec = tmp_path / "fuzz.toml"
    out = tmp_path / "fuzz_model.py"
    out.unlink(missing_ok=True)
    spec.write_text(SPEC.format(loss='"' + expression.replace('"', "'") + '"'))
    code = main(["compile", str(spec), "-o", str(out)])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith(f"graphcomp: error: {spec}: "), err
        assert not out.exists()
    else:
        py_compile.compile(str(out), doraise=True)


@st.composite
def dags(draw):
    """[nodes] entries n0, n1, ..., each built from the input x or one or two earlier entries (two
    equal expressions would be one value, named by whichever is read first)."""
    entries = []
    for k in range(draw(st.integers(1, 25))):
        used = draw(st.lists(st.sampled_from(["x"] + [f"n{j}" for j in range(k)]), min_size=1, max_size=2))
        op = draw(st.sampled_from(["tanh({0})", "{0} * 0.5", "{0} + x", "exp(-{0})"]))
        entries.append((f"n{k}", f"{op.format(' + '.join(used))} + {k + 1}"))  # no two alike: each gets its name
    return entries


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(entries=dags(), order=st.randoms(use_true_random=False))
def test_nodes_in_any_order_give_the_same_module(entries, order):
    def spec(listed):
        return build(tomllib.loads("[inputs]\nx = [\"N\", 2]\n[nodes]\n" + "".join(f'{n} = "{e}"\n' for n, e in listed)
                                   + f'[outputs]\nloss = "sum({entries[-1][0]})"\n'), "dag.toml")
    shuffled = list(entries)
    order.shuffle(shuffled)
    sources = [gc.compile(spec(listed).graph, wrt=["x"], simplify=False).source for listed in (entries, shuffled)]
    assert sources[0] == sources[1]
