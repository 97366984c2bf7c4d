"""Every file graphcomp writes is written whole or not at all, and no output may destroy an input.

The failures are real ones: a folder that refuses new files, a full disk (a small tmpfs where mounting
is allowed, else a file-size limit on the process), and processes killed with SIGKILL mid-write.
"""
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from graphcomp.errors import OutputError
from graphcomp.files import check_writable, refuse_overlap, write_atomic
from graphcomp.frontend.cli import main

EXAMPLES = Path(__file__).parents[1] / "examples"
XOR, XOR_DATA = EXAMPLES / "xor.toml", EXAMPLES / "data" / "xor.csv"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def graphcomp(*argv, preexec=None):
    """The command as users run it, in its own process."""
    return subprocess.run([sys.executable, "-m", "graphcomp", *map(str, argv)], capture_output=True, text=True,
                          preexec_fn=preexec)


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphcomp: error: ") and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ write_atomic and friends

def test_write_atomic_writes_whole_files_keeps_permissions_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "new" / "deeper" / "model.py"
    assert write_atomic(target, "x = 1\n") == target and target.read_text() == "x = 1\n"
    target.chmod(0o640)
    write_atomic(target, b"\x00\x01binary")
    assert target.read_bytes() == b"\x00\x01binary" and target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(target.parent) == ["model.py"]


def test_writing_through_a_symlink_replaces_the_file_it_names(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(data)
    write_atomic(link, "new")
    assert link.is_symlink() and data.read_text() == "new"


def test_a_folder_is_not_a_file_to_write(tmp_path):
    with pytest.raises(OutputError, match="it is a folder"):
        write_atomic(tmp_path, "x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=f"cannot write {blocker}/sub/x.py: a part of its folder path is a file"):
        check_writable(blocker / "sub" / "x.py")


def test_refuse_overlap_sees_symlinks_hard_links_and_twice_named_outputs(tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(b"data")
    (tmp_path / "soft.npz").symlink_to(data)
    os.link(data, tmp_path / "hard.npz")
    for other in ("soft.npz", "hard.npz", "./data.npz"):
        with pytest.raises(OutputError, match="is the same file as --data"):
            refuse_overlap({"--out": tmp_path / other}, {"--data": data})
    with pytest.raises(OutputError, match="are the same file; give each output its own file"):
        refuse_overlap({"-o": tmp_path / "m.py", "--out": tmp_path / "sub" / ".." / "m.py"}, {})
    refuse_overlap({"-o": tmp_path / "m.py", "--out": tmp_path / "p.npz"}, {"--data": data, "--params": None})


# ------------------------------------------------------------------ no output over an input

def test_compile_and_train_never_write_over_their_spec(tmp_path, capsys):
    spec = tmp_path / "xor.toml"
    spec.write_text(XOR.read_text())
    before = spec.read_bytes()
    code, _, err = run(capsys, "compile", spec, "-o", spec)
    assert code == 2 and "-o" in one_error_line(err) and "give a .py file such as" in err
    python_spec = tmp_path / "model.py"
    python_spec.write_text("import graphcomp as gc\ngraph = gc.Graph('g')\na = graph.input('a')\n"
                           "graph.output('y', a * a)\n")
    source = python_spec.read_bytes()
    for command in (["compile", python_spec, "-o", python_spec],
                    ["train", python_spec, "--data", XOR_DATA, "-o", tmp_path / "." / "model.py"]):
        code, out, err = run(capsys, *command)
        assert code == 2 and "is the same file as the spec" in one_error_line(err) and "training" not in out
    assert spec.read_bytes() == before and python_spec.read_bytes() == source


def test_train_never_writes_over_its_data_through_any_name(tmp_path, capsys):
    data = tmp_path / "xor.csv"
    data.write_text(XOR_DATA.read_text())
    npz = tmp_path / "xor.npz"
    np.savez(npz, x=np.eye(2), y=np.ones((2, 1)))
    before = {path: path.read_bytes() for path in (data, npz)}
    (tmp_path / "soft.npz").symlink_to(npz)
    os.link(npz, tmp_path / "hard.npz")
    for given, out in ((npz, npz), (npz, tmp_path / "soft.npz"), (npz, tmp_path / "hard.npz"), (npz, tmp_path / "xor")):
        code, stdout, err = run(capsys, "train", XOR, "--data", given, "--out", out, "--epochs", "1")
        assert code == 2 and "is the same file as --data" in one_error_line(err) and "training" not in stdout
    code, _, err = run(capsys, "train", XOR, "--data", data, "-o", data)
    assert code == 2 and "Python source" in one_error_line(err)
    code, _, err = run(capsys, "train", XOR, "--data", npz, "-o", npz)
    assert code == 2 and f"-o {npz}: the generated module is Python source; give a .py file such as {tmp_path / 'xor.py'}" in err
    assert {path: path.read_bytes() for path in before} == before


def test_two_outputs_of_one_command_must_be_two_files(tmp_path, capsys):
    module = tmp_path / "m.py"
    (tmp_path / "params.npz").symlink_to(module)
    code, stdout, err = run(capsys, "train", XOR, "--data", XOR_DATA, "-o", module, "--out", tmp_path / "params.npz")
    assert code == 2 and "are the same file; give each output its own file" in one_error_line(err)
    assert not module.exists() and "training" not in stdout


def test_report_and_graph_never_write_over_their_values_or_spec(tmp_path, capsys):
    at = tmp_path / "at.npz"
    np.savez(at, u=2.0, v=3.0, w=4.0)
    before = at.read_bytes()
    for command in ("report", "graph"):
        code, _, err = run(capsys, command, EXAMPLES / "fuv.toml", "--at", f"{at}", "-o", at)
        assert code == 2 and "is the same file as --at" in one_error_line(err)
        code, _, err = run(capsys, command, EXAMPLES / "fuv.toml", "-o", EXAMPLES / "fuv.toml")
        assert code == 2 and "is the same file as the spec" in one_error_line(err)
    assert at.read_bytes() == before


# ------------------------------------------------------------------ --out names the file it writes

def test_out_of_train_is_a_file_ending_in_npz(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    code, stdout, err = run(capsys, "train", XOR, "--data", XOR_DATA, "--out", f"{folder}/", "--epochs", "1")
    assert code == 2 and one_error_line(err).endswith(f"--out {folder}/ is a folder; give a file such as {folder}/params.npz")
    assert "training" not in stdout and os.listdir(folder) == []
    code, stdout, err = run(capsys, "train", XOR, "--data", XOR_DATA, "--out", tmp_path / "trained", "--epochs", "1")
    assert code == 0, err
    assert stdout.splitlines()[-1] == f"saved the trained params to {tmp_path / 'trained.npz'}"
    assert sorted(os.listdir(tmp_path)) == ["out", "trained.npz"]


# ------------------------------------------------------------------ folders that refuse files

def can_create_in(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder in which no new file can be made, by the first mechanism that works here: its permission
    bits (root ignores them), a read-only bind mount, the immutable attribute; if none does, a folder
    path that runs through a regular file, which nobody can create."""
    folder = tmp_path / "locked"
    folder.mkdir()
    locks = [(lambda: folder.chmod(0o555), lambda: folder.chmod(0o755))]
    if shutil.which("mount"):
        locks.append((lambda: subprocess.run(["mount", "--bind", folder, folder], capture_output=True)
                      and subprocess.run(["mount", "-o", "remount,ro,bind", folder], capture_output=True),
                      lambda: subprocess.run(["umount", folder], capture_output=True)))
    if shutil.which("chattr"):
        locks.append((lambda: subprocess.run(["chattr", "+i", folder], capture_output=True),
                      lambda: subprocess.run(["chattr", "-i", folder], capture_output=True)))
    for lock, unlock in locks:
        lock()
        if not can_create_in(folder):
            try:
                yield folder
            finally:
                unlock()
            return
        unlock()
    (tmp_path / "a_file").write_text("")
    yield tmp_path / "a_file" / "folder"


def test_an_unwritable_out_folder_stops_train_before_any_work(unwritable_folder, tmp_path, capsys):
    module = tmp_path / "m.py"
    code, stdout, err = run(capsys, "train", XOR, "--data", XOR_DATA, "-o", module,
                            "--out", unwritable_folder / "p.npz")
    line = one_error_line(err)
    assert code == 2 and f"cannot write {unwritable_folder / 'p.npz'}: " in line
    assert stdout == "" and not module.exists()
    code, stdout, err = run(capsys, "compile", XOR, "-o", unwritable_folder / "m.py")
    assert code == 2 and f"cannot write {unwritable_folder / 'm.py'}: " in one_error_line(err)


# ------------------------------------------------------------------ a full disk

def limit_file_size() -> None:
    """In the child process: no regular file may grow past 1 KiB (a write past it fails with EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


@pytest.fixture
def full_disk(tmp_path):
    """(a folder, a preexec_fn): a folder on a 256 KiB tmpfs, filled by `fill` and no limit, where
    mounting works; else a plain folder and a file-size limit for the process that writes."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = shutil.which("mount") and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", folder],
                                                       capture_output=True).returncode == 0
    try:
        yield folder, (None if mounted else limit_file_size)
    finally:
        if mounted:
            subprocess.run(["umount", folder], capture_output=True)


def fill(folder: Path) -> None:
    """Take every free byte of the folder's file system (a no-op without a size limit on it)."""
    if os.statvfs(folder).f_blocks * os.statvfs(folder).f_frsize > 1 << 20:
        return
    with open(folder / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC


def test_a_full_disk_during_compile_leaves_the_old_module_byte_for_byte(full_disk):
    folder, preexec = full_disk
    target = folder / "model.py"
    target.write_text("# the module of yesterday\n")
    old = target.read_bytes()
    fill(folder)
    done = graphcomp("compile", EXAMPLES / "digits.toml", "-o", target, preexec=preexec)
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and line.startswith(f"graphcomp: error: cannot write {target}: ")
    assert line.endswith(("no space left on the device", "the file would pass the largest size this system allows"))
    assert target.read_bytes() == old
    assert set(os.listdir(folder)) <= {"model.py", "filler"}  # no temporary file left behind


def test_a_full_disk_when_train_saves_is_one_line_and_keeps_the_old_params(full_disk):
    folder, preexec = full_disk
    out = folder / "params.npz"
    out.write_bytes(b"the params of yesterday")
    fill(folder)
    done = graphcomp("train", XOR, "--data", XOR_DATA, "--epochs", "5", "--out", out, preexec=preexec)
    assert done.returncode == 2 and one_error_line(done.stderr).startswith(f"graphcomp: error: cannot write {out}: ")
    assert "epoch 5/5" in done.stdout and out.read_bytes() == b"the params of yesterday"
    assert set(os.listdir(folder)) <= {"params.npz", "filler"}


# ------------------------------------------------------------------ killed mid-write

KILLER = textwrap.dedent("""
    import hashlib, json, os, random, signal, sys, time
    from pathlib import Path
    from graphcomp.files import write_atomic
    from graphcomp.frontend.cli import main

    def child(work):
        pid = os.fork()
        if pid == 0:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            code = 1
            try:
                code = work()
            finally:
                os._exit(code or 0)
        return pid

    def digest(content):
        return [hashlib.sha256(content).hexdigest(), len(content)]

    def kill_at_random(work, target, old, runs, longest):
        # each run: [killed before it ended, the target's digest, the other files left]
        random.seed(0)
        outcomes = []
        for _ in range(runs):
            target.write_bytes(old)
            pid = child(work)
            time.sleep(random.uniform(0, longest))
            os.kill(pid, signal.SIGKILL)
            killed = os.WIFSIGNALED(os.waitpid(pid, 0)[1])
            others = sorted(set(os.listdir(target.parent)) - {target.name})
            outcomes.append([killed, digest(target.read_bytes()), others])
            for name in others:  # what SIGKILL left no time to remove
                os.unlink(target.parent / name)
        return outcomes

    mode, target = sys.argv[1], Path(sys.argv[2])
    if mode == "compile":  # a graphcomp compile -o target, killed at random instants of its run
        argv = ["compile", sys.argv[3], "-o", str(target)]
        main(["compile", sys.argv[3], "-o", str(target) + ".warm.py"])  # the caches a run fills, filled
        os.unlink(str(target) + ".warm.py")
        durations = []
        for _ in range(5):  # how long a whole run takes here and now: the median of five
            start = time.monotonic()
            os.waitpid(child(lambda: main(argv)), 0)
            durations.append(time.monotonic() - start)
        longest = sorted(durations)[2]
        new = target.read_bytes()
        old = b"# an older module\\n" * 50
        results = kill_at_random(lambda: main(argv), target, old, int(sys.argv[4]), longest)
    else:  # write_atomic writing 4 MiB of a's and of b's in turn, without end
        size = 1 << 22
        old, new = b"a" * size, b"b" * size
        def forever():
            while True:
                write_atomic(target, new)
                write_atomic(target, old)
        results = kill_at_random(forever, target, old, int(sys.argv[3]), 0.3)
    print(json.dumps({"old": digest(old), "new": digest(new), "runs": results}))
""")


def killed_runs(*argv) -> tuple[list, list, list]:
    done = subprocess.run([sys.executable, "-c", KILLER, *map(str, argv)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    return report["old"], report["new"], report["runs"]


def test_a_compile_killed_at_any_instant_leaves_the_old_module_or_the_new_one(tmp_path):
    target = tmp_path / "model.py"
    old, new, runs = killed_runs("compile", target, EXAMPLES / "digits.toml", 24)
    assert old != new and new[1] > 10_000
    assert all(content in (old, new) for _, content, _ in runs), runs
    assert sum(killed for killed, _, _ in runs) >= 6, "runs must be killed before they end, not only after"
    assert all(name.startswith(".model.py.") and name.endswith(".tmp") for _, _, others in runs for name in others)


def test_write_atomic_killed_mid_write_leaves_one_whole_file(tmp_path):
    target = tmp_path / "big.bin"
    old, new, runs = killed_runs("loop", target, 20)
    assert all(content in (old, new) for _, content, _ in runs), runs
    assert all(killed for killed, _, _ in runs)
    assert all(name.startswith(".big.bin.") and name.endswith(".tmp") for _, _, others in runs for name in others)


def test_a_device_or_a_pipe_is_written_into_not_replaced(tmp_path):
    """-o /dev/null discards the output: the device stays a device (a rename over it would put a
    regular file in its place); a named pipe passes the bytes to its reader."""
    import os
    import stat
    import threading
    from graphcomp.files import write_atomic
    write_atomic("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    write_atomic(pipe, "through the pipe")
    reader.join(timeout=10)
    assert received == [b"through the pipe"] and stat.S_ISFIFO(os.stat(pipe).st_mode)
