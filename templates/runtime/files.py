"""The files of every generated module: params (and a run's state) written atomically, read back with
their names and shapes checked, and data sets in .npz or .csv."""
import numpy as np

from ._model import BUFFERS, DTYPE, INPUTS, INTEGERS, PARAMS
from .arrays import _check_finite, _numpy, _read


def save_params(path, params, run=None):
    """Write params (and, given `run`, the state train() needs to continue it) to an .npz file; the
    path written is returned (".npz" is added when missing). The file is replaced atomically: a crash
    or a full disk leaves the old file or the complete new one, never a part. The buffers (BUFFERS,
    batch norm's running statistics) are saved beside the params."""
    _read("save_params", params, tuple(PARAMS) + tuple(BUFFERS))
    arrays = {name: _numpy(params[name]) for name in tuple(PARAMS) + tuple(BUFFERS)}
    if run is not None:
        arrays.update(_run_arrays(run))
    return _write_atomic(_npz_path(path), arrays)


def load_params(path):
    """Read params (and buffers) from an .npz file written by save_params (names and shapes are checked)."""
    params = {name: value for name, value in _load_npz(path, "params").items() if not name.startswith("run:")}
    names = tuple(PARAMS) + tuple(BUFFERS)
    try:
        _, *values = _read("load_params", params, names)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    return dict(zip(names, values))


def load_run(path):
    """The run saved by train(..., out=path): {"params", "epoch", "step", "losses", "optimizer", "moments",
    "rng", "settings", "status"}, for train(None, data, resume=run, **run["settings"]) to continue it."""
    stored = _load_npz(path, "params")
    if "run:epoch" not in stored:
        raise ValueError(f"{path}: holds params but no run to resume (it was not written by train(..., out=...)); "
                         "start from it with --params instead")
    import json

    run = {"params": load_params(path), "epoch": int(stored["run:epoch"]), "step": int(stored["run:step"]),
           "losses": [float(loss) for loss in stored["run:losses"]], "status": str(stored["run:status"]),
           "rng": json.loads(str(stored["run:rng"])), "settings": json.loads(str(stored["run:settings"]))}
    run["optimizer"] = run["settings"].get("optimizer", "sgd")
    run["moments"] = {name: tuple(stored.get(f"run:{which}:{name}") for which in ("first", "second")) for name in PARAMS}
    return run


def _run_arrays(run):
    """The arrays of the .npz file that hold a run's state besides its params (keys "run:...", which no
    param name can take)."""
    import json

    arrays = {"run:epoch": np.asarray(run["epoch"]), "run:step": np.asarray(run["step"]),
              "run:losses": np.asarray(run["losses"], dtype=np.float64), "run:status": np.asarray(run["status"]),
              "run:rng": np.asarray(json.dumps(run["rng"])), "run:settings": np.asarray(json.dumps(run["settings"]))}
    for name, pair in run["moments"].items():
        for which, value in zip(("first", "second"), pair):
            if value is not None:
                arrays[f"run:{which}:{name}"] = _numpy(value)
    return arrays


def _save_run(path, run, status):
    return save_params(path, run["params"], {**run, "status": status})


def _npz_path(path):
    """The file NumPy would write for `path`: ".npz" is added when missing; a folder is refused."""
    import os

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder; give a file such as {os.path.join(path, 'params.npz')}")
    return path if path.endswith(".npz") else path + ".npz"


def _writable(path):
    """The .npz path train() will save to, after proving now that its folder takes a new file (so that
    a read-only or missing folder is found before training, not after)."""
    import os

    path = _npz_path(path)
    folder = os.path.dirname(os.path.realpath(path))
    try:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(0, f"{folder} is a file, not a folder")
        os.makedirs(folder, exist_ok=True)
        _probe_folder(folder)
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def _probe_folder(folder):
    """Prove that `folder` takes a new file. Where the system makes unnamed files (Linux's O_TMPFILE) the
    probe has no name, so a process killed at that instant leaves nothing behind; elsewhere a hidden file
    is made and removed at once."""
    import errno
    import os

    if hasattr(os, "O_TMPFILE"):
        try:
            os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
            return
        except OSError as error:  # a file system without unnamed files says so; any other error is the answer
            if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    descriptor, probe = _new_file_beside(os.path.join(folder, "write-test"))
    os.close(descriptor)
    os.unlink(probe)


def _write_atomic(path, arrays):
    """np.savez to `path` through _replace_file: a failure is one OSError naming the file."""
    try:
        _replace_file(path, lambda file: np.savez(file, **arrays))
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}; the file there is unchanged") from None
    return path


def _replace_file(path, write):
    """Replace the file at `path` by what write(file) writes into a binary file, atomically: into a new
    file beside it, flushed to the disk, renamed over it, the folder flushed too. A kill at any instant
    leaves the old file or the complete new one; on any failure the new file is removed and the error
    (its errno intact) raised. Through a symbolic link, the file it names is replaced; an existing
    file's permission bits are kept; a device or a pipe (/dev/null, /dev/stdout) is written into, not
    replaced. graphcomp writes its own files through this function too."""
    import os

    import stat

    target = os.path.realpath(path)
    if os.path.exists(target) and not stat.S_ISREG(os.stat(target).st_mode) and not os.path.isdir(target):
        with open(target, "wb") as file:  # a device or a pipe (/dev/null): written in place, never replaced
            write(file)
        return
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    mode = os.stat(target).st_mode & 0o7777 if os.path.exists(target) else None
    descriptor, temporary = _new_file_beside(target)
    try:
        with os.fdopen(descriptor, "wb") as file:
            if mode is not None:
                os.fchmod(file.fileno(), mode)
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:  # the rename itself on the disk; some file systems cannot, which is no error
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError:
        pass


def _new_file_beside(target):
    """(descriptor, path) of a new hidden file in `target`'s folder, made with the permissions a new
    file gets there (the umask applies, as it would to the target)."""
    import os

    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")
    return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary


def _load_npz(path, what):
    """{name: array} of an .npz file; a missing, truncated or foreign file is one ValueError naming it."""
    import os
    import zipfile

    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"{path}: params are read from the .npz file save_params writes" if what == "params"
                         else f"{path}: {what} files are .npz or .csv")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as error:
        reason = "it holds Python objects, which are not read" if "allow_pickle" in str(error) else (
            f"not a complete .npz file ({type(error).__name__}: {error})")
        raise ValueError(f"{path}: cannot read the {what}: {reason}") from None


def load_data(path, inputs=None):
    """{input name: array} from an .npz file (arrays named as the inputs) or a .csv file; `inputs`
    names those the file must hold (default: every input; predictions need only NEEDS[PREDICT]).

    A .csv file has a header row: an input with one number per example is the column of its
    name; an input of per-example shape (k,) or larger is the columns name:0 ... name:k-1
    (row-major for images). Every value must be a finite number.
    """
    import os

    required = tuple(INPUTS) if inputs is None else tuple(inputs)
    path = os.fspath(path)
    if path.endswith(".npz"):
        data = {name: value for name, value in _load_npz(path, "data").items() if name in INPUTS}
    elif path.endswith(".csv"):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such file")
        data = _read_csv(path, required)
    else:
        raise ValueError(f"{path}: data files are .npz or .csv")
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{path}: no data for input(s) {', '.join(missing)}")
    for name, value in data.items():
        if not np.issubdtype(value.dtype, np.number) and value.dtype != bool:
            raise ValueError(f"{path}: array {name!r} holds {value.dtype} values, not numbers")
    _check_finite(np, path, data)
    return data


def _read_csv(path, required):
    with open(path, encoding="utf-8") as file:
        header = [column.strip() for column in file.readline().split(",")]
        lines = [line for line in file.read().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: a header and no rows of data")
    try:
        rows = np.loadtxt(lines, delimiter=",", dtype=DTYPE, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    position = {column: k for k, column in enumerate(header)}  # a dict: wide headers are read in linear time
    data = {}
    for name, shape in INPUTS.items():
        if not all(isinstance(d, int) for d in shape[1:]) or (shape[:1] != (None,) and None in shape):
            if name in required:  # a CSV row holds a fixed number of columns, one example
                raise ValueError(f"{path}: input {name!r} has shape {shape}: a CSV file holds one example a row, in "
                                 f"columns of a fixed number; give a sequence of run-time length, or one whose "
                                 f"batch axis is not the first, in a .npz file")
            continue
        width = int(np.prod(shape[1:])) if shape[:1] == (None,) else int(np.prod(shape))
        columns = [name] if width == 1 and name in header else [f"{name}:{k}" for k in range(width)]
        absent = [c for c in columns if c not in position]
        if absent and name not in required:
            continue
        if absent:
            raise ValueError(f"{path}: no column(s) {', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''} for input {name!r}")
        values = rows[:, [position[c] for c in columns]]
        if name in INTEGERS and np.all(values == np.round(values)):  # ids written as whole numbers
            values = values.astype(INTEGERS[name][0])
        data[name] = values.reshape((len(rows),) + tuple(shape[1:])) if shape[:1] == (None,) else values[0].reshape(shape)
    return data
