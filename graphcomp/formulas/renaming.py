"""Work on a formula done once per shape of formula: its variables renamed to stand-in names that sort
exactly as theirs do, so that the result, named back, is the one the real names would have given.

SymPy orders the terms and factors of a formula (and so `cse`'s parts and the printed code) by
comparing its symbols' names, and by nothing else of them. A chain of 10,000 nodes repeats a few
formulas over ever new variable names (t1 + w, t2 + w, ...): under stand-ins that keep the names'
order, those are a few formulas, each simplified and printed once. The stand-ins are _a0000, _a0001,
... for names that sort before a `split` (where other symbols the work makes, such as cse's _part0,
_part1, ..., fall among them) and _z0000, ... for names after it.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Hashable, Sequence

import sympy as sp

_STAND_IN = re.compile(r"_[az]\d{4}(?!\d)")
_MOST = 10000  # stand-ins of four digits


class Renaming:
    """Stand-ins for some named things: `pattern` says how their names sort (the same pattern, the
    same result); `symbols` gives each label's stand-in symbol, and `named_back` a text's real names."""

    def __init__(self, labelled: Sequence[tuple[Hashable, str]], split: str | None = "_part") -> None:
        ordered = sorted(labelled, key=lambda item: item[1])
        below = len(ordered) if split is None else sum(1 for _, name in ordered if name < split)
        self.pattern = (below, tuple(label for label, _ in ordered))
        self.symbols: dict[Hashable, sp.Symbol] = {}
        self._names: dict[str, str] = {}
        for rank, (label, name) in enumerate(ordered):
            token = f"_{'a' if rank < below else 'z'}{rank:04d}"
            self.symbols[label] = stand_in(token)
            self._names[token] = name

    def named_back(self, text: str) -> str:
        """`text` with every stand-in written as the name it stands for."""
        return _STAND_IN.sub(lambda match: self._names[match.group(0)], text)


def renaming(labelled: Sequence[tuple[Hashable, str]], split: str | None = "_part") -> Renaming | None:
    """Stand-ins for the names (`split` None: no other symbols will meet them), or None where they would
    not keep the names' order: two equal names, a name beginning with `split` itself, or more names
    than the stand-ins number."""
    names = [name for _, name in labelled]
    if (len(set(names)) < len(names) or len(names) > _MOST
            or (split is not None and any(name.startswith(split) for name in names))):
        return None
    return Renaming(labelled, split)


@lru_cache(maxsize=None)
def stand_in(token: str) -> sp.Symbol:
    return sp.Symbol(token, real=True)
