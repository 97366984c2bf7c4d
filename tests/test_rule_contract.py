"""The sweep holds every derivative rule to its contract: one piece (or None) per operand, each of
its operand's shape. A broken rule is an error naming the op, never a silently zero gradient."""
import dataclasses

import pytest

import graphcomp as gc
from graphcomp.errors import DifferentiationError
from graphcomp.ir import OPS


@pytest.fixture
def broken_mul(monkeypatch):
    def use(rule):
        monkeypatch.setitem(OPS, "mul", dataclasses.replace(OPS["mul"], vjp=rule))
    return use


def product():
    g = gc.Graph("product")
    a, b = g.input("a"), g.input("b")
    g.output("f", a * b)
    return g


def test_a_rule_that_gives_too_few_pieces_is_named(broken_mul):
    broken_mul(lambda node, g: (g * node.inputs[1],))  # forgot the second operand
    with pytest.raises(DifferentiationError, match=r"rule of op 'mul' gave 1 piece\(s\) for 2 operand\(s\)"):
        gc.compile(product(), wrt=["a", "b"], simplify=False)


def test_a_rule_that_gives_a_wrong_shape_or_type_is_named(broken_mul):
    g = gc.Graph("scaled")
    x, w = g.input("x", (None, 3)), g.param("w", (3,))
    g.output("loss", gc.sum(x * w))
    broken_mul(lambda node, g: (g, g))  # the gradient of w must be summed over the batch
    with pytest.raises(DifferentiationError, match=r"rule of op 'mul' gave shape \(None, 3\) for operand 1, of shape \(3,\)"):
        gc.compile(g, simplify=False)
    broken_mul(lambda node, g: (g, 2.0))
    with pytest.raises(DifferentiationError, match="rule of op 'mul' gave float for operand 1"):
        gc.compile(product(), wrt=["a", "b"], simplify=False)


def test_the_intact_rule_gives_both_gradients():
    m = gc.compile(product(), wrt=["a", "b"]).load()
    assert m.gradients(a=2.0, b=3.0)[1] == {"a": 3.0, "b": 2.0}
