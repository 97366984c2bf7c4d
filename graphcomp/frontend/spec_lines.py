"""Where a spec file's entries are: the line of each TOML key, which tomllib does not give, found in the
text of the file. A value built from an entry is declared there (ir/declared.py), so that a report of a
non-finite value (check_finite) names the file, the line and the key: `[nodes] z`, `[scan.rnn] step.h`.
"""
from __future__ import annotations

import contextlib
import functools
import contextvars
import re
from typing import Iterator

from ..ir import Declared

# The text of the spec file being read, by file name: set by `reading` while load() builds it.
_TEXTS: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("spec_texts", default={})
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


@contextlib.contextmanager
def reading(file: str, text: str) -> Iterator[None]:
    """Entries of `file` built inside are found in `text`."""
    token = _TEXTS.set({**_TEXTS.get(), file: text})
    try:
        yield
    finally:
        _TEXTS.reset(token)


def entry_place(file: str, where: str) -> Declared:
    """The place of entry `where` ("nodes.z", "scan.rnn.step.h"): its table and key as a TOML file
    writes them, and the line of the key when the file's text is known."""
    parts = where.split(".")
    cut = 2 if parts[0] == "scan" and len(parts) > 2 else 1
    table, key = ".".join(parts[:cut]), parts[cut:]
    text = _TEXTS.get().get(file)
    line = _key_line(text, table, key) if text is not None and key else None
    return Declared(file, line, f"[{table}] {'.'.join(key)}" if key else f"[{table}]")


def _key_line(text: str, table: str, key: list[str]) -> int | None:
    """The line defining `key` in `[table]`: `a.b = ...` there, `b = ...` under `[table.a]`, or the
    inline table `a = { b = ... }` that holds it."""
    lines = _key_lines(text)
    for place in ((table, ".".join(key)), (".".join([table, *key[:-1]]), key[-1]), (table, key[0])):
        if place in lines:
            return lines[place]
    return None


@functools.lru_cache(maxsize=4)
def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """{(table, key): the line of its first definition}, read once per file: every entry of a spec of
    10,000 entries looks its line up here, so reading the spec stays linear in its size."""
    found: dict[tuple[str, str], int] = {}
    header = ""
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match:
            header = _dotted(match.group(1))
            continue
        match = _KEY.match(line)
        if match:
            found.setdefault((header, _dotted(match.group(1))), number)
    return found


def _dotted(text: str) -> str:
    """A TOML key or table name written one way: no quotes, no spaces around its dots."""
    return ".".join(part.strip().strip("\"'") for part in text.split("."))
