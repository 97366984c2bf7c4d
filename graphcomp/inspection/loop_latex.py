"""LaTeX text of a loop's formulas: a formula at step t written at one step (t-1 at step 1 is 0), a
summand in parentheses where Σ_t would otherwise read less of it, (Wᵀ)ᵀ written as W."""
from __future__ import annotations

import re


def untransposed(text: str) -> str:
    """(Aᵀ)ᵀ as A (the derivative reads Wᵀ of a step that reads W); (W[0:3]) as W[0:3]."""
    opening, closing = r"\left(", r"^\top\right)^\top"
    if not (text.startswith(opening) and text.endswith(closing) and balanced(text[len(opening):-len(closing)])):
        return text
    inner = text[len(opening):-len(closing)]
    if inner.startswith(opening) and inner.endswith(r"\right)") and " " not in inner \
            and balanced(inner[len(opening):-len(r"\right)")]):
        return inner[len(opening):-len(r"\right)")]
    return inner


def balanced(text: str) -> bool:
    """Whether every \\left in `text` is closed by a \\right in it, and none closes what is outside."""
    depth = 0
    for token in re.findall(r"\\left|\\right", text):
        depth += 1 if token == r"\left" else -1
        if depth < 0:
            return False
    return depth == 0


def at_step(text: str, step: str) -> str:
    """A formula written at step t, written at one step ("1", or "T"): t-1 at step 1 is 0."""
    def index(match: re.Match) -> str:
        shift = int(match.group(1) or 0)
        if step.isdigit():
            return f"_{{{int(step) + shift}}}"
        return f"_{{{step}{shift:+d}}}" if shift else f"_{{{step}}}"
    return re.sub(r"_\{t([+-]\d+)?\}", index, text)


def grouped(text: str) -> str:
    """A summand with a sum or difference at its top level in parentheses."""
    depth = 0
    for k, ch in enumerate(text):
        depth += ch in "({" and 1 or 0
        depth -= ch in ")}" and 1 or 0
        if depth == 0 and ch in "+-" and k > 0:
            return rf"\left({text}\right)"
    return text
