"""Matrix calculus: trace, diagonal, determinant, log-determinant, inverse, solve and Cholesky, one row
each with the closed-form derivative of the Matrix Cookbook built from IR nodes (so it prints, is
shape-checked and is differentiated again for a Hessian), and its forward-mode rule.

Operands are square matrices of a fixed size n, (n, n), or stacks of them (..., n, n) whose leading axes
may be the batch axis; a scalar result of a stack has the stack's shape (...). The rules, with Y the
row's value and bars the adjoints:

    tr X          X̄ = ȳ I                          d tr X = tr dX
    det X         X̄ = ȳ y X^{-T}                   d det X = det X tr(X^{-1} dX)
    log det X     X̄ = ȳ X^{-T}                     d log det X = tr(X^{-1} dX)
    X^{-1}        X̄ = -Yᵀ Ȳ Yᵀ                     dY = -Y dX Y
    A^{-1} b      b̄ = A^{-T} x̄,  Ā = -b̄ xᵀ         dx = A^{-1}(db - dA x)
    chol A = L    Ā = ½(S + Sᵀ), S = L^{-T} Φ(Lᵀ L̄) L^{-1}     dL = L Φ(L^{-1} dA L^{-T})

Φ keeps the lower triangle and halves the diagonal. Cholesky reads only the lower triangle of A, which
is taken to be symmetric: its gradient is the symmetric one PyTorch's torch.linalg.cholesky gives.
log det of a matrix whose determinant is negative is NaN, as torch.logdet; det 0 gives -inf. The
derivative rules use X^{-1}: at a singular matrix they give inf or NaN, never a finite wrong number.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..formulas.latex import group, inverse, latex_operator
from ..formulas.printing import number_text
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, format_shape, shapes_text
from .linalg import swap_last
from .shape import reshape
from .table import Op, like, register


def _square(what: str, shape: tuple) -> int:
    """n of a square matrix (n, n) of fixed size, or of a stack (..., n, n); anything else is refused."""
    if len(shape) < 2 or shape[-1] != shape[-2] or not isinstance(shape[-1], int) or isinstance(shape[-1], bool):
        raise ShapeError(f"{what}: expects a square matrix (n, n) of fixed size n, or a stack (..., n, n) of them, "
                         f"got shape {format_shape(shape)}")
    return shape[-1]


def _matrix_rule(what: str, scalar: bool) -> callable:
    """The shape rule of an op of a square matrix: a scalar per matrix, or a matrix of the same shape."""
    def rule(shapes: tuple, attrs: dict) -> Shape:
        _square(what, shapes[0])
        return shapes[0][:-2] if scalar else shapes[0]
    return rule


def _times(g: Node, x: Node) -> Node:
    """g ⊙ x, or x itself for the seed 1 of a loss that is this value."""
    return x if g.op == "const" and g.attr("value") == 1 else apply("mul", g, x)


def _scale(g: Node, matrix: Node) -> Node:
    """g ⊙ matrix for g one number per matrix of a stack: g's axes (...) and two of size 1."""
    return _times(g if g.ndim == 0 else reshape(g, g.shape + (1, 1)), matrix)


def _inverse_transposed(x: Node) -> Node:
    """X^{-T}, as (X^{-1})ᵀ: the inverse is the forward's own where the graph computes one."""
    return swap_last(apply("inv", x))


def _tr_inv_times(x: Node, t: Node) -> Node:
    """tr(X^{-1} dX), the derivative of log det X along dX."""
    return apply("trace", apply("matmul", apply("inv", x), t))


def _call(name: str) -> callable:
    return lambda node, args: f"{name}({', '.join(str(a) for a in args)})"


register(Op(name="trace", arity=1, shape=_matrix_rule("trace", True),
            emit=lambda node, args: f"xp.linalg.trace({args[0]})",
            vjp=lambda node, g: (apply("scaled_identity", g, node.inputs[0]),),
            jvp=lambda node, t: None if t[0] is None else apply("trace", t[0]),
            text=_call("trace"), latex=lambda node, args: latex_operator("tr", args)))


def _scaled_identity_emit(node: Node, args: tuple) -> str:
    g, x = node.inputs
    eye = f"xp.eye({x.shape[-1]}, dtype={args[1]}.dtype)"
    if g.op == "const":  # the seed of a loss that is a trace: the identity itself
        return eye if g.attr("value") == 1 else f"{number_text(g.attr('value'))} * {eye}"
    return f"{args[0]} * {eye}" if g.ndim == 0 else f"{args[0]}[..., None, None] * {eye}"


def _scaled_identity_latex(node: Node, args: tuple) -> str:
    g, x = node.inputs
    eye = f"I_{{{x.shape[-1]}}}"
    return eye if g.op == "const" and g.attr("value") == 1 else f"{group(args[0])} {eye}"


def _scaled_identity_text(node: Node, args: tuple) -> str:
    g, x = node.inputs
    eye = f"eye({x.shape[-1]})"
    return eye if g.op == "const" and g.attr("value") == 1 else f"{args[0]} * {eye}"


# g I_n, g one number per matrix of X's (a stack's: g (...), I_n beside each) (the gradient of tr X).
# X gives n and the dtype; no gradient flows to it.
register(Op(name="scaled_identity", arity=2, shape=lambda shapes, attrs: tuple(shapes[1]),
            emit=_scaled_identity_emit, latex=_scaled_identity_latex,
            vjp=lambda node, g: (apply("trace", g), None),
            jvp=lambda node, t: None if t[0] is None else apply("scaled_identity", t[0], node.inputs[1]),
            text=_scaled_identity_text))


def _diagonal_shape(shapes: tuple, attrs: dict) -> Shape:
    n = _square("diag", shapes[0])
    return shapes[0][:-2] + (n,)


register(Op(name="diagonal", arity=1, shape=_diagonal_shape,
            emit=lambda node, args: f"xp.linalg.diagonal({args[0]})",
            vjp=lambda node, g: (apply("diag_embed", g),),
            jvp=lambda node, t: None if t[0] is None else apply("diagonal", t[0]),
            text=_call("diagonal"), latex=lambda node, args: latex_operator("diag", args)))


def _diag_embed_shape(shapes: tuple, attrs: dict) -> Shape:
    (v,) = shapes
    if not v or not isinstance(v[-1], int) or isinstance(v[-1], bool):
        raise ShapeError(f"diag: a diagonal matrix is made of a vector of fixed length, got shape {format_shape(v)}")
    return tuple(v) + (v[-1],)


# The diagonal matrix (..., n, n) of a vector (..., n); Diag, capitalised, as the reader tells it from diag.
register(Op(name="diag_embed", arity=1, shape=_diag_embed_shape,
            emit=lambda node, args: f"{args[0]}[..., None] * xp.eye({node.shape[-1]}, dtype={args[0]}.dtype)",
            vjp=lambda node, g: (apply("diagonal", g),),
            jvp=lambda node, t: None if t[0] is None else apply("diag_embed", t[0]),
            text=_call("diag_embed"), latex=lambda node, args: latex_operator("Diag", args)))


def _det_latex(prefix: str) -> callable:
    def latex(node: Node, args: tuple) -> str:
        grouped = group(args[0])
        return f"{prefix} {grouped}" if grouped == args[0] and "^" not in grouped else rf"{prefix}\left({args[0]}\right)"
    return latex


register(Op(name="det", arity=1, shape=_matrix_rule("det", True),
            emit=lambda node, args: f"xp.linalg.det({args[0]})",
            vjp=lambda node, g: (_scale(_times(g, node), _inverse_transposed(node.inputs[0])),),
            jvp=lambda node, t: None if t[0] is None else apply("mul", node, _tr_inv_times(node.inputs[0], t[0])),
            text=_call("det"), latex=_det_latex(r"\det")))

# log det X through slogdet (no overflow of det itself); NaN where det X < 0, as torch.logdet.
register(Op(name="logdet", arity=1, shape=_matrix_rule("logdet", True),
            emit=lambda node, args: f"_logdet(xp, {args[0]})",
            vjp=lambda node, g: (_scale(g, _inverse_transposed(node.inputs[0])),),
            jvp=lambda node, t: None if t[0] is None else _tr_inv_times(node.inputs[0], t[0]),
            text=_call("logdet"), latex=_det_latex(r"\log \det")))


def _inv_vjp(node: Node, g: Node) -> tuple:
    """X̄ = -Yᵀ Ȳ Yᵀ, Y = X^{-1} (the Cookbook's ∂X^{-1} = -X^{-1} (∂X) X^{-1}, transposed)."""
    y = swap_last(node)
    return (apply("neg", apply("matmul", apply("matmul", y, g), y)),)


register(Op(name="inv", arity=1, shape=_matrix_rule("inv", False),
            emit=lambda node, args: f"xp.linalg.inv({args[0]})", vjp=_inv_vjp, inlined=True,
            jvp=lambda node, t: None if t[0] is None else apply("neg", apply("matmul", apply("matmul", node, t[0]), node)),
            text=_call("inv"), latex=lambda node, args: inverse(args[0])))


def _solve_shape(shapes: tuple, attrs: dict) -> Shape:
    a, b = shapes
    n = _square("solve", a)
    vector = len(a) == 2 and len(b) == 1 and b[0] == n
    matrix = len(b) == len(a) and tuple(b[:-2]) == tuple(a[:-2]) and b[-2] == n
    if not (vector or matrix):
        raise ShapeError(f"solve: shapes {shapes_text(shapes)} do not fit: b must be a vector ({n},) beside a matrix "
                         f"({n}, {n}), or ({', '.join(str(d) for d in (*a[:-2], n))}, k) with A's leading axes "
                         "(write a stack of vectors as a stack of (n, 1) matrices)")
    return tuple(b)


def _solve_vjp(node: Node, g: Node) -> tuple:
    """b̄ = A^{-T} x̄, Ā = -b̄ xᵀ (an outer product for a vector b)."""
    a, b = node.inputs
    db = apply("solve", swap_last(a), g)
    da = apply("outer", db, node) if b.ndim == 1 else apply("matmul", db, swap_last(node))
    return apply("neg", da), db


def _solve_jvp(node: Node, tangents: tuple) -> Node | None:
    """dx = A^{-1}(db - dA x)."""
    ta, tb = tangents
    if ta is None and tb is None:
        return None
    moved = None if ta is None else apply("matmul", ta, node)
    rhs = tb if moved is None else apply("neg", moved) if tb is None else apply("sub", tb, moved)
    return apply("solve", node.inputs[0], rhs)


register(Op(name="solve", arity=2, shape=_solve_shape,
            emit=lambda node, args: f"xp.linalg.solve({args[0]}, {args[1]})", vjp=_solve_vjp, jvp=_solve_jvp,
            text=_call("solve"), latex=lambda node, args: f"{inverse(args[0])} {group(args[1])}"))


def _cholesky_vjp(node: Node, g: Node) -> tuple:
    """Ā = ½(S + Sᵀ), S = L^{-T} Φ(Lᵀ L̄) L^{-1}: the symmetric gradient (A is read as symmetric)."""
    m = apply("inv", node)
    s = apply("matmul", apply("matmul", swap_last(m), apply("phi", apply("matmul", swap_last(node), g))), m)
    return (apply("mul", 0.5, apply("add", s, swap_last(s))),)


def _cholesky_jvp(node: Node, tangents: tuple) -> Node | None:
    """dL = L Φ(L^{-1} dA L^{-T})."""
    if tangents[0] is None:
        return None
    m = apply("inv", node)
    return apply("matmul", node, apply("phi", apply("matmul", apply("matmul", m, tangents[0]), swap_last(m))))


register(Op(name="cholesky", arity=1, shape=_matrix_rule("cholesky", False),
            emit=lambda node, args: f"xp.linalg.cholesky({args[0]})", vjp=_cholesky_vjp, jvp=_cholesky_jvp,
            text=_call("cholesky"), latex=lambda node, args: latex_operator("chol", args)))

# Φ(X): the lower triangle of X with its diagonal halved; linear and its own adjoint (a fixed mask).
register(Op(name="phi", arity=1, shape=like(0),
            emit=lambda node, args: f"0.5 * (xp.tril({args[0]}) + xp.tril({args[0]}, k=-1))",
            vjp=lambda node, g: (apply("phi", g),),
            jvp=lambda node, t: None if t[0] is None else apply("phi", t[0]),
            text=_call("phi"), latex=lambda node, args: rf"\Phi\left({args[0]}\right)"))
