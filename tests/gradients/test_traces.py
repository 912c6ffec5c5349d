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
        (dict(eligibility="psi * z"), "unknown name 'z'"),
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
