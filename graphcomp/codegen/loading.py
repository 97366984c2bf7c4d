"""Importing a generated module from memory: no temporary file is written, and tracebacks still show
the module's lines."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util


class _SourceLoader(importlib.abc.SourceLoader):
    """Imports generated source held in memory; `get_source` lets tracebacks show its lines."""

    def __init__(self, source: str, filename: str) -> None:
        self.source, self.filename = source, filename

    def get_filename(self, fullname: str) -> str:
        return self.filename

    def get_data(self, path: str) -> bytes:
        return self.source.encode("utf-8")


def source_spec(name: str, source: str) -> importlib.machinery.ModuleSpec:
    """An import spec for a generated module that exists only in memory."""
    filename = f"graphcomp-generated:{name}.py"  # not <...>: linecache shows lines of such names
    return importlib.util.spec_from_loader(name, _SourceLoader(source, filename), origin=filename)
