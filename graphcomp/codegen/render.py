"""Rendering: the Jinja templates (`templates/`, installed as the package data `graphcomp.templates`)
lay out the context Python prepared; they compute nothing."""
from __future__ import annotations

import importlib.resources

import jinja2

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(importlib.resources.files("graphcomp.templates"))),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_ENVIRONMENT.filters["pyrepr"] = repr  # Python literals, not JSON: the output is Python source


def render(context: dict) -> str:
    """The text of a generated module."""
    return _ENVIRONMENT.get_template("module.py.j2").render(**context)
