"""The batched factorized e-prop (``eprop_grads_batch``) against the per-trial one (``eprop_grads``).

Equality is checked with ``np.array_equal``, not a tolerance: the batch runs, for every element of every
trial, the same elementwise float operations in the same order as the per-trial code (the time scans
along axis 1 of (B, T, ·) arrays are elementwise), and each matrix product is the same BLAS call on
C-contiguous arrays of the per-trial shapes, so any difference at all is a bug (not rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.eprop import eprop_grads, eprop_grads_batch, factorized_grads, learning_signal
from neuroplast.gradients.trial import TrialData
from neuroplast.model.dynamics import simulate
from neuroplast.model.params import ModelParams
from neuroplast.model.signals import backward_filter, output_grads, output_grads_batch, recurrent_pre
from tests.helpers import PROBLEM_BETAS as BETAS
from tests.helpers import make_problem, max_rel_err

KEYS = ("input", "recurrent", "output", "bias")


def make_trials(kind: str, loss_name: str, n_trials: int, *, c_reg: float, own_feedback: bool, seed: int = 0):
    """``n_trials`` trials of one network: each its own input, target and (optionally) random B."""
    params, weights, x0, target0, mask, loss = make_problem(
        BETAS[kind], n_ref=2, loss_name=loss_name, seed=seed
    )
    rng = np.random.default_rng(seed + 100)
    trials = []
    for b in range(n_trials):
        x = x0 if b == 0 else (rng.random(x0.shape) < 0.05).astype(float)
        target = target0 if loss_name == "cross_entropy" else rng.normal(0.0, 0.5, target0.shape)
        fb = rng.normal(0.0, 1.0, (weights.n_rec, weights.n_out)) if own_feedback else None
        traj = simulate(params, weights, x)
        trials.append(TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=c_reg,
                                     f_target=0.02, feedback=fb))  # fmt: skip
    return trials


def assert_same_bits(a: dict, b: dict) -> None:
    for k in KEYS:
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), f"{k}: max |diff| {np.max(np.abs(a[k] - b[k])):.3e}"


@pytest.mark.parametrize("kind", ["lif", "alif", "mixed"])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("c_reg", [0.0, 0.4])
@pytest.mark.parametrize("own_feedback", [False, True])
@pytest.mark.parametrize("n_trials", [1, 5])
def test_batch_equals_per_trial_bit_for_bit(kind, loss_name, c_reg, own_feedback, n_trials):
    trials = make_trials(kind, loss_name, n_trials, c_reg=c_reg, own_feedback=own_feedback)
    batch = eprop_grads_batch(trials)
    assert len(batch) == n_trials
    for trial, g in zip(trials, batch, strict=True):
        assert np.max(np.abs(g["recurrent"])) > 0 and np.max(np.abs(g["input"])) > 0
        assert_same_bits(g, eprop_grads(trial))
    if n_trials > 1:  # the trials differ, so a mix-up of trials would show
        assert not np.array_equal(batch[0]["recurrent"], batch[1]["recurrent"])


def test_trials_with_and_without_the_regularizer_in_one_batch():
    """c_reg may differ between trials (R only where c_reg ≠ 0): each trial still gets its own bits."""
    with_reg = make_trials("alif", "mse", 3, c_reg=0.4, own_feedback=True)
    without = make_trials("alif", "mse", 2, c_reg=0.0, own_feedback=True, seed=1)
    trials = [with_reg[0], without[0], with_reg[1], without[1], with_reg[2]]
    for trial, g in zip(trials, eprop_grads_batch(trials), strict=True):
        assert_same_bits(g, eprop_grads(trial))


def test_batch_agrees_with_the_online_recursion():
    """The batched numbers are e-prop's: the literal per-synapse recursion gives them up to float64
    rounding of the regrouped time sums (~1e-15 relative)."""
    trials = make_trials("alif", "mse", 3, c_reg=0.4, own_feedback=True)
    for trial, g in zip(trials, eprop_grads_batch(trials), strict=True):
        online = eprop_grads(trial, method="online")
        for k in KEYS:
            assert max_rel_err(g[k], online[k]) <= 1e-10
    # "online" has no batched form: trial by trial, the same calls
    for g, trial in zip(eprop_grads_batch(trials, method="online"), trials, strict=True):
        assert_same_bits(g, eprop_grads(trial, method="online"))


def test_a_changed_trial_changes_only_its_own_gradient():
    trials = make_trials("alif", "mse", 4, c_reg=0.4, own_feedback=True)
    before = eprop_grads_batch(trials)
    t = trials[2]
    changed = TrialData(t.params, t.weights, t.x, t.traj, t.target + 0.3, t.mask, t.loss, t.c_reg, t.f_target,
                        t.feedback)  # fmt: skip
    after = eprop_grads_batch([*trials[:2], changed, trials[3]])
    for b in (0, 1, 3):
        assert_same_bits(after[b], before[b])
    for k in ("input", "recurrent", "output", "bias"):
        assert not np.array_equal(after[2][k], before[2][k])
        assert max_rel_err(after[2][k], before[2][k]) > 1e-3
    assert_same_bits(after[2], eprop_grads(changed))


def test_batch_checks_its_trials():
    trials = make_trials("lif", "mse", 2, c_reg=0.0, own_feedback=False)
    assert eprop_grads_batch([]) == []
    with pytest.raises(ValueError, match="unknown method"):
        eprop_grads_batch(trials, method="bogus")
    t = trials[1]
    short = TrialData.make(t.params, t.weights, t.x[:-10], t.target[:-10], t.mask[:-10], t.loss)
    with pytest.raises(ValueError, match="share params"):
        eprop_grads_batch([trials[0], short])
    other = ModelParams.from_time_constants(n_rec=t.params.n_rec, tau_m=30.0, tau_a=200.0, beta=0.0, v_th=0.3)
    with pytest.raises(ValueError, match="share params"):
        eprop_grads_batch([trials[0], TrialData(other, t.weights, t.x, t.traj, t.target, t.mask, t.loss)])
    with pytest.raises(ValueError, match="share params"):  # each thread's part alone would be consistent
        eprop_grads_batch([trials[0], short], threads=2)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_a_batch_in_threads_is_the_same_to_the_bit(threads):
    """Cut into parts scanned in threads of their own (parts of 1-3 trials; 7 > 5 trials: one each), with
    and without the regularizer on some trials: the same numbers, in the trials' order."""
    trials = make_trials("mixed", "cross_entropy", 5, c_reg=0.4, own_feedback=True)
    plain = make_trials("mixed", "cross_entropy", 5, c_reg=0.0, own_feedback=True, seed=3)
    for batch in (trials, [plain[0], trials[1], plain[2], trials[3], plain[4]]):
        ref = eprop_grads_batch(batch, threads=1)
        got = eprop_grads_batch(batch, threads=threads)
        assert len(got) == len(batch)
        for a, b in zip(ref, got, strict=True):
            assert_same_bits(b, a)
        assert not np.array_equal(got[0]["recurrent"], got[1]["recurrent"])  # a mix-up of trials would show


@pytest.mark.parametrize("filtered", [True, False])
def test_factorized_grads_and_output_grads_are_the_batch_of_one(filtered):
    """The public per-projection functions give the per-trial numbers of a batch (same bits)."""
    (trial,) = make_trials("mixed", "mse", 1, c_reg=0.4, own_feedback=False)
    L = np.random.default_rng(5).normal(size=trial.z.shape)
    pre = recurrent_pre(trial.params, trial.z)
    g = factorized_grads(trial.params, trial.traj, pre, L, reg_signal=trial.reg, filtered=filtered)
    L_in = learning_signal(trial.params, trial.y, trial.target, trial.mask, trial.loss, trial.weights.w_out.T)
    batch_in = eprop_grads(trial)["input"]
    # eprop_grads filters err (n_out columns), then projects: L̃ = c_out ẽrr Bᵀ.  Given that L̃, the public
    # function gives the same bits; given L itself (filtered here, after the projection) the same numbers
    # up to the rounding of the two orders (relative 1e-12: a few ulp per step over T steps).
    p = trial.params
    L_til = (p.readout_scale * backward_filter(trial.err, p.kappa)) @ trial.weights.w_out
    g_til = factorized_grads(p, trial.traj, trial.pre["input"], L_til, reg_signal=trial.reg, filtered=False)
    assert np.array_equal(trial.masked({"input": g_til})["input"], batch_in)
    g_in = factorized_grads(p, trial.traj, trial.pre["input"], L_in, reg_signal=trial.reg)
    g_in = trial.masked({"input": g_in})["input"]
    np.testing.assert_allclose(g_in, batch_in, rtol=1e-12, atol=1e-12 * np.max(np.abs(batch_in)))
    assert g.shape == (trial.z.shape[1],) * 2 and np.max(np.abs(g)) > 0
    zs = [trial.z, trial.z[::-1].copy()]
    errs = [trial.err, trial.err[::-1].copy()]
    batch = output_grads_batch(trial.params, zs, errs)
    for (o, b), z, err in zip(batch, zs, errs, strict=True):
        o1, b1 = output_grads(trial.params, z, err)
        assert np.array_equal(o, o1) and np.array_equal(b, b1)


@pytest.mark.parametrize("kind", ["lif", "mixed"])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_batched_bptt_is_bptt_of_each_trial_to_the_bit(kind, loss_name, detach_reset, monkeypatch):
    """bptt_grads_batch runs the batch's adjoint recursions side by side: per trial the same elementwise
    operations and the same vector-matrix product (a stacked matmul, not one gemm), so equality is exact."""
    from neuroplast.gradients import bptt
    from neuroplast.gradients.bptt import bptt_grads, bptt_grads_batch

    trials = make_trials(kind, loss_name, 4, c_reg=0.3, own_feedback=False)
    loops = []
    backward = bptt._backward
    monkeypatch.setattr(bptt, "_backward", lambda *a: loops.append(a[2].shape) or backward(*a))
    batched = bptt_grads_batch(trials, detach_reset)
    assert loops == [(trials[0].psi.shape[0], 4, trials[0].psi.shape[1])]  # one loop for the whole batch
    monkeypatch.undo()
    for trial, got in zip(trials, batched, strict=True):
        want = bptt_grads(trial, detach_reset)
        for k in KEYS:
            np.testing.assert_array_equal(got[k], want[k])
    # the trials differ (else the check above could not tell trials apart)
    assert not np.array_equal(batched[0]["recurrent"], batched[1]["recurrent"])
