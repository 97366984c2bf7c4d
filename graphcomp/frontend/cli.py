"""The `graphcomp` command: compile, grad, graph, check and train a model spec.

A spec is a TOML file (see graphcomp.spec) or a Python file that builds a gc.Graph (a module-level
`graph`, or a `build()` function returning one). Any problem with the input is one line on stderr naming
the file, the entry and the problem, with exit code 2; nothing is written then. Outputs are checked
before any work: none may be one of the command's inputs or another output, and each folder must take a
new file; every file is written atomically (graphcomp.files), so a failure leaves the old file as it was.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence


from ..codegen.runtime import BACKENDS, SETTINGS, setting_flag
from ..codegen import loss_name, wrt_leaves
from ..errors import GraphcompError, InputError, OutputError
from ..files import check_outputs, file_with_suffix, read_file, reading
from ..inspection.explorer import picture_view
from ..inspection.derivative_graph import backward_view
from ..inspection.unroll import unrolled
from ..inspection.export import FORMATS, write
from ..inspection.pictures import DEFAULT_DPI
from ..ir import Graph
from .check_command import check_spec
from .model import CompiledModel, compile
from .request import TRAINING_KEYS, training_problems
from .spec import Spec, SpecError, load
from .checks import spec_gradient_errors  # noqa: F401 - tests and benchmarks import it from here
from .values import _add_value_options, _at_files, _value_files, leaf_values, parse_values  # noqa: F401 - graph's too

TOLERANCE = 1e-6


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command: exit 0, 1 (a check failed, training diverged), 2 (bad files or settings), 130 (Ctrl-C)."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("graphcomp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `graphcomp grad ... | head` closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SpecError as error:
        print(f"graphcomp: error: {error}", file=sys.stderr)
        return 2
    except (InputError, OutputError) as error:  # each names its own file
        print(f"graphcomp: error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except (GraphcompError, ValueError, OSError) as error:  # about the spec given: name its file
        where = f"{args.spec}: " if getattr(args, "spec", None) and str(args.spec) not in str(error) else ""
        print(f"graphcomp: error: {where}{_one_line(str(error))}", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    return text if text.isprintable() else repr(text)[1:-1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphcomp", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("compile", help="write the standalone NumPy module of a spec")
    p.add_argument("spec")
    p.add_argument("-o", "--output", required=True, help="the .py file to write")
    p.add_argument("--no-simplify", action="store_true", help="emit the graph exactly as written")
    p.set_defaults(run=_compile)

    p = commands.add_parser("grad", help="print the gradient formulas")
    p.add_argument("spec")
    p.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")
    p.add_argument("--at", help="leaf values: u=2,v=3,w=4 inline, or an .npz or .csv data file (and u=2 after a "
                                "comma): print both passes with their values")
    p.add_argument("--steps", action="store_true", help="print the chain rule node by node, without values")
    p.add_argument("--tangent", help="forward mode instead: the inputs' tangents (x1=1,x2=0), each value followed "
                                     "by its tangent dot_<name>; the last line is the loss's directional derivative")
    _add_value_options(p)
    p.set_defaults(run=_grad)

    p = commands.add_parser("report", help="write a Markdown report (both passes, what simplification changed, "
                            "the code) or, with --html, the explorer page")
    p.add_argument("spec")
    p.add_argument("-o", "--output", required=True, help="the .md (or, with --html, .html) file to write")
    p.add_argument("--html", action="store_true", help="one self-contained HTML page: the picture, formulas, "
                   "derivation and code, cross-linked (also chosen by an .html output)")
    p.add_argument("--at", help="leaf values (u=2,v=3, or an .npz or .csv data file): the report shows every value and gradient")
    _add_value_options(p)
    p.set_defaults(run=_report)

    _add_graph_command(commands)

    p = commands.add_parser("check", help="compare the compiled gradients with central finite differences")
    p.add_argument("spec")
    p.add_argument("--tolerance", type=float, default=TOLERANCE)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_check)

    _add_train_command(commands)
    return parser


def _add_graph_command(commands) -> None:
    p = commands.add_parser("graph", help="draw the graph (SVG, PNG, PDF) or export it (DOT, GraphML, JSON)")
    p.add_argument("spec")
    p.add_argument("--format", choices=FORMATS, help="default: from the output's suffix, else svg")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--at", help="leaf values (u=2,v=3, or an .npz or .csv data file): each value, gradient and edge's share")
    p.add_argument("--backward", action="store_true", help="draw the derivative graph: one box per gradient "
                   "with its chain-rule formula (with --at, its value)")
    p.add_argument("--no-simplify", action="store_true", help="compile the graph as written (no rewrites, no fusion)")
    p.add_argument("--rankdir", choices=("auto", "LR", "TB"), default="auto",
                   help="left to right or top to bottom (auto: LR for scalars, TB for networks)")
    p.add_argument("--dpi", type=int, default=DEFAULT_DPI, help=f"PNG resolution (default {DEFAULT_DPI})")
    p.add_argument("--unfold", action="store_true", help="a box for every operation, even in large graphs")
    p.add_argument("--unroll", type=int, metavar="K", help="draw each loop (gc.scan) written out for its first K "
                   "steps, like a slide of a recurrent net unrolled in time (a drawing: no --at)")
    _add_value_options(p)
    p.set_defaults(run=_graph)


def _add_train_command(commands) -> None:
    p = commands.add_parser("train", help="compile a spec and train it on a data file")
    p.add_argument("spec")
    p.add_argument("--data", required=True, help=".npz or .csv file of the inputs")
    p.add_argument("--out", help="the .npz file of the trained params and the run's state, also written when "
                   "training is interrupted or diverges (default: beside the module -o, else beside the spec, as "
                   "<its name>_params.npz; with --resume, the run resumed)")
    p.add_argument("-o", "--output", help="also save the generated module here (a .py file)")
    p.add_argument("--params", help="start from these saved params (.npz) instead of the spec's initial ones")
    p.add_argument("--resume", metavar="RUN", help="continue the run saved in this .npz file (params, optimizer "
                   "state, epoch, random generator) with its settings; flags given override them")
    for setting in SETTINGS.values():  # (--check-finite also compiles the module with check_finite)
        setting_flag(p, setting, f"{setting.help} (overrides the spec's [training] setting; default {setting.default})")
    p.add_argument("--backend", choices=tuple(BACKENDS),
                   help="the array library to train with (default numpy; others need array-api-compat)")
    p.add_argument("--every", type=int, metavar="N", help="print progress every N epochs, and the last (default: "
                   "about 20 lines, every max(1, ceil(epochs / 20)) epochs)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=_train)


# ------------------------------------------------------------------ commands

def _compile(args: argparse.Namespace) -> int:
    check_outputs({"-o": _python_output(args.output)}, {"the spec": args.spec})
    model = _compiled(read_spec(args.spec), simplify=not args.no_simplify)
    path = model.save(args.output)
    print(f"wrote {path}: model {model.graph.name!r}, loss {model.loss!r}, gradients for {', '.join(model.wrt)}")
    return 0


def _grad(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    model = _compiled(spec)
    at = leaf_values(args, spec, model)
    if args.tangent is not None:
        trace = model.tangent_derivation(parse_values(args.tangent), at)
        print(trace.latex() if args.latex else trace.text())
        return 0
    if at is not None or args.steps:
        steps = model.derivation(at=at, unroll=True)  # a loop step by step: backpropagation through time
        if at is not None and at.described:
            print(("% " if args.latex else "# ") + at.described)
        print(steps.latex() + "".join(f"\n% kink: {note}" for note in steps.kinks) if args.latex else steps.text())
        return 0
    formulas = model.gradient_latex() if args.latex else model.gradient_text()
    several_lines = any("\n" in formula for formula in formulas.values())
    for k, (leaf, formula) in enumerate(formulas.items()):
        if several_lines:  # a block per leaf: the lines of the generated code (or equations) it takes
            print(("\n" if k else "") + ("% " if args.latex else "# ") + f"gradient of {model.loss} with respect to {leaf}")
        print(formula)
    return 0


def _report(args: argparse.Namespace) -> int:
    check_outputs({"-o": args.output}, {"the spec": args.spec, **_value_files(args)})
    spec = read_spec(args.spec)
    model = _compiled(spec)
    at = leaf_values(args, spec, model)
    shown = f" (values at {at.described})" if at is not None and at.described else ""
    if args.html or args.output.lower().endswith((".html", ".htm")):
        path = model.explorer(args.output, at)
        print(f"wrote {path}{shown}: open it in a browser (it needs no network)")
    else:
        path = model.report(args.output, at)
        print(f"wrote {path}{shown}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    fmt = args.format or (Path(args.output).suffix[1:].lower() if Path(args.output).suffix[1:].lower() in FORMATS
                          else "svg")
    if args.dpi < 10 or args.dpi > 1200:
        raise GraphcompError(f"--dpi must be between 10 and 1200, got {args.dpi}")
    check_outputs({"-o": args.output}, {"the spec": args.spec, **_value_files(args)})
    spec = read_spec(args.spec)
    at = leaf_values(args, spec)
    if args.unroll is not None:  # the first steps of each loop, written out: a drawing of the recursion
        if at is not None:
            raise GraphcompError("--unroll draws the first steps of each loop, not the model's run: leave out --at")
        spec = replace(spec, graph=unrolled(spec.graph, args.unroll))
    if args.backward:
        view = backward_view(_compiled(spec, simplify=not args.no_simplify), at, fold=False if args.unfold else None)
    else:
        try:  # the loss and leaves compile() would differentiate: they give the roles and the values
            loss = loss_name(spec.graph, spec.loss)
        except GraphcompError:
            if at is not None:
                raise
            loss = None  # several outputs and none said to be the loss: the picture marks none
        wrt = tuple(leaf.name for leaf in wrt_leaves(spec.graph, spec.wrt))
        view = picture_view(spec.graph, loss, wrt, at, unfold=args.unfold)  # the explorer's picture too
    path = write(view, fmt, args.output, rankdir=args.rankdir, dpi=args.dpi)
    print(f"wrote {path} ({view.number_of_nodes()} values, {view.number_of_edges()} edges)")
    return 0


def _check(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    return check_spec(spec, lambda: _compiled(spec), args.seed, args.tolerance)


def _train(args: argparse.Namespace) -> int:
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be a whole number >= 1, got {args.every}")
    if args.params and args.resume:
        raise ValueError("give --params (start from saved params) or --resume (continue a saved run), not both")
    beside = Path(args.output or args.spec)  # no --out: <name>_params.npz beside the module, else the spec, not the cwd
    out = file_with_suffix("--out", args.out or args.resume or str(beside.with_name(f"{beside.stem}_params.npz")),
                           ".npz", "params.npz")  # resume: in place
    output = _python_output(args.output) if args.output else None
    check_outputs({"-o": output, "--out": out}, {"the spec": args.spec, "--data": args.data, "--params": args.params})
    model = _compiled(read_spec(args.spec), check_finite=getattr(args, "check_finite", None))
    m = model.load()
    run = read_file(m.load_run, args.resume) if args.resume else None
    settings = _training_settings(args, m.TRAINING, run)
    data = read_file(m.load_data, args.data)
    with reading(args.data):  # a validation fraction that holds out every example: refused before any write
        m._examples(data, settings.get("validation", 0.0))
    params = None if run else (read_file(m.load_params, args.params) if args.params
                               else m.init_params(settings.get("seed", 0)))
    if output:
        print(f"wrote the module to {model.save(output)}")
    if not (args.out or args.resume):
        print(f"saving the params beside the {'module' if output else 'spec'}, to {out} (--out chooses another file)")
    shown = {key: value for key, value in settings.items() if key in m.TRAINING or hasattr(args, key)}
    print(f"training {model.graph.name!r} on {args.data}: {', '.join(f'{k}={v}' for k, v in shown.items())}"
          + (f" (resuming {args.resume} after epoch {run['epoch']})" if run else ""))
    return _fit(args, m, params, data, settings, run, out)


def _training_settings(args: argparse.Namespace, spec_settings: dict, run: dict | None) -> dict:
    """compile()'s defaults and the spec's [training], then a resumed run's own settings, then the flags."""
    resumed = {key: value for key, value in (run or {}).get("settings", {}).items() if key in TRAINING_KEYS}
    settings = {**spec_settings, **resumed, **{key: getattr(args, key) for key in SETTINGS if hasattr(args, key)}}
    for key, problem in training_problems(settings).items():  # before anything is written
        raise ValueError(f"--{key.replace('_', '-')} {problem}")
    if run and settings["epochs"] < run["epoch"]:
        raise InputError(f"{args.resume}: the run has done {run['epoch']} epochs already; --epochs counts from its start")
    return settings


def _fit(args: argparse.Namespace, m, params: dict | None, data: dict, settings: dict, run: dict | None,
         out: str) -> int:
    """Train and report: the params file is written by train() itself, also when Ctrl-C stops it (exit
    130) or the loss stops being a number (exit 1); each ends in one line saying what was saved."""
    epochs, records = settings["epochs"], []
    every = args.every or m._progress_every(epochs)

    def progress(record: dict) -> None:
        records.append(record)
        if not args.quiet and m._shown(record["epoch"], epochs, every):
            print(m._progress(record, epochs), flush=True)
    try:
        m.train(params, data, on_epoch=progress, backend=args.backend, resume=run, out=out, **settings)
    except KeyboardInterrupt as stop:  # TrainingInterrupted says what it saved; a second Ctrl-C may stop that
        epoch, saved = getattr(stop, "epoch", None), getattr(stop, "saved", None)
        print(f"graphcomp: interrupted after epoch {epoch}; saved the params of epoch {epoch} to {saved} "
              f"(continue with --resume {saved})" if saved else "graphcomp: interrupted" +
              (f" during epoch {epoch + 1}; nothing saved" if epoch is not None else ""), file=sys.stderr)
        return 130
    except FloatingPointError as error:
        saved, last = getattr(error, "saved", None), getattr(error, "epoch", 1) - 1
        first, *report = str(error).split("\n")  # check_finite's report: one line each
        print(f"graphcomp: error: {_one_line(first)}; " + (f"saved the params of epoch {last} to {saved}" if saved
              else "nothing saved"), *map(_one_line, report), sep="\n", file=sys.stderr)
        return 1
    except OSError as error:  # train() could not write `out` (a full disk): its message names the file
        raise OutputError(str(error)) from None
    if m._best(records):  # with validation: "best validation loss 0.0730 at epoch 22 (accuracy 98.33%)"
        print(m._best(records))
    print(f"saved the trained params to {Path(out).resolve()}")
    return 0


def _python_output(path: str) -> str:
    """-o of compile and train: the module is Python source, so a .py file (never a data set or a TOML spec)."""
    if not path.endswith(".py"):
        hint = Path(path).parent / f"{Path(path).stem or 'model'}.py"
        raise OutputError(f"-o {path}: the generated module is Python source; give a .py file such as {hint}")
    return path


# ------------------------------------------------------------------ helpers

def read_spec(path: str) -> Spec:
    """A TOML spec, or a Python file that builds a gc.Graph."""
    if path.endswith(".py"):
        return _spec_from_python(path)
    return load(path)


# Module-level settings a Python spec may define, as a TOML spec's [model] and [training] tables do.
PYTHON_SETTINGS = {"loss": str, "predict": str, "target": str, "wrt": list, "training": dict, "classes": dict}


def _spec_from_python(path: str) -> Spec:
    """Import the user's Python file as `python FILE` would run it (its folder first on the import
    path, so that it can import its neighbours), find its graph and its settings."""
    file = Path(path)
    if not file.exists():
        raise SpecError(path, "", "no such file")
    module_spec = importlib.util.spec_from_file_location(f"graphcomp_spec_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    folder = str(file.resolve().parent)
    sys.path.insert(0, folder)
    try:
        module_spec.loader.exec_module(module)
        graph = _graph_of(module, path)
    except SpecError:
        raise
    except GraphcompError as error:
        raise SpecError(path, "", str(error)) from None
    except SystemExit as error:  # the file called sys.exit(): no model came of it
        raise SpecError(path, "", f"running it called sys.exit({error.code!r}) before defining a model") from None
    except Exception as error:  # noqa: BLE001 - the user's own code: report it on one line
        raise SpecError(path, "", f"running it raised {type(error).__name__}: {error}") from None
    finally:
        sys.path.remove(folder)
    settings = {}
    for name, kind in PYTHON_SETTINGS.items():
        value = getattr(module, name, None)
        if value is None or (name == "loss" and isinstance(value, Graph)):
            continue
        if isinstance(value, tuple) and kind is list:
            value = list(value)
        if not isinstance(value, kind):
            raise SpecError(path, name, f"must be a {kind.__name__}, got {type(value).__name__} {value!r}")
        settings[name] = value
    return Spec(graph, settings.get("loss"), settings.get("wrt"), settings.get("predict"), settings.get("target"),
                settings.get("classes", {}), settings.get("training", {}))


def _graph_of(module, path: str) -> Graph:
    if isinstance(getattr(module, "graph", None), Graph):
        return module.graph
    graph = module.build() if callable(getattr(module, "build", None)) else None
    if isinstance(graph, Graph):
        return graph
    graphs = [value for value in vars(module).values() if isinstance(value, Graph)]
    if len(graphs) == 1:
        return graphs[0]
    raise SpecError(path, "", "define the model as a module-level `graph` (a gc.Graph) or a `build()` function returning one")


def _compiled(spec: Spec, simplify: bool = True, check_finite: bool | None = None) -> CompiledModel:
    check_finite = spec.training.get("check_finite", False) if check_finite is None else check_finite  # [training]'s
    return compile(spec.graph, wrt=spec.wrt, loss=spec.loss, simplify=simplify, predict=spec.predict,
                   target=spec.target, training=spec.training, check_finite=check_finite)


if __name__ == "__main__":
    raise SystemExit(main())
