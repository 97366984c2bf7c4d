"""The training settings, in one table: each setting's name, type, default, what it accepts and its help.
train() checks its arguments against it, both command lines (the module's and `graphcomp train`) make
their flags from it, and graphcomp checks a spec's [training] table and compile()'s `training` with it.
Also the array libraries train() can move data to."""


class _Setting:
    """One setting: `accepts(value)` says whether a value is allowed, `must_be` says what is."""

    def __init__(self, name, kind, default, accepts, must_be, help):
        self.name, self.kind, self.default, self.accepts, self.must_be, self.help = (
            name, kind, default, accepts, must_be, help)

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")


def _whole(least):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(low, high=float("inf"), open_low=False, open_high=False):
    def accepts(value):
        import math

        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return False
        return (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    return accepts


def _one_of(*choices):
    return lambda value: value in choices


def _or_none(accepts):
    return lambda value: value is None or accepts(value)


OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
# The weight decay of an optimizer when weight_decay is None: PyTorch's defaults (torch.optim.AdamW: 0.01).
DEFAULT_DECAY = {"sgd": 0.0, "momentum": 0.0, "adam": 0.0, "adamw": 0.01}
SCHEDULES = (None, "step", "exponential", "cosine")
SETTINGS = {setting.name: setting for setting in (
    _Setting("epochs", int, 10, _whole(0), "a whole number >= 0", "passes over the training examples"),
    _Setting("lr", float, 0.1, _number(0, open_low=True), "a number > 0", "the learning rate"),
    _Setting("batch_size", int, 32, _whole(1), "a whole number >= 1", "examples per gradient step"),
    _Setting("seed", int, 0, _whole(0), "a whole number >= 0",
             "seeds the shuffling, the held-out examples and dropout"),
    _Setting("optimizer", str, "sgd", _one_of(*OPTIMIZERS), "one of " + ", ".join(OPTIMIZERS),
             "sgd, momentum (heavy ball), adam, or adamw (Adam with decoupled weight decay)"),
    _Setting("momentum", float, 0.9, _number(0, 1, open_high=True), "a number in [0, 1)", "momentum's averaging"),
    _Setting("beta1", float, 0.9, _number(0, 1, open_high=True), "a number in [0, 1)", "Adam's first moment"),
    _Setting("beta2", float, 0.999, _number(0, 1, open_high=True), "a number in [0, 1)", "Adam's second moment"),
    _Setting("schedule", str, None, _one_of(*SCHEDULES), "none, or one of step, exponential, cosine",
             "the learning rate over epochs: step (lr * gamma ** (epoch // step_size)), exponential "
             "(lr * gamma ** epoch) or cosine (lr * (1 + cos(pi * epoch / epochs)) / 2; after a warm-up, per "
             "step over the steps after it)"),
    _Setting("step_size", int, 10, _whole(1), "a whole number >= 1", "epochs between the step schedule's steps"),
    _Setting("gamma", float, 0.5, _number(0, open_low=True), "a number > 0", "the step and exponential factor"),
    _Setting("weight_decay", float, None, _or_none(_number(0)), "a number >= 0",
             "sgd, momentum, adam: adds weight_decay * p to each gradient (L2); adamw: multiplies each param by "
             "1 - rate * weight_decay before its step (decoupled); none: 0, and 0.01 for adamw as in PyTorch"),
    _Setting("l1", float, 0.0, _number(0), "a number >= 0", "adds l1 * sign(p) to each gradient"),
    _Setting("clip", float, None, _or_none(_number(0, open_low=True)), "a number > 0 (or none: no clipping)",
             "clips the gradients by their global norm: each is multiplied by min(1, clip / (norm + 1e-6)), norm "
             "the L2 norm of every trained param's gradient together, before weight decay and the optimizer "
             "(as torch.nn.utils.clip_grad_norm_)"),
    _Setting("warmup", int, 0, _whole(0), "a whole number >= 0",
             "optimizer steps (minibatches) over which the learning rate rises linearly: step k (from 0) "
             "takes lr * min(1, (k + 1) / warmup) times the schedule's factor"),
    _Setting("validation", float, 0.0, _number(0, 1, open_high=True), "a fraction in [0, 1)",
             "the fraction of examples held out and scored after every epoch"),
    _Setting("check_finite", bool, False, lambda value: isinstance(value, bool), "true or false",
             "stop at the first value that is not a finite number: in a module compiled with check_finite, "
             "at its line, with its formula and operands; else the loss, a gradient or a param after each step"),
)}

# The array libraries train() can move data to: backend name -> the module whose asarray makes its arrays.
BACKENDS = {"numpy": "numpy", "torch": "torch", "cupy": "cupy", "jax": "jax.numpy", "dask": "dask.array"}


def decay_of(settings):
    """The weight decay a run applies: weight_decay, or its optimizer's default when it is None."""
    decay = settings["weight_decay"]
    return DEFAULT_DECAY[settings["optimizer"]] if decay is None else decay


def setting_problems(settings):
    """{name: what is wrong with it} for the settings given (empty when all are fine); unknown names
    are a problem too."""
    problems = {}
    for name, value in settings.items():
        setting = SETTINGS.get(name)
        if setting is None:
            problems[name] = "is not a training setting; they are " + ", ".join(SETTINGS)
        elif not setting.accepts(value):
            problems[name] = f"must be {setting.must_be}, got {value!r}"
    return problems


def setting_flag(parser, setting, help):
    """Add one setting's flag to a command line: `--lr 0.1`; a true-or-false setting is a switch,
    `--check-finite`. Absent unless given (argparse.SUPPRESS), so that other sources of it count."""
    import argparse

    if setting.kind is bool:
        parser.add_argument(setting.flag, action="store_true", default=argparse.SUPPRESS, help=help)
    else:
        parser.add_argument(setting.flag, type=setting_argument(setting), default=argparse.SUPPRESS, help=help)


def setting_argument(setting):
    """The command-line parser of one setting's value ("none" is None where None is allowed)."""
    def parse(text):
        if text.lower() == "none" and setting.accepts(None):
            return None
        return setting.kind(text)
    parse.__name__ = setting.kind.__name__  # argparse names the type in its error: "invalid int value"
    return parse
