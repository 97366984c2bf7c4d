"""Names: which names a user may give, and the names of generated variables.

A user's name becomes a Python variable in the generated module, so it must be
an identifier that cannot break or hijack that module. Generated names are
handed out by one `Namer`, so that no two values ever share a variable.
"""
from __future__ import annotations

import builtins
import keyword
from typing import Iterable

from ..errors import GraphError

_BUILTINS = frozenset(dir(builtins))


def check_user_name(name: object, what: str) -> str:
    """Return `name` if it can name a leaf, node or output; raise GraphError otherwise."""
    if not isinstance(name, str):
        raise GraphError(f"{what} name must be a string, got {type(name).__name__} {name!r}")
    if not name.isidentifier() or not name.isascii():
        raise GraphError(f"{what} name {name!r} is not a valid Python identifier (letters, digits, '_'; not starting with a digit)")
    if keyword.iskeyword(name):
        raise GraphError(f"{what} name {name!r} is a Python keyword")
    if name.startswith("_"):
        raise GraphError(f"{what} name {name!r} starts with '_', which graphcomp keeps for the generated module")
    return name


class Namer:
    """Hands out unique, valid variable names for one generated module."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        """`reserved`: names the generated code uses itself (np is always one)."""
        self._reserved = frozenset(reserved) | {"np"}
        self._taken: set[str] = set(self._reserved)

    def reserve(self, name: str) -> str:
        """Claim a user's name, or name_ if it would shadow a builtin or a reserved name."""
        return self.fresh(name + "_" if name in _BUILTINS or name in self._reserved else name)

    def is_free(self, name: str) -> bool:
        return name not in self._taken and name not in _BUILTINS

    def fresh(self, base: str) -> str:
        """`base` itself if free, else `base_2`, `base_3`, ..."""
        if base not in self._taken and base not in _BUILTINS:
            self._taken.add(base)
            return base
        k = 2
        while f"{base}_{k}" in self._taken:
            k += 1
        self._taken.add(f"{base}_{k}")
        return f"{base}_{k}"
