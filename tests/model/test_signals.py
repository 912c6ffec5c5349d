"""neuroplast.model.signals: the readout gradient's two forms, the forward and backward filters.

Pure NumPy, seeded.
"""

from __future__ import annotations

import numpy as np

from neuroplast.model.signals import backward_filter, forward_filter, output_grads, side_by_side
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


def test_side_by_side_views_the_trials_of_one_launch_and_stacks_others():
    """Trials recorded side by side (column blocks of one (T, B·N) array) come back as a view of it, with
    every element where it belongs; other arrays (or blocks out of order) are stacked: the same numbers."""
    rng = np.random.default_rng(3)
    T, B, N = 7, 4, 5
    launch = rng.normal(size=(T, B * N))
    trials = [launch[:, b * N : (b + 1) * N] for b in range(B)]
    view = side_by_side(trials)
    assert view.shape == (T, B, N) and np.shares_memory(view, launch) and not view.flags.writeable
    for b in range(B):
        np.testing.assert_array_equal(view[:, b], trials[b])
    np.testing.assert_array_equal(side_by_side(trials[1:3]), np.stack(trials[1:3], axis=1))
    for others in ([trials[2], trials[0]], [t.copy() for t in trials], [trials[0], trials[2]]):
        stacked = side_by_side(others)
        assert not np.shares_memory(stacked, launch)
        np.testing.assert_array_equal(stacked, np.stack(others, axis=1))
