"""What `graphcomp check` computes and prints: each custom op's rule against finite differences (or
that it is declared unchecked), then every gradient of the spec against central differences at random
inputs, then forward mode against reverse mode on every output (the adjoint dot-product test, checks.py).
A leaf whose gradient goes through a rule declared check = false differs from finite
differences on purpose (a straight-through estimator): it is reported as unchecked, not as a failure.
"""
from __future__ import annotations

import sys
from typing import Callable

from .checks import adjoint_errors, spec_gradient_errors
from .custom_check import RuleCheckError, custom_nodes, check_rule, unchecked_leaves
from .model import CompiledModel
from .spec import Spec


def check_spec(spec: Spec, compiled: Callable[[], CompiledModel], seed: int, tolerance: float) -> int:
    """Print the check of a spec; 0 when everything checked agrees, 1 when something does not."""
    try:
        for line in rule_lines(spec):
            print(line)
    except RuleCheckError as error:
        print(f"FAIL {error}", file=sys.stderr)
        return 1
    model = compiled()
    errors, adjoints = spec_gradient_errors(model, spec, seed), adjoint_errors(model, spec, seed)
    unchecked = unchecked_leaves(spec.graph)
    rows = [(name, f"worst relative error {error:.2e}", error, unchecked.get(name)) for name, error in errors.items()]
    rows += [(name, f"<J v, u> = <v, J^T u> to {error:.2e}", error, None) if isinstance(error, float)
             else (name, f"forward mode {error}", None, None) for name, error in adjoints.items()]
    width = max(len(name) for name, *_ in rows)
    for name, what, error, through in rows:
        verdict = "" if error is None else "ok" if error <= tolerance else \
            f"unchecked (through {through})" if through else "FAIL"
        print(f"{name:<{width}}  {what}  {verdict}".rstrip())
    failed = [name for name, error in errors.items() if error > tolerance and name not in unchecked]
    wrong = [name for name, error in adjoints.items() if isinstance(error, float) and error > tolerance]
    if failed or wrong:
        print("; ".join([f"gradient check failed for {', '.join(failed)}"] * bool(failed) + [
            f"forward and reverse mode disagree on {', '.join(wrong)}"] * bool(wrong))
              + f" (tolerance {tolerance:g})", file=sys.stderr)
        return 1
    return 0


def rule_lines(spec: Spec) -> list[str]:
    """One line per custom op of the spec: its rule agrees with finite differences, or is unchecked."""
    lines, seen = [], set()
    for node in custom_nodes(spec.graph):
        rule = node.attr("rule")
        if rule not in seen:
            seen.add(rule)
            if rule.check:
                check_rule(rule, tuple(x.shape for x in node.inputs[1:]))
            lines.append(f"custom op {rule.name}: " + ("rule agrees with finite differences" if rule.check else
                                                       "unchecked (check = false: it differs on purpose)"))
    return lines
