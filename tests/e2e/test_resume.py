"""Crash safety and ``neuroplast run --resume``: a killed run continues bit for bit.

The end-to-end tests run the real command in subprocesses on a tiny sine config, kill it with SIGKILL at
different points (from outside while it trains, before its first iteration completes, and deterministically
in the middle of a flush with a half-overwritten resume slot), check that the killed file reads
consistently, resume it, and compare *every* dataset with an uninterrupted run of the same config and seed.
The fast test of :meth:`RunWriter.append` on synthetic data is tests/io/test_append.py.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.analysis.views import connectivity_of
from neuroplast.io import FORMAT_VERSION, open_run
from neuroplast.io.state import state_digest
from neuroplast.io.writer import read_states
from tests.helpers import (
    MID_FLUSH_CHILD,
    SMALL_EVIDENCE_TOML,
    TINY_ITERATIONS,
    TINY_TOML,
    assert_same_datasets,
    cli_args,
    cli_env,
    long_cpp_toml,
    one_line,
    read_datasets,
    run_cli,
    run_command,
    write_text,
)

ITERATIONS = TINY_ITERATIONS
TINY = TINY_TOML


# ------------------------------------------------------------------------------------------ helpers
def _peek_iterations(path: Path) -> int:
    """``n_iterations_complete`` of a file a live writer holds (no locking; -1 if not readable yet)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs["n_iterations_complete"]) if "format" in f.attrs else -1
    except (OSError, KeyError):
        return -1


def _kill_when(cmd: list[str], cwd: Path, path: Path, min_iterations: int, timeout: float = 240) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``path`` shows ``min_iterations`` complete iterations."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    assert_same_datasets(path, ref)


# --------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return write_text(tmp_path_factory.mktemp("resume"), "tiny.toml", TINY)


@pytest.fixture(scope="module")
def reference(tiny_reference: Path) -> Path:
    """An uninterrupted run of the tiny config, ITERATIONS long (shared with test_run_safety.py)."""
    return tiny_reference


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_from_outside(work: Path, reference: Path) -> None:
    out = work / "killed_outside.h5"
    cmd = cli_args("run", "tiny.toml", "--iterations", ITERATIONS, "--out", out, "--quiet")
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
        d = f[f"resume/slot{k % 2}/weights/recurrent"]
        d[1] = d[1] + 1.0
    resumed = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", damaged, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after iteration {k - 1} " in resumed.stdout
    _assert_resumed_equals(damaged, reference)

    # a log of format version 1 (dense resume slots) resumes to the same run and becomes version 2
    old = _as_version_1(shutil.copy(out, work / "version_1.h5"))
    resumed = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", old, "--quiet", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert open_run(old).format_version == FORMAT_VERSION == 2
    got, want = read_datasets(old), read_datasets(reference)
    kept = sorted(n for n in want if not n.startswith("resume/"))
    assert kept == sorted(n for n in got if not n.startswith("resume/"))
    for name in kept:  # bit identity: the run resumed from dense slots is the uninterrupted one
        assert np.array_equal(got[name].view(np.uint8), want[name].view(np.uint8)), name

    proc = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out, "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed {out} after iteration {k} " in proc.stdout
    _assert_resumed_equals(out, reference)

    again = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out, cwd=work)
    assert again.returncode == 0 and "nothing to resume" in again.stdout, again.stderr


def _as_version_1(path: Path) -> Path:
    """``path`` rewritten as neuroplast wrote it in format version 1: the resume slots' weights and Adam
    moments as dense matrices (post × pre), ``format_version`` 1."""
    conn = connectivity_of(open_run(path))
    dense_names = {"input": "w_in", "recurrent": "w_rec", "output": "w_out", "bias": "b_out"}
    with h5py.File(path, "r+") as f:
        states = read_states(f)
        for it, state in states.items():
            g = f[f"resume/slot{it % 2}"]
            for name in list(state):
                kind, _, key = name.rpartition("/")
                moment = kind in ("optimizer/m", "optimizer/v") and state[name].ndim == 1
                if kind == "weights" or moment:  # (an optimizer stepping on dense matrices keeps them)
                    del g[name]
                    dense = conn.to_dense(key, state[name])
                    state.pop(name)
                    new = f"weights/{dense_names[key]}" if kind == "weights" else name
                    state[new] = dense
                    g.create_dataset(new, data=dense)
            g.attrs["sha256"] = state_digest(state)
        f.attrs["format_version"] = np.int64(1)
    assert open_run(path).format_version == 1 and set(read_states_of(path)) == set(states)
    return path


def read_states_of(path: Path) -> dict[int, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        return read_states(f)


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_before_first_iteration(work: Path, reference: Path) -> None:
    out = work / "killed_early.h5"
    cmd = cli_args("run", "tiny.toml", "--iterations", ITERATIONS, "--out", out, "--quiet")
    _kill_when(cmd, work, out, min_iterations=0)
    run = open_run(out)
    assert run.n_iterations < ITERATIONS
    _assert_prefix_of(out, reference)
    proc = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out, "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    _assert_resumed_equals(out, reference)


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_mid_flush(work: Path, reference: Path) -> None:
    """Killed after iteration 4's rows and trials reached the disk but before its counters: they are cut."""
    out = work / "killed_mid_flush.h5"
    child = [sys.executable, "-c", MID_FLUSH_CHILD, "4", "run", "tiny.toml", "--iterations", str(ITERATIONS)]
    proc = run_command([*child, "--out", str(out), "--quiet"], work)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with h5py.File(out, "r") as f:  # partial rows of the incomplete iteration are on disk
        assert f.attrs["n_iterations_complete"] == 3 and f.attrs["n_trials_complete"] == 6
        assert f["projections/recurrent/updates"].shape[0] == 4 and f["trials/loss"].shape[0] == 8
        assert set(read_states(f)) == {3}  # slot of iteration 2 was half overwritten by iteration 4
    _assert_prefix_of(out, reference)
    res = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--resume", out, cwd=work)
    assert res.returncode == 0, res.stderr
    assert "after iteration 3 (cut off 2 trials, 1 iterations" in res.stdout
    _assert_resumed_equals(out, reference)


@pytest.mark.e2e
def test_resume_errors_are_one_line(work: Path, reference: Path) -> None:
    """Missing file, config mismatch, fewer iterations than done, conflicting options: one line, exit 2,
    file untouched."""
    killed = work / "mismatch.h5"
    shutil.copy(reference, killed)
    with h5py.File(killed, "r+") as f:
        f.attrs["finished"] = np.int8(0)
    before = killed.read_bytes()
    cases = [
        (("--iterations", ITERATIONS, "--resume", work / "missing.h5"), "missing.h5"),
        (("--iterations", ITERATIONS - 1, "--resume", killed), "--iterations"),
        (("--iterations", ITERATIONS, "--seed", 7, "--resume", killed), "simulation.seed"),
        (("--iterations", ITERATIONS, "--rule", "eprop-random", "--resume", killed), "training.rule"),
        (("--iterations", ITERATIONS, "--resume", killed, "--force"), "--force"),
        (("--iterations", ITERATIONS, "--resume", killed, "--trace", "v"), "--trace"),
    ]
    for args, word in cases:
        proc = run_cli("run", "tiny.toml", *args, cwd=work)
        assert proc.returncode == 2, (args, proc.stderr)
        assert word in one_line(proc.stderr), (args, proc.stderr)
    assert killed.read_bytes() == before


# ------------------------------------------------------------------------- many trials per launch
#: A child that SIGKILLs itself in the middle of launch ``argv[1]`` of the chunked engine (its binary has
#: run, nothing of it has reached the trainer or the log); ``argv[2:]`` are the arguments of ``neuroplast``.
MID_CHUNK_CHILD = """
import os, signal, sys
from neuroplast.network import builder

KILL_AT = int(sys.argv[1])
orig = builder.Brian2Network._collect_chunk
calls = []

def dying(self, n):
    calls.append(n)
    if len(calls) == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(self, n)

builder.Brian2Network._collect_chunk = dying
from neuroplast.cli import main
sys.exit(main(sys.argv[2:]))
"""

#: Trials of 20000 steps, launches of 2 iterations (and of 1: one.toml below): the same two compiled networks
#: as the Ctrl-C tests of tests/e2e/test_run_safety.py, so that the session builds them once for both.
CHUNKED = long_cpp_toml(2)


#: NEST's mode on the same compiled networks (whether the bias is trained and the averaging n are values
#: of the launch): a readout without bias, the gradient averaged over the steps the loss counts.
NEST_MODE = CHUNKED.replace("[network]\n", "[network]\nreadout_bias = false\n").replace(
    "[training]\n", "[training]\naverage_gradient = true\n"
)


@pytest.mark.brian2
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("config", [CHUNKED, NEST_MODE], ids=["default", "nest-mode"])
def test_resume_after_kill_mid_chunk(tmp_path: Path, config: str) -> None:
    """Launches of 2 iterations: a kill inside the third launch keeps the 4 iterations of the first two
    (flushed at their end), and --resume continues bit for bit — here with 2 OpenMP threads (an execution
    key: the continuation must still be the same bits); one trial per launch gives the same log."""
    assert "batch_size = 1" in config and "chunk_iterations = 2" in config
    assert config == CHUNKED or ("readout_bias = false" in config and "average_gradient = true" in config)
    write_text(tmp_path, "chunked.toml", config)
    write_text(tmp_path, "one.toml", config.replace("chunk_iterations = 2", "chunk_iterations = 1"))
    write_text(
        tmp_path, "threads.toml", config.replace("chunk_iterations = 2", "chunk_iterations = 2\nthreads = 2")
    )
    ref, one, out = tmp_path / "ref.h5", tmp_path / "one.h5", tmp_path / "killed.h5"
    args = ("--iterations", ITERATIONS, "--quiet")
    proc = run_cli("run", "chunked.toml", *args, "--out", ref, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", "one.toml", *args, "--out", one, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    from neuroplast.io.diff import diff_files

    # the same content but for the stored config (chunk_iterations = 1 vs 2)
    assert [d.split(":")[0] for d in diff_files(ref, one)] == ["/ attribute 'config'"]

    child = [sys.executable, "-c", MID_CHUNK_CHILD, "3", "run", "chunked.toml", *map(str, args)]
    proc = run_command([*child, "--out", str(out)], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["n_iterations_complete"] == 4 and set(read_states(f)) == {3, 4}
    _assert_prefix_of(out, ref)
    res = run_cli("run", "threads.toml", "--iterations", ITERATIONS, "--resume", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "after iteration 4 " in res.stdout and "2 threads" in res.stderr
    # every dataset the same bits; the log's config now names the threads of the continuation
    assert [d.split(":")[0] for d in diff_files(out, ref)] == ["/ attribute 'config'"]
    with h5py.File(out, "r") as f, h5py.File(ref, "r") as g:
        want = g.attrs["config"].replace("chunk_iterations = 2\n", "chunk_iterations = 2\nthreads = 2\n")
        assert f.attrs["config"] == want
    assert open_run(out).finished


# ---------------------------------------------------------------------------- trials side by side
#: Batches of 3 trials side by side on cpp_standalone, one batch per launch: the exact gradient (``bptt``)
#: from each launch's recorded trajectories (e-prop's factorized gradient, computed by the binary, runs
#: several iterations per launch: below); a child that SIGKILLs itself after launch ``argv[1]``'s binary has
#: run.
BATCHED = SMALL_EVIDENCE_TOML.replace("batch_size = 1", "batch_size = 3").replace(
    'rule = "eprop-random"', 'rule = "bptt"'
)
MID_BATCH_CHILD = MID_CHUNK_CHILD.replace("_collect_chunk", "_collect")


@pytest.mark.brian2
@pytest.mark.e2e
def test_resume_after_kill_mid_batch(tmp_path: Path) -> None:
    """A kill inside the third batch's launch keeps the iterations logged before it (the second one's flush
    may still have been in the writer thread), and --resume continues bit for bit: the same file as an
    uninterrupted run."""
    assert "batch_size = 3" in BATCHED and 'device = "cpp_standalone"' in BATCHED
    assert 'rule = "bptt"' in BATCHED  # one launch per batch (e-prop's are chunked: below)
    write_text(tmp_path, "batched.toml", BATCHED)
    ref, out = tmp_path / "ref.h5", tmp_path / "killed.h5"
    args = ("--iterations", 5, "--quiet")
    proc = run_cli("run", "batched.toml", *args, "--out", ref, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    child = [sys.executable, "-c", MID_BATCH_CHILD, "3", "run", "batched.toml", *map(str, args)]
    proc = run_command([*child, "--out", str(out)], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["n_iterations_complete"] in (1, 2)
    _assert_prefix_of(out, ref)
    res = run_cli("run", "batched.toml", "--iterations", 5, "--resume", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    from neuroplast.io.diff import diff_files

    assert diff_files(out, ref) == []
    assert open_run(out).finished


#: Launches of 2 iterations of 3 trials side by side (the chunked engine, docs/model.md §7, §8; the online
#: path, and the factorized one below): 5 iterations are launches of 2, 2 and 1.
BATCH_CHUNKED = (
    SMALL_EVIDENCE_TOML.replace("batch_size = 1", "batch_size = 3")
    .replace("[training]\n", '[training]\npath = "online"\n')
    .replace('device = "cpp_standalone"', 'device = "cpp_standalone"\nchunk_iterations = 2')
)


@pytest.mark.brian2
@pytest.mark.e2e
@pytest.mark.parametrize("path", ["online", "factorized"])
def test_resume_after_kill_mid_batch_chunk(tmp_path: Path, path: str) -> None:
    """Launches of 2 iterations of 3 trials side by side: a kill inside the third launch (its binary has
    run) keeps the 4 iterations of the first two — or 2, when it comes while the second launch's flush is
    still being written in the writer's thread (docs/hdf5.md: these launches are short, the writer may not
    be done; the long trials of ``test_resume_after_kill_mid_chunk`` leave it time) — and --resume
    continues bit for bit — the same file as an uninterrupted run; one trial per launch gives the same log
    but for the stored config.  On either gradient path (the factorized one computed by the binary at
    every boundary)."""
    assert all(k in BATCH_CHUNKED for k in ("batch_size = 3", "chunk_iterations = 2", 'path = "online"'))
    config = BATCH_CHUNKED.replace('path = "online"', f'path = "{path}"')
    write_text(tmp_path, "chunked.toml", config)
    write_text(tmp_path, "one.toml", config.replace("chunk_iterations = 2", "chunk_iterations = 1"))
    ref, one, out = tmp_path / "ref.h5", tmp_path / "one.h5", tmp_path / "killed.h5"
    args = ("--iterations", 5, "--quiet")
    proc = run_cli("run", "chunked.toml", *args, "--out", ref, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", "one.toml", *args, "--out", one, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    from neuroplast.io.diff import diff_files

    assert [d.split(":")[0] for d in diff_files(ref, one)] == ["/ attribute 'config'"]
    child = [sys.executable, "-c", MID_CHUNK_CHILD, "3", "run", "chunked.toml", *map(str, args)]
    proc = run_command([*child, "--out", str(out)], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with h5py.File(out, "r") as f:
        kept = int(f.attrs["n_iterations_complete"])
        assert kept in (2, 4) and set(read_states(f)) == {kept - 1, kept}
    _assert_prefix_of(out, ref)
    res = run_cli("run", "chunked.toml", "--iterations", 5, "--resume", out, cwd=tmp_path)
    assert f"after iteration {kept} " in res.stdout, res.stdout
    assert res.returncode == 0, res.stderr
    assert "up to 2 iterations per launch, each its 3 trials side by side" in res.stderr, res.stderr
    assert diff_files(out, ref) == []
    assert open_run(out).finished
