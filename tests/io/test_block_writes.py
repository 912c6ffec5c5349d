"""The writer's fast paths (no Brian2): whole-row chunk writes, the vectorized argument checks and the
states kept without a copy give the same file as the plain paths, and the checks reject what they did."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import neuroplast.io.buffer as buffer_module
from neuroplast.io import RunWriter, open_run
from neuroplast.io.checks import check_spikes, check_x
from neuroplast.io.diff import diff_files
from neuroplast.io.layout import append_row_list, append_rows, growing
from tests.helpers import small_run_writer

# wide enough that inputs (T × N_IN bytes) and input-projection rows (8 bytes per edge) exceed one chunk's
# 64 KiB: every chunk of those datasets is one row, written whole
N_IN, N_REC, N_OUT, T = 100, 90, 2, 700
N_ITER, BATCH = 5, 2


def _writer(path: Path, **kw) -> RunWriter:
    return small_run_writer(path, N_IN, N_REC, N_OUT, T, **kw)


def _run(path: Path, *, copy_state: bool = True) -> None:
    n = {"input": N_IN * N_REC, "recurrent": N_REC - 1, "output": N_REC * N_OUT, "bias": N_OUT}
    with _writer(path) as w:
        w.flush_iterations = 2
        w.flush_every = 2 * BATCH + 1
        for it in range(N_ITER):
            for j in range(BATCH):
                rng = np.random.default_rng([it, j])
                x = (rng.random((T - j, N_IN)) < 0.05).astype(float)  # one trial shorter: padded
                steps, ids = np.nonzero(rng.random((T - j, N_REC)) < 0.01)
                grads = {"input": {"eprop": rng.normal(size=n["input"])}}
                if j == 0:  # the other trial has no gradient of this estimator: NaN row
                    grads["recurrent"] = {"bptt": rng.normal(size=n["recurrent"])}
                w.add_trial(
                    it,
                    x,
                    rng.normal(size=(T - j, N_OUT)),
                    loss=float(rng.random()),
                    spikes={"recurrent": (steps, ids), "input": np.nonzero(x)},
                    grads=grads,
                )
            rng = np.random.default_rng([it, 99])
            state = {"weights/w_in": rng.normal(size=(N_REC, N_IN)), "iteration": np.int64(it + 1)}
            w.add_iteration(
                {p: rng.normal(size=k) for p, k in n.items()},
                {p: rng.normal(size=k) for p, k in n.items()},
                state=state,
                copy_state=copy_state,
            )
        w.finish({p: np.zeros(k) for p, k in n.items()})


def test_whole_row_chunks_write_what_stacked_blocks_write(tmp_path: Path, monkeypatch) -> None:
    """The same content as stacking every block and writing it through the chunk cache."""
    fast, plain = tmp_path / "fast.h5", tmp_path / "plain.h5"
    _run(fast)
    with h5py.File(fast, "r") as f:  # the direct path was taken for the wide datasets
        assert f["inputs/values"].chunks == (1, T, N_IN)
        assert f["projections/input/weights"].chunks == (1, N_IN * N_REC)
        assert f["projections/input/grad/eprop"].chunks == (1, N_IN * N_REC)
    monkeypatch.setattr(buffer_module, "append_row_list", lambda ds, rows: append_rows(ds, np.stack(rows)))
    _run(plain)
    assert diff_files(fast, plain) == []
    run = open_run(fast)
    assert run.n_trials == N_ITER * BATCH and run.n_iterations == N_ITER
    x = (np.random.default_rng([3, 1]).random((T - 1, N_IN)) < 0.05).astype(np.uint8)
    np.testing.assert_array_equal(run.replay(7).x, x)  # trial 7 = iteration 3, trial 1: padding cut off
    g = h5py.File(fast, "r")["projections/recurrent/grad/bptt"][:]
    assert np.isnan(g[1::2]).all() and np.isfinite(g[0::2]).all()


def test_append_row_list_after_a_cut_back(tmp_path: Path) -> None:
    """Rows written whole land where ``append_rows`` puts them, also after the dataset was shrunk."""
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "a.h5", "w", libver="latest") as f:
        wide = growing(f, "wide", (9000,), np.float64)  # 72 kB rows: one per chunk
        narrow = growing(f, "narrow", (3,), np.float64)  # many rows per chunk: stacked
        assert wide.chunks == (1, 9000) and narrow.chunks[0] > 1
        rows = [rng.normal(size=9000) for _ in range(5)]
        small = [rng.normal(size=3) for _ in range(5)]
        append_row_list(wide, rows)
        append_row_list(narrow, small)
        wide.resize((2, 9000))
        narrow.resize((2, 3))
        append_row_list(wide, rows[3:] + [np.arange(9000)])  # int rows: cast to the dataset's dtype
        append_row_list(narrow, small[3:])
        np.testing.assert_array_equal(wide[:], np.stack(rows[:2] + rows[3:] + [np.arange(9000.0)]))
        np.testing.assert_array_equal(narrow[:], np.stack(small[:2] + small[3:]))
        with pytest.raises(ValueError, match="shape"):
            append_row_list(wide, [np.zeros(8999)])
        assert wide.shape == (5, 9000)


def test_states_kept_without_a_copy_give_the_same_file(tmp_path: Path) -> None:
    _run(tmp_path / "copied.h5")
    _run(tmp_path / "kept.h5", copy_state=False)
    assert diff_files(tmp_path / "copied.h5", tmp_path / "kept.h5") == []


def test_a_state_is_copied_by_default(tmp_path: Path) -> None:
    """A caller that changes its arrays after ``add_iteration`` does not change the resume slot."""
    n = {"input": N_IN * N_REC, "recurrent": N_REC - 1, "output": N_REC * N_OUT, "bias": N_OUT}
    w_in = np.ones((2, 2))
    with _writer(tmp_path / "s.h5") as w:
        w.flush_iterations = 5
        w.add_iteration({p: np.zeros(k) for p, k in n.items()}, {}, state={"w": w_in})
        w_in[:] = 7.0  # before the flush (at close)
    assert (h5py.File(tmp_path / "s.h5", "r")["resume/slot1/w"][()] == 1.0).all()


def _elementwise_x(x: np.ndarray, n_steps: int) -> np.ndarray | None:
    """The first version of check_x: elementwise tests; None where it rejects."""
    if x.dtype != np.bool_ and (np.any(x < 0) or np.any(x > 255) or np.any(np.mod(x, 1) != 0)):
        return None
    out = np.zeros((n_steps, x.shape[1]), dtype=np.uint8)
    out[: x.shape[0]] = x.astype(np.uint8)
    return out


VALUES = [[0, 1, 2], [0, 255], [0, 256], [-1, 0], [0.5, 1], [np.nan, 0], [np.inf, 0], [-np.inf, 1]]
VALUES += [[-0.0, 1], [1e20, 0], [-300, 0], [2**40, 1], [254.999, 3]]
DTYPES = [np.float64, np.float32, np.int64, np.int16, np.uint16, np.uint8]


def _fits(dtype, values) -> bool:
    a = np.array(values, dtype=float)
    if np.dtype(dtype).kind == "f":
        return True
    info = np.iinfo(dtype)
    return bool(
        np.all(np.isfinite(a)) and np.all(a == np.round(a)) and a.min() >= info.min and a.max() <= info.max
    )


CASES = [(d, v) for d in DTYPES for v in VALUES if _fits(d, v)] + [(bool, [0, 1, 1]), (bool, [0, 0])]


@pytest.mark.parametrize(("dtype", "values"), CASES)
def test_check_x_accepts_and_rejects_as_the_elementwise_tests(dtype, values) -> None:
    x = np.array(values + [0, 0], dtype=float).astype(dtype).reshape(-1, 1)
    for n_steps in (x.shape[0], x.shape[0] + 3):
        want = _elementwise_x(x, n_steps)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no cast warning escapes
            if want is None:
                with pytest.raises(ValueError, match="spike counts"):
                    check_x(x, 1, n_steps)
            else:
                got, T = check_x(x, 1, n_steps)
                assert T == x.shape[0] and got.dtype == np.uint8
                np.testing.assert_array_equal(got, want)
                assert not np.shares_memory(got, x)  # the writer keeps its own copy


def test_check_spikes_sorts_only_what_is_unsorted() -> None:
    rng = np.random.default_rng(1)
    steps, ids = rng.integers(0, 50, 400), rng.integers(0, 20, 400)
    order = np.lexsort((ids, steps))
    for s, i in ((steps, ids), (steps[order], ids[order]), (steps[order][::-1], ids[order][::-1])):
        got = check_spikes({"recurrent": (s, i)}, {"recurrent": 20}, 100, 50, True)["recurrent"]
        np.testing.assert_array_equal(got[0], steps[order] + 100)
        np.testing.assert_array_equal(got[1], ids[order].astype(np.uint64))
        assert got[0].dtype == np.int64 and got[1].dtype == np.uint64
    # ties in time, ids out of order within one step: sorted by id
    got = check_spikes({"recurrent": ([3, 3, 3, 4], [2, 0, 1, 0])}, {"recurrent": 5}, 0, 9, True)["recurrent"]
    assert got[1].tolist() == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="integers"):
        check_spikes({"recurrent": ([0.5], [0])}, {"recurrent": 5}, 0, 9, True)


def test_check_spikes_orders_and_bounds_local_and_global_steps_alike() -> None:
    """The one-key order test gives the order of (step, id) pairs, for steps local to the trial or global;
    steps outside the trial and ids outside the population are refused in both frames."""
    rng = np.random.default_rng(2)
    for _ in range(300):
        n, T, size, start = rng.integers(0, 30), rng.integers(1, 8), rng.integers(1, 6), rng.integers(0, 1000)
        s, i = rng.integers(0, T, n), rng.integers(0, size, n)
        if rng.random() < 0.5:  # in order (ties included): kept as given
            o = np.lexsort((i, s))
            s, i = s[o], i[o]
        order = np.lexsort((i, s))
        for local in (True, False):
            got = check_spikes(
                {"recurrent": (s if local else s + start, i)}, {"recurrent": size}, start, T, local
            )
            np.testing.assert_array_equal(got["recurrent"][0], (s + start)[order])
            np.testing.assert_array_equal(got["recurrent"][1], i[order].astype(np.uint64))
    for local, steps in ((True, [-1]), (True, [9]), (False, [99]), (False, [109]), (False, [0])):
        with pytest.raises(ValueError, match=r"outside the trial \[100, 109\)"):
            check_spikes({"recurrent": (steps, [0])}, {"recurrent": 5}, 100, 9, local)
    for local, steps in ((True, [8]), (False, [108])):
        with pytest.raises(ValueError, match="node id 5 >= population size 5"):
            check_spikes({"recurrent": (steps, [5])}, {"recurrent": 5}, 100, 9, local)


def test_an_input_array_given_again_is_checked_again_when_changed(tmp_path: Path) -> None:
    """The same x array in every trial (frozen input) is stored as given each time; changed in place it is
    stored as changed, and a value that is not a spike count is refused as the first time."""
    x = np.zeros((T, N_IN))
    x[::7, 3] = 1.0
    rows = []
    with _writer(tmp_path / "x.h5") as w:
        for _ in range(4):  # the first two check and cast, the next ones compare with the copy kept
            w.add_trial(0, x, np.zeros((T, N_OUT)), loss=0.0)
            rows.append(x.astype(np.uint8))
        x[5, 5] = 2.0  # in place: a new content, still counts
        w.add_trial(0, x, np.zeros((T, N_OUT)), loss=0.0)
        rows.append(x.astype(np.uint8))
        x[6, 6] = 0.5
        with pytest.raises(ValueError, match="spike counts"):
            w.add_trial(0, x, np.zeros((T, N_OUT)), loss=0.0)
        x[6, 6] = np.nan
        with pytest.raises(ValueError, match="spike counts"):
            w.add_trial(0, x, np.zeros((T, N_OUT)), loss=0.0)
        x[6, 6] = 0.0
        w.add_trial(0, x, np.zeros((T, N_OUT)), loss=0.0)
        rows.append(x.astype(np.uint8))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        np.testing.assert_array_equal(f["inputs/values"][:], np.stack(rows))
