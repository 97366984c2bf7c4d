"""LaTeX as plain math for a picture's boxes: \\bar{W}_{2} = h^\\top \\bar{t}_{3} becomes W̄₂ = hᵀ t̄₃.
Graphviz labels are plain text, so the derivative graph writes its formulas with Unicode: σ, ⊙, Σ,
sub- and superscript digits, combining bars; no array library's names.
"""
from __future__ import annotations

import re

_SYMBOLS = {"odot": "⊙", "cdot": "·", "sigma": "σ", "sum": "Σ", "partial": "∂", "times": "×", "top": "ᵀ",
            "to": "→", "leq": "≤", "geq": "≥", "le": "≤", "ge": "≥", "neq": "≠", "infty": "∞", "pi": "π",
            "cdots": "⋯", "ldots": "…", "dots": "…", "mid": "|", "quad": " ", ",": " ", ";": " ", " ": " ",
            "!": "", "{": "{", "}": "}", "\\": "; ", "max": "max", "min": "min", "log": "log", "exp": "exp",
            "tanh": "tanh", "ln": "ln", "right": "", "left": ""}
_SUB = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")
_SUP = str.maketrans("0123456789+-=()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ")
_WORD = re.compile(r"[^\W\d_]")


def math_text(latex: str) -> str:
    """A formula printed by graphcomp's LaTeX rules as plain math for a picture: t̄₁₂ = hᵀ ȳ ⊙ σ(a),
    fractions with a slash, sums as Σ, [t₃ > 0] for an indicator; no array library's names."""
    text, _ = _parse(latex, 0)
    text = re.sub(r"\s+", " ", text.replace("-", "−")).strip()
    text = re.sub(r"\+ −\s?", "− ", text)
    text = re.sub(r"(^|[(\[]|= |, )− (?=\S)", r"\1−", text)  # a leading minus sign binds to what follows
    text = re.sub(r"\(((?:exp|log|tanh|σ)\([^()]*\))\)", r"\1", text)  # (exp(x)): exp(x)
    return _single_parentheses(text.replace("( ", "(").replace(" )", ")"))


def _single_parentheses(text: str) -> str:
    """((a + b)) as (a + b): a substituted formula already in parentheses inside a call's."""
    opened, pairs = [], {}
    for at, char in enumerate(text):
        if char == "(":
            opened.append(at)
        elif char == ")" and opened:
            pairs[opened.pop()] = at
    drop = {k for start, end in pairs.items() if pairs.get(start + 1) == end - 1 for k in (start + 1, end - 1)}
    return "".join(char for at, char in enumerate(text) if at not in drop)


def _parse(s: str, i: int, closing: str = "}") -> tuple[str, int]:
    out = ""
    while i < len(s):
        char = s[i]
        if char == closing:
            return out, i + 1
        if char == "{":
            inner, i = _parse(s, i + 1)
            out += inner
        elif char == "\\":
            i, out = _macro(s, i + 1, out)
        elif char in "_^":
            argument, i = _argument(s, i + 1)
            out = _subscript(out, argument) if char == "_" else _superscript(out, argument)
        elif char == "&":
            out += " if "
            i += 1
        else:
            out += char
            i += 1
    return out, i


def _argument(s: str, i: int) -> tuple[str, int]:
    """One macro argument: a {group}, a \\macro, or a single character."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        return _parse(s, i + 1)
    if s[i] == "\\":
        i, text = _macro(s, i + 1, "")
        return text, i
    return s[i], i + 1


def _macro(s: str, i: int, out: str) -> tuple[int, str]:
    name = re.match(r"[A-Za-z]+|.", s[i:]).group(0)
    i += len(name)
    if name == "partial":  # ∂f, not ∂ f
        return i + len(s[i:]) - len(s[i:].lstrip(" ")), out + "∂"
    if name in ("left", "right"):  # \left( ... \right): the delimiter itself, \left. nothing
        delimiter = s[i] if s[i] != "\\" else s[i + 1]
        return i + (1 if s[i] != "\\" else 2), out + ("" if delimiter == "." else delimiter)
    if name in ("frac", "dfrac"):
        top, i = _argument(s, i)
        bottom, i = _argument(s, i)
        return i, out + f"{_factor(top)}/{_factor(bottom)}"
    if name in ("bar", "overline", "hat", "mathrm", "mathbf", "mathbb", "operatorname", "text", "sqrt", "mathit"):
        argument, i = _argument(s, i)
        if name in ("bar", "overline"):
            return i, out + _barred(argument)
        if name == "hat":
            return i, out + argument + "\u0302"
        if name == "sqrt":
            return i, out + "√" + _factor(argument)
        if name == "mathbb" and argument == "1":  # 1[t > 0] is the Iverson bracket [t > 0]
            return i, out
        if name == "mathbf" and argument == "1" and s[i:i + 1] == "_":  # ones shaped like a value: 1
            _, i = _argument(s, i + 1)
        if name == "operatorname" and argument == "sum":
            argument = "Σ"
        return i, out + argument
    if name in ("begin", "end"):
        environment, i = _argument(s, i)
        return i, out + ({"begin": "{", "end": "}"}[name] if environment == "cases" else "")
    return i, out + _SYMBOLS.get(name, name)


def _factor(text: str) -> str:
    """A piece of a fraction: bare when it is one symbol, else in parentheses."""
    text = text.strip()
    if re.fullmatch(r"[^\s+\-−⊙·/()]*(\((?:[^()]|\([^()]*\))*\))?", text):
        return text
    return f"({text})"


def _barred(text: str) -> str:
    """x̄ for one letter, a combining overline over each letter of a longer name."""
    text = text.strip()
    return text + "\u0304" if len(text) == 1 else "".join(c + "\u0305" for c in text)


def _subscript(out: str, text: str) -> str:
    text = text.strip()
    if text and text.translate(_SUB) != text and all(c in "0123456789+-=()" for c in text):
        return out + text.translate(_SUB)
    if re.fullmatch(r"\w+", text):
        return out + "_" + text
    return out + f"[{text}]"


def _superscript(out: str, text: str) -> str:
    text = text.strip()
    if text == "ᵀ":
        return out + "ᵀ"
    if re.search(r"(^|[^\w\u0300-\u036f])e$", out):  # e^{x}: exp(x)
        return out[:-1] + f"exp({text})"
    if text and all(c in "0123456789+-=()n" for c in text):
        return out + text.translate(_SUP)
    return out + f"^{_factor(text)}"
