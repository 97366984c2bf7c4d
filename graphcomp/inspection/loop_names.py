"""The symbols a loop's formulas are written with, as the lecture writes a recurrence: the carry h_t
and its first value h_0, each sequence's element x_t, the per-step outputs y_t, and the step's values
the derivative reads, a^{(k)}_t; the gradients \\bar{h}_t and the step's shared gradients δ^{(k)}_t.

A symbol is a stem (h, \\bar{h}, \\delta), a time index (t, t-1, T, 0) and a superscript that tells
apart the values of one stem: h_{t-1}, \\delta_{t}^{(2)}. Stems are chosen once per model, none of
them a symbol the model already uses, so that the recursions of two loops never share a name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..formulas.symbols import bar
from ..ir import Node
from ..ops.scan import Body, counts

TIME = "t"
CARRY_STEMS = ("h", "c", "s", "q", "r", "u", "v", "w")  # two carries: h and c, as an LSTM's
ONE_CARRY_STEMS = ("h", "s", "q", "r", "u", "v", "w")
ELEMENT_STEMS = ("x", "u", "v", "w", "z")
OUTPUT_STEMS = ("y", "o", "z", "p")
VALUE_STEMS = ("a", "b", "d", "f", "g", "k", "m", "n", "p")
GRADIENT_STEMS = (r"\delta", r"\epsilon", r"\gamma", r"\phi", r"\psi")
RESERVED = {"t", "T", "N", "e", "i", "j"}  # the time index, the length, the batch size, e^x, indices


@dataclass(frozen=True)
class TimeSymbol:
    """A symbol indexed by time: `stem_{index}^{sup}`; `at(index)` is the same symbol at another step."""

    stem: str
    sup: str = ""

    def at(self, index: str) -> str:
        return f"{self.stem}_{{{index}}}{self.sup}"

    def barred(self) -> TimeSymbol:
        return TimeSymbol(bar(self.stem), self.sup)

    def pattern(self) -> str:
        """A regex matching this symbol at any step (so that a definition at t is kept for a use at t-1)."""
        return rf"(?<![A-Za-z\\]){re.escape(self.stem)}_\{{[^{{}}]*\}}" + re.escape(self.sup)


@dataclass(frozen=True)
class Steps:
    """How a loop walks time: the index of the carry read at step t, of its first value, of its last."""

    previous: str
    first: str
    last: str
    span: str  # the steps in the order the loop takes them

    @staticmethod
    def of(reverse: bool) -> Steps:
        if reverse:
            return Steps("t+1", "T+1", "1", r"t = T, \dots, 1")
        return Steps("t-1", "0", "T", r"t = 1, \dots, T")


@dataclass
class LoopSymbols:
    """The symbols of one forward loop (and of its derivative)."""

    loop: Node
    steps: Steps
    carries: list[TimeSymbol]
    elements: list[TimeSymbol]
    outputs: list[TimeSymbol]
    value_stem: str
    gradient_stem: str
    back_steps: Steps = field(init=False)

    def __post_init__(self) -> None:
        reverse = self.loop.attr("reverse")
        # the derivative walks the other way: it reads \bar{h}_t and gives \bar{h}_{t-1}
        self.back_steps = Steps("t+1", "1", "T+1", r"t = 1, \dots, T") if reverse else \
            Steps("t-1", "T", "0", r"t = T, \dots, 1")


class LoopNames:
    """The stems of every forward loop of a model, chosen once so that no two loops share one."""

    def __init__(self, loops: list[Node], symbols: dict[Node, str], asked: set[str]) -> None:
        """`symbols`: the model's symbols; `asked`: those of the leaves whose gradients are asked for."""
        # a first carry named h0 (h_{0}) lends the recursion its stem, unless h0's own gradient is asked
        # for (\bar{h}_0 would be both the leaf's gradient and the recursion's last value); any other
        # use of h keeps h free of it
        inits = {symbols.get(loop.inputs[0]) for loop in loops if counts(loop)[0] and not loop.attr("reverse")}
        inits -= asked
        self._used = set(RESERVED) | {_stem(s) for s in symbols.values() if s not in inits}
        self._inits = inits
        self._symbols = symbols
        self.of: dict[Node, LoopSymbols] = {}
        for loop in loops:
            self.of[loop] = self._choose(loop)

    def _free(self, pool: tuple[str, ...], count: int = 1, wanted: str | None = None) -> list[str]:
        if wanted and wanted not in self._used and count == 1:
            self._used.add(wanted)
            return [wanted]
        free = [s for s in pool if s not in self._used][:count]
        if len(free) < count:  # every stem of the pool taken: one new stem with a superscript each
            free = [f"{pool[0]}^{{({k})}}" for k in range(len(self.of) + 1, len(self.of) + 1 + count)]
        self._used.update(free)
        return free

    def _choose(self, loop: Node) -> LoopSymbols:
        body: Body = loop.attr("body")
        c, k, _ = counts(loop)
        first = self._symbols.get(loop.inputs[0])
        wanted = _init_stem(first) if first in self._inits else None
        pool = ONE_CARRY_STEMS if c == 1 else CARRY_STEMS
        carries = _symbols(self._free(pool, c, wanted) if c <= 2 else self._free(pool) * c, c)
        elements = []
        for seq in loop.inputs[c:c + k]:
            own = self._symbols.get(seq, "")
            elements += _symbols([own] if re.fullmatch(r"[A-Za-z]", own) else self._free(ELEMENT_STEMS), 1)
        outputs = _symbols(self._free(OUTPUT_STEMS) * len(body.ys), len(body.ys)) if body.ys else []
        value, gradient = self._free(VALUE_STEMS)[0], self._free(GRADIENT_STEMS)[0]
        return LoopSymbols(loop, Steps.of(loop.attr("reverse")), carries, elements, outputs, value, gradient)


def _symbols(stems: list[str], count: int) -> list[TimeSymbol]:
    """`count` symbols: one stem each, or one stem told apart by superscripts (h^{(1)}, h^{(2)})."""
    if len(stems) == count and len(set(stems)) == count:
        return [_split(s) for s in stems]
    return [TimeSymbol(stems[0], f"^{{({k + 1})}}") for k in range(count)]


def _split(stem: str) -> TimeSymbol:
    match = re.fullmatch(r"(.*?)(\^\{\(\d+\)\})", stem)
    return TimeSymbol(match.group(1), match.group(2)) if match else TimeSymbol(stem)


def _stem(symbol: str) -> str:
    """The letter or command a symbol is written with: h for h_{0}, \\bar{h} for \\bar{h}_{t}."""
    return re.sub(r"(_\{[^{}]*\}|\^\{[^{}]*\})+$", "", symbol)


def _init_stem(symbol: str | None) -> str | None:
    """h for a first carry named h0 (h_{0}): the recursion then starts from the name the user gave."""
    match = re.fullmatch(r"([A-Za-z])_\{0\}", symbol or "")
    return match.group(1) if match else None


def numbered(stem: str, count: int) -> list[TimeSymbol]:
    """`count` values of one stem: the stem alone for one, else told apart by superscripts."""
    return [TimeSymbol(stem)] if count == 1 else [TimeSymbol(stem, f"^{{({k + 1})}}") for k in range(count)]


def time_pattern(symbol: str) -> str:
    """The regex of a symbol written at some step (h_{T}) that matches it at any step (h_{t-1})."""
    match = re.fullmatch(r"(.*?)_\{[^{}]*\}(.*)", symbol)
    return TimeSymbol(match.group(1), match.group(2)).pattern() if match else re.escape(symbol)
