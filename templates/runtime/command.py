"""The command line of every generated module (`python model.py train|evaluate|predict`)."""
import numpy as np

from ._model import NEEDS, PREDICT, TRAINING, init_params
from .files import _npz_path, _writable, load_data, load_params, load_run
from .settings import BACKENDS, SETTINGS, setting_flag, setting_problems
from .training import (TrainingDiverged, TrainingInterrupted, _best, _figures, _progress, _progress_every, _shown,
                       evaluate, predict, train)


def main(argv=None):
    """The command line: train on a data file and save params; predict with saved params."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train on a data file and save the params")
    fit.add_argument("--data", required=True, help=".npz or .csv file of the inputs")
    fit.add_argument("--out", help="where to save the trained params (.npz; default: beside this module, "
                     "as <module>_params.npz; with --resume, the run resumed)")
    start = fit.add_mutually_exclusive_group()
    start.add_argument("--params", help="start from these params (.npz) instead of init_params()")
    start.add_argument("--resume", help="continue the run saved in this file (.npz written by train): its params, "
                       "optimizer state, epoch counter and settings (flags given override them)")
    fit.add_argument("--backend", choices=tuple(BACKENDS), help="the array library to compute with (default: numpy)")
    fit.add_argument("--every", type=int, metavar="N", help="print progress every N epochs, and the last "
                     "(default: about 20 lines, every max(1, ceil(epochs / 20)) epochs)")
    fit.add_argument("--quiet", action="store_true", help="no progress lines")
    for setting in SETTINGS.values():
        setting_flag(fit, setting, f"{setting.help} (default: {TRAINING.get(setting.name, setting.default)})")
    score = commands.add_parser("evaluate", help="print the loss (and accuracy) on a data file")
    score.add_argument("--params", required=True, help="trained params (.npz)")
    score.add_argument("--data", required=True, help=".npz or .csv file of the inputs and targets")
    use = commands.add_parser("predict", help="print the predictions for a data file")
    use.add_argument("--params", required=True, help="trained params (.npz)")
    use.add_argument("--data", required=True, help=".npz or .csv file of the inputs")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train_command(args)
        predicted = NEEDS[PREDICT] if PREDICT is not None else None
        data = load_data(args.data, predicted if args.command == "predict" else None)
        if args.command == "evaluate":
            print(_figures(evaluate(load_params(args.params), data)))
            return 0
        _print_predictions(predict(load_params(args.params), data))
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _train_command(args):
    """`train`: refuse an --out that is the data file, check its folder, train, save; on Ctrl-C or
    divergence, say what was saved."""
    import sys

    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be a whole number >= 1, got {args.every}")
    out = _npz_path(args.out or args.resume or _default_out())  # a resumed run: updated in place
    _refuse_same_file(out, {"--data": args.data, "--params": args.params})
    given = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}  # "--clip none" too
    run = load_run(args.resume) if args.resume else None
    settings = {**TRAINING, **(run["settings"] if run else {}), **given}
    for name, problem in setting_problems(settings).items():  # before anything is written
        raise ValueError(f"{SETTINGS[name].flag if name in SETTINGS else name} {problem}")
    out = _writable(out)
    data = load_data(args.data)
    params = None if run else load_params(args.params) if args.params else init_params(settings.get("seed", 0))
    if not (args.out or args.resume):
        print(f"saving the params beside the module, to {out} (--out chooses another file)")
    epochs, every, records = settings["epochs"], args.every or _progress_every(settings["epochs"]), []

    def progress(record):
        records.append(record)
        if not args.quiet and _shown(record["epoch"], epochs, every):
            print(_progress(record, epochs), flush=True)
    try:
        train(params, data, on_epoch=progress, backend=args.backend, resume=run, out=out, **settings)
    except TrainingInterrupted as stop:
        print(f"interrupted during epoch {stop.epoch + 1}; " + (
            f"saved the params of epoch {stop.epoch} to {stop.saved} (continue with --resume {stop.saved})"
            if stop.saved else "no epoch was completed: nothing saved"), file=sys.stderr)
        return 130
    except TrainingDiverged as stop:
        first, *report = str(stop).split("\n")  # check_finite's report follows its first line
        print(f"error: {first}; " + (f"saved the params of epoch {stop.run['epoch']}, the last finite ones, to {stop.saved}"
                                     if stop.saved else f"nothing saved ({out} is unchanged)"), *report, sep="\n",
              file=sys.stderr)
        return 1
    best = _best(records)
    if best:
        print(best)
    print(f"saved params to {out}")
    return 0


def _default_out():
    """Where `train` saves without --out: beside the module's file, as <module>_params.npz (never into
    whatever folder the command happens to run in)."""
    import os

    module = globals().get("__file__")
    if not module or not os.path.isfile(module):
        raise ValueError("give --out: this module was not imported from a file, so it has no folder to save beside")
    stem, _ = os.path.splitext(os.path.abspath(module))
    return stem + "_params.npz"


def _refuse_same_file(out, inputs):
    """An output that is one of the command's input files (also through links) would destroy it."""
    import os

    for flag, path in inputs.items():
        if path is None:
            continue
        same = os.path.realpath(out) == os.path.realpath(path)
        if not same and os.path.exists(out) and os.path.exists(path):
            same = os.path.samefile(out, path)  # hard links
        if same:
            raise ValueError(f"--out {out} is the {flag} file: writing the params there would destroy it")


def _print_predictions(prediction):
    import sys

    if PREDICT is not None and np.ndim(prediction) == 2 and np.shape(prediction)[1] > 1:
        prediction = prediction.argmax(axis=1)
    try:
        np.savetxt(sys.stdout, np.reshape(prediction, (len(prediction), -1)), fmt="%.6g")
        sys.stdout.flush()
    except BrokenPipeError:  # `... predict | head` closed the pipe: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
