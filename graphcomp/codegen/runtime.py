"""The runtime a generated module carries: the Python files of `templates/runtime/` (installed as
`graphcomp.templates.runtime`), copied below the module's own code without their docstrings and
imports. The op helpers are copied one function at a time: those the code calls, and those they call.
"""
from __future__ import annotations

import ast
import functools
import importlib.resources
import re
from typing import Iterable

# The training settings' one table, which the runtime carries and graphcomp's spec reader and command
# line read too (the runtime imports nothing of graphcomp: it may sit below every layer).
from ..templates.runtime.settings import BACKENDS, SETTINGS, setting_argument, setting_flag, setting_problems  # noqa: F401

# The line a generated module's runtime starts after (the golden tests compare the model above it).
MARKER = "# The runtime: the same in every module graphcomp writes (its files are graphcomp's templates/runtime/)."
# The parts every module carries (arrays: reading its arguments) and those of its training loop.
CORE = ("arrays",)
TRAINING = ("settings", "training", "files", "command")


@functools.cache
def _definitions(part: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{name: (source, the names it reads)} of a runtime file's top-level definitions, in file order;
    a definition's source includes the comment lines just above it. The docstring and imports are left
    out: the module imports numpy once, and the names the files import from one another are its own."""
    lines = _text(part).splitlines()
    found = {}
    for node in ast.parse(_text(part)).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # imports, the docstring
            continue
        start = node.lineno - 1
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        name = node.name if hasattr(node, "name") else node.targets[0].id
        reads = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        found[name] = ("\n".join(lines[start:node.end_lineno]), reads)
    return found


@functools.cache
def _text(part: str) -> str:
    return (importlib.resources.files("graphcomp.templates") / "runtime" / f"{part}.py").read_text(encoding="utf-8")


def _body(part: str) -> str:
    """A runtime file as written, from its first definition (and the comments above it) to the end."""
    first = next(iter(_definitions(part).values()))[0]
    text = _text(part)
    return text[text.index(first):].rstrip("\n")


def runtime_source(helpers: Iterable[str], training: bool = True) -> str:
    """The runtime text of one module: the core, the training loop when asked, and the helper functions
    named (without their underscore: "conv2d" is `_conv2d`) with every helper they call."""
    parts = TRAINING + CORE if training else CORE
    blocks = [_body(part) for part in parts]
    available = _definitions("helpers")
    wanted = {f"_{name}" for name in helpers}
    pending = list(wanted)
    while pending:  # helpers calling helpers: _fold calls _device and _added
        for name in available[pending.pop()][1] & available.keys():
            if name not in wanted:
                wanted.add(name)
                pending.append(name)
    blocks += [source for name, (source, _) in available.items() if name in wanted]
    return "\n\n\n".join(blocks)


def helpers_called(lines: Iterable[str]) -> list[str]:
    """The op helpers (without their underscore: "conv2d" for `_conv2d`) that lines of generated code
    call, read off the code itself: whatever printed a line, the line records what it needs."""
    available = _definitions("helpers")
    return sorted({name[1:] for line in lines if isinstance(line, str)  # (an output may be a plain number)
                   for name in re.findall(r"(?<![\w.])(_\w+)\(", line) if name in available})
