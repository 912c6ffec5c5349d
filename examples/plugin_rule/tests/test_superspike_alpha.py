"""The plugin's own test: ``superspike-alpha``'s gradient, as neuroplast computes it from the rule's
:class:`~neuroplast.gradients.traces.Trace`, equals SuperSpike's formula written out here with plain NumPy
filters — λ_ij = α ∗ (ψ_i · ε ∗ S_j) per synapse, e_i = α ∗ L_i per neuron, ĝ_ij = Σ_t e_i,t ē_ij,t with
ē = κ-filter of λ — and differs from the plain SuperSpike trace without the α kernels.

Run by the README's test command (pyproject's ``testpaths``) with the package installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from neuroplast_sign_rule.superspike import TAU_DECAY_MS, TAU_RISE_MS

from neuroplast.config import parse_config
from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import ModelParams, Weights
from neuroplast.plasticity.rules import get_rule

#: The same first-order filters in the same order, products in another order: ≈ 1e-16 each over 200
#: steps; 1e-12 relative leaves room.
RTOL = 1e-12


def _filter(a: float, x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    out, acc = np.empty_like(x), np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        acc = a * acc + gain * x[t]
        out[t] = acc
    return out


def _alpha(x: np.ndarray, dt: float) -> np.ndarray:
    a_r, a_d = np.exp(-dt / TAU_RISE_MS), np.exp(-dt / TAU_DECAY_MS)
    return _filter(a_d, _filter(a_r, x, 1.0 - a_r), 1.0 - a_d)


@pytest.fixture(scope="module")
def trial() -> tuple:
    rng = np.random.default_rng(4)
    n_in, n, T = 12, 9, 200
    params = ModelParams.from_time_constants(
        n_rec=n, tau_m=20.0, tau_a=200.0, beta=0.0, v_th=0.3, tau_out=20.0
    )
    w = Weights(rng.normal(0.1, 0.4, (n, n_in)), rng.normal(0.0, 0.2, (n, n)), rng.normal(0, 0.3, (2, n)),
                np.zeros(2))  # fmt: skip
    x = (rng.random((T, n_in)) < 0.05).astype(float)
    target = np.sin(2 * np.pi * np.arange(T)[:, None] / np.array([90.0, 140.0]))
    return params, w, TrialData.make(params, w, x, target, np.ones(T), "mse", feedback=w.w_out.T)


def _rule(name: str):
    cfg = parse_config({"network": {"tau_m_ms": 20.0, "tau_syn_ms": 5.0}}, check_resources=False)
    rule = get_rule(name)(cfg.training)
    rule.trace = rule.eligibility_trace(cfg)
    return rule


def test_the_rule_is_superspike_with_its_alpha_kernels(trial) -> None:
    params, w, tr = trial
    got = _rule("superspike-alpha").numpy_grads(tr)
    dt = 1.0
    L = params.readout_scale * tr.err @ w.w_out  # e-prop's signal, B = W_outᵀ
    signal = _alpha(L, dt)
    assert tr.z.sum() > 0
    for proj, pre in tr.pre.items():
        q = _filter(np.exp(-dt / 20.0), _filter(np.exp(-dt / 5.0), pre))  # ε ∗ S_j
        lam = _alpha(tr.psi[:, :, None] * q[:, None, :], dt)
        want = np.einsum("tj,tji->ji", signal, _filter(params.kappa, lam))
        mask = w.mask_in if proj == "input" else w.mask_rec
        want = np.where(mask, want, 0.0)
        assert np.max(np.abs(got[proj] - want)) <= RTOL * np.max(np.abs(want)), proj
        # the comparator can disagree: without the α kernels it is the built-in superspike's gradient
        plain = _rule("superspike").numpy_grads(tr)[proj]
        assert np.max(np.abs(got[proj] - plain)) > 1e-2 * np.max(np.abs(plain)), proj


def test_both_rules_come_from_the_entry_point() -> None:
    from neuroplast.plasticity.rules import RULES, load_plugins

    load_plugins()
    assert {"eprop-sign", "superspike-alpha"} <= set(RULES)
