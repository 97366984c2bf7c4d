"""What the code of a module's loops shares between the functions that write it (codegen/loops.py,
codegen/checkpoints.py): each loop's own variables, the shapes of the values its step computes, and
what a loop keeps."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ..ir import Node, toposort
from ..ops.scan import Body

if TYPE_CHECKING:
    from .statements import ModuleCode

# The variables of each loop of a module that are no value of the graph (its length, its step, each
# sequence's element, its lists), made once per loop: forward() and _gradients() write the same loop,
# whose lines are made once, so they must read the same names.
LOOP_NAMES: "weakref.WeakKeyDictionary[ModuleCode, dict]" = weakref.WeakKeyDictionary()
BODY_SHAPES: "weakref.WeakKeyDictionary[ModuleCode, dict]" = weakref.WeakKeyDictionary()


def is_saved(value: Node) -> bool:
    """A loop's saved values: a list of one array per step, which only a backward loop reads (inside
    a backward loop, a placeholder stands for the saved values of a loop inside the step)."""
    return ((value.op == "scan_result" and value.attr("saved") is not None)
            or (value.op == "input" and value.name == "saved_steps"))


def loop_names(code: ModuleCode, loop: Node) -> dict:
    loops = LOOP_NAMES.setdefault(code, {})
    if loop not in loops:
        loops[loop] = {"T": code.names.local("T"), "t": code.names.local("t"), "local": code.names.local}
    return loops[loop]


def local_name(own: dict, key: tuple, base: str) -> str:
    """The loop's variable for `key`, made from `base` the first time it is asked for."""
    if key not in own:
        own[key] = own["local"](base)
    return own[key]


def carries_needed(body: Body, finals: set[int], stacked: list[Node]) -> set[int]:
    """The carries a loop must carry: those whose final value is read, and those any of them or any
    stacked output depends on, step after step."""
    carried = set(finals)
    while True:
        reads = set(toposort([body.new_carries[i] for i in carried] + stacked))
        more = {i for i, slot in enumerate(body.carries) if slot in reads} - carried
        if not more:
            return carried
        carried |= more
