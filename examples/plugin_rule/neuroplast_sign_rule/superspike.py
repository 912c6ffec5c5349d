"""A third-party rule with its own eligibility trace and its own learning signal: SuperSpike with its
α kernels (Zenke & Ganguli 2018, Neural Comput. 30:1514, eq. 6 and the error signal of its §2.3).

SuperSpike's weight change is ∫ e_i(t) λ_ij(t) dt with

* λ_ij = α ∗ (σ'(U_i) · (ε ∗ S_j)): the postsynaptic surrogate derivative (ψ_i) times the presynaptic
  spikes filtered by the PSP kernel ε, *filtered again per synapse* by the normalized double-exponential
  kernel α (rise τ_rise = 5 ms, decay τ_decay = 10 ms);
* e_i = α ∗ error_i: the neuron's error signal filtered by the same kernel.

On neuroplast's contract (docs/plugins.md, ``neuroplast.gradients.traces.Trace``) that is: per presynaptic
neuron the PSP kernel ε of a current-based LIF neuron (p ← α_s p + pre, q ← α_m q + p, as the built-in
``superspike``), per synapse the α kernel of ψ q (two variables), per postsynaptic neuron the α kernel of
e-prop's learning signal L_t = c_out (B err_t)_i with B = W_outᵀ (two variables), and that filtered signal
as the rule's own learning signal.  The rest is neuroplast's e-prop: ē_t = κ ē_{t−1} + e_t, Σ_t L^rule_t ē_t.
Each α kernel is a pair of first-order filters of unit gain, x ← a x + (1 − a) input, a = exp(−dt/τ).

Registered through the ``neuroplast.rules`` entry point of this package's pyproject.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroplast.gradients.traces import Trace
from neuroplast.model.params import Weights
from neuroplast.plasticity.rules import Rule

#: SuperSpike's α kernel (ms), as in Zenke & Ganguli 2018.
TAU_RISE_MS, TAU_DECAY_MS = 5.0, 10.0


class SuperSpikeAlpha(Rule):
    """SuperSpike with its per-synapse α kernel and α-filtered learning signal (symmetric feedback)."""

    name = "superspike-alpha"
    description = "SuperSpike with its alpha kernels on eligibility and signal (example plugin)"

    def feedback(self, weights: Weights, b: np.ndarray) -> np.ndarray:
        return weights.w_out.T.copy()

    def eligibility_trace(self, cfg: Any) -> Trace:
        dt, net = cfg.simulation.dt_ms, cfg.network
        a_r, a_d = float(np.exp(-dt / TAU_RISE_MS)), float(np.exp(-dt / TAU_DECAY_MS))
        return Trace(
            "superspike-alpha",
            ("p", "q"),  # ε ∗ S_j: the PSP kernel of a current-based LIF neuron
            (("p", "a_s * p + pre"), ("q", "a_m * q + p")),
            "lam",
            (
                ("a_s", float(np.exp(-dt / net.tau_syn_ms))),
                ("a_m", float(np.exp(-dt / net.tau_m_ms))),
                ("a_r", a_r),
                ("b_r", 1.0 - a_r),
                ("a_d", a_d),
                ("b_d", 1.0 - a_d),
            ),
            post_variables=("l_r", "l_d"),  # α ∗ L_i: the filtered learning signal
            post_update=(("l_r", "a_r * l_r + b_r * L"), ("l_d", "a_d * l_d + b_d * l_r")),
            synapse_variables=("u", "lam"),  # λ_ij = α ∗ (ψ_i q_j)
            synapse_update=(("u", "a_r * u + b_r * psi * q"), ("lam", "a_d * lam + b_d * u")),
            signal="l_d",
        )
