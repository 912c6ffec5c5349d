"""A rule's own eligibility trace (:mod:`neuroplast.gradients.traces`), on the example of ``superspike``.

SuperSpike's trace (double-exponential presynaptic filter times ψ) is, by construction, the eligibility
that e-prop derives for ``lif_syn``: the two must agree to rounding there (the same sums in another
order), and differ where the model has other dynamics (``adlif``, the ALIF threshold) — a comparator that
can agree and disagree.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.gradients.derived import ModelTrial, model_eprop
from neuroplast.gradients.traces import Trace, trace_grads
from neuroplast.plasticity.rules import get_rule
from tests.helpers import max_rel_err, model_problem

#: The same terms summed in another order, ≤ 150 steps: ≈ 1e-15; 1e-12 leaves room.
REORDERED = 1e-12


def _superspike(tau_m: float, tau_syn: float) -> Trace:
    cfg = parse_config({"network": {"tau_m_ms": tau_m, "tau_syn_ms": tau_syn}}, check_resources=False)
    rule = get_rule("superspike")(cfg.training)
    trace = rule.eligibility_trace(cfg)
    assert isinstance(trace, Trace)
    return trace


def _grads(name: str, trace: Trace | None, loss_name: str = "mse"):
    model, values, params, w, x, target, mask, loss = model_problem(name, n_ref=2, loss_name=loss_name)
    trial = ModelTrial.make(model, values, params, w, x, target, mask, loss, c_reg=0.3, f_target=0.02)
    eprop, esum = model_eprop(trial)
    if trace is None:
        return eprop, esum
    L = params.readout_scale * trial.err @ w.w_out  # c_out B err, B = W_outᵀ
    g, es = trace_grads(trace, trial.pre(), trial.traj.psi, L, params.kappa)
    return g, es, eprop, esum, w


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_superspike_is_eprop_on_lif_syn(loss_name: str) -> None:
    # model_problem: dt = 1 ms, tau_m 20 ms; lif_syn's alpha_s = exp(-1/5)
    g, es, eprop, esum, w = _grads("lif_syn", _superspike(20.0, 5.0), loss_name)
    for k in ("input", "recurrent"):
        mask = w.mask_in if k == "input" else w.mask_rec
        assert max_rel_err(np.where(mask, g[k], 0.0), eprop[k]) < REORDERED, k
        assert max_rel_err(np.where(mask, es[k], 0.0), esum[k]) < REORDERED, k


@pytest.mark.parametrize(("name", "tau_syn"), [("lif_syn", 2.0), ("adlif", 5.0), ("alif", 5.0)])
def test_superspike_differs_where_the_model_does(name: str, tau_syn: float) -> None:
    """Another τ_syn than the model's, AdLIF's current, the ALIF threshold: the trace is not e-prop's."""
    g, _, eprop, _, w = _grads(name, _superspike(20.0, tau_syn))
    for k in ("input", "recurrent"):
        mask = w.mask_in if k == "input" else w.mask_rec
        assert max_rel_err(np.where(mask, g[k], 0.0), eprop[k]) > 1e-3, k


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(update=(("r", "pre"),)), "'r' is not one of its variables"),
        (dict(update=(("p", "p + w"),)), "unknown name 'w'"),
        (dict(eligibility="psi * L"), "unknown name 'L'"),
        (dict(post_variables=("m",), post_update=(("p", "psi"),)), "'p' is not one of its postsynaptic"),
        (dict(post_variables=("m",), post_update=(("m", "m + pre"),)), "unknown name 'pre'"),
        (dict(synapse_variables=("psi",)), "'psi' cannot name"),
        (dict(post_variables=("p",)), "'p' is declared more than once"),
        (dict(signal="L * p"), "learning signal: unknown name 'p'"),
        (dict(eligibility="psi * sinh(p)"), "only calls"),
        (dict(eligibility="psi * p.real"), "Attribute is not allowed"),
    ],
)
def test_a_broken_trace_is_one_line_naming_it(kwargs: dict, words: str) -> None:
    spec = dict(name="t", variables=("p",), update=(("p", "0.5 * p + pre"),), eligibility="psi * p")
    spec.update(kwargs)
    with pytest.raises(ValueError) as err:
        Trace(**spec)
    msg = str(err.value)
    assert msg.startswith("trace 't'") and words in msg and "\n" not in msg


# ---- postsynaptic and per-synapse state, the rule's own learning signal ----------------------------------

#: A linear first-order filter run the other way (linear_scan) adds the same terms in the same order: equal
#: to rounding; 1e-12 leaves room for the reassociated sums of a double filter.
FILTERED = 1e-12


def _problem():
    model, values, params, w, x, target, mask, loss = model_problem("lif_syn", n_ref=2)
    trial = ModelTrial.make(model, values, params, w, x, target, mask, loss)
    L = params.readout_scale * trial.err @ w.w_out
    return params, w, trial, L


def _superspike_with(**more) -> Trace:
    base = _superspike(20.0, 5.0)
    spec = dict(name="t", variables=base.variables, update=base.update, eligibility=base.eligibility,
                constants=base.constants + (("a_e", 0.8), ("a_l", 0.6)))  # fmt: skip
    spec.update(more)
    return Trace(**spec)


def _filtered(a: float, xs: np.ndarray) -> np.ndarray:
    """y_t = a y_{t−1} + x_t along axis 0, written independently of the trace's evaluator."""
    from neuroplast.model.signals import linear_scan

    return linear_scan(xs, a)


def _eprop_sum(signal: np.ndarray, e: np.ndarray, kappa: float) -> np.ndarray:
    ebar = _filtered(kappa, e)
    return np.einsum("tj,tji->ji", signal, ebar)


def _dense_eligibility(trace: Trace, trial) -> dict[str, np.ndarray]:
    from neuroplast.gradients.traces import trace_eligibilities

    es = list(trace_eligibilities(trace, trial.pre(), trial.traj.psi, z=trial.traj.z))
    return {k: np.array([e[k] for _, e in es]) for k in ("input", "recurrent")}


def test_a_synapse_variable_filters_the_eligibility_of_its_synapse() -> None:
    """s_t = a s_{t−1} + ψ_t q_t per synapse, e_t = s_t: the plain trace's e_t filtered per synapse."""
    params, w, trial, L = _problem()
    plain = _dense_eligibility(_superspike_with(), trial)
    traced = _superspike_with(synapse_variables=("s",), synapse_update=(("s", "a_e * s + psi * q"),),
                              eligibility="s")  # fmt: skip
    g, es = trace_grads(traced, trial.pre(), trial.traj.psi, L, params.kappa, z=trial.traj.z)
    for k in ("input", "recurrent"):
        e = _filtered(0.8, plain[k])
        assert max_rel_err(g[k], _eprop_sum(L, e, params.kappa)) < FILTERED, k
        assert max_rel_err(es[k], e.sum(axis=0)) < FILTERED, k
        # the comparator can disagree: the unfiltered eligibility is another gradient
        assert max_rel_err(g[k], _eprop_sum(L, plain[k], params.kappa)) > 1e-2, k


def test_a_rules_own_signal_from_its_postsynaptic_state() -> None:
    """m_t = a m_{t−1} + L_t per neuron, L^rule_t = m_t · (1 + n_t) with n_t the neuron's spikes so far
    (it reads z_t): Σ_t L^rule_t ē_t with the plain trace's ē_t."""
    from neuroplast.gradients.traces import trace_signals

    params, w, trial, L = _problem()
    plain = _dense_eligibility(_superspike_with(), trial)
    traced = _superspike_with(post_variables=("m", "n"), post_update=(("m", "a_l * m + L"), ("n", "n + z")),
                              signal="m * (1.0 + n)")  # fmt: skip
    z = trial.traj.z
    want_signal = _filtered(0.6, L) * (1.0 + np.cumsum(z, axis=0))
    assert max_rel_err(trace_signals(traced, trial.traj.psi, L, z), want_signal) < FILTERED
    g, es = trace_grads(traced, trial.pre(), trial.traj.psi, L, params.kappa, z=z)
    assert z.sum() > 0
    for k in ("input", "recurrent"):
        assert max_rel_err(g[k], _eprop_sum(want_signal, plain[k], params.kappa)) < FILTERED, k
        assert max_rel_err(es[k], plain[k].sum(axis=0)) < FILTERED, k  # Σ e is the eligibility's alone
        assert max_rel_err(g[k], _eprop_sum(L, plain[k], params.kappa)) > 1e-2, k


def test_a_trace_that_reads_z_needs_the_spikes() -> None:
    params, w, trial, L = _problem()
    traced = _superspike_with(post_variables=("n",), post_update=(("n", "n + z"),), eligibility="psi * q * n")
    with pytest.raises(ValueError, match="reads z"):
        trace_grads(traced, trial.pre(), trial.traj.psi, L, params.kappa)
