"""Random graphs extended to whole derivative matrices: gc.jacobian (and gc.hessian of a scalar) of the
random graphs of tests/random_graphs.py, against central differences in float64.

For a seed, `random_case(seed, new_ops=True)` builds the graph it always builds; a generator of its own
(seeded from the seed, so that no seed's graph changes) then picks values y of the graph and leaves x
they depend on, such that y.shape + x.shape is a shape a value may have, and adds the outputs
jacobian(y, x) in each mode that applies (forward when x has fixed sizes, reverse when y has), and
hessian(y, x) where y is a scalar. The two modes' matrices must agree with each other, and with central
differences of y (of the gradient of y, for a Hessian) wherever two step sizes agree (not on a kink); the
graph is compiled with and without simplification, and both modules' matrices must agree.

    python tests/random_jacobians.py --graphs 200           # seeds 0..199
    python tests/random_jacobians.py --seed 12 --show       # one graph: its code and its check
"""
from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field

import numpy as np

from random_graphs import AGREEMENT, Case, _buffers, _same, random_case  # first: it puts the package on the path

import graphcomp as gc
from graphcomp.ir import depending_on, toposort

TOLERANCE = 1e-5
# Ops whose forward() value is not the one their derivative rules read (running statistics, dropout).
SKIPPED = {"batch_norm", "dropout_mask"}


@dataclass
class Matrix:
    """One derivative matrix asked of the graph: which output, of which value y, by which leaf x."""

    output: str
    y: str          # an output holding y, or (for a Hessian) the gradient of y
    x: str
    hessian: bool = False


@dataclass
class JacobianCase:
    case: Case
    matrices: list[Matrix] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def jacobian_case(seed: int) -> JacobianCase:
    """The random graph of `seed` with up to two values' Jacobians (and Hessians) as outputs."""
    case = random_case(seed, new_ops=True)
    g, r = case.graph, random.Random(f"jacobians {seed}")
    order = toposort(list(g.outputs.values()))
    skipped = depending_on(order, {n for n in order if n.op in SKIPPED})
    floats = [g.leaves[name] for name in case.wrt if not g.leaves[name].is_integer_input]
    values = [n for n in order if not n.is_leaf and n.op != "const" and n not in skipped and n.ndim <= 3]
    result = JacobianCase(case)
    for k, y in enumerate(r.sample(values, min(2, len(values)))):
        sources = depending_on(toposort([y]), set(floats))
        leaves = [x for x in floats if x in sources and _valid(y, x)]
        if not leaves:
            continue
        x = r.choice(leaves)
        g.output(f"jy{k}", y) if y not in g.outputs.values() else None
        shown = next(name for name, node in g.outputs.items() if node is y)
        for mode in ("forward", "reverse"):
            if (mode == "forward" and None in x.shape) or (mode == "reverse" and None in y.shape):
                continue
            g.output(f"J{k}_{mode}", gc.jacobian(y, x, mode=mode))
            result.matrices.append(Matrix(f"J{k}_{mode}", shown, x.name))
        if y.shape == () and None not in x.shape:
            g.output(f"H{k}", gc.hessian(y, x))
            g.output(f"g{k}", gc.grad(y, [x])[0])
            result.matrices.append(Matrix(f"H{k}", f"g{k}", x.name, hessian=True))
    return result


def _valid(y: gc.Node, x: gc.Node) -> bool:
    shape = tuple(y.shape) + tuple(x.shape)
    return None not in shape[1:] and not any(isinstance(d, str) for d in shape)


def check(jc: JacobianCase) -> JacobianCase:
    """Compile with and without simplification, run, and compare each matrix with the other module's, with
    the other mode's, and with central differences."""
    case = jc.case
    modules = [gc.compile(case.graph, wrt=case.wrt, loss="loss", simplify=s).load() for s in (True, False)]
    arrays = {**case.arrays, **_buffers(modules[0], case.seed)}  # batch norm's running statistics, if any
    with np.errstate(all="ignore"):
        out, literal = (module.forward(**arrays) for module in modules)
    for m in jc.matrices:
        got = np.asarray(out[m.output])
        want = np.asarray(out[m.y]).shape + arrays[m.x].shape
        if got.shape != want:
            jc.problems.append(f"{m.output}: shape {got.shape}, want {want}")
            continue
        other = m.output.replace("forward", "reverse") if m.output.endswith("forward") else None
        for name, value in (("literal", literal[m.output]), ("reverse mode", out.get(other))):
            if value is not None and _tame(got) and not _same(got, value, AGREEMENT):
                jc.problems.append(f"{m.output}: differs from the {name} module's by {np.max(np.abs(got - value)):.2e}")
        fine, coarse = (_differences(modules[0], arrays, m, eps) for eps in (1e-6, 1e-4))
        if not _tame(fine) or not _same(fine, coarse, TOLERANCE):
            continue  # on a kink, or overflowing: finite differences say nothing here
        if not _same(got, fine, TOLERANCE):
            jc.problems.append(f"{m.output} = d{m.y}/d{m.x}: differs from central differences by "
                               f"{np.max(np.abs(got - fine)):.2e}")
    return jc


def _tame(value) -> bool:
    value = np.asarray(value, dtype=np.float64)
    return bool(np.all(np.isfinite(value))) and float(np.max(np.abs(value), initial=0.0)) < 1e6


def _differences(module, arrays: dict, m: Matrix, eps: float) -> np.ndarray:
    """∂y/∂x by central differences, laid out as y.shape + x.shape."""
    base = np.asarray(arrays[m.x], dtype=np.float64)
    columns = []
    for index in np.ndindex(base.shape):
        moved = []
        for sign in (1, -1):
            shifted = base.copy()
            shifted[index] += sign * eps
            with np.errstate(all="ignore"):
                moved.append(np.asarray(module.forward(**{**arrays, m.x: shifted})[m.y], dtype=np.float64))
        columns.append((moved[0] - moved[1]) / (2 * eps))
    stacked = np.stack(columns, axis=-1)
    return stacked.reshape(stacked.shape[:-1] + base.shape)


def report(jc: JacobianCase) -> str:
    lines = [f"seed {jc.case.seed}:"] + [f"    {line}" for line in jc.case.code]
    lines += [f"    {m.output} = {'hessian' if m.hessian else 'jacobian'}({m.y}, {m.x})" for m in jc.matrices]
    return "\n".join(lines + [f"  ! {problem}" for problem in jc.problems])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", type=int, default=100)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args(argv)
    failures = 0
    for seed in [args.seed] if args.seed is not None else range(args.graphs):
        jc = check(jacobian_case(seed))
        if jc.problems or args.show:
            print(report(jc), flush=True)
        failures += bool(jc.problems)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
