"""Exact BPTT reference: finite differences, the e-prop factorization identity, and its split.

All tests are pure NumPy and seeded.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.bptt import (
    bptt_grads,
    factorization_decomposition,
    ideal_learning_signal,
    trial_loss,
)
from neuroplast.gradients.eprop import eligibility_grads, eprop_grads, factorized_grads, learning_signal
from neuroplast.gradients.trial import TrialData
from neuroplast.model.dynamics import simulate
from neuroplast.model.params import Weights
from neuroplast.model.signals import backward_filter, recurrent_pre, reg_signal
from tests.helpers import PROBLEM_BETAS as BETAS
from tests.helpers import PROBLEM_N_REC as N_REC
from tests.helpers import PROBLEM_T as T
from tests.helpers import make_problem, max_rel_err

# Identities between exact formulas evaluated in different summation orders: only float64
# rounding (~1e-15 relative) separates the two sides.
EXACT_RTOL = 1e-10
# Central differences with ε = 1e-5 on the smooth network: truncation O(ε² E''') plus
# rounding O(1e-16 |E| / ε) stay below ~1e-7 relative (measured); 1e-6 leaves a margin
# while any missing term of the backward pass (a factor α, the reset path, ...) is O(1).
FD_RTOL = 1e-6
FD_EPS = 1e-5
# E-prop drops the paths through other neurons: with W_rec ≠ 0 it must visibly differ.
DIFFER_MIN = 1e-3

C_REG, F_TARGET = 0.5, 0.02


def assert_spiking(traj, n_rec: int = N_REC) -> None:
    z = traj.z[0]
    assert z.sum() >= 30 and (z.sum(axis=0) > 0).sum() >= n_rec // 2, "the network must spike"


# --------------------------------------------------------------------------- finite differences


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_bptt_matches_finite_differences(loss_name):
    n_rec, n_in, T_ = 6, 5, 60
    beta = np.r_[np.zeros(3), np.full(3, 0.5)]  # LIF and ALIF neurons
    params, weights, x, target, mask, loss = make_problem(
        beta, loss_name=loss_name, seed=1, n_rec=n_rec, n_in=n_in, T_=T_
    )
    x = (np.random.default_rng(2).random((T_, n_in)) < 0.1).astype(float)
    slope = 4.0

    def loss_of(w: Weights) -> float:
        tr = simulate(params, w, x, smooth_slope=slope)
        return trial_loss(
            TrialData.make(params, w, x, target, mask, loss, traj=tr, c_reg=C_REG, f_target=F_TARGET)
        )

    traj = simulate(params, weights, x, smooth_slope=slope)
    assert traj.z[0].sum() > 5.0
    trial = TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=C_REG, f_target=F_TARGET)
    g = bptt_grads(trial, detach_reset=False)
    g_detached = bptt_grads(trial)
    attrs = {"input": "w_in", "recurrent": "w_rec", "output": "w_out", "bias": "b_out"}
    for name, attr in attrs.items():
        G = g[name]
        scale = np.max(np.abs(G))
        fd = np.zeros_like(G)
        for idx in np.ndindex(G.shape):
            if name == "recurrent" and idx[0] == idx[1]:
                continue  # no autapses: the diagonal is not a parameter
            w_p, w_m = weights.copy(), weights.copy()
            getattr(w_p, attr)[idx] += FD_EPS
            getattr(w_m, attr)[idx] -= FD_EPS
            fd[idx] = (loss_of(w_p) - loss_of(w_m)) / (2 * FD_EPS)
            # per-entry relative error, floored at 1% of the largest entry
            err = abs(fd[idx] - G[idx]) / max(abs(G[idx]), 1e-2 * scale)
            assert err <= FD_RTOL, (name, idx, fd[idx], G[idx])
        if name in ("input", "recurrent"):
            # the comparator can disagree: detaching the reset is not the true gradient
            assert max_rel_err(g_detached[name], fd) > DIFFER_MIN


# --------------------------------------------------------------------------- factorization identity


@pytest.mark.parametrize("kind", sorted(BETAS))
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("n_ref", [0, 3])
def test_ideal_learning_signal_gives_bptt(kind, loss_name, n_ref):
    params, weights, x, target, mask, loss = make_problem(BETAS[kind], loss_name=loss_name, n_ref=n_ref)
    traj = simulate(params, weights, x)
    assert_spiking(traj)
    trial = TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=C_REG, f_target=F_TARGET)
    g = bptt_grads(trial)
    sig = ideal_learning_signal(trial)
    np.testing.assert_array_equal(sig["total"], sig["eprop"] + sig["recurrent"])
    # L* is dE/dz_t and already contains the readout filter: no second κ filter.
    pres = {"input": params.input_scale * x, "recurrent": recurrent_pre(params, traj.z[0])}
    masks = {"input": weights.mask_in, "recurrent": weights.mask_rec}
    for name, pre in pres.items():
        for fn in (eligibility_grads, factorized_grads):
            est = np.where(masks[name], fn(params, traj, pre, sig["total"], filtered=False), 0.0)
            assert max_rel_err(est, g[name]) <= EXACT_RTOL, (name, fn.__name__)


@pytest.mark.parametrize("kind", sorted(BETAS))
def test_eprop_equals_bptt_without_recurrence(kind):
    params, weights, x, target, mask, loss = make_problem(BETAS[kind], w_rec_std=0.0)
    traj = simulate(params, weights, x)
    assert_spiking(traj)
    trial = TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=C_REG, f_target=F_TARGET)
    g = bptt_grads(trial)
    sig = ideal_learning_signal(trial)
    assert np.all(sig["recurrent"] == 0.0)
    for method in ("factorized", "online"):
        e = eprop_grads(trial, weights.w_out.T, method=method)
        for name in ("input", "recurrent", "output", "bias"):
            assert max_rel_err(e[name], g[name]) <= EXACT_RTOL, (method, name)


@pytest.mark.parametrize("kind", sorted(BETAS))
def test_eprop_differs_from_bptt_with_recurrence(kind):
    params, weights, x, target, mask, loss = make_problem(BETAS[kind])
    traj = simulate(params, weights, x)
    assert_spiking(traj)
    trial = TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=C_REG, f_target=F_TARGET)
    g = bptt_grads(trial)
    e = eprop_grads(trial, weights.w_out.T)
    for name in ("input", "recurrent"):
        assert max_rel_err(e[name], g[name]) > DIFFER_MIN, name
    for name in ("output", "bias"):  # the readout gradient is local and exact in e-prop
        assert max_rel_err(e[name], g[name]) <= EXACT_RTOL, name
    # e-prop's learning signal (B = W_outᵀ, κ-filtered, plus the regularizer) is L*'s kept part
    sig = ideal_learning_signal(trial)
    L = learning_signal(params, traj.y[0], target, mask, loss, weights.w_out.T)
    kept = backward_filter(L, params.kappa) + reg_signal(traj.z[0], C_REG, F_TARGET)
    assert max_rel_err(kept, sig["eprop"]) <= EXACT_RTOL


def test_factorization_decomposition():
    params, weights, x, target, mask, loss = make_problem(BETAS["mixed"], n_ref=2, loss_name="cross_entropy")
    traj = simulate(params, weights, x)
    trial = TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=C_REG, f_target=F_TARGET)
    dec = factorization_decomposition(trial)
    g = bptt_grads(trial)
    e = eprop_grads(trial, weights.w_out.T)
    for name in ("input", "recurrent"):
        d = dec[name]
        np.testing.assert_array_equal(d["bptt"], g[name])
        assert max_rel_err(d["kept"] + d["recurrent"], g[name]) <= EXACT_RTOL
        assert max_rel_err(d["kept"], e[name]) <= EXACT_RTOL  # the kept part is e-prop itself
        assert np.max(np.abs(d["recurrent"])) > DIFFER_MIN * np.max(np.abs(g[name]))
        for key in ("kept_norm", "recurrent_norm", "kept_along", "recurrent_along"):
            assert d[key].shape == (T,)
        assert np.all(d["kept_norm"] >= 0) and np.all(d["recurrent_norm"] >= 0)
        total_along = d["kept_along"].sum() + d["recurrent_along"].sum()
        assert abs(total_along - np.linalg.norm(g[name])) <= EXACT_RTOL * np.linalg.norm(g[name])
