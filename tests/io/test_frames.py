"""Analysis views of a run log: units on the datasets, the per-trial table (pandas), the log as an xarray
Dataset, per-iteration losses, and spike times relative to their trial."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.io import open_run
from neuroplast.io.schema import column_units, parameter_units
from tests.helpers import small_run_writer, write_synthetic_run

N_IN, N_REC, N_OUT, T, DT = 2, 3, 1, 5, 0.5
#: (iteration, start_step, loss, rate_hz) of the four trials of _log: two per iteration, a gap of 3 steps
#: before the third trial.
TRIALS = [(0, 0, 4.0, 10.0), (0, 5, 2.0, 30.0), (1, 13, 1.5, 20.0), (1, 18, 0.5, 40.0)]
#: Per trial: (local step, neuron) of its recurrent spikes.
SPIKES = [([0, 4], [1, 2]), ([], []), ([2], [0]), ([1, 1, 3], [0, 2, 1])]


def _log(path: Path) -> Path:
    rng = np.random.default_rng(3)
    with small_run_writer(path, N_IN, N_REC, N_OUT, T, dt_ms=DT, flush_every=1) as w:
        n_edges = {"input": N_IN * N_REC, "recurrent": N_REC - 1, "output": N_REC * N_OUT, "bias": N_OUT}
        weights = {p: rng.normal(size=n) for p, n in n_edges.items()}
        for k, (it, start, loss, rate) in enumerate(TRIALS):
            if k and TRIALS[k - 1][0] != it:
                upd = {p: rng.normal(size=n) for p, n in n_edges.items()}
                w.add_iteration(weights, upd)
                weights = {p: weights[p] + upd[p] for p in weights}
            steps, ids = SPIKES[k]
            w.add_trial(
                it,
                np.zeros((T, N_IN)),
                np.zeros((T, N_OUT)),
                loss=loss,
                start_step=start,
                spikes={"recurrent": (np.array(steps, dtype=np.int64), np.array(ids, dtype=np.int64))},
                extras={"rate_hz": rate, "accuracy": 1.0, "latency_ms": 2.0, "score": 3.0},
                grads={p: {"eprop": np.full(n, float(k))} for p, n in n_edges.items()},
            )
        w.add_iteration(weights, {p: np.zeros(n) for p, n in n_edges.items()})
        w.finish(weights)
    return path


def test_units_on_trial_columns_targets_and_projections(tmp_path: Path) -> None:
    path = _log(tmp_path / "run.h5")
    with h5py.File(path, "r") as f:
        units = {k: f["trials"][k].attrs.get("units") for k in f["trials"]}
        assert units == {
            "start_step": "steps",
            "n_steps": "steps",
            "iteration": "1",
            "loss": "1",
            "rate_hz": "Hz",
            "accuracy": "1",
            "latency_ms": "ms",
            "score": "1",
        }
        assert f["targets/values"].attrs["units"] == "1"
        assert f["populations/recurrent/alpha"].attrs["units"] == "1"
        for name, g in f["projections"].items():
            for ds in ("weights", "updates", *(f"grad/{e}" for e in g["grad"])):
                assert g[ds].attrs["units"] == "1", (name, ds)
    run = open_run(path)
    assert run.trial_units["rate_hz"] == "Hz" and run.trial_units["start_step"] == "steps"


def test_units_of_a_log_written_before_them(tmp_path: Path) -> None:
    """A log without ``units`` attributes: the reader gives the units the schema names."""
    path = _log(tmp_path / "old.h5")
    with h5py.File(path, "r+") as f:
        for d in f["trials"].values():
            del d.attrs["units"]
    units = open_run(path).trial_units
    assert units == {k: column_units(k) for k in units} and units["rate_hz"] == "Hz"
    assert column_units("n_spikes") == "1" and column_units("delay_s") == "s"
    assert parameter_units("n_ref") == "steps" and parameter_units("v_th") == "1"


def test_iteration_losses_are_the_means_of_their_trials(tmp_path: Path) -> None:
    run = open_run(_log(tmp_path / "run.h5"))
    iterations, loss = run.iteration_losses()
    assert iterations.tolist() == [0, 1]
    # means of two exactly representable numbers: exact in binary floating point
    assert loss.tolist() == [3.0, 1.0]
    assert run.iteration_loss(0) == 3.0 and run.iteration_loss(-1) == 1.0
    with pytest.raises(IndexError, match="iteration 2 out of range"):
        run.iteration_loss(2)


def test_spike_times_relative_to_their_trial(tmp_path: Path) -> None:
    run = open_run(_log(tmp_path / "run.h5"))
    per_trial = run.spikes_by_trial("recurrent")
    assert len(per_trial) == len(TRIALS)
    for k, (ts, ids) in enumerate(per_trial):
        steps, want_ids = SPIKES[k]
        order = np.lexsort((want_ids, steps))
        # times are step · dt with dt = 0.5 ms: exact in binary floating point
        assert ts.tolist() == [steps[i] * DT for i in order] and ids.tolist() == [want_ids[i] for i in order]
        rel, rel_ids = run.spikes("recurrent", trial=k, relative=True)
        glob, _ = run.spikes("recurrent", trial=k)
        assert rel.tolist() == ts.tolist() and rel_ids.tolist() == ids.tolist()
        assert (glob - TRIALS[k][1] * DT).tolist() == rel.tolist()
    with pytest.raises(ValueError, match="needs a trial"):
        run.spikes("recurrent", relative=True)


def test_trials_frame(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    run = open_run(_log(tmp_path / "run.h5"))
    frame = run.trials_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == run.n_trials == len(TRIALS)
    assert frame.index.name == "trial" and frame.index.tolist() == [0, 1, 2, 3]
    assert frame["iteration"].tolist() == [t[0] for t in TRIALS]
    assert frame["loss"].tolist() == [t[2] for t in TRIALS]
    assert frame["rate_hz"].tolist() == [t[3] for t in TRIALS]
    assert frame["start_ms"].tolist() == [t[1] * DT for t in TRIALS]  # step · 0.5 ms: exact
    assert frame["duration_ms"].tolist() == [T * DT] * len(TRIALS)
    assert set(frame.columns) == set(frame.attrs["units"])
    assert frame.attrs["units"]["rate_hz"] == "Hz" and frame.attrs["units"]["start_ms"] == "ms"
    assert frame.groupby("iteration")["loss"].mean().tolist() == run.iteration_losses()[1].tolist()


def test_to_xarray(tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    run = open_run(_log(tmp_path / "run.h5"))
    ds = run.to_xarray()
    assert ds.sizes["iteration"] == run.n_iterations == 2 and ds.sizes["trial"] == run.n_trials
    assert ds["trial_iteration"].values.tolist() == [t[0] for t in TRIALS]
    assert ds["iteration_loss"].values.tolist() == [3.0, 1.0]
    assert ds["rate_hz"].attrs["units"] == "Hz" and ds["loss"].attrs["units"] == "1"
    for name in run.projection_names:
        p = run.projection(name)
        w = ds[f"weights_{name}"]
        assert w.dims == ("iteration", f"edge_{name}") and w.attrs["units"] == "1"
        np.testing.assert_array_equal(w.values, p.weights[: run.n_iterations])  # copies: bit for bit
        np.testing.assert_array_equal(ds[f"updates_{name}"].values, p.updates)
        np.testing.assert_array_equal(ds[f"final_weights_{name}"].values, p.weights[-1])
        np.testing.assert_array_equal(ds[f"source_{name}"].values, p.source_ids)
        for est in p.estimators:
            g = ds[f"grad_{est}_{name}"]
            assert g.dims == ("trial", f"edge_{name}")
            np.testing.assert_array_equal(g.values, p.grad(est))
    # per iteration with named dimensions: the batch mean of the gradient
    mean = ds["grad_eprop_recurrent"].groupby("trial_iteration").mean()
    assert mean.values[:, 0].tolist() == [0.5, 2.5]


@pytest.mark.parametrize(("view", "package"), [("trials_frame", "pandas"), ("to_xarray", "xarray")])
def test_a_missing_optional_package_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, view: str, package: str
) -> None:
    run = open_run(write_synthetic_run(tmp_path / "run.h5", n_iter=1))
    monkeypatch.setitem(sys.modules, package, None)  # import of it fails as if not installed
    with pytest.raises(ModuleNotFoundError) as info:
        getattr(run, view)()
    msg = str(info.value)
    assert "\n" not in msg and package in msg and "neuroplast[analysis]" in msg and view in msg
