"""In-trial learning (``training.update_every_steps``): the NumPy reference and its invariants.

Pure NumPy, seeded; the Brian2 implementation is held to this reference in
tests/network/test_in_trial.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.model.dynamics import simulate
from neuroplast.model.losses import get_loss
from neuroplast.plasticity.in_trial import in_trial_learning, update_steps
from neuroplast.plasticity.optim import apply_updates
from neuroplast.plasticity.rules import get_rule
from tests.helpers import make_input, make_params, make_weights, max_rel_err

# The step-by-step loop and the trajectory-level formulas sum the same terms in another order
# (matrix products vs. per-step accumulation): float64 rounding only, ~1e-15 relative.
RTOL = 1e-10
T = 300


def close(a, b) -> bool:
    """Equal to RTOL relative to the array's largest entry (rounding of the summation order)."""
    return float(np.max(np.abs(a - b), initial=0.0)) <= RTOL * max(1.0, float(np.max(np.abs(b), initial=0.0)))


def problem(kind="mix", loss="mse", seed=0):
    params = make_params(kind, n_rec=16, n_ref=2)
    w = make_weights(seed, n_rec=16, n_in=10, n_out=2, p_rec=0.5, rec_scale=0.2)
    x = make_input(seed + 1, T=T, n_in=10, p=0.05)
    rng = np.random.default_rng(seed + 2)
    if loss == "mse":
        target, mask = rng.normal(0, 0.5, (T, 2)), np.ones(T)
    else:
        target, mask = np.zeros((T, 2)), np.zeros(T)
        target[:, 1], mask[-60:] = 1.0, 1.0
    return params, w, x, target, mask


def make_rule(name, lam=0.0):
    training = SimpleNamespace(weight_decay=lam, feedback_scale=1.0)
    return get_rule(name)(training)


def test_update_steps():
    assert update_steps(10, 3).tolist() == [3, 6, 9]
    assert update_steps(9, 3).tolist() == [3, 6]
    assert update_steps(5, 5).tolist() == []
    with pytest.raises(ValueError, match="every"):
        update_steps(5, 0)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("kind", ["lif", "alif", "mix"])
def test_without_updates_equals_per_trial_eprop(kind, loss):
    """k ≥ T (no in-trial update) or η = 0: the trial and its gradient are the per-trial ones."""
    params, w, x, target, mask = problem(kind, loss)
    rule = make_rule("eprop")
    traj = simulate(params, w, x)
    ref = eprop_grads(
        TrialData.make(params, w, x, target, mask, get_loss(loss), traj=traj), w.w_out.T, method="online"
    )
    assert traj.z.sum() > 50, "the network must spike"
    for every, lr in ((T, 0.1), (50, 0.0)):
        res = in_trial_learning(
            params, w, x, target, mask, loss, rule, w.w_out.T, learning_rate=lr, every=every
        )
        assert np.array_equal(res.traj.z, traj.z[0])
        assert max_rel_err(res.traj.v, traj.v[0], floor=1e-300) < RTOL
        if every == T:
            for k in ("input", "recurrent", "output", "bias"):
                assert max_rel_err(res.grads[k], ref[k], floor=1e-300) < RTOL, k


@pytest.mark.parametrize("rule_name", ["eprop", "eprop-random", "eprop-adaptive"])
def test_updates_change_the_trial_and_follow_the_rule(rule_name):
    params, w, x, target, mask = problem("mix", "mse")
    rule = make_rule(rule_name, lam=0.01)
    fb0 = rule.init_feedback(w, np.random.default_rng(3))
    every, lr = 60, 0.002
    res = in_trial_learning(params, w, x, target, mask, "mse", rule, fb0, learning_rate=lr, every=every)
    assert res.starts.tolist() == [0, 60, 120, 180, 240]
    # The first segment is the fixed-weight trial; later ones are not.
    traj = simulate(params, w, x)
    assert np.array_equal(res.traj.z[:every], traj.z[0, :every])
    assert not np.array_equal(res.traj.z, traj.z[0]), "in-trial updates must change the trajectory"
    # Each segment start: the weights are the previous ones + one rule step on that segment's gradient
    # (recomputed independently from the trajectory with the trajectory-level e-prop formula).
    fb = fb0
    for m in range(1, len(res.starts)):
        s0, s1 = res.starts[m - 1], res.starts[m]
        Wm = res.weights[m - 1]
        assert close(res.feedback[m - 1], rule.feedback(Wm, fb))
        grads = _window_grads(params, res, x, target, mask, s0, s1)
        W_next, fb, _ = apply_updates(rule, Wm, fb, {k: -lr * g for k, g in grads.items()})
        for attr in ("w_in", "w_rec", "w_out", "b_out"):
            assert close(getattr(res.weights[m], attr), getattr(W_next, attr)), (m, attr)
        # the update itself (not only weight + update) agrees: it is not lost in the weights' size
        assert max_rel_err(res.weights[m].w_rec - Wm.w_rec, W_next.w_rec - Wm.w_rec, floor=1e-300) < 1e-9
        assert np.max(np.abs(W_next.w_rec - Wm.w_rec)) > 1e-6, "the update must be visible"
    assert close(res.feedback_state, fb)
    if rule_name == "eprop":
        assert np.array_equal(res.feedback[-1], res.weights[-1].w_out.T)
    if rule_name == "eprop-random":
        assert all(np.array_equal(b, fb0) for b in res.feedback)


def _window_grads(params, res, x, target, mask, s0, s1):
    """e-prop gradient collected over steps [s0, s1) from the whole trajectory (traces not reset).

    Σ_{t∈[s0,s1)} L_t ē_t with L from the segment's B, via the per-trial formula on a learning
    signal that is zero outside the window.
    """
    from neuroplast.gradients.eprop import eligibility_grads
    from neuroplast.model.signals import output_grads, recurrent_pre

    tr = res.traj
    loss = get_loss("mse")
    err = loss.error(tr.y, target, mask)
    win = np.zeros(len(err))
    win[s0:s1] = 1.0
    m = int(np.searchsorted(res.starts, s0, side="right") - 1)
    L = params.readout_scale * (err @ res.feedback[m].T) * win[:, None]
    g_in = eligibility_grads(params, tr, params.input_scale * x, L)
    g_rec = eligibility_grads(params, tr, recurrent_pre(params, tr.z), L)
    g_out, g_b = output_grads(params, tr.z, err * win[:, None])
    W = res.weights[m]
    return {
        "input": np.where(W.mask_in, g_in, 0.0),
        "recurrent": np.where(W.mask_rec, g_rec, 0.0),
        "output": g_out,
        "bias": g_b,
    }


def test_train_output_false_keeps_the_readout():
    params, w, x, target, mask = problem("lif", "mse")
    res = in_trial_learning(
        params,
        w,
        x,
        target,
        mask,
        "mse",
        make_rule("eprop"),
        w.w_out.T,
        learning_rate=0.002,
        every=50,
        train_output=False,
    )
    assert all(np.array_equal(W.w_out, w.w_out) and np.array_equal(W.b_out, w.b_out) for W in res.weights)
    assert not np.array_equal(res.weights[-1].w_in, w.w_in)
