"""Where each value was declared: the user's file and line (the Python DSL), or a spec file's entry.

A non-finite value found at run time (`gc.compile(..., check_finite=True)`) is reported with where
the user wrote it, which the generated code alone cannot say. Nodes are immutable and structurally
shared, so the place is kept in a side table beside them, not on them: the first place a node was
built wins, and entries vanish with their nodes.

Capturing costs one walk up the Python stack per new node, to the first frame outside graphcomp (a
few frames: the user's line, the dsl function, apply); only the file name and line number are kept.
"""
from __future__ import annotations

import contextlib
import contextvars
import sys
import weakref
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Declared:
    """A place in the user's sources: `file` and `line` (None when unknown), and for a spec file the
    entry (`[nodes] z`, `[scan.rnn] step.h`)."""

    file: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file} line {self.line}"
        return f"{place}, {self.key}" if self.key else place


# node -> its place: a Declared, or (file, line) as captured, made a Declared when asked (cheaper to keep)
_PLACES: "weakref.WeakKeyDictionary[object, Declared | tuple]" = weakref.WeakKeyDictionary()
# The entry being built (a spec file's expression), or False while graphcomp builds values of its own
# (the passes, the derivative): then new nodes are not the user's and get no place.
_BUILDING: contextvars.ContextVar[Declared | bool | None] = contextvars.ContextVar("declaring", default=None)


def record(node: object) -> None:
    """Note where `node`, just built, was declared (nothing if it has a place already)."""
    current = _BUILDING.get()
    if current is not False and node not in _PLACES:
        _PLACES[node] = current if current is not None else _caller()


def declared(node: object) -> Declared | None:
    """Where the user declared `node`, if graphcomp knows."""
    place = _PLACES.get(node)
    return Declared(*place) if isinstance(place, tuple) else place


def inherit(new: object, old: object) -> None:
    """A value graphcomp made in place of the user's `old` (a loop's step simplified) is declared where
    `old` was, unless it has a place of its own."""
    if new not in _PLACES and old in _PLACES:
        _PLACES[new] = _PLACES[old]


@contextlib.contextmanager
def declaring(place: Declared | None) -> Iterator[None]:
    """The values built inside are declared at `place` (a spec entry); None: not the user's (graphcomp's
    own rewrites and derivatives), which get no place."""
    token = _BUILDING.set(place if place is not None else False)
    try:
        yield
    finally:
        _BUILDING.reset(token)


def _caller() -> tuple[str, int] | None:
    """The first frame outside the graphcomp package: the user's line that built the value."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "graphcomp" and not module.startswith("graphcomp."):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None
