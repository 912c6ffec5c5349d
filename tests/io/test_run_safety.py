"""Run logs that must not be lost or faked (no Brian2): the writer's exclusive lock against a real second
process, Ctrl-C held back while the log is written, a diverged run marked, a finished run extended.

The end-to-end tests through ``neuroplast run`` are tests/e2e/test_run_safety.py.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import neuroplast.io.writer as writer_module
from neuroplast.io import RunFileError, RunWriter, add_gradients, open_run
from neuroplast.io.interrupts import deferred_interrupts
from neuroplast.io.lock import BUSY, WriteLock, check_not_busy
from tests.helpers import ROOT, assert_same_datasets, cli_env, small_run_writer
from tests.io.test_append import BATCH, N_IN, N_OUT, N_REC, T, _iteration, _synthetic, _trial, _writer

FINAL = {p: np.zeros(n) for p, n in (("input", 15), ("recurrent", 4), ("output", 10), ("bias", 2))}

#: A second process that writes ``argv[1]`` (one complete iteration), says "ready" and waits to be killed.
LIVE_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.io.test_append import BATCH, _iteration, _trial, _writer

    w = _writer(Path(sys.argv[1]))
    for j in range(BATCH):
        _trial(w, 0, j)
    _iteration(w, 0)
    print("ready", flush=True)
    time.sleep(120)
    """
)


def _live_writer(path: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(path)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("hdf5_locking", ["default", "FALSE"])
def test_a_live_writer_is_never_replaced_or_reopened(tmp_path: Path, hdf5_locking: str) -> None:
    """--force, append (--resume) and add_gradients (compare) refuse a file that another process writes,
    also when HDF5's own file locking is switched off; a SIGKILLed writer leaves no stale lock."""
    path = tmp_path / "live.h5"
    env = cli_env()
    if hdf5_locking != "default":
        env["HDF5_USE_FILE_LOCKING"] = hdf5_locking
    proc = _live_writer(path, env)
    try:
        with pytest.raises(RunFileError) as err:
            _writer_force(path)
        assert err.value.problem == BUSY and "\n" not in str(err.value)
        with h5py.File(path, "r", locking=False) as f:  # not deleted, not replaced
            assert f.attrs["n_iterations_complete"] == 1
        with pytest.raises(RunFileError, match="open in another process"):
            RunWriter.append(path, flush_every=2)
        with pytest.raises(RunFileError, match="open in another process"):
            add_gradients(path, "bptt", {"recurrent": np.zeros((1, 4))})
        with pytest.raises(RunFileError, match="open in another process"):
            check_not_busy(path)
        with pytest.raises(RunFileError, match="open in another process"):
            WriteLock.acquire(path)
        assert proc.poll() is None  # the writer lives on
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    check_not_busy(path)  # the kernel released the killed writer's lock
    run = open_run(path)
    assert run.n_iterations == 1 and run.n_trials == BATCH and not run.finished
    w = RunWriter.append(path, flush_every=2, require_state=True, trials_per_iteration=BATCH)
    assert w.resumed is not None and w.resumed["iterations"] == 1
    w.close()


def _writer_force(path: Path) -> RunWriter:
    """``_writer`` with ``force=True`` (the constructor of ``--force``)."""
    orig = RunWriter.__init__

    def forced(self, p, **kw):
        orig(self, p, **{**kw, "force": True})

    RunWriter.__init__ = forced  # type: ignore[method-assign]
    try:
        return _writer(path)
    finally:
        RunWriter.__init__ = orig  # type: ignore[method-assign]


def test_force_replaces_a_closed_log_and_add_gradients_takes_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "closed.h5"
    _synthetic(path, 1)
    assert open_run(path).n_trials == BATCH
    _writer_force(path).close()
    assert open_run(path).n_trials == 0
    if os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() not in ("FALSE", "0"):
        with h5py.File(path, "r"):  # a reader holding HDF5's shared lock: no writer may take the file
            with pytest.raises(RunFileError, match="open in another process"):
                check_not_busy(path)
    lock = WriteLock.acquire(path)  # while this process holds it, nobody else may write
    try:
        with pytest.raises(RunFileError, match="open in another process"):
            add_gradients(path, "bptt", {"recurrent": np.zeros((0, 4))})
    finally:
        lock.release()
    assert not lock.held


def test_sigint_is_held_back_until_the_outermost_block_ends() -> None:
    # Python's own handler, whatever an earlier import left (Brian2 installs one when first imported in
    # this process): the test is about deferred_interrupts, which must put back whatever it found.
    ambient = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _held_back_until_the_outermost_block_ends()
    finally:
        signal.signal(signal.SIGINT, ambient)


def _held_back_until_the_outermost_block_ends() -> None:
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("inner")
            done.append("outer")  # the inner block did not raise
    assert done == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    with deferred_interrupts():  # nothing is left pending
        done.append("again")
    assert done[-1] == "again"
    with pytest.raises(KeyboardInterrupt):  # outside a block, SIGINT interrupts at once
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10**7):
            pass
        done.append("not reached")
    assert done[-1] == "again"


def test_ctrl_c_in_the_middle_of_a_flush_leaves_a_resumable_log(tmp_path: Path, monkeypatch) -> None:
    """SIGINT while the resume slot of iteration 2 is written: the flush completes, then KeyboardInterrupt;
    the closed log resumes after iteration 2 and continues to the same content as an uninterrupted run."""
    ref, cut = tmp_path / "ref.h5", tmp_path / "cut.h5"
    _synthetic(ref, 4)
    orig = writer_module._write_slot

    def interrupted(f, state, iteration, *rest):
        if iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-flush
        return orig(f, state, iteration, *rest)

    monkeypatch.setattr(writer_module, "_write_slot", interrupted)
    w = _writer(cut)
    with pytest.raises(KeyboardInterrupt):
        with w:
            for it in range(4):
                for j in range(BATCH):
                    _trial(w, it, j)
                _iteration(w, it)
    monkeypatch.setattr(writer_module, "_write_slot", orig)
    run = open_run(cut)
    assert run.n_iterations == 2 and run.n_trials == 2 * BATCH and not run.finished
    w = RunWriter.append(cut, flush_every=2, require_state=True, trials_per_iteration=BATCH)
    assert w.resumed == {"iterations": 2, "trials": 6, "dropped_trials": 0, "dropped_iterations": 0}
    with w:
        for it in range(2, 4):
            for j in range(BATCH):
                _trial(w, it, j)
            _iteration(w, it)
        w.finish(FINAL)
    assert_same_datasets(cut, ref)


def test_a_diverged_run_is_marked_and_never_continued(tmp_path: Path) -> None:
    path, normal = tmp_path / "diverged.h5", tmp_path / "normal.h5"
    _synthetic(normal, 1)
    assert open_run(normal).diverged is None
    with h5py.File(normal, "r") as f:
        assert "diverged" not in f.attrs  # the attribute appears only in a run that diverged
    w = _writer(path)
    with w:
        for j in range(BATCH):
            _trial(w, 0, j)
        _iteration(w, 0)
        _trial(w, 1, 0)
        w.mark_diverged("diverged at iteration 2:\n the loss of trial 1 of the batch is inf")
    run = open_run(path)
    assert run.diverged == "diverged at iteration 2: the loss of trial 1 of the batch is inf"
    assert run.n_iterations == 1 and not run.finished
    with pytest.raises(RunFileError, match="run diverged"):
        RunWriter.append(path)
    with pytest.raises(RunFileError, match="run diverged"):
        RunWriter.append(path, extend=True)


def test_extend_reopens_a_finished_log_and_continues_identically(tmp_path: Path) -> None:
    """A finished 2-iteration log extended to 4 equals a 4-iteration log (the config attribute aside,
    which records what it is given)."""
    ref, ext = tmp_path / "ref.h5", tmp_path / "ext.h5"
    _synthetic(ref, 4)
    _synthetic(ext, 2)
    with pytest.raises(RunFileError, match="already finished"):
        RunWriter.append(ext)
    with pytest.raises(ValueError, match="config_toml"):
        RunWriter.append(ext, extend=True, config_toml="not = [toml")
    assert open_run(ext).finished  # a refused call changes nothing
    w = RunWriter.append(
        ext,
        flush_every=2,
        require_state=True,
        trials_per_iteration=BATCH,
        extend=True,
        config_toml="[a]\nb = 2\n",
    )
    assert w.resumed == {"iterations": 2, "trials": 6, "dropped_trials": 0, "dropped_iterations": 0}
    with h5py.File(ext, "r", locking=False) as f:  # (the writer holds the lock; HDF5's own is off)
        assert f.attrs["finished"] == 0 and f.attrs["config"] == "[a]\nb = 2\n"
        assert f["projections/input/weights"].shape[0] == 2  # the final row is gone until finish
    with w:
        for it in range(2, 4):
            for j in range(BATCH):
                _trial(w, it, j)
            _iteration(w, it)
        w.finish(FINAL)
    with h5py.File(ext, "r+") as f:
        f.attrs["config"] = "[a]\nb = 1\n"
    assert_same_datasets(ext, ref)


def test_counters_reach_the_disk_only_after_the_state_they_promise(tmp_path: Path, monkeypatch) -> None:
    """Within one h5py flush HDF5 writes its cached metadata in no particular order, so a SIGKILL during a
    flush can leave any part of it on disk.  The counters must therefore change only in a flush after the
    one that made their iteration's resume state valid (and the slot they retire is overwritten only after
    them): at the end of every flush, a new counter value names a state that was already valid at the end
    of the flush before."""
    from neuroplast.io.schema import ATTR_ITERATIONS_COMPLETE
    from neuroplast.io.state import read_states

    snapshots: list[tuple[int, set[int]]] = []
    original = h5py.File.flush

    def flush(self: h5py.File) -> None:
        original(self)
        snapshots.append((int(self.attrs.get(ATTR_ITERATIONS_COMPLETE, 0)), set(read_states(self))))

    monkeypatch.setattr(h5py.File, "flush", flush)
    w = _writer(tmp_path / "run.h5")  # a flush every 2 iterations
    for it in range(7):
        for j in range(BATCH):
            _trial(w, it, j)
        _iteration(w, it)
        if it == 4:
            w.flush()  # and one of a single iteration
    w.close()
    assert [c for c, _ in snapshots][-1] == 7
    before_count, before_valid = 0, set()
    changes = 0
    for count, valid in snapshots:
        if count != before_count:
            changes += 1
            assert count in before_valid, f"counters say {count}, valid before: {sorted(before_valid)}"
        assert count == 0 or count in valid
        before_count, before_valid = count, valid
    assert changes >= 4

    # several iterations in one flush (a launch of many): the first one writes N − 1 before its counters
    # too (no slot holds a state yet), so a log killed right after them has both slots, as an
    # uninterrupted one does; later ones keep the previous state's slot until the counters are on disk
    snapshots.clear()
    w = small_run_writer(tmp_path / "chunked.h5", N_IN, N_REC, N_OUT, T, flush_every=1000)
    w.flush_iterations = 3  # as neuroplast run sets it to the launch length
    for it in range(6):
        for j in range(BATCH):
            _trial(w, it, j)
        _iteration(w, it)
    w.close()
    first = next(valid for count, valid in snapshots if count == 3)
    assert first == {2, 3}
    before_count, before_valid = 0, set()
    for count, valid in snapshots:
        if count != before_count:
            assert count in before_valid, f"counters say {count}, valid before: {sorted(before_valid)}"
        before_count, before_valid = count, valid
    assert snapshots[-1] == (6, {5, 6})


# ------------------------------------------------------------------ only a regular file is ever replaced
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the socket file stays
    return path


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


#: Things at the path of a new log that ``force=True`` must leave as they are: (make, what it is, words).
NOT_REGULAR = {
    "fifo": (lambda tmp: _fifo(tmp / "run.h5"), stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
    "socket": (lambda tmp: _socket(tmp / "run.h5"), stat.S_ISSOCK, "is a socket, not a regular file"),
    "link to /dev/null": (
        lambda tmp: _link(tmp / "run.h5", Path(os.devnull)),
        stat.S_ISLNK,
        "is a character device, not a regular file",
    ),
    "link to a fifo": (
        lambda tmp: _link(tmp / "run.h5", _fifo(tmp / "pipe")),
        stat.S_ISLNK,
        "is a FIFO (named pipe), not a regular file",
    ),
    "dangling link": (
        lambda tmp: _link(tmp / "run.h5", tmp / "gone.h5"),
        stat.S_ISLNK,
        "is a symbolic link to a missing file (",
    ),
    "folder": (lambda tmp: (tmp / "run.h5").mkdir() or tmp / "run.h5", stat.S_ISDIR, "is a directory"),
}


@pytest.mark.parametrize("case", list(NOT_REGULAR))
def test_force_never_replaces_what_is_not_a_regular_file(tmp_path: Path, case: str) -> None:
    make, kind, words = NOT_REGULAR[case]
    path = make(tmp_path)
    devnull = os.stat(os.devnull)
    with pytest.raises(RunFileError) as exc:
        _writer_force(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and words in msg and "\n" not in msg, msg
    assert kind(os.lstat(path).st_mode), "the thing at the path was replaced"
    now = os.stat(os.devnull)
    assert stat.S_ISCHR(now.st_mode) and (now.st_rdev, now.st_ino) == (devnull.st_rdev, devnull.st_ino)


def test_force_replaces_through_a_link_to_a_regular_file(tmp_path: Path) -> None:
    """A symbolic link to a closed log is replaced by the new log (the link, not what it points to)."""
    old = tmp_path / "old.h5"
    _synthetic(old, 1)
    link = _link(tmp_path / "run.h5", old)
    _writer_force(link).close()
    assert not link.is_symlink() and open_run(link).n_trials == 0
    assert open_run(old).n_trials == BATCH


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (
            "newdir/",
            "a trailing '/' names a folder, not a run-log file; give a file name such as newdir/run.h5",
        ),
        ("x" * 300 + ".h5", "cannot be used as a run-log path (File name too long)"),
        ("cfg.toml", "is the config file"),
        ("hard.toml", "is the config file"),
        ("notafolder/run.h5", "a folder on its path is not a folder"),
    ],
)
def test_check_log_path_refuses_before_touching_anything(tmp_path: Path, monkeypatch, given: str, words: str):
    from neuroplast.io.paths import check_log_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.toml").write_text("[network]\n")
    os.link(tmp_path / "cfg.toml", tmp_path / "hard.toml")
    (tmp_path / "notafolder").write_text("a file")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunFileError) as exc:
        check_log_path(given, protect={"the config file": "cfg.toml"})
    assert words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "cfg.toml").read_text() == "[network]\n"
    assert check_log_path("new.h5", protect={"the config file": "cfg.toml"}) == Path(
        "new.h5"
    )  # a new path: fine
