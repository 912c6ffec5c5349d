"""The factorized e-prop gradients computed inside the cpp_standalone binary (``Brian2Network(factorized=
True)``, network/factorized.py, docs/model.md §9) equal the NumPy formula of the same trial (``eprop_grads``).

Both sides make the same per-element operations in the same order except where NumPy sums through BLAS
(the n_out-term products of L̃, the readout's Σ_t, the bias's dot product), so they agree to a few ulp:
≤ 1e-12 relative (the engineering standard's bound is 1e-10).  The comparator is shown to disagree where
theory says it must (another feedback matrix, no rate regularizer), and every copy of a batch gives the
same bits as its trial alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.losses import get_loss
from neuroplast.training.trainer import trajectory_of
from tests.helpers import T_GRAD, batch_trials, make_params, max_rel_err, norm_rel_err

pytestmark = pytest.mark.brian2

RTOL = 1e-12  # a few ulp of BLAS's summation order against the binary's (see module docstring)
BATCH = 4  # copies; 3 trials, so one copy runs a silent padding trial
C_REG, F_TARGET = 0.5, 0.01
PARAMS = make_params("mix", n_ref=2)  # LIF and ALIF neurons: the adjoint of ε^a is exercised


@pytest.fixture(scope="module", params=["mse", "cross_entropy"])
def compiled(request, eq_weights):
    """A batched network whose binary computes the gradients; it also records ψ and z for the reference."""
    from neuroplast.network.builder import Brian2Network

    loss = request.param
    return Brian2Network(
        PARAMS,
        eq_weights,
        T_GRAD,
        device="cpp_standalone",
        loss=loss,
        record=("z", "psi"),
        batch=BATCH,
        factorized=True,
        reg=(C_REG, F_TARGET),
    )


@pytest.fixture(scope="module")
def launch(compiled, eq_weights):
    """One launch of three trials with a random feedback matrix, and the NumPy reference of each."""
    net = compiled
    trials = batch_trials(net.loss.name, eq_weights.n_out, seed=20)
    fb = np.random.default_rng(11).normal(0.0, 0.5, (eq_weights.n_rec, eq_weights.n_out))
    results = net.run_batch(eq_weights, trials, feedback=fb, params=PARAMS)
    datas = [
        TrialData.make(
            PARAMS,
            eq_weights,
            x,
            target,
            np.ones(T_GRAD) if mask is None else mask,
            get_loss(net.loss.name),
            traj=trajectory_of(res, res.y),
            c_reg=C_REG,
            f_target=F_TARGET,
            feedback=fb,
        )
        for (x, target, mask), res in zip(trials, results, strict=True)
    ]
    return trials, fb, results, datas


def test_binary_gradients_equal_numpy(launch):
    _, _, results, datas = launch
    for k, (res, data) in enumerate(zip(results, datas, strict=True)):
        assert res.regularized and res.psi is not None
        assert res.z.sum() > 0.01 * res.z.size, "the network must spike"
        ref = eprop_grads(data)
        for p in (*PROJECTIONS, "bias"):
            assert np.linalg.norm(ref[p]) > 0, (k, p)
            assert norm_rel_err(res.grads[p], ref[p]) <= RTOL, (k, p, norm_rel_err(res.grads[p], ref[p]))
            assert max_rel_err(res.grads[p], ref[p]) <= RTOL, (k, p)
        # zero outside the masks, as the NumPy gradient is
        assert np.all(res.grads["recurrent"][~data.weights.mask_rec] == 0.0)


def test_the_comparison_can_disagree(launch, eq_weights):
    """Another B (symmetric instead of random) and a missing rate regularizer each change the gradient by
    far more than RTOL: the equality above is not vacuous."""
    _, _, results, datas = launch
    res, data = results[0], datas[0]
    symmetric = eprop_grads(data, feedback=eq_weights.w_out.T)
    assert norm_rel_err(res.grads["recurrent"], symmetric["recurrent"]) > 1e-3
    unregularized = TrialData.make(
        data.params,
        data.weights,
        data.x,
        data.target,
        data.mask,
        data.loss,
        traj=data.traj,
        feedback=data.feedback,
    )
    plain = eprop_grads(unregularized)
    assert norm_rel_err(res.grads["input"], plain["input"]) > 1e-6
    # the readout's gradients do not depend on B or on the regularizer: equal in both
    assert norm_rel_err(res.grads["output"], plain["output"]) <= RTOL


def test_a_trial_alone_gives_the_same_bits(compiled, launch, eq_weights):
    trials, fb, results, _ = launch
    alone = compiled.run_batch(eq_weights, [trials[1]], feedback=fb, params=PARAMS)[0]
    for p in (*PROJECTIONS, "bias"):
        assert np.array_equal(alone.grads[p], results[1].grads[p]), p
    assert np.array_equal(alone.psi, results[1].psi)


def test_factorized_needs_cpp_standalone_without_online_gradients(eq_weights):
    from neuroplast.network.builder import Brian2Network

    for kw in ({"device": "runtime"}, {"device": "cpp_standalone", "gradients": True}):
        with pytest.raises(ValueError, match="factorized gradients in the binary"):
            Brian2Network(PARAMS, eq_weights, T_GRAD, factorized=True, **kw)
