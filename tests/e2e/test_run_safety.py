"""Runs that must not be lost or faked, through the real ``neuroplast run`` in subprocesses (runtime device):

* a run that diverges exits 3, keeps every finished iteration and is marked (``diverged``); it is not resumed;
* Ctrl-C (a real SIGINT) in the middle of a trial's simulation exits 130 with one line, and the log resumes
  to the same content as an uninterrupted run;
* a live run's log is not replaced (``--force``), reopened (``--resume``) or compared; once its writer is
  killed the lock is gone and it resumes;
* a finished run extended with ``--resume --iterations N`` equals a run of N iterations from the start
  (the session's uninterrupted tiny run, tests/e2e/conftest.py).

The fast tests of the same machinery (lock, held-back SIGINT, marks) are tests/io/test_run_safety.py.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.io import open_run
from neuroplast.io.diff import diff_files
from tests.helpers import (
    LONG_TOML,
    TINY_ITERATIONS,
    TINY_TOML,
    assert_one_line_error,
    cli_args,
    cli_env,
    long_cpp_toml,
    one_line,
    run_cli,
    write_text,
)

pytestmark = [pytest.mark.brian2, pytest.mark.e2e]

#: Adam steps of 1e200: finite after iteration 1, an infinite loss in iteration 2.
DIVERGE_TOML = TINY_TOML.replace("learning_rate = 0.001", "learning_rate = 1e200")
#: chunk_iterations of the cpp_standalone configs of the Ctrl-C test.
CHUNKS = {"long_cpp.toml": 1, "long_chunk.toml": 2}
#: The uninterrupted run each interrupted one must equal: its own config's on the runtime device, and one
#: run of long_chunk.toml for both cpp_standalone configs (one trial or two iterations per launch give the
#: same log but for the stored config, which names chunk_iterations; tests/e2e/test_resume.py).
REFERENCE_OF = {
    "long.toml": "long.toml",
    "long_cpp.toml": "long_chunk.toml",
    "long_chunk.toml": "long_chunk.toml",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("safety")
    # one trial per launch (Ctrl-C in a trial's binary), and launches of 2 iterations (Ctrl-C in a chunk)
    for name, text in (
        ("tiny.toml", TINY_TOML),
        ("long.toml", LONG_TOML),
        *((name, long_cpp_toml(chunk)) for name, chunk in CHUNKS.items()),
        ("diverge.toml", DIVERGE_TOML),
    ):
        write_text(folder, name, text)
    assert LONG_TOML != TINY_TOML and DIVERGE_TOML != TINY_TOML
    return folder


def _peek_iterations(path: Path) -> int:
    """``n_iterations_complete`` of a file a live writer holds (HDF5 locking off; -1 if not readable)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs["n_iterations_complete"]) if "format" in f.attrs else -1
    except (OSError, KeyError):
        return -1


def _wait_for(path: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> float:
    """Wait until ``path`` shows ``n`` complete iterations; the time it did (the run must still be alive)."""
    t0 = time.monotonic()
    while _peek_iterations(path) < n:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
        assert time.monotonic() - t0 < timeout, f"no {n} iterations in {timeout} s"
        time.sleep(0.01)
    return time.monotonic()


def _start(*args: object, cwd: Path) -> subprocess.Popen:
    # SIGINT back to its default in the child: a process started from a shell's background job inherits it
    # ignored, and then no Ctrl-C could ever reach the run.
    return subprocess.Popen(
        cli_args(*args),
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_divergence_is_marked_in_the_log_and_not_resumed(work: Path) -> None:
    out, one = work / "diverged.h5", work / "one.h5"
    proc = run_cli("run", "diverge.toml", "--iterations", 4, "--out", out, "--quiet", cwd=work)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith("neuroplast run: error: diverged at iteration 2: "), line
    run = open_run(out)
    assert run.n_iterations == 1 and run.n_trials == 2 and not run.finished
    assert run.diverged == line.removeprefix("neuroplast run: error: ")
    # the kept iteration is the real one: equal to a (finished) run of just that iteration
    ok = run_cli("run", "diverge.toml", "--iterations", 1, "--out", one, "--quiet", cwd=work)
    assert ok.returncode == 0, ok.stderr
    ref = open_run(one)
    assert ref.diverged is None
    np.testing.assert_array_equal(run.trials["loss"], ref.trials["loss"])
    for name in ref.projection_names:
        p, q = run.projection(name), ref.projection(name)
        np.testing.assert_array_equal(p.weights, q.weights[:1])
        np.testing.assert_array_equal(p.updates, q.updates)
    before = out.read_bytes()
    again = run_cli("run", "diverge.toml", "--iterations", 4, "--resume", out, cwd=work)
    assert_one_line_error(again, str(out), "cannot resume", "diverged at iteration 2")
    assert out.read_bytes() == before


@pytest.fixture(scope="module")
def ctrl_c_reference(work: Path):
    """``ref(config)``: the uninterrupted 4-iteration run of ``REFERENCE_OF[config]``, run once per module."""
    runs: dict[str, Path] = {}

    def ref(config: str) -> Path:
        name = REFERENCE_OF[config]
        if name not in runs:
            out = work / f"{name}_ref.h5"
            full = run_cli("run", name, "--iterations", 4, "--out", out, "--quiet", cwd=work)
            assert full.returncode == 0, full.stderr
            runs[name] = out
        return runs[name]

    return ref


def _assert_same_run(out: Path, ref: Path, config: str) -> None:
    """``out`` equals ``ref`` in every object; where ``ref`` is the run of the other cpp_standalone config,
    in everything but the stored config, which is then ``ref``'s with the chunk_iterations of ``config``."""
    if REFERENCE_OF[config] == config:
        assert diff_files(out, ref) == []
        return
    assert [d.split(":")[0] for d in diff_files(out, ref)] == ["/ attribute 'config'"]
    have, own = CHUNKS[REFERENCE_OF[config]], CHUNKS[config]
    with h5py.File(out, "r") as f, h5py.File(ref, "r") as g:
        want = g.attrs["config"].replace(f"chunk_iterations = {have}\n", f"chunk_iterations = {own}\n")
        assert want != g.attrs["config"] and f.attrs["config"] == want


@pytest.mark.parametrize("config", ["long.toml", "long_cpp.toml", "long_chunk.toml"])
def test_ctrl_c_in_a_trial_exits_130_and_resumes_bit_for_bit(
    work: Path, ctrl_c_reference, config: str
) -> None:
    """Runtime and cpp_standalone (where Brian2's own Ctrl-C handling would let the binary run on), one
    trial or two iterations per launch (the log shows 2 iterations at once: the signal lands in the second
    launch, iterations 3 and 4)."""
    ref, out = ctrl_c_reference(config), work / f"{config}_interrupted.h5"
    child = _start("run", config, "--iterations", 4, "--out", out, "--quiet", cwd=work)
    try:
        t1 = _wait_for(out, 1, child)
        t2 = _wait_for(out, 2, child)
        time.sleep(0.4 * (t2 - t1))  # into iteration 3, whose time is almost all its trial's simulation
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, stderr
    assert stderr == "neuroplast run: interrupted\n" and stdout == "", (stdout, stderr)
    run = open_run(out)
    n = run.n_iterations  # 2, unless the signal came as iteration 3 was written (held back until done)
    assert n in (2, 3) and run.n_trials == n and not run.finished
    res = run_cli("run", config, "--iterations", 4, "--resume", out, "--quiet", cwd=work)
    assert res.returncode == 0, res.stderr
    assert f"resumed {out} after iteration {n} " in res.stdout
    _assert_same_run(out, ref, config)


def test_a_live_run_is_not_replaced_resumed_or_compared(work: Path) -> None:
    live = work / "live.h5"
    child = _start("run", "long.toml", "--iterations", 50, "--out", live, "--quiet", cwd=work)
    try:
        _wait_for(live, 1, child)
        for args in (
            ("run", "tiny.toml", "--out", live, "--force"),
            ("run", "long.toml", "--iterations", 50, "--resume", live),
            ("compare", live),
        ):
            proc = run_cli(*args, cwd=work)
            assert_one_line_error(proc, str(live), "open in another process")
        assert child.poll() is None  # the live run goes on, in the same file
        n = _peek_iterations(live)
        _wait_for(live, n + 1, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    k = _peek_iterations(live)
    assert k >= 2
    # no stale lock: the killed run's log resumes (to the iterations it holds, so nothing is trained)
    res = run_cli("run", "long.toml", "--iterations", k, "--resume", live, "--quiet", cwd=work)
    assert res.returncode == 0, res.stderr
    run = open_run(live)
    assert run.finished and run.n_iterations == k


def test_extending_a_finished_run_equals_a_longer_run(work: Path, tiny_reference: Path) -> None:
    ext, full, n = work / "extended.h5", tiny_reference, TINY_ITERATIONS  # full: n iterations from the start
    proc = run_cli("run", "tiny.toml", "--iterations", 3, "--out", ext, "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert diff_files(ext, full) != []  # 3 iterations are not n (a comparator that can disagree)
    before = ext.read_bytes()
    fewer = run_cli("run", "tiny.toml", "--iterations", 2, "--resume", ext, cwd=work)
    assert_one_line_error(fewer, str(ext), "--iterations 2", "3 iterations")
    other = run_cli("run", "tiny.toml", "--iterations", n, "--seed", 9, "--resume", ext, cwd=work)
    assert_one_line_error(other, str(ext), "simulation.seed")
    assert ext.read_bytes() == before
    res = run_cli("run", "tiny.toml", "--iterations", n, "--resume", ext, cwd=work)
    assert res.returncode == 0, res.stderr
    assert f"extended {ext} from 3 to {n} iterations" in res.stdout
    assert diff_files(ext, full) == []  # the stored config says n iterations, as an n-iteration run's does
    # the run's own count is the logged one now (tiny.toml says 40): nothing more to do
    for args in (("--iterations", n), ()):
        again = run_cli("run", "tiny.toml", *args, "--resume", ext, cwd=work)
        assert again.returncode == 0 and "nothing to resume" in again.stdout, again.stderr
    assert diff_files(ext, full) == []
