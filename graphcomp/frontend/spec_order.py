"""The order a spec's named entries are built in: each after the entries it reads, whatever order the
file writes them in. Shared by the [nodes]/[outputs] tables, the [scan.NAME] tables, and the `let`
values inside a loop's step; a cycle is one SpecError naming an entry on it and the whole cycle.
"""
from __future__ import annotations

import ast

from .expressions import SpecError


def evaluation_order(trees: dict[str, ast.AST], expressions: dict, file: str) -> list[str]:
    """Entries (`where` keys of `trees`) in an order where each comes after the entries it uses;
    `expressions` maps each `where` to `(name, text)`, and an entry uses another when its tree reads
    that name. Cycles are errors.

    A depth-first search with an explicit stack (the path being explored), so a chain of any length
    written in any order is sorted without Python's recursion limit; linear in the entries and uses."""
    by_name = {name: where for where, (name, _) in expressions.items()}
    uses = {where: [by_name[n.id] for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in by_name]
            for where, tree in trees.items()}
    order: list[str] = []
    done: set[str] = set()
    for start in trees:
        if start in done:
            continue
        path, on_path = [(start, iter(uses[start]))], {start: 0}
        while path:
            where, pending = path[-1]
            used = next(pending, None)
            if used is None:  # every entry it uses is placed: place it
                path.pop()
                del on_path[where]
                done.add(where)
                order.append(where)
            elif used in on_path:
                cycle = [w for w, _ in path[on_path[used]:]] + [used]
                raise SpecError(file, used, "cycle: " + cycle_text([expressions[w][0] for w in cycle]))
            elif used not in done:
                on_path[used] = len(path)
                path.append((used, iter(uses[used])))
    return order


def cycle_text(names: list[str], shown: int = 6) -> str:
    """`a -> b -> a`; a long cycle shows its first and last names and how many are left out."""
    if len(names) <= 2 * shown + 1:
        return " -> ".join(names)
    left_out = len(names) - 2 * shown
    return " -> ".join(names[:shown] + [f"... ({left_out} more)"] + names[-shown:])
