"""What `graphcomp check` computes and prints: each custom op's rule against finite differences (or
that it is declared unchecked), then every gradient of the spec against central differences at random
inputs. A leaf whose gradient goes through a rule declared check = false differs from finite
differences on purpose (a straight-through estimator): it is reported as unchecked, not as a failure.
"""
from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from ..diff.gradcheck import gradient_errors
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
    errors = spec_gradient_errors(compiled(), spec, seed)
    unchecked = unchecked_leaves(spec.graph)
    width = max(len(name) for name in errors)
    for name, error in errors.items():
        verdict = "ok" if error <= tolerance else f"unchecked (through {unchecked[name]})" if name in unchecked else "FAIL"
        print(f"{name:<{width}}  worst relative error {error:.2e}  {verdict}")
    failed = [name for name, error in errors.items() if error > tolerance and name not in unchecked]
    if failed:
        print(f"gradient check failed for {', '.join(failed)} (tolerance {tolerance:g})", file=sys.stderr)
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


def spec_gradient_errors(model: CompiledModel, spec: Spec, seed: int = 0, batch: int = 3) -> dict[str, float]:
    """Worst relative error per leaf of the gradients against central differences, at random inputs."""
    m = model.load()
    rng = np.random.default_rng(seed)
    arrays = dict(m.init_params(seed))
    classes = {**m.LABELS, **spec.classes}  # the module knows which inputs feed one-hot labels
    for name, leaf in spec.graph.inputs.items():
        shape = tuple(d if isinstance(d, int) else batch for d in leaf.shape)  # N, and a length "T": `batch`
        ids = m.INTEGERS.get(name, (None, 0))[1] or classes.get(name)  # the rows (or classes) ids pick
        arrays[name] = rng.normal(size=shape) if ids is None else rng.integers(0, ids, size=shape).astype(
            m.INTEGERS[name][0] if name in m.INTEGERS else float)
    for name in spec.graph.params:  # nudge params off zero, where relu's kink would be
        arrays[name] = arrays[name] + rng.normal(scale=0.1, size=np.shape(arrays[name]))
    return gradient_errors(m, arrays, model.loss)
