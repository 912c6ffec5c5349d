"""The Brian2 network equals the NumPy reference (docs/model.md): identical spikes, |Δv| ≤ 1e-12.

Both sides evaluate the same floating-point operations per step; only the order in
which synaptic inputs are summed differs (Brian2 accumulates per synapse, NumPy uses
BLAS), which moves v by a few ulp (~1e-16 for |v| ~ 1).  1e-12 leaves four orders of
magnitude for 2000 steps of accumulation while still catching any changed term.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.model.dynamics import simulate
from tests.helpers import T_EQ, make_input, make_params

pytestmark = pytest.mark.brian2

TOL = 1e-12


@pytest.mark.parametrize(
    "kind,n_ref",
    [("lif", 0), ("lif", 3), ("alif", 2), ("mix", 3), ("mix", 0)],
)
def test_brian2_equals_reference(eq_network, eq_weights, kind, n_ref):
    params = make_params(kind, n_ref=n_ref)
    x = make_input(seed=11 + n_ref)
    ref = simulate(params, eq_weights, x).squeeze()
    res = eq_network.run_trial(eq_weights, x, params=params)
    n_spikes = int(ref.z.sum())
    assert n_spikes > 0.01 * ref.z.size, "the test network must be active"
    assert np.array_equal(ref.z.astype(bool), res.z.astype(bool)), (
        f"{eq_network.device}: spike trains differ at {np.argwhere(ref.z != res.z)[:5].tolist()}"
    )
    assert np.max(np.abs(ref.v - res.v)) <= TOL
    assert np.max(np.abs(ref.a - res.a)) <= TOL
    assert np.max(np.abs(ref.y - res.y)) <= TOL
    # ψ is the same expression on both sides (surrogate registry)
    assert np.max(np.abs(ref.psi - res.psi)) <= TOL * 10
    assert np.array_equal(ref.refractory, res.refractory)
    # the spike monitor agrees with the recorded z
    steps, ids = res.spikes
    assert len(steps) == n_spikes
    assert np.all(res.z[steps, ids] == 1.0)
    assert res.spike_count.sum() == n_spikes
    if n_ref > 0:  # refractoriness is exercised: no neuron fires twice within n_ref steps
        for j in range(res.z.shape[1]):
            gaps = np.diff(np.flatnonzero(res.z[:, j]))
            assert np.all(gaps > n_ref)
    assert res.z.shape == (T_EQ, eq_weights.n_rec)


def test_reference_detects_changed_weights(eq_network, eq_weights):
    """The comparison can disagree: a slightly different W_rec changes the spike trains."""
    params = make_params("mix")
    x = make_input(seed=5)
    other = eq_weights.copy()
    other.w_rec[other.mask_rec] *= 1.001
    ref = simulate(params, other, x).squeeze()
    res = eq_network.run_trial(eq_weights, x, params=params)
    assert np.max(np.abs(ref.v - res.v)) > TOL
