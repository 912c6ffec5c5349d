"""neuroplast.model.signals: the readout gradient's two forms, the forward and backward filters.

Pure NumPy, seeded.
"""

from __future__ import annotations

import numpy as np

from neuroplast.model.signals import backward_filter, forward_filter, output_grads
from tests.helpers import PROBLEM_BETAS as BETAS
from tests.helpers import simulated_problem


def test_output_grads_match_backward_form():
    """Forward-filtered z̃ form == backward-filtered error form Σ_t ẽ_t ⊗ c_out z_t."""
    params, weights, x, traj, target, mask, loss = simulated_problem(BETAS["alif"])
    z = traj.z[0]
    err = loss.error(traj.y[0], target, mask)
    g_w, g_b = output_grads(params, z, err)
    err_bar = backward_filter(err, params.kappa)
    np.testing.assert_allclose(g_w, params.readout_scale * err_bar.T @ z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g_b, err_bar.sum(axis=0), rtol=1e-12)


def test_filters_are_adjoint():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    lhs = np.sum(a * forward_filter(b, 0.9))
    rhs = np.sum(backward_filter(a, 0.9) * b)
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    f = forward_filter(np.eye(5)[:, :1], 0.5)[:, 0]
    np.testing.assert_allclose(f, 0.5 ** np.arange(5))
