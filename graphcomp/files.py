"""Writing files so that a failure never costs the user a file.

Every file graphcomp writes goes through `write_atomic`: the new content is written beside the target,
flushed to the disk, then renamed over it, so a kill, a full disk or Ctrl-C leaves either the old file
or the complete new one, never a truncated one. `check_writable` finds an unwritable folder before
minutes of work rather than after, and `refuse_overlap` stops a command from writing over its own
inputs (the spec, the data set), which would destroy them.
"""
from __future__ import annotations

import errno
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar

from .errors import InputError, OutputError
# The one atomic writer, which every generated module carries too (its runtime imports nothing of graphcomp).
from .templates.runtime.files import _new_file_beside as new_file_beside, _replace_file as replace_file

PathLike = str | os.PathLike
T = TypeVar("T")

# The reason printed for each errno a write can meet; any other error prints the system's own words.
REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file would pass the largest size this system allows",
    errno.EROFS: "the folder {folder} is on a read-only file system",
    errno.EACCES: "the folder {folder} is not writable",
    errno.EPERM: "the folder {folder} is not writable",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of its folder path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def target_of(path: PathLike) -> Path:
    """The file a write to `path` changes: through symlinks, their final target (a link to the data set
    names the data set), as an absolute path."""
    return Path(os.path.realpath(path))


def write_atomic(path: PathLike, data: str | bytes) -> Path:
    """Write `data` (text is UTF-8) to `path` atomically and return `path` as a Path.

    The bytes go to a temporary file in the same folder (so the rename stays on one file system),
    are fsynced, and replace the target in one rename; the folder is fsynced so that the rename
    survives a crash. On any failure the temporary file is removed, the old target is left as it was,
    and an OutputError names the file and the reason. Missing folders are created, an existing
    target keeps its permission bits, and a symlink keeps pointing at the file it names, which is
    the one replaced.
    """
    content = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    target = target_of(path)
    try:
        _refuse_folder(target)
        replace_file(target, lambda file: file.write(content))
    except OSError as error:
        raise _output_error(path, target, error) from None
    return Path(path)


def check_writable(path: PathLike) -> Path:
    """Prove, before any long work, that `path` can be written: its folder exists (it is created) and
    takes a new file (one is created and removed). Returns the file a write would change."""
    target = target_of(path)
    try:
        _refuse_folder(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, probe = new_file_beside(target)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise _output_error(path, target, error) from None
    return target


def refuse_overlap(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None]) -> None:
    """Raise an OutputError when an output is the same file as an input or as another output.

    Keys are how the user named each file ("-o", "--data", "the spec"); None values are skipped.
    Paths are compared after resolving symlinks, and existing files also by device and inode, so a
    symlink or a hard link to the data set is caught as the data set itself.
    """
    named_inputs = [(f"{label} {path}", path) for label, path in inputs.items() if path is not None]
    earlier: list[tuple[str, PathLike]] = []
    for label, path in ((label, path) for label, path in outputs.items() if path is not None):
        for name, other in named_inputs:
            if same_file(path, other):
                raise OutputError(f"{label} {path} is the same file as {name}: writing it would destroy that "
                                  f"input; choose another file")
        for name, other in earlier:
            if same_file(path, other):
                raise OutputError(f"{label} {path} and {name} are the same file; give each output its own file")
        earlier.append((f"{label} {path}", path))


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None]) -> None:
    """Before any work: no output may be an input or another output (refuse_overlap), and each output's
    folder must take a new file (check_writable), so that long work never ends in a refused write."""
    refuse_overlap(outputs, inputs)
    for path in outputs.values():
        if path is not None:
            check_writable(path)


def file_with_suffix(label: str, path: str, suffix: str, example: str) -> str:
    """The file an output option names: never a folder (refused, with a file inside it as example), and
    `suffix` added when missing, as NumPy adds ".npz" silently, so that messages name the real file."""
    if os.path.isdir(path):
        raise OutputError(f"{label} {path} is a folder; give a file such as {os.path.join(path, example)}")
    return path if path.endswith(suffix) else path + suffix


@contextmanager
def reading(path: PathLike) -> Iterator[None]:
    """Errors raised while a file given to be read is read (a data set, params, values) become one
    InputError that names that file: the command's own error handler would otherwise name the spec."""
    try:
        yield
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        reason = error.strerror.lower() if isinstance(error, OSError) and error.strerror else str(error)
        reason = reason.removeprefix(f"{path}: ") or type(error).__name__
        raise InputError(f"{path}: {reason}") from None


def read_file(load: Callable[[str], T], path: str) -> T:
    """load(path), any error of which names that file (see `reading`)."""
    with reading(path):
        return load(path)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: the same resolved path, or (existing) the same device and inode."""
    if target_of(a) == target_of(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): only the paths could tell
        return False


def _refuse_folder(target: Path) -> None:
    """A folder is not a file to write: refused with its own reason (EISDIR)."""
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))


def _output_error(path: PathLike, target: Path, error: OSError) -> OutputError:
    """One line: the file as the user named it (and where a link leads) and why it cannot be written."""
    reason = REASONS.get(error.errno, (error.strerror or str(error)).lower())
    reason = reason.format(folder=_nearest_folder(target.parent))
    shown = f"{path} (a link to {target})" if os.path.islink(path) else str(path)
    failure = OutputError(f"cannot write {shown}: {reason}")
    failure.errno = error.errno
    return failure


def _nearest_folder(folder: Path) -> Path:
    """The deepest existing folder on the way to `folder`: the one that refused a new entry."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder
