"""Crash safety and ``neuroplast run --resume``: a killed run continues bit for bit.

The end-to-end tests run the real command in subprocesses on a tiny sine config, kill it with SIGKILL at
different points (from outside while it trains, before its first iteration completes, and deterministically
in the middle of a flush with a half-overwritten resume slot), check that the killed file reads
consistently, resume it, and compare *every* dataset with an uninterrupted run of the same config and seed.
A fast test of :meth:`RunWriter.append` on synthetic data needs no Brian2.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from neuroplast.io import RunFileError, RunWriter, open_run
from neuroplast.io.writer import read_states

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 6
TINY = """\
[simulation]
dt_ms = 1.0
n_steps = 300
seed = 1
device = "runtime"

[network]
n_rec = 30
n_alif = 0
n_out = 1
tau_m_ms = 30.0
v_th = 0.03
n_ref = 0
tau_out_ms = 30.0
w_in_scale = 0.05
w_rec_scale = 0.02
w_out_scale = 0.1

[task]
name = "sine"
n_in = 40
rate_hz = 50.0
periods_ms = [300.0, 150.0, 100.0]

[training]
rule = "eprop"
loss = "mse"
optimizer = "adam"
learning_rate = 0.001
iterations = 40
batch_size = 2
"""

# Child that SIGKILLs itself in the middle of writing the resume slot of iteration KILL_AT, after the
# weights/updates rows and the trials of that iteration were flushed to disk (but not the counters).
MID_FLUSH_CHILD = """
import os, signal, sys
import numpy as np
import neuroplast.io.writer as w

KILL_AT = int(sys.argv[1])
orig = w._write_slot

def half_write(f, state, iteration, *rest):
    if iteration != KILL_AT:
        return orig(f, state, iteration, *rest)
    g = f.require_group(w.RESUME_GROUP).require_group(w.RESUME_SLOTS[iteration % 2])
    g.attrs[w.ATTR_STATE_ITERATION] = np.int64(-1)
    names = sorted(state)
    for name in names[: len(names) // 2]:
        g[name][()] = state[name]
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

w._write_slot = half_write
from neuroplast.cli import main
sys.exit(main(sys.argv[2:]))
"""


# ------------------------------------------------------------------------------------------ helpers
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _cli(*args: Any) -> list[str]:
    return [sys.executable, "-m", "neuroplast.cli", *map(str, args)]


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _peek_iterations(path: Path) -> int:
    """``n_iterations_complete`` of a file a live writer holds (no locking; -1 if not readable yet)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs["n_iterations_complete"]) if "format" in f.attrs else -1
    except (OSError, KeyError):
        return -1


def _kill_when(cmd: list[str], cwd: Path, path: Path, min_iterations: int, timeout: float = 240) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``path`` shows ``min_iterations`` complete iterations."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            if path.exists() and _peek_iterations(path) >= min_iterations:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.monotonic() - t0 >= timeout:
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err.decode()[-2000:])


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def _attrs(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        return {k: f.attrs[k] for k in f.attrs}


def _assert_same_file(a: Path, b: Path) -> None:
    """Every dataset and root attribute of ``a`` and ``b`` is equal, bit for bit (NaN == NaN)."""
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db)
    for name, x in da.items():
        y = db[name]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), name  # bits, NaN and -0.0 included
        else:
            assert np.array_equal(x, y), name
    aa, ab = _attrs(a), _attrs(b)
    assert sorted(aa) == sorted(ab)
    for k in aa:
        assert np.array_equal(aa[k], ab[k]), k


def _assert_prefix_of(killed: Path, ref: Path) -> None:
    """The killed file reads consistently, and what it holds equals the start of the reference run."""
    run, full = open_run(killed), open_run(ref)
    assert not run.finished
    n = run.n_trials
    assert {len(v) for v in run.trials.values()} == {n}
    for col in ("loss", "iteration", "start_step", "n_steps"):
        np.testing.assert_array_equal(run.trials[col], full.trials[col][:n])
    for name in run.projection_names:
        p, q = run.projection(name), full.projection(name)
        np.testing.assert_array_equal(p.weights[: run.n_iterations], q.weights[: run.n_iterations])
        np.testing.assert_array_equal(p.updates, q.updates[: run.n_iterations])
        for est in p.estimators:
            np.testing.assert_array_equal(p.grad(est), q.grad(est)[:n])
    ts, ids = run.spikes("recurrent")
    ts_full, ids_full = full.spikes("recurrent")
    np.testing.assert_array_equal(ts, ts_full[: ts.size])
    np.testing.assert_array_equal(ids, ids_full[: ids.size])
    for k in range(n):
        r, q = run.replay(k), full.replay(k)
        np.testing.assert_array_equal(r.x, q.x)
        np.testing.assert_array_equal(r.target, q.target)


def _assert_resumed_equals(path: Path, ref: Path) -> None:
    run, full = open_run(path), open_run(ref)
    assert run.finished and run.n_iterations == ITERATIONS
    for name in full.projection_names:
        assert np.array_equal(run.projection(name).weights[-1], full.projection(name).weights[-1]), name
    assert np.array_equal(run.trials["loss"], full.trials["loss"])
    _assert_same_file(path, ref)


# --------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("resume")
    (d / "tiny.toml").write_text(TINY)
    return d


@pytest.fixture(scope="module")
def reference(work: Path) -> Path:
    """An uninterrupted run of the tiny config (also warms Brian2's code cache)."""
    out = work / "ref.h5"
    proc = _run(_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--out", out, "--quiet"), work)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_from_outside(work: Path, reference: Path) -> None:
    out = work / "killed_outside.h5"
    cmd = _cli("run", "tiny.toml", "--iterations", ITERATIONS, "--out", out, "--quiet")
    _kill_when(cmd, work, out, min_iterations=2)
    run = open_run(out)
    assert 2 <= run.n_iterations < ITERATIONS
    _assert_prefix_of(out, reference)
    k = run.n_iterations
    assert set(read_states_of(out)) >= {k}

    # a copy whose newest resume slot is damaged falls back to the slot before it
    damaged = work / "damaged_slot.h5"
    shutil.copy(out, damaged)
    with h5py.File(damaged, "r+") as f:
        d = f[f"resume/slot{k % 2}/weights/w_rec"]
        d[0, 1] = d[0, 1] + 1.0
    resumed = _run(_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", damaged), work)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after iteration {k - 1} " in resumed.stdout
    _assert_resumed_equals(damaged, reference)

    proc = _run(_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out, "--quiet"), work)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed {out} after iteration {k} " in proc.stdout
    _assert_resumed_equals(out, reference)

    again = _run(_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out), work)
    assert again.returncode == 0 and "nothing to resume" in again.stdout, again.stderr


def read_states_of(path: Path) -> dict[int, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        return read_states(f)


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_before_first_iteration(work: Path, reference: Path) -> None:
    out = work / "killed_early.h5"
    cmd = _cli("run", "tiny.toml", "--iterations", ITERATIONS, "--out", out, "--quiet")
    _kill_when(cmd, work, out, min_iterations=0)
    run = open_run(out)
    assert run.n_iterations < ITERATIONS
    _assert_prefix_of(out, reference)
    proc = _run(_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out, "--quiet"), work)
    assert proc.returncode == 0, proc.stderr
    _assert_resumed_equals(out, reference)


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_mid_flush(work: Path, reference: Path) -> None:
    """Killed after iteration 4's rows and trials reached the disk but before its counters: they are cut."""
    out = work / "killed_mid_flush.h5"
    child = [sys.executable, "-c", MID_FLUSH_CHILD, "4", "run", "tiny.toml", "--iterations", str(ITERATIONS)]
    proc = _run([*child, "--out", str(out), "--quiet"], work)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with h5py.File(out, "r") as f:  # partial rows of the incomplete iteration are on disk
        assert f.attrs["n_iterations_complete"] == 3 and f.attrs["n_trials_complete"] == 6
        assert f["projections/recurrent/updates"].shape[0] == 4 and f["trials/loss"].shape[0] == 8
        assert set(read_states(f)) == {3}  # slot of iteration 2 was half overwritten by iteration 4
    _assert_prefix_of(out, reference)
    res = _run(_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out), work)
    assert res.returncode == 0, res.stderr
    assert "after iteration 3 (cut off 2 trials, 1 iterations" in res.stdout
    _assert_resumed_equals(out, reference)


@pytest.mark.e2e
def test_resume_errors_are_one_line(work: Path, reference: Path) -> None:
    """Missing file, config mismatch, conflicting options: one line, exit 2, file untouched."""
    killed = work / "mismatch.h5"
    shutil.copy(reference, killed)
    with h5py.File(killed, "r+") as f:
        f.attrs["finished"] = np.int8(0)
    before = killed.read_bytes()
    cases = [
        (("--iterations", ITERATIONS, "--resume", work / "missing.h5"), "missing.h5"),
        (("--iterations", ITERATIONS + 1, "--resume", killed), "training.iterations"),
        (("--iterations", ITERATIONS, "--seed", 7, "--resume", killed), "simulation.seed"),
        (("--iterations", ITERATIONS, "--rule", "eprop-random", "--resume", killed), "training.rule"),
        (("--iterations", ITERATIONS, "--resume", killed, "--force"), "--force"),
        (("--iterations", ITERATIONS, "--resume", killed, "--trace", "v"), "--trace"),
    ]
    for args, word in cases:
        proc = _run(_cli("run", "tiny.toml", *args), work)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and word in lines[0], (args, proc.stderr)
    assert killed.read_bytes() == before


# ------------------------------------------------------------------------- RunWriter.append alone
N_IN, N_REC, N_OUT, T = 3, 5, 2, 7
BATCH = 3


def _writer(path: Path) -> RunWriter:
    edges = {
        "input": (np.repeat(np.arange(N_IN), N_REC), np.tile(np.arange(N_REC), N_IN)),
        "recurrent": (np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])),
        "output": (np.repeat(np.arange(N_REC), N_OUT), np.tile(np.arange(N_OUT), N_REC)),
        "bias": None,
    }
    return RunWriter(
        path,
        config_toml="[a]\nb = 1\n",
        dt_ms=0.5,
        seed=3,
        populations={"recurrent": {"alpha": np.full(N_REC, 0.9)}, "input": {}, "readout": {}},
        projections_edges=edges,
        n_in=N_IN,
        n_out=N_OUT,
        task_kind="regression",
        n_steps=T,
        flush_every=2,
        brian2_version="test",
    )


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
    _assert_same_file(cut, ref)


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
