"""The op table's rows: attributes are canonical when a node is made, so equal computations are one node."""
import graphcomp as gc
from graphcomp.ir import OPS, apply


def test_a_negative_axis_is_the_same_sum():
    g = gc.Graph("canon")
    x = g.input("x", shape=(None, 3))
    assert gc.sum(x, axis=-1) is gc.sum(x, axis=1)
    assert gc.sum(x, axis=(1, 0)) is gc.sum(x, axis=[0, 1]) is gc.sum(x, axis=(-1, 0))
    assert gc.sum(x, axis=(1,)) is gc.sum(x, axis=1)
    assert gc.mean(x, axis=-2, keepdims=True) is gc.mean(x, axis=0, keepdims=True)
    assert gc.max(x, axis=1) is not gc.max(x, axis=1, keepdims=True)
    assert gc.softmax(x, axis=-1) is gc.softmax(x, axis=1)
    assert gc.concat([x, x], axis=-1) is gc.concat([x, x], axis=1)


def test_defaults_are_filled_in():
    g = gc.Graph("canon")
    x = g.input("x", shape=(None, 3))
    assert gc.sum(x, axis=0) is apply("sum", x, axis=0)  # keepdims=False filled in
    assert gc.sum(x).attr("keepdims") is False and gc.sum(x).attr("axis") is None


def test_the_generated_code_computes_a_shared_sum_once():
    g = gc.Graph("canon")
    x = g.input("x", shape=(None, 3))
    g.output("y", gc.sum(x, axis=-1) * gc.sum(x, axis=1))
    for simplify in (False, True):
        source = gc.compile(g, wrt=["x"], runtime=False, simplify=simplify).source
        forward = source.split("def forward", 1)[1].split("def gradients", 1)[0]
        assert forward.count("xp.sum(") == 1, forward


def test_every_row_is_registered_under_its_name():
    assert all(name == op.name for name, op in OPS.items())
