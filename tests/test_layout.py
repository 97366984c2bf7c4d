"""The layout is the pipeline: imports flow one way, modules and functions stay small, and every op
of the table is reachable from a public function or built by the compiler itself."""
import ast
from pathlib import Path

import graphcomp as gc
from graphcomp.frontend import dsl, losses
from graphcomp.ir import OPS

PACKAGE = Path(gc.__file__).parent
# The packages in pipeline order: each may import only the ones before it (and the base modules).
LAYERS = ("ir", "formulas", "ops", "passes", "diff", "codegen", "inspection", "frontend")
BASE = ("errors", "version", "files")
# The generated modules' runtime (templates/runtime/, installed as graphcomp.templates) imports nothing of
# graphcomp, so any layer may read it: codegen copies it, the spec reader and the command line read its
# table of training settings.
RUNTIME = "templates"


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE), ast.parse(path.read_text(encoding="utf-8"))


def imported_packages(relative: Path, tree: ast.AST) -> set[str]:
    """The graphcomp packages (or base modules) a module imports, from its relative imports."""
    found = set()
    here = relative.parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            target = list(base) + (node.module.split(".") if node.module else [])
            if not target:  # `from . import x` at the top: x is the package or module imported
                target = [alias.name for alias in node.names]
                found.update(target)
                continue
            found.add(target[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphcomp"):
            found.add(node.module.split(".")[1] if "." in node.module else "graphcomp")
    return found


def test_imports_only_flow_down_the_pipeline():
    wrong = []
    for relative, tree in modules():
        if len(relative.parts) == 1:  # __init__, __main__ and the base modules
            if relative.stem in BASE:
                assert imported_packages(relative, tree) <= set(BASE) | {RUNTIME}, \
                    f"{relative} is a base module: it imports only other base modules (and the runtime)"
            continue
        layer = relative.parts[0]
        allowed = set(LAYERS[:LAYERS.index(layer) + 1]) | set(BASE) | {RUNTIME}
        wrong += [f"{relative} imports {name}" for name in imported_packages(relative, tree) - allowed]
    assert not wrong, "imports against the pipeline order:\n" + "\n".join(wrong)


def test_every_module_of_the_package_is_in_a_layer():
    for relative, _ in modules():
        assert len(relative.parts) == 1 or relative.parts[0] in LAYERS, relative
        assert len(relative.parts) > 1 or relative.stem in BASE + ("__init__", "__main__"), relative


def test_modules_and_functions_stay_small():
    too_long = []
    for relative, tree in modules():
        lines = len((PACKAGE / relative).read_text(encoding="utf-8").splitlines())
        if lines > 400:
            too_long.append(f"{relative}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                too_long.append(f"{relative}: {node.name} is {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "\n".join(too_long)


def applied_ops(path: Path) -> dict[str, set[str]]:
    """{function name: the op names it passes to apply(...) and the public functions it calls}."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {}
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        names = found.setdefault(function.name, set())
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
            if callee == "apply" and call.args and isinstance(call.args[0], ast.Constant):
                names.add(call.args[0].value)
            elif callee is not None:
                names.add(f"call:{callee}")
    return found


def applied_anywhere(paths: list[Path]) -> set[str]:
    """The op names passed to apply(...) anywhere in these files (derivative rules are lambdas)."""
    return {call.args[0].value for path in paths for call in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "apply"
            and call.args and isinstance(call.args[0], ast.Constant)}


def test_every_public_function_builds_an_op_and_every_op_is_reachable():
    public = {name: getattr(dsl, name) for name in dsl.__all__} | {name: getattr(losses, name) for name in losses.__all__}
    calls = (applied_ops(PACKAGE / "frontend" / "dsl.py") | applied_ops(PACKAGE / "frontend" / "matrices.py")
             | applied_ops(PACKAGE / "frontend" / "losses.py"))

    def ops_of(name: str, seen=()) -> set[str]:
        found = set()
        for item in calls.get(name, ()):
            if item.startswith("call:"):
                callee = item[5:]
                if callee in calls and callee not in seen:
                    found |= ops_of(callee, seen + (name,))
            else:
                found.add(item)
        return found

    by_users = set()
    for name in public:
        ops = ops_of(name)
        assert ops, f"public function {name} builds no op of the table"
        assert ops <= set(OPS), f"{name} applies unknown ops {sorted(ops - set(OPS))}"
        by_users |= ops
    operators = applied_anywhere([PACKAGE / "ir" / "graph.py"])  # x + y, x @ W, x[0], x.T
    by_compiler = applied_anywhere([path for package in ("ops", "passes", "diff") for path in (PACKAGE / package).glob("*.py")])
    assert by_compiler <= set(OPS), f"the compiler applies unknown ops {sorted(by_compiler - set(OPS))}"
    by_compiler.add("formula")  # made by `fuse`, the way derivative rules build formulas
    unreachable = set(OPS) - by_users - operators - by_compiler
    assert not unreachable, f"ops no public function or compiler rule builds: {sorted(unreachable)}"


def test_the_import_reader_sees_each_kind_of_relative_import():
    module = Path("ops") / "linalg.py"
    assert imported_packages(module, ast.parse("from ..inspection import notation")) == {"inspection"}
    assert imported_packages(module, ast.parse("from .table import Op")) == {"ops"}
    assert imported_packages(module, ast.parse("from ..errors import ShapeError")) == {"errors"}
    assert imported_packages(module, ast.parse("def f():\n    from ..codegen.listing import Listing")) == {"codegen"}
    assert imported_packages(Path("__init__.py"), ast.parse("from . import ops")) == {"ops"}


def test_the_runtime_imports_nothing_of_graphcomp():
    runtime = PACKAGE.parent / "templates" / "runtime"
    for path in sorted(runtime.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 1 or not (node.module or "").startswith("graphcomp"), path.name
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("graphcomp") for alias in node.names), path.name


def test_every_op_row_is_keyword_built():
    """An op is one row, `Op(name=..., shape=..., vjp=..., ...)`: no positional rules to decode."""
    positional = [f"{path.name}:{call.lineno}" for path in sorted((PACKAGE / "ops").glob("*.py"))
                  for call in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                  if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Op" and call.args]
    assert not positional, "Op(...) rows with positional fields: " + ", ".join(positional)
