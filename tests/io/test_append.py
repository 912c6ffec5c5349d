"""``RunWriter.append`` on synthetic data (no Brian2): a file cut off mid-iteration is cut back to its
last complete iteration and continues to the same content as an uninterrupted run.

The end-to-end resume tests (``neuroplast run --resume`` after SIGKILL) are tests/e2e/test_resume.py.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.io import RunFileError, RunWriter, open_run
from tests.helpers import assert_same_datasets, small_run_writer

N_IN, N_REC, N_OUT, T = 3, 5, 2, 7
BATCH = 3


def _writer(path: Path) -> RunWriter:
    return small_run_writer(path, N_IN, N_REC, N_OUT, T, dt_ms=0.5, seed=3, flush_every=2)


def _trial(w: RunWriter, it: int, j: int) -> None:
    rng = np.random.default_rng([it, j])
    w.add_trial(
        it,
        (rng.random((T, N_IN)) < 0.4).astype(np.uint8),
        rng.normal(size=(T, N_OUT)),
        loss=float(rng.random()),
        spikes={"recurrent": (rng.integers(0, T, 6), rng.integers(0, N_REC, 6))},
        extras={"rate_hz": float(rng.random())},
        grads={"recurrent": {"eprop": rng.normal(size=4)}},
    )
    w.add_trace("recurrent", "v", rng.normal(size=(T, N_REC)), np.arange(N_REC))


def _iteration(w: RunWriter, it: int) -> None:
    rng = np.random.default_rng([it, 99])
    wb = {p: rng.normal(size=n) for p, n in (("input", 15), ("recurrent", 4), ("output", 10), ("bias", 2))}
    state = {"weights/w": rng.normal(size=(3, 4)), "optimizer/t": np.int64(it + 1), "iteration": it + 1}
    w.add_iteration(wb, {"recurrent": rng.normal(size=4)}, state=state)


def _synthetic(path: Path, n_iter: int, *, stop_after: int | None = None) -> None:
    w = _writer(path)
    for it in range(n_iter):
        for j in range(BATCH):
            _trial(w, it, j)
        if stop_after is not None and it == stop_after:  # "killed": flushed trials, no add_iteration
            w.flush()
            w._f.close()  # noqa: SLF001 - drop the handle without the writer's final flush
            w._f = None  # noqa: SLF001
            return
        _iteration(w, it)
    w.finish({p: np.zeros(n) for p, n in (("input", 15), ("recurrent", 4), ("output", 10), ("bias", 2))})
    w.close()


def test_append_cuts_back_and_continues_identically(tmp_path: Path) -> None:
    ref, cut = tmp_path / "ref.h5", tmp_path / "cut.h5"
    _synthetic(ref, 4)
    _synthetic(cut, 4, stop_after=2)  # iterations 0, 1 complete; 3 trials of iteration 2 on disk
    with h5py.File(cut, "r+") as f:  # plus partial rows a kill mid-flush could leave behind
        for name in ("weights", "updates"):
            d = f["projections/input"][name]
            d.resize((d.shape[0] + 1, d.shape[1]))
        ts = f["spikes/recurrent/timestamps"]
        ts.resize((ts.shape[0] + 2,))
        ts[-2:] = [1e6, 2e6]
    run = open_run(cut)
    assert run.n_iterations == 2 and run.n_trials == 9
    w = RunWriter.append(cut, flush_every=2, require_state=True, trials_per_iteration=BATCH)
    assert w.resumed == {"iterations": 2, "trials": 6, "dropped_trials": 3, "dropped_iterations": 1}
    assert w.resume_state is not None and int(w.resume_state["iteration"]) == 2
    assert w.n_trials == 6 and w.n_iterations == 2 and w.next_step == 6 * T
    with w:
        for it in range(2, 4):
            for j in range(BATCH):
                _trial(w, it, j)
            _iteration(w, it)
        w.finish({p: np.zeros(n) for p, n in (("input", 15), ("recurrent", 4), ("output", 10), ("bias", 2))})
    assert_same_datasets(cut, ref)


def test_append_refuses_finished_and_foreign_files(tmp_path: Path) -> None:
    ref = tmp_path / "ref.h5"
    _synthetic(ref, 1)
    with pytest.raises(RunFileError, match="already finished"):
        RunWriter.append(ref)
    with pytest.raises(RunFileError, match="no such file"):
        RunWriter.append(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="not an HDF5 file"):
        RunWriter.append(tmp_path / "text.h5")


def test_append_without_state_starts_over_when_state_required(tmp_path: Path) -> None:
    path = tmp_path / "nostate.h5"
    w = _writer(path)
    for it in range(2):
        _trial(w, it, 0)
        w.add_iteration(
            {p: np.zeros(n) for p, n in (("input", 15), ("recurrent", 4), ("output", 10), ("bias", 2))}, {}
        )
    w.close()
    w = RunWriter.append(path, require_state=True)
    assert w.resumed is not None and w.resumed["iterations"] == 0 and w.resume_state is None
    w.close()
    assert open_run(path).n_trials == 0
