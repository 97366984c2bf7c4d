r"""An independent reader of graphcomp's printed LaTeX: it parses the text and evaluates it with NumPy.

It shares no code with the renderer: it knows the notation only as the README states it, so a
formula that prints wrong (a dropped step, a product read the wrong way, an undefined symbol)
evaluates to a wrong number, or fails to parse, and the test comparing it with the generated
module's gradients fails.

Notation: juxtaposition is the matrix product (a plain product where an operand is a scalar);
a b^T of two vectors is their outer product; ⊙ and · are elementwise products; 1^T A sums over
the first axis; 1_x is ones shaped like x; I_n the n×n identity; 1[c] is 1 where c holds; N is the batch size; named
operators carry their axes, shape or settings as a subscript. \sigma is the logistic function, and
\sigma with a subscript (\sigma_{x}, a norm's standard deviation) a symbol.

Loops: T is the number of steps. An equation whose left side is indexed by t (h_{t}, \bar{h}_{t-1},
\delta_{t}^{(2)}) holds at every step t (or at those its `\qquad t = 1, \dots, T` says), so h_{3} is
its right side with t = 3; T in an index is the number of steps (h_{T}). `A = \operatorname{stack}_{
\text{axis } a}(s_{1}, \dots, s_{T})` says that s_{t} is A's t-th slice along axis a (A known), or
what A is (A otherwise). `\sum_{t=1}^{T} {...}` sums the group over the steps.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np


class ReadError(Exception):
    """The text is not in the documented notation."""


def equations(latex: str) -> list[tuple[str, str]]:
    """(lhs, rhs) pairs of one formula: `a = b`, or an aligned block of `a &= b` lines."""
    body = latex.strip()
    if body.startswith(r"\begin{aligned}"):
        body = body[len(r"\begin{aligned}"):-len(r"\end{aligned}")]
        lines = [line.strip() for line in re.split(r"\\\\\n?", body) if line.strip()]
        pairs = [line.split("&=", 1) for line in lines]
    else:
        pairs = [body.split(" = ", 1)]
    if any(len(p) != 2 for p in pairs):
        raise ReadError(f"not an equation: {latex!r}")
    return [(_canonical(lhs), rhs.strip()) for lhs, rhs in pairs]


def _canonical(symbol: str) -> str:
    return re.sub(r"\s+", "", symbol)


class Reader:
    """Evaluates equations given the leaves' arrays; symbols defined by other equations are
    evaluated on demand."""

    def __init__(self, values: dict[str, np.ndarray], batch: int, steps: int | None = None) -> None:
        self.values = {_canonical(k): np.asarray(v, dtype=float) for k, v in values.items()}
        self.batch, self.steps = batch, steps
        self.definitions: dict[str, str] = {}
        self.templates: list[tuple[re.Pattern, int, str, tuple | None]] = []  # (left side, offset, right side, steps)
        self.stacks: dict[str, tuple[str, int]] = {}   # element stem -> (array, axis)
        self.stacked: dict[str, list[str]] = {}         # array -> stack(s_1, ..., s_T), one or more
        # a user's own op (gc.custom_op), printed \operatorname{name}(x, ...): name -> the NumPy function it is
        self.functions: dict[str, Callable] = {}
        self._busy: set[str] = set()

    def define(self, pairs: list[tuple[str, str]]) -> None:
        for lhs, rhs in pairs:
            rhs, span = self._span(rhs)
            stack = _STACK.fullmatch(rhs.strip())
            if stack:  # defines the steps' values (A known) or A (read when A has no other definition)
                self.stacks[stack.group(2) + "|" + stack.group(3)] = (lhs, int(stack.group(1)))
                self.stacked.setdefault(lhs, []).append(rhs)
                continue
            template = re.search(r"_\{t([+-]\d+)?\}", lhs)
            if template:
                pattern = re.compile(re.escape(lhs[:template.start()]) + r"_\{(-?\d+)\}" + re.escape(lhs[template.end():]))
                self.templates.append((pattern, int(template.group(1) or 0), rhs, span))
                continue
            lhs = self._concrete(lhs)
            if lhs in self.definitions and self.definitions[lhs] != rhs:
                raise ReadError(f"{lhs} is defined twice, differently")
            self.definitions[lhs] = rhs

    def _span(self, rhs: str) -> tuple[str, tuple | None]:
        """The right side without its `\\qquad t = a, \\dots, b`, and (a, b) as numbers."""
        match = re.search(r"\\qquad\s*t\s*=\s*([^,]+),\s*\\dots,\s*(.+)$", rhs)
        if not match:
            return rhs, None
        ends = sorted(self._index(match.group(k)) for k in (1, 2))
        if {match.group(1).strip(), match.group(2).strip()} == {"1", "T"}:
            ends = [1, self.steps]  # "T, ..., 1" as "1, ..., T": no step at all when T = 0
        return rhs[:match.start()], tuple(ends)

    def _index(self, text: str) -> int:
        match = re.fullmatch(r"\s*(T|\d+)\s*(?:([+-])\s*(\d+))?\s*", text)
        if not match or (match.group(1) == "T" and self.steps is None):
            raise ReadError(f"not a step: {text!r}")
        base = self.steps if match.group(1) == "T" else int(match.group(1))
        return base + (int(match.group(3)) * (1 if match.group(2) == "+" else -1) if match.group(2) else 0)

    def _concrete(self, symbol: str) -> str:
        """A symbol with T in its index written as a number: h_{T} is h_{5} for 5 steps."""
        if self.steps is None:
            return symbol
        return re.sub(r"_\{(T(?:[+-]\d+)?)\}", lambda m: f"_{{{self._index(m.group(1))}}}", symbol)

    def _by_time(self, symbol: str) -> str | None:
        """The right side that defines a symbol at a step (h_{3}), with t written as its number."""
        for pattern, offset, rhs, span in self.templates:
            match = pattern.fullmatch(symbol)
            if match:
                t = int(match.group(1)) - offset
                if span is None or span[0] <= t <= span[1]:
                    return bind(rhs, t)
        return None

    def _sliced(self, symbol: str) -> np.ndarray | None:
        """s_{k} of a stacked array A = stack(s_1, ..., s_T): A's k-th slice along its axis."""
        match = re.fullmatch(r"(.*)_\{(\d+)\}(.*)", symbol)
        if not match or match.group(1) + "|" + match.group(3) not in self.stacks:
            return None
        array, axis = self.stacks[match.group(1) + "|" + match.group(3)]
        return np.take(self.value(array), int(match.group(2)) - 1, axis=axis)

    def _stack_of(self, array: str) -> str:
        """The stack that defines an array: of steps defined at every t (an array may also be written as
        the stack of steps it defines, s_t = A's t-th slice)."""
        for rhs in self.stacked[array]:
            first = re.search(r"\\left\((.+?)_\{1\}(\S*),", rhs)
            if any(pattern.fullmatch(f"{first.group(1)}_{{1}}{first.group(2)}") for pattern, _, _, _ in self.templates):
                return rhs
        return self.stacked[array][0]

    def value(self, symbol: str) -> np.ndarray:
        symbol = self._concrete(_canonical(symbol))
        if symbol in self.values:
            return self.values[symbol]
        if symbol not in self.definitions:
            by_time = self._by_time(symbol)
            if by_time is not None or symbol in self.stacked:
                self.definitions[symbol] = by_time if by_time is not None else self._stack_of(symbol)
            else:
                sliced = self._sliced(symbol)
                if sliced is None:
                    raise ReadError(f"undefined symbol {symbol}")
                self.values[symbol] = sliced
                return sliced
        if symbol in self._busy:
            raise ReadError(f"{symbol} is defined in terms of itself")
        self._busy.add(symbol)
        self.values[symbol] = np.asarray(self.evaluate(self.definitions[symbol]), dtype=float)
        self._busy.discard(symbol)
        return self.values[symbol]

    def evaluate(self, text: str) -> np.ndarray:
        parser = _Parser(text, self)
        result = parser.expression()
        parser.skip()
        if parser.pos != len(text):
            raise ReadError(f"cannot read {text[parser.pos:]!r} in {text!r}")
        return result


# ---------------------------------------------------------------- the parser

_STACK = re.compile(r"\\operatorname\{stack\}_\{\\text\{axis \}\s*(\d+)\}\\left\((.+?)_\{1\}(\S*),\s*\\dots,\s*\2_\{T\}\3\\right\)")


def bind(text: str, t: int) -> str:
    """`text` at step t: every index t, t-1, t+1 written as its number."""
    return re.sub(r"_\{\s*t\s*(?:([+-])\s*(\d+))?\s*\}",
                  lambda m: f"_{{{t + (int(m.group(2)) * (1 if m.group(1) == '+' else -1) if m.group(1) else 0)}}}", text)


_SYMBOL = re.compile(r"(\\bar\{(?:\\hat\{[A-Za-z]\}|\\[A-Za-z]+|[A-Za-z])\}|\\overline\{\\mathrm\{\w+\}\}|\\mathrm\{\w+\}"
                     r"|\\hat\{[A-Za-z]\}|\\(?:alpha|beta|gamma|delta|epsilon|lambda|mu|nu|phi|psi|rho|tau|theta|omega|sigma(?=_)|Sigma|Lambda|Gamma|Delta|Theta|Omega)"
                     r"(?![A-Za-z])|[A-Za-df-zA-Z](?![A-Za-z]))(_\{[^{}]*\})?(\^\{\(\d+\)\})?")
# ∂F/∂a_{1}: how a graph of scalars writes a gradient; read as one symbol, like \bar{a}_{1}
_PARTIAL = re.compile(r"\\frac\{\\partial [^{}]+\}\{\\partial (?:[^{}]|\{[^{}]*\})+\}")
_FUNCTIONS: dict[str, Callable] = {
    "tanh": np.tanh, "exp": np.exp, "log": np.log, "sigma": lambda x: 1 / (1 + np.exp(-x)),
    "operatorname{softplus}": lambda x: np.logaddexp(0, x), "operatorname{sign}": np.sign,
    # the trigonometric and hyperbolic functions, as every textbook writes them (\arcsin, not asin)
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh,
    "arcsin": np.arcsin, "arctan": np.arctan,
}
# \sinh before \sin, \tanh before \tan: the longest name first
_FUNCTION_NAMES = r"\\(tanh|sinh|cosh|arcsin|arctan|sin|cos|tan|exp|log|sigma(?!_)|operatorname\{softplus\}|operatorname\{sign\})"


class _Parser:
    def __init__(self, text: str, reader: Reader) -> None:
        self.text, self.pos, self.reader = text, 0, reader

    # ---- scanning
    def skip(self) -> None:
        while True:
            match = re.match(r"\s+|\\[,;!]|\\ ", self.text[self.pos:])
            if not match:
                return
            self.pos += match.end()

    def peek(self, pattern: str) -> re.Match | None:
        self.skip()
        return re.match(pattern, self.text[self.pos:])

    def take(self, pattern: str) -> re.Match | None:
        match = self.peek(pattern)
        if match:
            self.pos += match.end()
        return match

    def expect(self, pattern: str) -> re.Match:
        match = self.take(pattern)
        if not match:
            raise ReadError(f"expected {pattern!r} at {self.text[self.pos:self.pos + 30]!r} in {self.text!r}")
        return match

    def braced(self) -> str:
        """The raw text of a {...} group."""
        self.expect(r"\{")
        depth, start = 1, self.pos
        while depth:
            if self.pos >= len(self.text):
                raise ReadError(f"unbalanced braces in {self.text!r}")
            depth += {"{": 1, "}": -1}.get(self.text[self.pos], 0)
            self.pos += 1
        return self.text[start:self.pos - 1]

    def sub(self, text: str) -> np.ndarray:
        return self.reader.evaluate(text)

    # ---- grammar: sum > product > unary > power > primary
    def expression(self) -> np.ndarray:
        value = self.product()
        while True:
            op = self.take(r"\+|-(?!\s*\\right)")
            if not op:
                return value
            right = self.product()
            value = value + right if op.group() == "+" else value - right

    def product(self) -> np.ndarray:
        value = self.unary()
        while True:
            if self.take(r"\\odot|\\cdot"):
                value = value * self.unary()
            elif self._starts_primary():
                value = _juxtapose(value, self.unary())
            else:
                return value

    def _starts_primary(self) -> bool:
        return bool(self.peek(r"\\left\(|\\left\||\(|\{|\d|\\frac|\\sqrt|\\sum|\\max|\\min|\\log|\\tanh|\\exp|\\sigma|\\det|\\Phi"
                              r"|\\sinh?|\\cosh?|\\tan|\\arcsin|\\arctan"
                              r"|\\operatorname|\\mathbf|\\mathbb|e\^") or self.peek(_SYMBOL.pattern))

    def unary(self) -> np.ndarray:
        if self.take(r"-"):
            return -self.unary()
        return self.power()

    def power(self) -> np.ndarray:
        value = self.primary()
        while True:
            if self.take(r"\^\\top|\^\{\\top\}"):
                value = _Row(value) if np.ndim(value) == 1 else np.transpose(value)
            elif self.peek(r"\^\{-(1|\\top)\}") and np.ndim(value) >= 2:  # a matrix's inverse, X^{-1}, X^{-\top}
                value = _inverse(value, self.expect(r"\^\{-(1|\\top)\}").group(1) != "1")
            elif self.peek(r"\^"):
                self.expect(r"\^")
                exponent = self.sub(self.braced()) if self.peek(r"\{") else float(self.expect(r"\d").group())
                value = np.power(value, exponent)
            elif self.peek(r"\\left\["):
                self.expect(r"\\left\[")
                start = self.pos
                self.pos = self.text.index(r"\right]", start)
                index = _index(self.text[start:self.pos])
                self.expect(r"\\right\]")
                value = np.asarray(value)[index]
            else:
                return value

    def primary(self) -> np.ndarray:
        number = self.take(r"\d+(\.\d+)?")
        if number:
            return np.float64(number.group())
        if self.take(r"\\left\("):
            value = self.expression()
            self.expect(r"\\right\)")
            return value
        if self.take(r"\\left\|"):
            value = self.expression()
            self.expect(r"\\right\|")
            return np.abs(value)
        if self.peek(r"\{"):
            return self.sub(self.braced())
        if self.take(r"\("):
            value = self.expression()
            self.expect(r"\)")
            return value
        matrix = _matrix_primary(self)
        if matrix is not None:
            return matrix
        partial = self.take(_PARTIAL.pattern)
        if partial:
            return self.reader.value(partial.group())
        if self.take(r"\\frac"):
            return self.sub(self.braced()) / self.sub(self.braced())
        if self.take(r"\\sqrt"):
            return np.sqrt(self.sub(self.braced()))
        if self.take(r"e\^"):
            return np.exp(self.sub(self.braced()))
        if self.take(r"\\sum_\{t=1\}\^\{T\}"):  # over the steps: the group at t = 1, ..., T
            if self.reader.steps is None:
                raise ReadError("a sum over steps, but the number of steps T is not given")
            body = self.braced()
            return sum(self.sub(bind(body, t)) for t in range(1, self.reader.steps + 1))
        if self.take(r"\\sum"):
            return np.sum(self.power())
        extremum = self.take(r"\\(max|min)")
        if extremum:
            if self.peek(r"\\left\("):  # SymPy's Max(a, b): elementwise
                args = self.arguments()
                return (np.maximum if extremum.group(1) == "max" else np.minimum)(*args)
            return (np.max if extremum.group(1) == "max" else np.min)(self.power())
        identity = self.take(r"\\mathbf\{I\}_\{(\d+)\}")  # the identity matrix of that size
        if identity:
            return np.eye(int(identity.group(1)))
        if self.take(r"\\mathbf\{1\}"):
            if self.take(r"\^\\top|\^\{\\top\}"):
                return np.sum(self.power(), axis=0)
            refs = [self.sub(part) for part in _split(self.braced())] if self.take(r"_") else []
            return np.ones(np.broadcast_shapes(*(np.shape(r) for r in refs))) if refs else np.float64(1)
        if self.take(r"\\mathbb\{1\}"):
            self.expect(r"\\left\[")
            condition = self.condition()
            self.expect(r"\\right\]")
            return condition.astype(float)
        if self.peek(r"\\operatorname\{((?:\w|\\_)+)\}") and not self.peek(r"\\operatorname\{(softplus|sign)\}"):
            return self.operator()
        function = self.take(_FUNCTION_NAMES)
        if function:
            power = self.sub(self.braced()) if self.take(r"\^") else None
            argument = self.sub(self.braced()) if self.peek(r"\{") else (
                self.arguments()[0] if self.peek(r"\\left\(") else self.power())
            value = _FUNCTIONS[function.group(1)](argument)
            return value if power is None else np.power(value, power)
        symbol = self.take(_SYMBOL.pattern)
        if symbol:
            return self.reader.value(symbol.group())
        raise ReadError(f"cannot read {self.text[self.pos:self.pos + 30]!r} in {self.text!r}")

    def arguments(self) -> list[np.ndarray]:
        return [self.sub(part) for part in _split(self.group_text())]

    def group_text(self) -> str:
        """The raw text inside the \\left( ... \\right) ahead, which it steps over."""
        self.expect(r"\\left\(")
        start, depth = self.pos, 1
        while depth:
            match = re.compile(r"\\left[(\[|]|\\right[)\]|]").search(self.text, self.pos)
            if not match:
                raise ReadError(f"unbalanced \\left( in {self.text!r}")
            depth += 1 if match.group().startswith(r"\left") else -1
            self.pos = match.end()
        return self.text[start:self.pos - len(r"\right)")]

    def condition(self) -> np.ndarray:
        value = self.conjunction()
        while self.take(r"\\vee"):
            value = value | self.conjunction()
        return value

    def conjunction(self) -> np.ndarray:
        value = self.negation()
        while self.take(r"\\wedge"):
            value = value & self.negation()
        return value

    def negation(self) -> np.ndarray:
        if self.take(r"\\neg"):
            return ~self.negation()
        if self.peek(r"\\left\(") and self._parenthesised_condition():
            self.expect(r"\\left\(")
            value = self.condition()
            self.expect(r"\\right\)")
            return value
        left = self.expression()
        op = self.expect(r"\\geq|\\leq|\\neq|>|<|=").group()
        right = self.expression()
        return {">": np.greater, "<": np.less, r"\geq": np.greater_equal, r"\leq": np.less_equal,
                "=": np.equal, r"\neq": np.not_equal}[op](left, right)

    def _parenthesised_condition(self) -> bool:
        """Whether the \\left( ... \\right) ahead holds a comparison of its own."""
        saved = self.pos
        try:
            self.arguments_text()
            return True
        except ReadError:
            return False
        finally:
            self.pos = saved

    def arguments_text(self) -> None:
        inner = self.group_text()
        logic = r">|<|\\geq|\\leq|\\neq|(?<![&\\])=|\\wedge|\\vee|\\neg"
        outside = _outside_groups(inner)
        if not (re.search(logic, outside) or (not outside.strip() and re.search(logic, inner))):
            raise ReadError("no comparison")

    def operator(self) -> np.ndarray:
        name = self.expect(r"\\operatorname\{((?:\w|\\_)+)\}").group(1).replace(r"\_", "_")
        subscript = self.braced() if self.take(r"_") else ""
        superscript = self.braced() if self.take(r"\^") else ""
        if name == "stack":  # stack(s_1, ..., s_T): every step's value, along the axis
            first, _, last = _split(self.group_text())
            stem = re.fullmatch(r"(.*)_\{1\}(.*)", first.strip())
            if stem is None or self.reader.steps is None or last.strip() != f"{stem.group(1)}_{{T}}{stem.group(2)}":
                raise ReadError(f"not a stack of steps 1 to T: {first}, ..., {last}")
            axis = _axes(subscript)[0][0]
            return np.stack([self.reader.value(f"{stem.group(1)}_{{{t}}}{stem.group(2)}")
                             for t in range(1, self.reader.steps + 1)], axis=axis)
        args = self.arguments()
        if name in self.reader.functions:  # a custom op: the function the test says it is
            return self.reader.functions[name](*args)
        return _operator(name, subscript, superscript, args, self)


def _outside_groups(text: str) -> str:
    """`text` with every \\left( ... \\right) group removed."""
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"\\left\((?:(?!\\left\().)*?\\right\)", "", text)
    return text


def _split(text: str) -> list[str]:
    """Comma-separated parts, commas inside groups left alone."""
    parts, depth, start = [], 0, 0
    for match in re.finditer(r"\\left[(\[|]|\\right[)\]|]|[{}]|,", text):
        token = match.group()
        if token in ("{",) or token.startswith(r"\left"):
            depth += 1
        elif token in ("}",) or token.startswith(r"\right"):
            depth -= 1
        elif depth == 0:
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


class _Row(np.ndarray):
    """v^T of a vector v: a row, so that a v^T is the outer product of two vectors."""

    def __new__(cls, vector):
        return np.asarray(vector).reshape(1, -1).view(cls)


def _juxtapose(a, b):
    """The matrix product; a plain product where either side is a scalar; a b^T of vectors: outer."""
    if isinstance(b, _Row) and np.ndim(a) == 1:
        return np.outer(a, np.asarray(b).ravel())
    a, b = (np.asarray(a).view(np.ndarray), np.asarray(b).view(np.ndarray))
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return a @ b


def _index(text: str) -> tuple:
    parts = []
    for part in text.split(","):
        part = part.strip()
        if ":" in part:
            bits = [int(b) if b.strip() else None for b in part.split(":")]
            parts.append(slice(*bits))
        else:
            parts.append(int(part))
    return tuple(parts)


def _axes(subscript: str):
    """(axes or None, keepdims) from `\\text{axis } 1,\\ \\text{keepdims}`."""
    match = re.search(r"\\text\{ax[ie]s \}\s*([\d,\s]+)", subscript)
    axes = tuple(int(a) for a in re.findall(r"\d+", match.group(1))) if match else None
    return axes, "keepdims" in subscript


def _shape(text: str, batch: int) -> tuple:
    return tuple(batch if d.strip() == "N" else int(d) for d in text.strip("()").split(",") if d.strip())


def _settings(subscript: str) -> tuple[int, int]:
    stride = re.search(r"s=(\d+)", subscript)
    padding = re.search(r"p=(\d+)", subscript)
    return int(stride.group(1)) if stride else 1, int(padding.group(1)) if padding else 0


def _operator(name: str, subscript: str, superscript: str, args: list, parser: _Parser) -> np.ndarray:
    if name in _MATRIX_OPERATORS:
        return _MATRIX_OPERATORS[name](subscript, *args)
    batch = parser.reader.batch
    axes, keepdims = _axes(subscript)
    if name in ("sum", "mean", "max", "min"):
        to = re.search(r"\\to\s*(\(.*\))", subscript)
        if to:  # summed down to a shape: over leading axes, and over axes that are 1 in the target
            target, value = _shape(to.group(1), batch), args[0]
            lead = value.ndim - len(target)
            value = value.sum(axis=tuple(range(lead))) if lead else value
            kept = tuple(i for i, d in enumerate(target) if d == 1 and value.shape[i] != 1)
            return value.sum(axis=kept, keepdims=True) if kept else value
        return getattr(np, name)(args[0], axis=axes, keepdims=keepdims)
    if name == "ties":
        x, m = args
        reached = m if keepdims or axes is None else np.expand_dims(m, axes)
        hit = (x == reached).astype(float)
        return hit / hit.sum(axis=axes, keepdims=True)
    if name == "broadcast":
        refs = _split(re.sub(r",?\\\s*\\text\{ax[ie]s \}.*$", "", subscript))
        shape = np.broadcast_shapes(*(np.shape(parser.sub(r)) for r in refs))
        value = args[0]
        if axes is not None:
            value = np.expand_dims(value, axes)
        return np.broadcast_to(value, shape)
    if name == "transpose":
        return np.transpose(args[0], _shape(subscript, batch))
    if name == "reshape":
        target = _shape(subscript, batch)
        return np.reshape(args[0], target)
    if name == "place":
        out = np.zeros_like(args[1])
        out[_index(subscript.strip("[]"))] = args[0]
        return out
    if name == "clip":  # clip(x, lo, hi) = min(max(x, lo), hi)
        return np.clip(*args)
    if name == "concat":
        return np.concatenate(args, axis=axes[0])
    if name == "onehot":
        return (args[0][..., None] == np.arange(int(subscript))).astype(float)
    if name == "logsumexp":
        top = np.max(args[0], axis=axes, keepdims=True)
        out = top + np.log(np.sum(np.exp(args[0] - top), axis=axes, keepdims=True))
        return out if keepdims else np.squeeze(out, axis=axes)
    if name == "softmax":
        shifted = np.exp(args[0] - np.max(args[0], axis=axes, keepdims=True))
        return shifted / shifted.sum(axis=axes, keepdims=True)
    if name == "dropout":
        return np.ones_like(args[0])
    if name == "conv":
        stride, padding = _settings(subscript)
        if superscript == r"\partial x":
            g, w, x = args
            return _conv_input_gradient(g, w, x.shape, stride, padding)
        if superscript == r"\partial w":
            g, x, w = args
            return _conv_weight_gradient(g, x, w.shape, stride, padding)
        return _conv(args[0], args[1], stride, padding)
    if name == "maxpool":
        size = int(re.match(r"\d+", subscript).group())
        stride = _settings(subscript)[0] if "s=" in subscript else size
        if superscript == r"\partial":
            return _pool_gradient(*args, size, stride)
        if superscript == r"\mathrm{sel}":
            return _pool_select(*args, size, stride)
        return _pool(args[0], size, stride)
    raise ReadError(f"unknown operator {name!r}")


# ---- convolution and pooling, written out with loops over output positions (independent of the helpers)

def _padded(x, padding):
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def _conv(x, w, stride, padding):
    x = _padded(x, padding)
    n, _, h, width = x.shape
    out_h, out_w = (h - w.shape[2]) // stride + 1, (width - w.shape[3]) // stride + 1
    out = np.zeros((n, w.shape[0], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, :, i * stride:i * stride + w.shape[2], j * stride:j * stride + w.shape[3]]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out


def _conv_input_gradient(g, w, shape, stride, padding):
    n, c, h, width = shape
    out = np.zeros((n, c, h + 2 * padding, width + 2 * padding))
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            out[:, :, i * stride:i * stride + w.shape[2], j * stride:j * stride + w.shape[3]] += \
                np.einsum("no,ochw->nchw", g[:, :, i, j], w)
    return out[:, :, padding:padding + h, padding:padding + width]


def _conv_weight_gradient(g, x, shape, stride, padding):
    x = _padded(x, padding)
    out = np.zeros(shape)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            patch = x[:, :, i * stride:i * stride + shape[2], j * stride:j * stride + shape[3]]
            out += np.einsum("no,nchw->ochw", g[:, :, i, j], patch)
    return out


def _windows(x, size, stride):
    for i in range((x.shape[2] - size) // stride + 1):
        for j in range((x.shape[3] - size) // stride + 1):
            yield i, j, (slice(None), slice(None), slice(i * stride, i * stride + size), slice(j * stride, j * stride + size))


def _pool(x, size, stride):
    out_h, out_w = (x.shape[2] - size) // stride + 1, (x.shape[3] - size) // stride + 1
    out = np.zeros(x.shape[:2] + (out_h, out_w))
    for i, j, window in _windows(x, size, stride):
        out[:, :, i, j] = x[window].max(axis=(2, 3))
    return out


def _shares(x, m, window, i, j):
    hit = (x[window] == m[:, :, i, j][:, :, None, None]).astype(float)
    return hit / hit.sum(axis=(2, 3), keepdims=True)


def _pool_gradient(g, x, m, size, stride):
    out = np.zeros_like(x)
    for i, j, window in _windows(x, size, stride):
        out[window] += _shares(x, m, window, i, j) * g[:, :, i, j][:, :, None, None]
    return out


def _pool_select(v, x, m, size, stride):
    out = np.zeros_like(m)
    for i, j, window in _windows(x, size, stride):
        out[:, :, i, j] = (_shares(x, m, window, i, j) * v[window]).sum(axis=(2, 3))
    return out


# ---- matrix calculus, as the Matrix Cookbook writes it: tr, det, log det, X^{-1}, X^{-\top}, A^{-1} b,
# I_{n} the identity, diag (a matrix's diagonal), Diag (the diagonal matrix of a vector), chol (the lower
# Cholesky factor), \Phi (the lower triangle, its diagonal halved), einsum_{ij,jk \to ik} (indices named)

def _inverse(value, transposed: bool):
    inverse = np.linalg.inv(np.asarray(value).view(np.ndarray))
    return np.swapaxes(inverse, -1, -2) if transposed else inverse


def _matrix_primary(parser: _Parser):
    r"""I_{n}, \det X, \Phi(X), or None when none of them is ahead."""
    eye = parser.take(r"I_\{(\d+)\}")
    if eye:
        return np.eye(int(eye.group(1)))
    if parser.take(r"\\det"):
        return np.linalg.det(parser.arguments()[0] if parser.peek(r"\\left\(") else parser.power())
    if parser.take(r"\\Phi"):
        x = parser.arguments()[0]
        return np.tril(x) - 0.5 * np.tril(np.triu(x))
    return None


def _einsum(subscript: str, *operands):
    spec = re.sub(r"\s+", "", subscript.replace(r"\to", "->"))
    return np.einsum(spec, *operands)


_MATRIX_OPERATORS: dict[str, Callable] = {
    "tr": lambda subscript, x: np.trace(x, axis1=-2, axis2=-1),
    "diag": lambda subscript, x: np.diagonal(x, axis1=-2, axis2=-1),
    "Diag": lambda subscript, v: v[..., None] * np.eye(v.shape[-1]),
    "chol": lambda subscript, a: np.linalg.cholesky(a),
    "einsum": _einsum,
}
