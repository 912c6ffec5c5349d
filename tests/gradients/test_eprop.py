"""The NumPy e-prop reference: per-synapse recursion vs. its factorized form, and its learning signal.

All tests are pure NumPy, seeded, and take well under a second each.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.eprop import (
    GRAD_METHODS,
    eligibility_grads,
    eprop_grads,
    factorized_grads,
    learning_signal,
)
from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import ModelParams
from neuroplast.model.signals import recurrent_pre, reg_signal
from tests.helpers import PROBLEM_BETAS as BETAS
from tests.helpers import PROBLEM_N_OUT as N_OUT
from tests.helpers import PROBLEM_N_REC as N_REC
from tests.helpers import PROBLEM_T as T
from tests.helpers import max_rel_err, simulated_problem

# Both forms evaluate the same sum in a different order (sums over time regrouped by the
# adjoint recursion): only float64 rounding separates them, ~1e-15 relative here.
EXACT_RTOL = 1e-10


@pytest.mark.parametrize("kind", sorted(BETAS))
@pytest.mark.parametrize("n_ref", [0, 3])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("with_reg", [False, True])
def test_online_equals_factorized(kind, n_ref, loss_name, with_reg):
    params, weights, x, traj, target, mask, loss = simulated_problem(
        BETAS[kind], n_ref=n_ref, loss_name=loss_name
    )
    z = traj.z[0]
    assert z.sum() >= 30 and (z.sum(axis=0) > 0).sum() >= N_REC // 2, "the network must spike"
    if n_ref:
        assert traj.refractory.any()
    L = learning_signal(params, traj.y[0], target, mask, loss, weights.w_out.T)
    R = reg_signal(z, 0.5, 0.02) if with_reg else None
    for pre in (params.input_scale * x, recurrent_pre(params, z)):
        g_online = eligibility_grads(params, traj, pre, L, reg_signal=R)
        g_fact = factorized_grads(params, traj, pre, L, reg_signal=R)
        assert np.max(np.abs(g_online)) > 0
        assert max_rel_err(g_fact, g_online) <= EXACT_RTOL
        # Unfiltered variant (learning signal already filtered, e.g. the ideal one).
        g_online = eligibility_grads(params, traj, pre, L, reg_signal=R, filtered=False)
        g_fact = factorized_grads(params, traj, pre, L, reg_signal=R, filtered=False)
        assert max_rel_err(g_fact, g_online) <= EXACT_RTOL


@pytest.mark.parametrize("kind", sorted(BETAS))
def test_spike_sums_and_matrix_product_give_the_same_gradient(kind, monkeypatch):
    """Gᵀ pre by sums of G's rows at the spike steps (spike trains) or by one matrix product (dense
    drives): both forms, forced on the same drive, and the literal recursion agree to rounding, for spike
    trains and for a dense analog drive (which takes the product by default)."""
    import neuroplast.gradients.eprop as ep

    params, weights, x, traj, target, mask, loss = simulated_problem(BETAS[kind], loss_name="mse")
    L = learning_signal(params, traj.y[0], target, mask, loss, weights.w_out.T)
    dense = np.random.default_rng(11).normal(size=x.shape)
    for pre in (params.input_scale * x, recurrent_pre(params, traj.z[0]), dense):
        g_online = eligibility_grads(params, traj, pre, L)
        forms = []
        for fraction in (1.0, -1.0):  # every drive as spike sums, then every drive as a product
            monkeypatch.setattr(ep, "SPARSE_FRACTION", fraction)
            forms.append(factorized_grads(params, traj, pre, L))
        assert max_rel_err(forms[0], forms[1]) <= EXACT_RTOL
        assert max_rel_err(forms[0], g_online) <= EXACT_RTOL
    assert (dense != 0).mean() > 0.9 and (x != 0).mean() < 0.1  # the two kinds of drive of the default


def test_alif_traces_matter():
    """With adaptation the ε^a term changes the gradient (so the ALIF check is not vacuous)."""
    params, weights, x, traj, target, mask, loss = simulated_problem(BETAS["alif"])
    params_lif = ModelParams.from_time_constants(
        n_rec=N_REC, tau_m=20.0, tau_a=200.0, beta=0.0, v_th=0.3, tau_out=20.0
    )
    L = learning_signal(params, traj.y[0], target, mask, loss, weights.w_out.T)
    pre = params.input_scale * x
    g_alif = eligibility_grads(params, traj, pre, L)
    g_no_ea = eligibility_grads(params_lif, traj, pre, L)  # same ψ, β = 0 in the traces
    assert max_rel_err(g_no_ea, g_alif) > 1e-3


def test_trial_grads_methods_agree():
    params, weights, x, traj, target, mask, loss = simulated_problem(BETAS["mixed"], n_ref=2)
    B = np.random.default_rng(5).normal(size=(N_REC, N_OUT))
    trial = TrialData.make(params, weights, x, target, mask, loss, traj=traj, c_reg=0.3, f_target=0.01)
    grads = {m: eprop_grads(trial, B, method=m) for m in GRAD_METHODS}
    assert set(grads) == {"factorized", "online"}
    for key in ("input", "recurrent", "output", "bias"):
        assert max_rel_err(grads["online"][key], grads["factorized"][key]) <= EXACT_RTOL
    assert np.all(np.diag(grads["factorized"]["recurrent"]) == 0.0)  # outside the mask
    with pytest.raises(ValueError, match="unknown method"):
        eprop_grads(TrialData.make(params, weights, x, target, mask, loss, traj=traj), B, method="bogus")


def test_batched_and_unbatched_trajectories_agree():
    params, weights, x, traj, target, mask, loss = simulated_problem(BETAS["lif"])
    assert traj.z.shape == (1, T, N_REC) and traj.squeeze().z.shape == (T, N_REC)
    g1 = eprop_grads(TrialData.make(params, weights, x, target, mask, "mse", traj=traj), weights.w_out.T)
    g2 = eprop_grads(
        TrialData.make(params, weights, x, target, mask, loss, traj=traj.squeeze()), weights.w_out.T
    )
    for key in g1:
        np.testing.assert_array_equal(g1[key], g2[key])


def test_learning_and_reg_signals():
    params, weights, x, traj, target, mask, loss = simulated_problem(BETAS["lif"], loss_name="cross_entropy")
    B = np.random.default_rng(1).normal(size=(N_REC, N_OUT))
    L = learning_signal(params, traj.y[0], target, mask, loss, B)
    err = loss.error(traj.y[0], target, mask)
    assert L.shape == (T, N_REC)
    np.testing.assert_allclose(L, params.readout_scale * np.einsum("tk,jk->tj", err, B), rtol=1e-14)
    assert np.all(L[mask == 0] == 0.0)
    z = traj.z[0]
    R = reg_signal(z, 2.0, 0.01)
    np.testing.assert_allclose(R, 2.0 * (z.sum(axis=0) / T - 0.01) / T, rtol=1e-14)
