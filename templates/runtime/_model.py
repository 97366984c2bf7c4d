"""Stand-ins for the names every generated module defines before its runtime, so that the runtime files
import, lint and test as ordinary modules. A test may set them (monkeypatch) to a small model's values.
This file is never copied into a module."""
import numpy as np

DTYPE = np.float64
INPUTS: dict = {}          # input name -> shape, None for the batch axis
PARAMS: dict = {}          # param name -> shape
BUFFERS: dict = {}         # buffer name -> shape: state saved with the params, never trained (running statistics)
RUNNING_MOMENTUM: dict = {}  # buffer name -> the weight of a training step's batch statistic in it
OUTPUTS: tuple = ()
LOSS = None
WRT: tuple = ()
TRAINED: tuple = ()        # the params train() updates
PREDICT = None             # the output scored by accuracy
TARGET = None              # the input holding the true labels
THRESHOLD = 0.5
TRAINING: dict = {}        # defaults of the command line's train
LABELS: dict = {}          # inputs that hold class labels -> number of classes
INTEGERS: dict = {}        # integer inputs -> (their dtype, how many rows or classes their ids pick, or None)
NEEDS: dict = {}           # output -> the inputs it is computed from
GRADIENT_ARGS: tuple = ()  # _gradients' arguments after xp, in order
USES_DROPOUT = False       # _gradients takes a random generator first (for dropout masks)
IN_PLACE = False           # train() steps NumPy arrays with _gradients_in_place, into arrays from _buffers
_CHECKED_LINES: dict = {}  # with check_shapes: each checked variable's line
_FINITE_LINES: dict = {}   # with check_finite: line -> (variable, code, formula, operands, where declared)


def init_params(seed=0):
    raise NotImplementedError("defined by each generated module")


def forward(training=False, **arrays):
    raise NotImplementedError("defined by each generated module")


def gradients(**arrays):
    raise NotImplementedError("defined by each generated module")


def _gradients(xp, *arrays):
    raise NotImplementedError("defined by each generated module")


def _buffers(n):
    raise NotImplementedError("defined by each generated module that has IN_PLACE")


def _gradients_in_place(buffers, xp, *arrays):
    raise NotImplementedError("defined by each generated module that has IN_PLACE")
