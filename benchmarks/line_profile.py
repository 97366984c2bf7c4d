"""Where a generated step spends its time, line by line: the benchmarks' `--profile` option.

A regression in the generated code is found faster by reading which lines got slower than by timing
the whole step. `profile(model, workload)` rewrites the syntax tree of the model's own generated
functions (every function the source defines before its runtime, whatever their names: forward,
_gradients, a training step) so that each simple statement, also inside the `for` loops of a scan,
adds its elapsed time (time.perf_counter) and one call to a per-line table; imports that instrumented
module from memory (its code compiled from the rewritten tree, its text the original, so tracebacks and
line numbers are those of the generated source); runs the workload with it, and gives the lines slowest
first. The runtime (train(), the update, the shuffling) is not instrumented: its time is what the
whole step takes beyond the generated lines. Reading the clock costs about 0.1 µs, which lands inside
every timed line: `timer_overhead()` measures it once, on a timed empty line, and it is subtracted.
"""
from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import statistics
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, NamedTuple

RUNTIME_MARK = "# The runtime"  # the comment line that opens the runtime copied into each module
PREFIX = "_lp_"  # the names the instrumentation adds; no generated name starts with it (checked)
SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Delete, ast.Assert, ast.Import, ast.ImportFrom)


class UnknownWorkload(ValueError):
    """A --profile name that matches no workload, or more than one."""


class Line(NamedTuple):
    seconds: float  # total over the run, the timer's overhead subtracted
    calls: int
    number: int     # the line number in the generated source
    text: str       # the statement's source, its lines joined
    function: str   # the generated function it belongs to


@dataclass(frozen=True)
class Profile:
    lines: list[Line]  # slowest first; lines never run are left out
    overhead: float    # seconds the clock itself adds to one timed line (subtracted from each)


class LineTable:
    """Seconds and calls per line number, filled by the instrumented code; the statements' text."""

    def __init__(self, source: str) -> None:
        size = source.count("\n") + 2
        self.seconds, self.calls = [0.0] * size, [0] * size
        self.text: dict[int, str] = {}
        self.function: dict[int, str] = {}

    def reset(self) -> None:
        self.seconds[:] = [0.0] * len(self.seconds)
        self.calls[:] = [0] * len(self.calls)

    def lines(self, overhead: float) -> list[Line]:
        rows = [Line(max(self.seconds[n] - overhead * self.calls[n], 0.0), self.calls[n], n, self.text[n],
                     self.function[n]) for n in self.text if self.calls[n]]
        return sorted(rows, key=lambda row: (-row.seconds, row.number))


class _Timer(ast.NodeTransformer):
    """Wraps each simple statement of a function in two clock readings that add to the table."""

    def __init__(self, source_lines: list[str], table: LineTable, function: str) -> None:
        self.source_lines, self.table, self.function = source_lines, table, function

    def visit_Return(self, node: ast.Return) -> ast.AST | list[ast.stmt]:
        if node.value is None:
            return node
        value = ast.Assign(targets=[ast.Name(f"{PREFIX}value", ast.Store())], value=node.value)
        result = ast.Return(ast.Name(f"{PREFIX}value", ast.Load()))
        for made in (value, value.targets[0], result, result.value):  # an error points at the return's line
            ast.copy_location(made, node)
        return self.timed([value], node) + [result]

    def generic_visit(self, node: ast.AST) -> ast.AST | list[ast.stmt]:
        if not isinstance(node, SIMPLE) or _declaration(node):
            return super().generic_visit(node)  # compound statements: their bodies are visited
        return self.timed([node], node)

    def timed(self, body: list[ast.stmt], where: ast.stmt) -> list[ast.stmt]:
        number = where.lineno
        text = " ".join(line.strip() for line in self.source_lines[number - 1:where.end_lineno])
        self.table.text[number], self.table.function[number] = text, self.function
        return timed_block(body, number, where)


def _declaration(node: ast.AST) -> bool:
    """A docstring or a bare constant (not run), or an annotation without a value."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or \
        (isinstance(node, ast.AnnAssign) and node.value is None)


def timed_block(body: list[ast.stmt], number: int, where: ast.AST) -> list[ast.stmt]:
    """start = clock(); <body>; seconds[number] += clock() - start; calls[number] += 1."""
    start = ast.parse(f"{PREFIX}start = {PREFIX}clock()").body
    end = ast.parse(f"{PREFIX}seconds[{number}] += {PREFIX}clock() - {PREFIX}start\n"
                    f"{PREFIX}calls[{number}] += 1").body
    block = start + body + end
    for statement in start + end:
        for node in ast.walk(statement):
            ast.copy_location(node, where)
            node.end_lineno, node.end_col_offset = where.end_lineno, where.end_col_offset
    return block


def generated_functions(tree: ast.Module, source: str) -> list[ast.FunctionDef]:
    """The functions the source defines at its top level before the runtime's opening comment."""
    lines = source.splitlines()
    marks = [n for n, line in enumerate(lines, 1) if line.startswith(RUNTIME_MARK)]
    if not marks:
        raise ValueError(f"not a module graphcomp generated: no line starting with {RUNTIME_MARK!r}")
    return [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.lineno < marks[0]]


def instrumented_tree(source: str, table: LineTable) -> ast.Module:
    """The module's syntax tree with every generated function's simple statements timed."""
    tree = ast.parse(source)
    names = {node.id if isinstance(node, ast.Name) else node.arg for node in ast.walk(tree) if isinstance(node, (ast.Name, ast.arg))}
    taken = sorted(name for name in names if name.startswith(PREFIX))
    if taken:
        raise ValueError(f"the generated source already uses the profiler's names: {', '.join(taken)}")
    lines = source.splitlines()
    for function in generated_functions(tree, source):
        _Timer(lines, table, function.name).visit(function)
    return ast.fix_missing_locations(tree)


class _TreeLoader(importlib.abc.SourceLoader):
    """Imports a module from memory: its text is the generated source (for tracebacks), its code is
    compiled from the instrumented tree, which keeps the source's line numbers."""

    def __init__(self, source: str, tree: ast.Module, filename: str) -> None:
        self.source, self.tree, self.filename = source, tree, filename

    def get_filename(self, fullname: str) -> str:
        return self.filename

    def get_data(self, path: str) -> bytes:
        return self.source.encode("utf-8")

    def source_to_code(self, data, path, *, _optimize=-1):
        return compile(self.tree, path, "exec", dont_inherit=True)


def instrument(source: str, name: str = "profiled_model") -> tuple[ModuleType, LineTable]:
    """The generated module, imported with its generated functions timed, and the table they fill."""
    table = LineTable(source)
    loader = _TreeLoader(source, instrumented_tree(source, table), f"graphcomp-profiled:{name}.py")
    spec = importlib.util.spec_from_loader(name, loader, origin=loader.filename)
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update({f"{PREFIX}clock": time.perf_counter, f"{PREFIX}seconds": table.seconds,
                            f"{PREFIX}calls": table.calls})
    spec.loader.exec_module(module)
    return module, table


def timer_overhead(rounds: int = 7, runs: int = 20000) -> float:
    """Seconds a timed line measures when it runs nothing: the clock's own share of every line
    (the median over `rounds` rounds of `runs` each)."""
    source = f"def idle(n):\n    for _ in range(n):\n        pass\n{RUNTIME_MARK}\n"
    tree = ast.parse(source)
    loop = tree.body[0].body[0]
    loop.body = timed_block([], 3, loop.body[0])
    table = LineTable(source)
    spec = importlib.util.spec_from_loader("profiled_idle", _TreeLoader(source, ast.fix_missing_locations(tree), "idle"))
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update({f"{PREFIX}clock": time.perf_counter, f"{PREFIX}seconds": table.seconds,
                            f"{PREFIX}calls": table.calls})
    spec.loader.exec_module(module)
    each = []
    for _ in range(rounds):
        table.reset()
        module.idle(runs)
        each.append(table.seconds[3] / runs)
    return statistics.median(each)


def profile(model, workload: Callable[[ModuleType], object], *, repeat: int = 1, warmup: bool = True,
            overhead: float | None = None) -> Profile:
    """Run `workload(module)` `repeat` times with the model's generated functions timed line by line
    (after one run not counted, if `warmup`). `model`: a compiled model (its `.source`) or the source."""
    source = model if isinstance(model, str) else model.source
    module, table = instrument(source)
    if warmup:
        workload(module)
        table.reset()
    for _ in range(repeat):
        workload(module)
    overhead = timer_overhead() if overhead is None else overhead
    return Profile(table.lines(overhead), overhead)


def choose(name: str, names) -> str:
    """The workload `name` means: the name itself, else the one name it begins, else the one name it is
    part of (case aside); else UnknownWorkload listing the names."""
    names, wanted = list(names), name.casefold()
    for matches in ([n for n in names if n.casefold() == wanted], [n for n in names if n.casefold().startswith(wanted)],
                    [n for n in names if wanted in n.casefold()]):
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownWorkload(f"--profile {name!r} matches {len(matches)} workloads: "
                                  + "; ".join(repr(m) for m in matches) + ". Give more of the name.")
    raise UnknownWorkload(f"--profile {name!r} matches no workload; the workloads are: "
                          + "; ".join(repr(n) for n in names))


def step_profile(title: str, model, make_run: Callable[[ModuleType], Callable[[], object]], steps: int,
                 repeat: int, top: int = 10, width: int = 120) -> str:
    """The report of one workload: `make_run(module)` gives a run of `steps` steps on that module. The
    step's time is the plain module's (the median of `repeat` runs); the lines' times come from as many
    runs of the instrumented module, interleaved with those, after one run of each not counted."""
    plain_run = make_run(model.load())
    module, table = instrument(model.source)
    timed_run = make_run(module)
    plain_run(), timed_run()
    table.reset()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        plain_run()
        seconds.append(time.perf_counter() - start)
        timed_run()
    overhead = timer_overhead()
    result = Profile(table.lines(overhead), overhead)
    return report(title, result, steps * repeat, statistics.median(seconds) / steps, top, width)


def report(title: str, result: Profile, steps: int, step_seconds: float, top: int = 10, width: int = 120) -> str:
    """The `top` slowest lines: µs per step, share of the step, calls, line number and text; then how
    the step splits between those lines, the other generated lines, and the rest (the runtime)."""
    listed, rest = result.lines[:top], result.lines[top:]
    share = lambda seconds: f"{100 * seconds / steps / step_seconds:.1f}%"  # noqa: E731
    out = [f"{title}: the {len(listed)} slowest generated lines over {steps} steps; the step takes "
           f"{1e6 * step_seconds:.1f} µs (the module as generated, median); timer overhead "
           f"{1e6 * result.overhead:.3f} µs per line run, subtracted",
           f"{'µs/step':>9}{'share':>8}{'calls':>9}{'line':>6}  code"]
    for line in listed:
        head = f"{1e6 * line.seconds / steps:>9.2f}{share(line.seconds):>8}{line.calls:>9}{line.number:>6}  "
        text = f"{line.text}"
        room = max(width - len(head), 20)
        out.append(head + (text if len(text) <= room else text[:room - 1] + "…"))
    in_listed, in_rest = sum(line.seconds for line in listed), sum(line.seconds for line in rest)
    outside = steps * step_seconds - in_listed - in_rest
    out.append(f"the {len(listed)} lines above: {share(in_listed)} of the step; the other {len(rest)} generated "
               f"lines: {share(in_rest)}; outside the generated lines (training loop, update, loop headers, "
               f"calls): {share(outside)}" + (" (below zero: the runs differed by more than the runtime's share; "
                                              "more --repeat)" if outside < 0 else ""))
    return "\n".join(out)
