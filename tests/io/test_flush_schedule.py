"""The flush schedule of the chunked engine (``RunWriter.flush_iterations``, no Brian2): a fixed count of
iterations, the same file content as flushing every iteration, and a kill in the middle of any resume-slot
write of such a flush leaves a log that resumes (from the flush before, or the one being written) and
continues to the same content as an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neuroplast.io.writer as writer_module
from neuroplast.io import RunFileError, RunWriter, open_run
from neuroplast.io.diff import diff_files
from tests.io.test_append import BATCH, _iteration, _synthetic, _trial, _writer

FINAL = {p: np.zeros(n) for p, n in (("input", 15), ("recurrent", 4), ("output", 10), ("bias", 2))}
N_ITER = 10


class _Killed(Exception):
    """Stands for SIGKILL in the middle of a resume-slot write."""


def _train(w: RunWriter, start: int, stop: int, *, finish: bool = True) -> None:
    for it in range(start, stop):
        for j in range(BATCH):
            _trial(w, it, j)
        _iteration(w, it)
    if finish:
        w.finish(FINAL)


def _scheduled(path: Path, every: int, *, background: bool = False) -> RunWriter:
    w = _writer(path)
    w.flush_iterations = every
    w.flush_every = every * BATCH + 1  # as the runner sets it: no trial-count flush inside a window
    w.background = background
    return w


@pytest.mark.parametrize("background", [False, True], ids=["in-thread", "background"])
@pytest.mark.parametrize("every", [1, 2, 3, 4, 7])
def test_flushing_every_f_iterations_writes_the_same_file(
    tmp_path: Path, every: int, background: bool
) -> None:
    """Resume slots included: slot N % 2 holds N and the other N − 1, as with a flush per iteration; the
    same file when the scheduled flushes are written in the writer thread."""
    ref, got = tmp_path / "ref.h5", tmp_path / "got.h5"
    _synthetic(ref, N_ITER)
    with _scheduled(got, every, background=background) as w:
        _train(w, 0, N_ITER)
    assert diff_files(ref, got) == []


def test_a_background_flush_is_on_disk_once_waited_for(tmp_path: Path) -> None:
    """The counters a scheduled background flush writes are there after the writer waits for it, and the
    next scheduled flush waits for the one before (the counters step by the schedule, never skip)."""
    with _scheduled(tmp_path / "s.h5", 4, background=True) as w:
        seen = []
        for it in range(9):
            _train(w, it, it + 1, finish=False)
            w._wait()  # noqa: SLF001 - what a later flush or close does first
            seen.append(int(w._f.attrs["n_iterations_complete"]))  # noqa: SLF001 - what is on disk
            assert w.n_trials_flushed == BATCH * seen[-1]
        w.finish(FINAL)
    assert seen == [0, 0, 0, 4, 4, 4, 4, 8, 8]
    assert open_run(tmp_path / "s.h5").finished


#: What a writer stopped by a full disk says (docs/hdf5.md), after the file's name.
FULL = r"full\.h5: the disk is full; the log is closed at its last complete iteration \(4\): free some space"


def _disk_full_after(monkeypatch, n: int) -> None:
    """Every resume-state write after iteration ``n`` fails as on a full disk."""
    orig = writer_module._write_slot

    def full(f, state, iteration, *rest, **kw):
        if iteration > n:
            raise OSError(28, "No space left on device")
        return orig(f, state, iteration, *rest, **kw)

    monkeypatch.setattr(writer_module, "_write_slot", full)


def test_an_error_in_the_writer_thread_reaches_the_caller(tmp_path: Path, monkeypatch) -> None:
    """A background flush that fails (here: the disk is full at the resume state of its second flush) is
    raised by the writer's next call that waits for it, as one RunFileError naming the file, every later
    flush refuses, and the file holds the flush before it (the trials counted there read back)."""
    path = tmp_path / "full.h5"
    _disk_full_after(monkeypatch, 4)
    w = _scheduled(path, 4, background=True)
    _train(w, 0, 8, finish=False)  # the second flush fails in the writer thread
    with pytest.raises(RunFileError, match=FULL):
        w.finish(FINAL)
    with pytest.raises(RunFileError, match=FULL):
        w.flush()
    w.close()  # closes the file, the error was already reported
    run = open_run(path)
    assert not run.finished
    assert run.n_iterations == 4 and run.n_trials == 4 * BATCH


def test_a_failed_flush_in_the_calling_thread_stops_the_writer(tmp_path: Path, monkeypatch) -> None:
    """The same failure without the writer thread: the same one-line error, later flushes refuse, close
    writes nothing more, and the file holds the flush before."""
    path = tmp_path / "full.h5"
    _disk_full_after(monkeypatch, 4)
    w = _scheduled(path, 4)
    with pytest.raises(RunFileError, match=FULL):
        _train(w, 0, 8, finish=False)
    with pytest.raises(RunFileError, match=FULL):
        w.finish(FINAL)
    w.close()
    run = open_run(path)
    assert not run.finished
    assert run.n_iterations == 4 and run.n_trials == 4 * BATCH


def test_the_schedule_is_a_count_of_iterations(tmp_path: Path) -> None:
    """Nothing reaches the file's counters between flushes; every 4th iteration they jump by 4."""
    with _scheduled(tmp_path / "s.h5", 4) as w:
        seen = []
        for it in range(9):
            _train(w, it, it + 1, finish=False)
            seen.append(int(w._f.attrs["n_iterations_complete"]))  # noqa: SLF001 - what is on disk
        w.finish(FINAL)
    assert seen == [0, 0, 0, 4, 4, 4, 4, 8, 8]


@pytest.mark.parametrize(
    ("every", "kill_at", "resumes_at"),
    [
        (4, 0, 4),  # flush of 8 after 4 (4 in slot 0): 8 goes to slot 1 first; killed there → 4
        (4, 1, 8),  # killed writing 8 into its own slot 0, after the counters said 8 → 8 (in slot 1)
        (4, 2, 8),  # killed writing 7 into slot 1 → 8
        (3, 0, 3),  # flush of 6 after 3 (3 in slot 1): 6 goes straight to slot 0; killed there → 3
        (3, 1, 6),  # killed writing 5 into slot 1 → 6
    ],
)
def test_a_kill_in_any_slot_write_of_a_flush_resumes(
    tmp_path: Path, monkeypatch, every: int, kill_at: int, resumes_at: int
) -> None:
    ref, cut = tmp_path / "ref.h5", tmp_path / "cut.h5"
    _synthetic(ref, N_ITER)
    orig = writer_module._write_slot
    calls: list[int] = []

    def dying(f, state, iteration, *rest, **kw):
        if iteration > every:  # the second flush
            calls.append(iteration)
            if len(calls) - 1 == kill_at:
                slot = kw.get("slot")
                name = writer_module.RESUME_SLOTS[iteration % 2 if slot is None else slot]
                g = f.require_group(writer_module.RESUME_GROUP).require_group(name)
                g.attrs[writer_module.ATTR_STATE_ITERATION] = np.int64(-1)  # half overwritten
                f.flush()
                raise _Killed
        return orig(f, state, iteration, *rest, **kw)

    monkeypatch.setattr(writer_module, "_write_slot", dying)
    w = _scheduled(cut, every)
    with pytest.raises(_Killed):
        _train(w, 0, N_ITER, finish=False)
    w._f.close()  # noqa: SLF001 - the process is gone: no final flush
    w._f = None  # noqa: SLF001
    monkeypatch.setattr(writer_module, "_write_slot", orig)
    w = RunWriter.append(cut, flush_every=2, require_state=True, trials_per_iteration=BATCH)
    assert w.resumed["iterations"] == resumes_at
    assert int(w.resume_state["iteration"]) == resumes_at
    w.flush_iterations, w.flush_every = every, every * BATCH + 1
    with w:
        _train(w, resumes_at, N_ITER)
    assert open_run(cut).finished
    assert diff_files(ref, cut) == []
