"""Property-based tests of the command line's contract: whatever expression a spec holds, compiling it
either writes a module that compiles, or prints one line naming the file and exits 2 — never a
traceback, never a half-written file."""
import py_compile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphcomp.frontend.cli import main

NAMES = st.sampled_from(["x", "W", "labels", "q", "v", "__class__", "None", "True"])
NUMBERS = st.sampled_from(["0", "1", "-2", "0.5", "1e308", "3", "(1, 2)", "(None, 3)", "-1"])
FUNCTIONS = st.sampled_from(["sum", "mean", "max", "softmax", "log_softmax", "logsumexp", "tanh", "exp", "log",
                             "relu", "reshape", "flatten", "transpose", "concat", "conv2d", "max_pool2d",
                             "softmax_cross_entropy", "mse", "fft", "__import__", "eval"])
KEYWORDS = st.sampled_from(["", ", axis=0", ", axis=-1", ", axis=(0, 1)", ", keepdims=True", ", slope=0.1",
                            ", axis='a'", ", padding=1", ", stride=0"])


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
