"""The training loop of every generated module: minibatches, optimizers, schedules, validation, the
state of a run (to resume it), Ctrl-C and divergence, scoring, and other array libraries."""
import numpy as np

from ._model import (BUFFERS, DTYPE, GRADIENT_ARGS, INPUTS, INTEGERS, LOSS, PARAMS, PREDICT, TARGET, THRESHOLD, TRAINED,
                     IN_PLACE, RUNNING_MOMENTUM, USES_DROPOUT, _buffers, _gradients, _gradients_in_place, forward)
from .arrays import _NP, _numpy, _read, _check_finite
from .files import _save_run, _writable
from .settings import BACKENDS, decay_of, setting_problems


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped train(): `params` are those of the last complete epoch (`epoch`, 0 if none), `run`
    what load_run() would read back to continue, `saved` the file written (None if nothing was)."""

    def __init__(self, message, params, run, saved):
        super().__init__(message)
        self.params, self.run, self.epoch, self.saved = params, run, run["epoch"], saved


class TrainingDiverged(FloatingPointError):
    """A loss or a param stopped being a finite number. `params` are those of the last complete epoch,
    which are finite; `epoch` and `batch` say where the first non-finite value appeared."""

    def __init__(self, message, params, run, saved, epoch, batch):
        super().__init__(message)
        self.params, self.run, self.saved, self.epoch, self.batch = params, run, saved, epoch, batch


def train(params, data, *, epochs, lr, batch_size, seed=0, optimizer="sgd", momentum=0.9, beta1=0.9,
          beta2=0.999, schedule=None, step_size=10, gamma=0.5, weight_decay=None, l1=0.0, clip=None, warmup=0,
          validation=0.0, check_finite=False, backend=None, resume=None, out=None, verbose=False, on_epoch=None):
    """Minibatch training of LOSS, shuffling the examples at every epoch (from `seed`).

    params: {name: array}, e.g. from init_params(), with batch norm's BUFFERS, which each step updates
    with its batch statistics (running = (1 - momentum) running + momentum batch, as PyTorch) and which
    no optimizer touches. data: {input name: array}, examples along
    the first axis; every value must be a finite number. optimizer: "sgd", "momentum" (heavy ball),
    "adam" or "adamw" (torch.optim.AdamW). schedule: None, "step" (lr * gamma ** (epoch // step_size)),
    "exponential" (lr * gamma ** epoch) or "cosine" (lr * (1 + cos(pi * epoch / epochs)) / 2).
    weight_decay (None: 0, and 0.01 for adamw) adds weight_decay * p to every gradient, except with
    adamw, which multiplies each param by 1 - rate * weight_decay before its step; l1 adds l1 * sign(p).
    clip: the gradients are multiplied by min(1, clip / (norm + 1e-6)), norm the L2 norm of all the
    trained params' gradients together, before weight decay and the optimizer. warmup: optimizer step
    k (counted from 0 over the run) takes lr * min(1, (k + 1) / warmup) times the schedule's factor,
    which for "cosine" becomes (1 + cos(pi * max(0, k - warmup) / max(1, steps - warmup))) / 2 over
    the run's `steps` = epochs * batches per epoch. validation: the fraction of examples held out
    (chosen from `seed`) and scored after every epoch. check_finite: after every step, the loss, each
    gradient and each updated param must be finite numbers, else TrainingDiverged names the first that
    is not, its step and batch (a module compiled with check_finite stops earlier, at the line
    computing the first value that is not finite, with its report).
    backend: None computes with the library of the arrays given (NumPy for NumPy arrays); "numpy",
    "torch", "cupy", "jax" or "dask" moves them there first (that library and array_api_compat must be
    installed). With Dask, the data stay chunked over the examples and each step's gradients are
    computed across the chunks (data-parallel), while the params stay NumPy arrays.
    out: an .npz file that receives the params and the state of the run (optimizer averages, epoch
    counter, random generator) when training ends, is interrupted or diverges; written atomically,
    its folder checked before the first epoch. resume: a run read by load_run(): training continues
    it (pass params=None; `epochs` counts from its start), so that an interrupted run resumed ends with
    the params an uninterrupted one gives.
    Ctrl-C stops at the end of the current batch (a second one at once) and raises TrainingInterrupted;
    a loss or param that is not a finite number raises TrainingDiverged. Both carry, and save to `out`,
    the params of the last complete epoch.
    verbose prints one line per epoch; on_epoch(record) receives the same figures as a dict.
    Returns (trained params, in the library computed with, and the mean training loss per epoch).
    """
    if not TRAINED:
        raise ValueError("this model has no parameters to train")
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "optimizer": optimizer,
                "momentum": momentum, "beta1": beta1, "beta2": beta2, "schedule": schedule, "step_size": step_size,
                "gamma": gamma, "weight_decay": weight_decay, "l1": l1, "clip": clip, "warmup": warmup,
                "validation": validation, "check_finite": check_finite}
    for name, problem in setting_problems(settings).items():
        raise ValueError(f"{name} {problem}")
    if resume is not None:
        params = _resumed(params, resume, settings)
    out = _writable(out) if out is not None else None
    names = tuple(INPUTS) + tuple(PARAMS) + tuple(BUFFERS)
    xp, *values = _read("train", _on_backend(backend, {**params, **data}), names)
    checked = dict(zip(names, values))
    _check_finite(xp, "train()", {name: checked[name] for name in INPUTS})
    keep = _NP if _lazy(xp) else xp  # the params' library: Dask computes each step, its params stay NumPy
    params = {name: _copy(keep, checked[name]) for name in tuple(PARAMS) + tuple(BUFFERS)}  # updated in place: this function's own
    split = _Split(xp, {name: checked[name] for name in INPUTS}, validation, seed)
    run = _Run(keep, params, settings, resume, split.rng)
    with _CtrlC() as ctrl_c, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:  # (a value that overflows is reported once, as divergence, not by NumPy's warnings)
            for epoch in range(run.epoch, epochs):
                record = _epoch(xp, keep, run, split, settings, epoch, ctrl_c)
                if verbose:
                    print(_progress(record, epochs), flush=True)
                if on_epoch is not None:
                    on_epoch(record)
        except KeyboardInterrupt:
            last = run.last
            saved = _save_run(out, last, "interrupted") if out is not None and last["epoch"] > run.started else None
            raise TrainingInterrupted(f"training interrupted during epoch {run.epoch + 1}; the params are those of "
                                      f"epoch {last['epoch']}", last["params"], last, saved) from None
        except _NotFinite as error:
            last = run.last
            saved = _save_run(out, last, "diverged") if out is not None and last["epoch"] > run.started else None
            raise TrainingDiverged(f"training diverged at epoch {run.epoch + 1}, batch {error.batch}: {error}",
                                   last["params"], last, saved, run.epoch + 1, error.batch) from None
    if out is not None:
        _save_run(out, run.last, "finished")
    return params, list(run.losses)


class _NotFinite(Exception):
    """A loss or param that is not a finite number, found in batch `batch` of the current epoch."""

    def __init__(self, message, batch):
        super().__init__(message)
        self.batch = batch


def _expect_finite_step(keep, values, step, batch):
    """check_finite without line checks: the first of `values` ({what: array}) that is not finite, with
    the step, the position of its first bad element and how to find the line that computed it."""
    for what, value in values.items():
        if not bool(keep.all(keep.isfinite(value))):
            array = _numpy(value)
            bad = ~np.isfinite(array)
            index = [int(k) for k in np.argwhere(bad)[0]]
            raise _NotFinite(f"step {step + 1}: {what} holds {array[tuple(index)]} at index {index} "
                             f"({int(bad.sum())} of {array.size} values not finite){_where_first()}", batch)


def _where_first():
    """How to find the line: a module that does not check its lines (check_finite) cannot say it."""
    if globals().get("_FINITE_LINES"):
        return ""
    return ("; compile the model with check_finite=True (graphcomp train --check-finite) to stop at the line "
            "that computes the first value that is not finite")


def _epoch(xp, keep, run, split, settings, epoch, ctrl_c):
    """One pass over the training examples in a fresh random order; the epoch's record."""
    import math

    params, size, batch_size = run.params, split.size, settings["batch_size"]
    rate = _rate(settings["lr"], epoch, settings["epochs"], settings["schedule"], settings["step_size"],
                 settings["gamma"])
    steps = settings["epochs"] * -(-size // batch_size)  # the run's optimizer steps, for the warm-up's cosine
    order = run.rng.permutation(size)
    total, correct, counted = 0.0, 0, 0
    # Checked once by train(): each step calls the unchecked _gradients (_step) with its arguments in
    # order; batched inputs are cut to the minibatch's rows (a batch of every example takes them whole).
    sources = [(name, name in split.batched and batch_size < size, name in params) for name in GRADIENT_ARGS]
    target_at = GRADIENT_ARGS.index(TARGET) if TARGET in GRADIENT_ARGS else None
    for batch, start in enumerate(range(0, size, batch_size), 1):
        rows = order[start:start + batch_size]
        arguments = [_rows(xp, split.train[name], rows, name) if cut else (params if trained else split.train)[name]
                     for name, cut, trained in sources]
        try:
            outputs, grads, *statistics = _step(run, xp, len(rows), arguments)  # with BUFFERS, the batch statistics
        except FloatingPointError as error:  # compiled with check_finite: a line computed a value that is not finite
            raise _NotFinite(f"step {run.step + 1}: {error}", batch) from None
        if keep is not xp:  # Dask: the step's loss and gradients, computed across the chunks at once
            outputs, grads, *statistics = _computed(outputs, grads, *statistics)
        loss = float(outputs[LOSS])
        if not math.isfinite(loss):
            raise _NotFinite(f"step {run.step + 1}: the loss is {loss}{_where_first()}" if settings["check_finite"]
                             else f"the loss is {loss}", batch)
        if settings["check_finite"]:
            _expect_finite_step(keep, {f"the gradient of {name!r}": grads[name] for name in TRAINED}, run.step, batch)
        step_rate = _warmed(rate, run.step, steps, settings)
        run.step += 1
        grads = _clipped(keep, grads, settings["clip"])
        for name in TRAINED:
            _apply(keep, run, name, grads[name], step_rate, settings)
        if settings["check_finite"]:
            _expect_finite_step(keep, {f"param {name!r} after its update": params[name] for name in TRAINED},
                                run.step - 1, batch)
        for name, value in (statistics[0] if statistics else {}).items():  # batch norm's running statistics
            params[name] = (1 - RUNNING_MOMENTUM[name]) * params[name] + RUNNING_MOMENTUM[name] * value
        total += loss * len(rows)
        if PREDICT is not None:
            target = arguments[target_at] if target_at is not None else _rows(xp, split.train[TARGET], rows, TARGET)
            matches, positions = _correct(outputs[PREDICT], target)
            correct, counted = correct + matches, counted + positions
        if ctrl_c.pressed:
            raise KeyboardInterrupt
    for name in TRAINED:
        if not bool(keep.all(keep.isfinite(params[name]))):
            raise _NotFinite(f"param {name!r} holds values that are not finite numbers", batch)
    record = {"epoch": epoch + 1, "loss": total / size, "lr": step_rate, "seconds": _clock() - run.clock}
    if counted:
        record["accuracy"] = correct / counted
    if split.held_out:
        record.update(_scores(params, split.validation, "val_"))
    run.finished(record["loss"])
    return record


def _step(run, xp, examples, arguments):
    """(outputs, gradients, and with BUFFERS the batch statistics) of one training step. On NumPy arrays
    _gradients_in_place computes them into arrays made once for each batch size (run.buffers), so the
    values it returns are overwritten by the next step; on other libraries, _gradients. Dropout draws
    from the run's generator."""
    before = (run.rng,) if USES_DROPOUT else ()
    if not IN_PLACE or xp is not _NP:
        return _gradients(*before, xp, *arguments)
    buffers = run.buffers.get(examples)
    if buffers is None:
        buffers = run.buffers[examples] = _buffers(examples)
    return _gradients_in_place(buffers, *before, xp, *arguments)


def _apply(keep, run, name, grad, rate, settings):
    """One optimizer step on param `name`, in place."""
    params, decay, decoupled = run.params, decay_of(settings), settings["optimizer"] == "adamw"
    if decay and not decoupled:
        grad = grad + decay * params[name]
    if settings["l1"]:
        grad = grad + settings["l1"] * keep.sign(params[name])
    if settings["optimizer"] == "sgd":
        params[name] -= rate * grad
        return
    change, run.moments[name] = _update(keep, settings["optimizer"], run.moments[name], grad, rate, run.step,
                                        settings["momentum"], settings["beta1"], settings["beta2"])
    if decay and decoupled:  # AdamW: the param shrinks by itself, the averages never see the decay
        params[name] *= 1 - rate * decay
    params[name] -= change


class _Split:
    """The examples train() learns from and those it holds out for validation (drawn from `seed`)."""

    def __init__(self, xp, data, validation, seed):
        self.batched = [name for name in data if None in INPUTS[name]]
        size, held = _examples(data, validation)
        self.rng = np.random.default_rng(seed)
        held_out = self.rng.permutation(size)[:held] if self.batched else np.arange(0)
        kept = np.ones(size, dtype=bool)
        kept[held_out] = False
        kept = np.flatnonzero(kept)  # the examples not held out, in order
        self.held_out = len(held_out)
        self.train = data if not len(held_out) else {  # no copy of the data set unless some is held out
            name: _rows(xp, value, kept, name) if name in self.batched else value for name, value in data.items()}
        self.validation = {name: _rows(xp, value, held_out, name) if name in self.batched else value
                           for name, value in data.items()}
        self.size = len(kept) if self.batched else 1


def _examples(data, validation):
    """(the number of examples in `data`, how many `validation` holds out), refusing different numbers
    of examples and a fraction that leaves none to train on. Also called by `graphcomp train` before it
    writes anything."""
    sizes = {name: np.shape(value)[INPUTS[name].index(None)] for name, value in data.items()
             if name in INPUTS and None in INPUTS[name]}  # (a time-major sequence's batch axis is its second)
    if len(set(sizes.values())) > 1:
        raise ValueError(f"data arrays hold different numbers of examples: {sizes}")
    size = next(iter(sizes.values()), 1)
    held = int(round(validation * size)) if sizes else 0
    if sizes and held >= size:
        raise ValueError("no examples to train on" + (f" (validation={validation} holds out all {held})" if held else ""))
    return size, held


class _Run:
    """What training has done so far: params (updated in place), optimizer averages, the step and epoch
    counters, the random generator, the losses; and `last`, a copy of all of it at the end of the last
    complete epoch, which an interrupted or diverged run saves."""

    def __init__(self, keep, params, settings, resume, rng):
        self.keep, self.params, self.settings, self.rng = keep, params, settings, rng
        averages = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}[settings["optimizer"]]
        self.moments = {name: tuple(keep.zeros_like(value) for _ in range(averages)) + (None,) * (2 - averages)
                        for name, value in params.items() if name not in BUFFERS}  # buffers are never trained
        self.epoch, self.step, self.losses = 0, 0, []
        self.buffers = {}  # batch size -> the arrays each step writes into (_gradients_in_place)
        if resume is not None:
            self.epoch, self.step, self.losses = resume["epoch"], resume["step"], list(resume["losses"])
            self.moments = {name: tuple(None if m is None else _copy(keep, m) for m in resume["moments"][name])
                            for name in params if name not in BUFFERS}
            rng.bit_generator.state = resume["rng"]
        self.started, self.clock = self.epoch, _clock()
        self.last = self.snapshot()

    def finished(self, loss):
        """An epoch is complete: count it and keep a copy to fall back on."""
        self.losses.append(loss)
        self.epoch += 1
        self.last = self.snapshot()  # one assignment: an interrupt leaves the previous copy whole

    def snapshot(self):
        copy = lambda value: None if value is None else _copy(self.keep, value)  # noqa: E731
        return {"params": {name: copy(value) for name, value in self.params.items()}, "epoch": self.epoch,
                "step": self.step, "losses": list(self.losses), "settings": dict(self.settings),
                "moments": {name: tuple(copy(m) for m in pair) for name, pair in self.moments.items()},
                "rng": self.rng.bit_generator.state}


def _resumed(params, run, settings):
    """The params a resumed run starts from, after checking that the settings continue it."""
    if params is not None:
        raise ValueError("train(): give params=None with resume: the run holds the params to continue from")
    for key in ("optimizer", "seed", "validation"):  # the optimizer's averages and the held-out examples
        if run["settings"].get(key) != settings[key]:
            raise ValueError(f"train(): the run to resume was trained with {key}={run['settings'].get(key)!r}, "
                             f"not {settings[key]!r}; it can only be continued with the same {key}")
    if settings["epochs"] < run["epoch"]:
        raise ValueError(f"train(): the run to resume has done {run['epoch']} epochs already; epochs="
                         f"{settings['epochs']} counts from its start")
    return run["params"]


class _CtrlC:
    """Ctrl-C during training: the first press asks train() to stop after the current batch, a second
    stops at once. Only in the main thread, and only where Python's own handler is in place."""

    def __enter__(self):
        import signal
        import threading

        self.pressed, self.previous = False, None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._press)
        return self

    def _press(self, number, frame):
        import signal
        import sys

        self.pressed = True
        signal.signal(signal.SIGINT, self.previous)
        print("stopping after this batch (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exception):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def evaluate(params, data):
    """{"loss": ..., "accuracy": ...} of the model on `data` (accuracy when the model has PREDICT)."""
    return _scores(params, data, "")


def predict(params, data):
    """The PREDICT output (every output, if the model has none) for the examples in `data`.

    Inputs the prediction does not use, such as the labels, may be left out: they are filled with zeros.
    """
    outputs = forward(**{name: value for name, value in data.items() if name in INPUTS}, **params)
    return outputs[PREDICT] if PREDICT is not None else outputs


def _rate(lr, epoch, epochs, schedule, step_size, gamma):
    """The learning rate of one epoch under the schedule."""
    if schedule == "step":
        return lr * gamma ** (epoch // step_size)
    if schedule == "exponential":
        return lr * gamma ** epoch
    if schedule == "cosine":
        return lr * 0.5 * (1 + np.cos(np.pi * epoch / max(epochs, 1)))
    return lr


def _warmed(rate, step, steps, settings):
    """The learning rate of optimizer step `step` (counted from 0 over the run, `steps` in all) whose
    epoch's rate is `rate`. A warm-up of W steps multiplies it by min(1, (step + 1) / W), and turns the
    cosine schedule into one per step over the steps after it: lr * (1 + cos(pi * max(0, step - W) /
    max(1, steps - W))) / 2, lr at the first step after the warm-up."""
    import math

    warmup = settings["warmup"]
    if not warmup:
        return rate
    if settings["schedule"] == "cosine":
        rate = settings["lr"] * 0.5 * (1 + math.cos(math.pi * max(0, step - warmup) / max(1, steps - warmup)))
    return rate * min(1.0, (step + 1) / warmup)


def _clipped(keep, grads, clip):
    """The trained params' gradients times min(1, clip / (norm + 1e-6)), norm the L2 norm of them all
    together, as torch.nn.utils.clip_grad_norm_ scales them (clip None: as they are)."""
    if clip is None:
        return grads
    import math

    norm = math.sqrt(sum(float(keep.sum(grads[name] * grads[name])) for name in TRAINED))
    scale = min(1.0, clip / (norm + 1e-6))
    return {name: grads[name] * scale for name in TRAINED}


def _update(xp, optimizer, state, grad, rate, step, momentum, beta1, beta2):
    """(the step to subtract from a param, the optimizer's running averages after it)."""
    first, second = state
    if xp is _NP:  # the averages are the run's own arrays: updated in place, the same numbers
        return _update_in_place(optimizer, first, second, grad, rate, step, momentum, beta1, beta2), state
    if optimizer == "momentum":
        first = momentum * first + grad
        return rate * first, (first, second)
    first = beta1 * first + (1 - beta1) * grad
    second = beta2 * second + (1 - beta2) * grad * grad
    corrected_first = first / (1 - beta1 ** step)
    corrected_second = second / (1 - beta2 ** step)
    return rate * corrected_first / (xp.sqrt(corrected_second) + 1e-8), (first, second)


def _update_in_place(optimizer, first, second, grad, rate, step, momentum, beta1, beta2):
    """_update on NumPy arrays: the averages `first` and `second` updated in place, and one new array,
    the step, where the functional form makes seven."""
    if optimizer == "momentum":
        first *= momentum
        first += grad
        return rate * first
    first *= beta1
    first += (1 - beta1) * grad
    second *= beta2
    square = np.empty_like(second)  # (a param of shape () has a NumPy scalar for its gradient)
    np.multiply(grad, 1 - beta2, out=square)
    square *= grad
    second += square
    denominator = np.divide(second, 1 - beta2 ** step, out=square)
    np.sqrt(denominator, out=denominator)
    denominator += 1e-8
    change = first / (1 - beta1 ** step)
    change *= rate
    change /= denominator
    return change


def _correct(prediction, target):
    """(how many predictions match their targets, how many were made): classes by argmax, one per row
    of a prediction (N, V) or per position of a sequence's (N, T, V); one column by THRESHOLD."""
    prediction, target = _numpy(prediction), _numpy(target)
    if prediction.ndim >= 2 and prediction.shape[-1] > 1:
        guessed = prediction.argmax(axis=-1)
        truth = target.argmax(axis=-1) if target.shape == prediction.shape else target
    else:
        guessed = (prediction > THRESHOLD).reshape(len(prediction), -1)
        truth = (target > 0.5).reshape(len(target), -1)
    return int(np.sum(guessed == truth)), int(np.size(guessed))


def _scores(params, data, prefix):
    batched = [np.shape(value)[INPUTS[name].index(None)] for name, value in data.items()
               if name in INPUTS and None in INPUTS[name]]
    if batched and not batched[0]:
        raise ValueError("no examples to score")
    outputs = forward(**data, **params)
    scores = {prefix + "loss": outputs[LOSS]}
    if PREDICT is not None:
        matches, positions = _correct(outputs[PREDICT], data[TARGET])
        scores[prefix + "accuracy"] = matches / positions
    return scores


def _progress(record, epochs):
    """One epoch's line: `epoch 3/30  loss 0.2240  accuracy 94.02%  val loss 0.1949  val accuracy 95.82%  0.1s`."""
    return f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}  {_figures(record)}  {record['seconds']:.1f}s"


def _figures(scores):
    """Losses with 4 decimals, accuracies as percentages: how training and evaluation print their scores."""
    return "  ".join(f"{key.replace('_', ' ')} {scores[key]:.2%}" if "accuracy" in key
                     else f"{key.replace('_', ' ')} {scores[key]:.4f}"
                     for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key in scores)


def _progress_every(epochs):
    """Print progress every this many epochs when the command line is not told (--every): about 20 lines
    for a run of any length (every epoch up to 20 epochs, every 50th of 1000), and always the last."""
    return max(1, -(-epochs // 20))


def _shown(epoch, epochs, every):
    """Whether the progress line of `epoch` is printed: every `every`-th epoch, and the last."""
    return epoch % every == 0 or epoch == epochs


def _best(records):
    """The summary of a run with validation: `best validation loss 0.0730 at epoch 22 (accuracy 98.33%)`,
    over the epochs of `records` (None without validation)."""
    scored = [record for record in records if "val_loss" in record]
    if not scored:
        return None
    best = min(scored, key=lambda record: record["val_loss"])
    accuracy = f" (accuracy {best['val_accuracy']:.2%})" if "val_accuracy" in best else ""
    return f"best validation loss {best['val_loss']:.4f} at epoch {best['epoch']}{accuracy}"


def _clock():
    import time

    return time.perf_counter()


def _on_backend(backend, arrays):
    """The arrays as arrays of `backend` (None: as given)."""
    if backend is None:
        return arrays
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    import importlib

    try:
        library = importlib.import_module(BACKENDS[backend])
    except ImportError:
        raise ValueError(f"backend {backend!r} needs {BACKENDS[backend].split('.')[0]}, which is not installed") from None
    return {name: library.asarray(np.asarray(_numpy(value), dtype=None if name in INTEGERS else DTYPE))
            for name, value in arrays.items()}  # integer inputs as given: _read checks they are integers


def _lazy(xp):
    """Whether xp's arrays are computed only when asked (Dask)."""
    return "dask" in getattr(xp, "__name__", "")


def _computed(*parts):
    """Dask: the step's outputs and gradients (and batch statistics) computed in one pass over the chunks."""
    import dask

    values, computed = iter(dask.compute(*(value for part in parts for value in part.values()))), []
    for part in parts:
        computed.append({name: next(values) for name in part})
    return computed


def _copy(xp, value):
    """A copy of an array in the library xp, which train() may update in place."""
    return np.array(_numpy(value), dtype=DTYPE) if xp is _NP else xp.asarray(value, copy=True)


def _rows(xp, value, rows, name):
    """The examples `rows` (NumPy indices) of the batched input `name`, along its batch axis (the first,
    or a time-major sequence's second)."""
    axis = INPUTS[name].index(None)
    if xp is _NP:
        return value.take(rows, axis=axis)
    import array_api_compat

    return xp.take(value, xp.asarray(rows, device=array_api_compat.device(value)), axis=axis)
