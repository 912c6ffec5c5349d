"""``neuroplast sweep`` end to end on a real Dask LocalCluster with two worker processes.

Tiny sine networks (20 neurons, 100-step trials, a few iterations) on the compiled device, in a compile
cache folder of this test module's own (warm after the first session; the module needs its two networks,
one for the online e-prop path and one for BPTT):

* 2 rules × 2 seeds: every point is done, and each point's log equals the same config run alone with
  ``neuroplast run`` (every object, bit for bit; the four runs one after the other in one process of their
  own, outside Dask, which saves three Brian2 start-ups);
* a sweep of two points (the learning rate zipped with the seed) where one learning rate diverges: that
  point is recorded as failed with its one-line error, the other finishes, and both used one compiled
  network;
* the rules sweep killed (SIGKILL of the driver) while a point trains, then ``--resume``: the same files as
  the uninterrupted sweep;
* the report of the rules sweep (CSV, Parquet, figures).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.io.diff import diff_files
from tests.helpers import cli_args, cli_env, run_command

pytestmark = [pytest.mark.brian2, pytest.mark.e2e, pytest.mark.slow]

TINY = """\
[simulation]
n_steps = 100
seed = 1
device = "auto"

[network]
n_rec = 20
n_ref = 1
v_th = 0.03
w_in_scale = 0.05
w_rec_scale = 0.02
w_out_scale = 0.1

[task]
name = "sine"
n_in = 20
periods_ms = [100.0, 50.0]

[training]
rule = "eprop"
optimizer = "adam"
learning_rate = 0.001
iterations = 3
"""

RULES = """\
base = "tiny.toml"
seeds = [0, 1]
[axes]
"training.rule" = ["eprop", "bptt"]
"""

#: One learning rate so large that Adam's first step (about the learning rate) leaves weights near 1e300:
#: the loss of iteration 2 is infinite, training diverges.  Two points, the learning rate zipped with the
#: seed: they differ in both run-time values, and run the network of the rules sweep's e-prop points.
LEARNING_RATES = """\
base = "tiny.toml"
[[zip]]
"training.learning_rate" = [0.001, 1e300]
"simulation.seed" = [0, 1]
"""


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    e = cli_env()
    root = Path(os.environ.get("NEUROPLAST_CACHE") or Path.home() / ".cache" / "neuroplast")
    e["NEUROPLAST_CACHE"] = str(root / "sweep-tests")  # this module's networks only (see the docstring)
    return e


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("sweep")
    (w / "tiny.toml").write_text(TINY)
    (w / "rules.toml").write_text(RULES)
    (w / "lrs.toml").write_text(LEARNING_RATES)
    return w


#: ``neuroplast run CONFIG --out LOG --quiet`` for each (CONFIG, LOG) pair of ``argv[1:]``, one after the
#: other in this one process (the way a Dask worker runs its points); stops at the first failing run.
ALONE_CHILD = """
import sys
from neuroplast.cli import main

args = sys.argv[1:]
for config, log in zip(args[::2], args[1::2], strict=True):
    status = main(["run", config, "--out", log, "--quiet"])
    if status:
        sys.exit(f"neuroplast run {config} exited {status}")
"""


def _sweep(
    work: Path, env: dict[str, str], *args: object, timeout: float = 240
) -> subprocess.CompletedProcess:
    return run_command(cli_args("sweep", *args, "--workers", 2), work, env=env, timeout=timeout)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "sweep.json").read_text())


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".h5", ".toml"))


@pytest.fixture(scope="module")
def rules(work: Path, env: dict[str, str]) -> Path:
    """The uninterrupted 2 rules × 2 seeds sweep."""
    proc = _sweep(work, env, "rules.toml", "--out", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 of 4 points done, 0 failed" in proc.stdout
    return work / "rules"


def test_every_point_done_and_equal_to_the_same_run_alone(rules: Path, work: Path, env: dict) -> None:
    m = _manifest(rules)
    names = [p["name"] for p in m["points"]]
    assert names == ["rule-eprop_seed-0", "rule-eprop_seed-1", "rule-bptt_seed-0", "rule-bptt_seed-1"]
    assert m["axes"] == ["training.rule", "simulation.seed"]
    alone = work / "alone"
    alone.mkdir()
    pairs = [str(a) for p in m["points"] for a in (rules / p["config"], alone / p["log"])]
    proc = run_command([sys.executable, "-c", ALONE_CHILD, *pairs], work, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for p in m["points"]:
        assert p["state"] == "done" and p["error"] is None and p["wall_s"] > 0 and p["attempts"] >= 1, p
        assert diff_files(rules / p["log"], alone / p["log"]) == [], p["name"]
    # the points differ where their parameters do (a comparator that can disagree)
    assert diff_files(rules / f"{names[0]}.h5", rules / f"{names[1]}.h5") != []
    with h5py.File(rules / "rule-bptt_seed-1.h5", "r") as f:
        assert "training.rule" not in f.attrs and 'rule = "bptt"' in f.attrs["config"]
        assert "seed = 1" in f.attrs["config"]


@pytest.fixture(scope="module")
def learning_rates(work: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path, float]:
    t0 = time.time()
    proc = _sweep(work, env, "lrs.toml", "--out", "lrs")
    return proc, work / "lrs", t0


def test_a_failing_point_is_recorded_and_the_others_finish(learning_rates) -> None:
    proc, out, _ = learning_rates
    assert proc.returncode == 1, proc.stderr[-3000:]
    states = {p["name"]: (p["state"], p["error"]) for p in _manifest(out)["points"]}
    assert sorted(states) == ["lr-0.001_seed-0", "lr-1e+300_seed-1"]
    assert states["lr-0.001_seed-0"] == ("done", None)
    state, error = states["lr-1e+300_seed-1"]
    assert state == "failed" and error.startswith("DivergedError: ") and "\n" not in error, error
    assert "failed: lr-1e+300_seed-1: DivergedError: " in proc.stdout
    assert "1 of 2 points done, 1 failed" in proc.stdout


def test_points_differing_in_run_time_values_compile_once(learning_rates, env: dict) -> None:
    """Seeds and learning rates are run-time values: every point ran one compiled network."""
    proc, _, t0 = learning_rates
    root = Path(env["NEUROPLAST_CACHE"]) / "standalone"
    if not root.is_dir():
        pytest.skip("no C++ compiler: the runtime device has no compiled-network cache")
    # a build (or a reuse) of a cache entry rewrites its BUILT marker
    used = [d.name for d in root.iterdir() if (d / "BUILT").is_file() and (d / "BUILT").stat().st_mtime > t0]
    assert len(used) == 1, used
    info = run_command(cli_args("cache", "info"), Path.cwd(), env=env)
    assert used[0] in info.stdout and "built" in info.stdout


def _peek(path: Path) -> tuple[int, bool]:
    """(complete iterations, finished) of a log a live writer may hold; (-1, False) if not readable."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs["n_iterations_complete"]), bool(f.attrs.get("finished", False))
    except (OSError, KeyError):
        return -1, False


def test_killed_sweep_resumed_ends_with_the_same_files(rules: Path, work: Path, env: dict) -> None:
    out = work / "killed"
    cmd = cli_args("sweep", "rules.toml", "--out", out, "--workers", 2, "--iterations", 3)
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0, killed_in = time.monotonic(), None
    try:
        while proc.poll() is None and time.monotonic() - t0 < 180 and killed_in is None:
            for log in out.glob("*.h5") if out.is_dir() else ():
                n, finished = _peek(log)
                if n >= 1 and not finished:
                    proc.send_signal(signal.SIGKILL)
                    killed_in = log
                    break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and killed_in is None:
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert killed_in is not None and proc.returncode == -signal.SIGKILL, err.decode()[-3000:]
    # the workers die with the driver: within a few seconds no log is held by a writer any more
    from neuroplast.io.lock import check_not_busy
    from neuroplast.io.schema import RunFileError

    deadline = time.monotonic() + 20
    for log in out.glob("*.h5"):
        while True:
            try:
                check_not_busy(log)
                break
            except RunFileError:
                assert time.monotonic() < deadline, f"{log} still written after the driver was killed"
                time.sleep(0.2)
    states = [p["state"] for p in _manifest(out)["points"]]
    assert states.count("done") < 4, states
    res = _sweep(work, env, "rules.toml", "--out", out, "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p["state"] for p in _manifest(out)["points"]] == ["done"] * 4
    _assert_same_as(out, rules)
    again = _sweep(work, env, "rules.toml", "--out", out, "--resume")
    assert again.returncode == 0 and "4 of 4 points done" in again.stdout, again.stderr[-3000:]


def test_a_second_sweep_into_the_same_folder_is_refused(rules: Path, work: Path, env: dict) -> None:
    before = {n: (rules / n).stat().st_mtime_ns for n in _files(rules)}
    proc = _sweep(work, env, "rules.toml", "--out", rules)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "holds a sweep already; use --resume" in proc.stderr
    assert {n: (rules / n).stat().st_mtime_ns for n in _files(rules)} == before


def test_report(rules: Path, work: Path, env: dict) -> None:
    import pyarrow.parquet as pq

    proc = run_command(cli_args("sweep-report", rules), work, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = rules / "report"
    table = pq.read_table(rep / "report.parquet").to_pylist()
    assert [r["name"] for r in table] == [p["name"] for p in _manifest(rules)["points"]]
    assert [r["training.rule"] for r in table] == ["eprop", "eprop", "bptt", "bptt"]
    assert [r["simulation.seed"] for r in table] == [0, 1, 0, 1]
    from neuroplast.io import open_run

    for r in table:
        run = open_run(rules / f"{r['name']}.h5")
        last = run.trials["iteration"] == run.trials["iteration"].max()
        per_it = [run.trials["loss"][run.trials["iteration"] == i].mean() for i in range(run.n_iterations)]
        assert r["final_loss"] == pytest.approx(run.trials["loss"][last].mean(), rel=1e-12)  # same numbers
        assert r["best_loss"] == pytest.approx(min(per_it), rel=1e-12)
        assert r["iterations"] == 3 and r["wall_s"] > 0 and r["mean_rate_hz"] >= 0
        assert "accuracy" not in r  # a regression task
    csv_lines = (rep / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,state,training.rule,simulation.seed,final_loss,best_loss")
    assert len(csv_lines) == 5
    png = rep / "final_loss_vs_training.rule.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (rep / "loss_curves.png").is_file()
    assert np.isfinite([r["final_loss"] for r in table]).all()


def _writer_of(path: Path) -> int | None:
    """The process (other than this one) that has ``path`` open, from /proc; None if none.

    Matched by the file itself (device and inode), not by name: a writer opened a new log under its
    hidden creation name (neuroplast/io/layout.py links it into place), so /proc names that one."""
    try:
        st = path.stat()
    except OSError:
        return None
    target = (st.st_dev, st.st_ino)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            for fd in (d / "fd").iterdir():
                with contextlib.suppress(OSError):
                    fst = fd.stat()  # the open file, whatever its name now
                    if (fst.st_dev, fst.st_ino) == target:
                        return int(d.name)
        except OSError:
            continue
    return None


def _assert_same_as(out: Path, ref: Path) -> None:
    assert _files(out) == _files(ref)
    for name in _files(ref):
        if name.endswith(".toml"):
            assert (out / name).read_text() == (ref / name).read_text(), name
        else:
            assert diff_files(out / name, ref / name) == [], name


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to find the worker process")
def test_a_dead_worker_takes_only_its_point_which_dask_runs_again(rules: Path, work: Path, env: dict) -> None:
    out = work / "worker_killed"
    cmd = cli_args("sweep", "rules.toml", "--out", out, "--workers", 2, "--quiet")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, t0 = None, time.monotonic()
    try:
        while proc.poll() is None and victim is None and time.monotonic() - t0 < 180:
            for log in out.glob("*.h5") if out.is_dir() else ():
                n, finished = _peek(log)
                pid = _writer_of(log) if n >= 1 and not finished else None
                if pid is not None and pid != proc.pid:
                    os.kill(pid, signal.SIGKILL)
                    victim = log
                    break
            time.sleep(0.005)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert victim is not None, "no point was caught training"
    assert proc.returncode == 0, stderr[-3000:]
    points = {p["log"]: p for p in _manifest(out)["points"]}
    assert all(p["state"] == "done" for p in points.values()), points
    assert points[victim.name]["attempts"] == 2, points[victim.name]
    _assert_same_as(out, rules)
