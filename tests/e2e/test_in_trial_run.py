"""``neuroplast run`` with in-trial learning (``training.update_every_steps``), end to end.

The logged run is replayed with the NumPy reference of docs/model.md §6: every trial's spikes, loss,
in-trial weights and trial-end update must be those of the reference started from the logged weights;
``compare`` refuses the run with one line; a run killed mid-flush resumes bit for bit.
The trainer with in-trial learning (no command line) is tested in tests/training/test_in_trial.py.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroplast.build import model_params
from neuroplast.config import load_config
from neuroplast.io import open_run
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.signals import reg_signal
from neuroplast.plasticity.in_trial import in_trial_learning
from neuroplast.plasticity.rules import get_rule
from tests.helpers import (
    IN_TRIAL_EVERY,
    IN_TRIAL_LR,
    IN_TRIAL_TOML,
    MID_FLUSH_CHILD,
    assert_same_datasets,
    norm_rel_err,
    one_line,
    run_cli,
    run_command,
    write_text,
)

pytestmark = [pytest.mark.brian2, pytest.mark.e2e]

ITERATIONS, EVERY, LR = 4, IN_TRIAL_EVERY, IN_TRIAL_LR
CONFIG = IN_TRIAL_TOML
# Relative agreement of Brian2 and NumPy: same sums, different order of the synaptic-input sums.
RTOL = 1e-10


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return write_text(tmp_path_factory.mktemp("in_trial"), "in_trial.toml", CONFIG)


@pytest.fixture(scope="module")
def ref_run(work: Path) -> Path:
    out = work / "ref.h5"
    proc = run_cli("run", "in_trial.toml", "--iterations", ITERATIONS, "--out", out, "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return out


def _dense(ctx_edges, vec, shape):
    src, tgt = ctx_edges
    m = np.zeros(shape)
    m[tgt.astype(int), src.astype(int)] = vec
    return m


def test_log_replays_with_the_numpy_reference(work: Path, ref_run: Path) -> None:
    from neuroplast.model.params import Weights

    run = open_run(ref_run)
    cfg = load_config(work / "in_trial.toml")
    params = model_params(cfg)
    rule = get_rule("eprop")(cfg.training)
    assert run.update_every_steps == EVERY and run.n_iterations == ITERATIONS
    projs = {name: run.projection(name) for name in run.projection_names}
    n_upd = (300 - 1) // EVERY
    assert projs["recurrent"].in_trial_weights.shape == (ITERATIONS, n_upd, projs["recurrent"].n_edges)
    N, n_in, n_out = 30, 40, 1
    edges = {k: (p.source_ids, p.target_ids) for k, p in projs.items()}
    shapes = {"input": (N, n_in), "recurrent": (N, N), "output": (n_out, N)}
    f_target = cfg.training.reg_rate_hz * 1e-3
    for k in range(run.n_trials):
        r = run.replay(k)
        it = r.iteration
        masks = {key: _dense(edges[key], 1.0, shp) > 0 for key, shp in shapes.items()}
        wb = r.weights_before
        W0 = Weights(
            *(_dense(edges[key], wb[key], shapes[key]) for key in ("input", "recurrent", "output")),
            wb["bias"],
            masks["input"],
            masks["recurrent"],
            masks["output"],
        )
        ref = in_trial_learning(
            params, W0, r.x, r.target, np.ones(300), "mse", rule, W0.w_out.T, learning_rate=LR, every=EVERY
        )
        # the logged trial is the reference trajectory: spikes and loss
        ts, ids = run.spikes("recurrent", k)  # global timestamps, ms
        z = np.zeros((300, N))
        z[np.rint(np.asarray(ts) / run.dt_ms).astype(int) - r.start_step, np.asarray(ids, int)] = 1.0
        assert np.array_equal(z, ref.traj.z), k
        assert ref.traj.z.sum() > 100
        loss = 0.5 * float(np.sum((ref.traj.y - r.target) ** 2))
        assert abs(loss - r.loss) <= 1e-9 * abs(r.loss)
        # the logged in-trial weights are the reference's segments; they change
        for m in range(n_upd):
            W = ref.weights[m + 1]
            for key, dense in (("input", W.w_in), ("recurrent", W.w_rec), ("output", W.w_out)):
                src, tgt = edges[key]
                assert (
                    norm_rel_err(r.in_trial_weights[key][m], dense[tgt.astype(int), src.astype(int)]) < RTOL
                )
            assert norm_rel_err(r.in_trial_weights["bias"][m], W.b_out) < RTOL
        assert not np.array_equal(r.in_trial_weights["recurrent"][-1], wb["recurrent"])
        assert r.weights_at(EVERY)["recurrent"] is not None
        assert np.array_equal(r.weights_at(EVERY - 1)["recurrent"], wb["recurrent"])
        # trial-end update: −η (gradient of the last segment + regularization), applied to the last row
        R = reg_signal(ref.traj.z, cfg.training.reg_coeff, f_target)
        end = dict(ref.grads)
        for key in ("input", "recurrent"):
            end[key] = end[key] + R[:, None] * ref.esum[key]
        for key in PROJECTIONS:
            logged = projs[key].updates[it]
            want = -LR * (
                end[key] if key == "bias" else end[key][edges[key][1].astype(int), edges[key][0].astype(int)]
            )
            assert norm_rel_err(logged, want) < 1e-9, (k, key)
            # the next row is exactly the last in-trial row plus the logged update
            nxt = projs[key].weights[it + 1]
            assert np.array_equal(nxt, projs[key].in_trial_weights[it, -1] + logged), (k, key)


def test_compare_refuses_in_trial_runs(work: Path, ref_run: Path) -> None:
    proc = run_cli("compare", ref_run, cwd=work)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "update_every_steps" in line and str(ref_run) in line
    assert "Traceback" not in proc.stderr


def test_inspect_names_in_trial_learning(work: Path, ref_run: Path) -> None:
    proc = run_cli("inspect", ref_run, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert f"an update every {EVERY} steps ({(300 - 1) // EVERY} per trial" in proc.stdout


def test_resume_after_kill_mid_flush(work: Path, ref_run: Path) -> None:
    out = work / "killed.h5"
    child = [
        sys.executable,
        "-c",
        MID_FLUSH_CHILD,
        "3",
        "run",
        "in_trial.toml",
        "--iterations",
        str(ITERATIONS),
    ]
    proc = run_command([*child, "--out", str(out), "--quiet"], work)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = open_run(out)
    assert run.n_iterations == 2 and run.projection("recurrent").in_trial_weights.shape[0] == 2
    res = run_cli("run", "in_trial.toml", "--iterations", ITERATIONS, "--resume", out, cwd=work)
    assert res.returncode == 0, res.stderr
    assert_same_datasets(out, ref_run)
