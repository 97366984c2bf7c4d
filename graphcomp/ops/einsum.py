"""einsum: a sum of products over named indices, `einsum("ij,jk->ik", A, B)`, with its derivative rule.

Specs are explicit: one term of letters per operand, `->`, and the output's letters. Each letter is one
axis; a letter shared by two operands must have one size there; a letter left out of the output is
summed over. Refused, each with its own error: a spec without `->`, an ellipsis, anything but letters,
a letter repeated within one term (a diagonal: take gc.diag first) or within the output, an output
letter no operand has, and a term whose length is not its operand's number of axes.

The derivative of operand k is the einsum of the adjoint with every other operand, written to k's own
term; a letter only k has (summed over in k alone, as `ij->i` sums rows) is missing from that einsum,
so its result is spread back along that axis. Forward mode is one einsum per operand with a tangent.
The Array API standard has no einsum: the generated code calls `_einsum`, which uses the library's own
einsum where it has one (NumPy, PyTorch, JAX) and otherwise lines every operand up on the axes of all
letters and multiplies and sums with standard functions only.
"""
from __future__ import annotations

import re
from typing import Optional

from ..errors import GraphError, ShapeError
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, format_shape
from .table import Op, register


def parse(spec: str, shapes: tuple) -> tuple[list[str], str, dict[str, object]]:
    """(the operands' terms, the output's term, each letter's size) of a spec, checked against the
    operands' shapes; every problem is a GraphError (the spec) or a ShapeError (the shapes) naming it."""
    if not isinstance(spec, str):
        raise GraphError(f"einsum: the spec must be a string such as \"ij,jk->ik\", got {spec!r}")
    text = spec.replace(" ", "")
    if "->" not in text:
        raise GraphError(f"einsum: spec {spec!r} has no '->': write the output's indices explicitly, as \"ij,jk->ik\"")
    if "." in text:
        raise GraphError(f"einsum: spec {spec!r} has an ellipsis; write every axis's index")
    inputs, output = text.split("->", 1)
    terms = inputs.split(",")
    if not re.fullmatch(r"[A-Za-z]*(,[A-Za-z]*)*->[A-Za-z]*", text):
        raise GraphError(f"einsum: spec {spec!r} must be terms of letters separated by commas, '->', and letters")
    if len(terms) != len(shapes):
        raise GraphError(f"einsum: spec {spec!r} has {len(terms)} operand term(s) but {len(shapes)} operand(s) are given")
    for k, term in enumerate(terms):
        repeated = sorted({c for c in term if term.count(c) > 1})
        if repeated:
            raise GraphError(f"einsum: index {repeated[0]!r} repeats within operand {k} ({term!r}): diagonals are not "
                             "supported; take gc.diag(x) first")
    if len(set(output)) != len(output):
        raise GraphError(f"einsum: the output {output!r} of spec {spec!r} repeats an index")
    missing = sorted(set(output) - set(inputs))
    if missing:
        raise GraphError(f"einsum: output index {missing[0]!r} of spec {spec!r} belongs to no operand")
    return terms, output, _sizes(spec, terms, shapes)


def _sizes(spec: str, terms: list[str], shapes: tuple) -> dict[str, object]:
    sizes: dict[str, object] = {}
    for k, (term, shape) in enumerate(zip(terms, shapes)):
        if len(term) != len(shape):
            raise ShapeError(f"einsum: term {term!r} of spec {spec!r} names {len(term)} axes, but operand {k} has "
                             f"shape {format_shape(shape)}")
        for letter, size in zip(term, shape):
            if sizes.setdefault(letter, size) != size:
                raise ShapeError(f"einsum: index {letter!r} of spec {spec!r} has size {_size(sizes[letter])} in one "
                                 f"operand and {_size(size)} in operand {k}")
    return sizes


def _size(d: object) -> str:
    return "None (the batch axis)" if d is None else str(d)


def _canonical(attrs: dict, shapes: tuple) -> dict:
    terms, output, _ = parse(attrs.get("spec"), shapes)
    return {"spec": ",".join(terms) + "->" + output}


def _shape(shapes: tuple, attrs: dict) -> Shape:
    _, output, sizes = parse(attrs["spec"], shapes)
    return tuple(sizes[c] for c in output)


def _vjp(node: Node, g: Node) -> tuple:
    terms, output, _ = parse(node.attr("spec"), tuple(x.shape for x in node.inputs))
    pieces = []
    for k, x in enumerate(node.inputs):
        others = [(t, y) for j, (t, y) in enumerate(zip(terms, node.inputs)) if j != k]
        seen = set(output).union(*(t for t, _ in others))
        kept = "".join(c for c in terms[k] if c in seen)
        spec = ",".join([output] + [t for t, _ in others]) + "->" + kept
        piece = apply("einsum", g, *(y for _, y in others), spec=spec)
        if kept != terms[k]:  # letters only x has: spread back along their axes
            lone = tuple(i for i, c in enumerate(terms[k]) if c not in seen)
            piece = apply("broadcast_like", piece, x, axis=lone)
        pieces.append(piece)
    return tuple(pieces)


def _jvp(node: Node, tangents: tuple) -> Optional[Node]:
    total = None
    for k, t in enumerate(tangents):
        if t is not None:
            term = apply("einsum", *(t if j == k else x for j, x in enumerate(node.inputs)), spec=node.attr("spec"))
            total = term if total is None else apply("add", total, term)
    return total


def _latex(node: Node, args: tuple) -> str:
    inputs, output = node.attr("spec").split("->")
    return rf"\operatorname{{einsum}}_{{{inputs} \to {output}}}\left(" + ", ".join(str(a) for a in args) + r"\right)"


register(Op(name="einsum", arity=None, shape=_shape, canonical=_canonical,
            emit=lambda node, args: f"_einsum(xp, \"{node.attr('spec')}\", {', '.join(str(a) for a in args)})",
            vjp=_vjp, jvp=_jvp,
            text=lambda node, args: f"einsum(\"{node.attr('spec')}\", {', '.join(str(a) for a in args)})",
            latex=_latex))
