"""Checkpointed loops: `gc.scan(..., checkpoint=k)`.

A loop's derivative reads, at each step, values of the forward step (the saved values). A checkpointed
loop keeps only its carries every k steps; the derivative's loop, on reaching the last step of a block
of k, computes that block's steps again from the checkpoint before it, and reads the values it needs
from those k steps. Memory: T/k carries and k steps' values instead of T steps' values. Time: the
forward step is run twice.

Only a loop whose saved values no other value reads than its own derivative is checkpointed (a second
derivative reads them too: that loop keeps them all, as does a loop inside another loop's step).
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Callable

from ..ir import Node
from ..ops.scan import Body, counts
from .comments import literal
from .listing import FunctionCode, Statement
from .loop_state import loop_names

if TYPE_CHECKING:
    from .statements import ModuleCode

_CHECKPOINTED: "weakref.WeakKeyDictionary[ModuleCode, dict[Node, int]]" = weakref.WeakKeyDictionary()


def plan_checkpoints(code: ModuleCode, order: list[Node]) -> None:
    """Which loops of a function (its nodes in `order`) are written checkpointed: those asked to be,
    whose saved values only their derivative's loop reads."""
    saved_by = {}
    for node in order:
        for x in node.inputs:
            if x.op == "scan_result" and x.attr("saved") is not None:
                saved_by.setdefault(x.inputs[0], []).append(node)
    for node in order:
        every = node.attr("checkpoint") if node.op == "scan" else None
        if every and all(reader.op == "scan" and reader.attr("of") is node for reader in saved_by.get(node, [])):
            _CHECKPOINTED.setdefault(code, {})[node] = every


def checkpoint_of(code: ModuleCode, loop: Node) -> int | None:
    """k for a loop written checkpointed every k steps, else None."""
    return _CHECKPOINTED.get(code, {}).get(loop)


def _carries_text(variables: list[str]) -> str:
    return variables[0] if len(variables) == 1 else f"({', '.join(variables)})"


def keep_checkpoint(code: ModuleCode, loop: Node, carried: list[int], carries: list[str], t: str,
                    before: list[Statement]) -> Statement:
    """At the top of a checkpointed loop's step: its carries (`carried`, their variables `carries`) kept
    every k steps (counted in the order the loop takes its steps), in a list started in `before`."""
    own, every = loop_names(code, loop), checkpoint_of(code, loop)
    if "checkpoints" not in own:
        own["checkpoints"] = code.names.local("checkpoints")
    own["kept carries"] = carried
    before.append(Statement(own["checkpoints"], "[]"))
    taken = f"({own['T']} - 1 - {t})" if loop.attr("reverse") else t
    keep = Statement("", f"{own['checkpoints']}.append({_carries_text(carries) if carries else '()'})")
    return Statement("", f"if {taken} % {every} == 0:", block=(keep,))


def recomputed_steps(code: ModuleCode, back: Node, function: FunctionCode, own: dict,
                     step_lines: Callable) -> list[Statement]:
    """At the top of the step of a checkpointed loop's derivative: on the last step of a block of k (the
    first the derivative reaches), that block's forward steps computed again from the checkpoint before
    it, into lists of the values the derivative reads; `own` (the derivative loop's variables) is told
    how to index them. `step_lines` writes one step (codegen/loops.py)."""
    forward = back.attr("of")
    every = checkpoint_of(code, forward) if forward is not None else None
    if not every:
        return []
    c, k, _ = counts(back)
    saved = [seq for seq in back.inputs[c:c + k]
             if seq.op == "scan_result" and seq.inputs[0] is forward and seq.attr("saved") is not None]
    forward_own, t, lines = loop_names(code, forward), own["t"], []
    length = forward_own["T"]
    taken = t
    if forward.attr("reverse"):  # blocks are counted in the order the forward loop took its steps
        taken = own.setdefault("taken", code.names.local("s"))
        lines.append(Statement(taken, f"{length} - 1 - {t}"))
    for seq in saved:
        own[("index", seq)] = f"{taken} % {every}"
    again = {"T": length, "t": code.names.local("t"), "local": code.names.local, "again": True}
    block = _block_again(code, forward, function, again, saved, f"{forward_own['checkpoints']}[{taken} // {every}]",
                         step_lines)
    first = f"{taken} - {taken} % {every}"
    steps = (f"range({length} - 1 - ({first}), {t} - 1, -1)" if forward.attr("reverse")
             else f"range({first}, {t} + 1)")
    block[-1] = Statement("", f"for {again['t']} in {steps}:", block=block[-1].block)
    last = f"{t} == 0" if forward.attr("reverse") else f"{t} == {length} - 1"
    condition = f"if {taken} % {every} == {every - 1} or {last}:"
    return lines + [Statement("", condition, comment="the steps since the last checkpoint, computed again",
                              block=tuple(block))]


def _block_again(code: ModuleCode, forward: Node, function: FunctionCode, again: dict, saved: list[Node],
                 checkpoint: str, step_lines: Callable) -> list[Statement]:
    """The carries read off their checkpoint, empty lists, and a loop (its header left to the caller)
    whose step computes the saved values and passes the carries on."""
    body: Body = forward.attr("body")
    c, k, _ = counts(forward)
    inner = FunctionCode(code.names)
    for slot, value in zip(body.captured, forward.inputs[c + k:]):
        inner.inlined[slot] = literal(function.operand(value))
    stacked = [(seq.attr("saved"), seq, 0) for seq in saved]
    names = loop_names(code, forward)
    carried = names["kept carries"]  # what the checkpoints hold, which the values read depend on
    carry_vars = {i: code.names.local(f"{names.get(('carry_of', body.carries[i]), body.carries[i].name)}_again")
                  for i in carried}
    for i in carried:
        inner.inlined[body.carries[i]] = carry_vars[i]
    before: list[Statement] = []
    kept = set(body.nodes()) | set(body.carries)  # nothing is added to in place: the checkpoints hold the carries
    lines, _ = step_lines(code, forward, function, inner, again, carried, carry_vars, stacked, before, kept)
    start = [Statement(", ".join(carry_vars[i] for i in carried), checkpoint)] if carried else []
    return start + before + [Statement("", "for", block=tuple(lines or [Statement("", "pass")]))]
