"""A rule's own eligibility in the analyses (:mod:`neuroplast.gradients.rule_eligibility`) and the factors
that keep the reset (:class:`~neuroplast.gradients.model_truncated.ModelFactors` ``keep_reset=True``).

Two independent paths are held to each other: the streamed per-synapse eligibility (:class:`RuleFactors`)
and the adjoint scan of the derived factors; and each to the gradient it must be (BPTT through the reset,
the trace rule's own gradient).  The comparator can disagree: the trace differs from e-prop's eligibility
on ``adlif`` and ``alif``, and the reset-kept L* from the reset-detached one.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.derived import ModelTrial, model_bptt
from neuroplast.gradients.model_truncated import ModelFactors
from neuroplast.gradients.rule_eligibility import RuleFactors
from neuroplast.gradients.traces import trace_grads
from neuroplast.model.signals import backward_filter, direct_signal
from tests.gradients.test_traces import _superspike
from tests.helpers import max_rel_err, model_problem

#: The same sums over ≤ 150 steps in another order (adjoint scan vs forward stream): ≈ 1e-15.
REORDERED = 1e-12
#: Real differences (another eligibility, another signal) are ≥ 1e-3 relative on these problems.
DIFFERENT = 1e-3
MODELS = ("lif_syn", "adlif", "alif")


def _trial(name: str, loss: str = "mse") -> ModelTrial:
    model, values, params, w, x, target, mask, lossf = model_problem(name, n_ref=2, loss_name=loss)
    return ModelTrial.make(model, values, params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)


def _signals(f, seed: int = 0) -> np.ndarray:
    """L*, the symmetric signal and a random one, (3, T, N)."""
    rng = np.random.default_rng(seed)
    return np.stack([f.ideal_signal(), f.truncated_signals([0])[0], rng.normal(size=f.psi.shape)])


def _assert_same_factors(a, b, w, tol: float = REORDERED) -> None:
    sig = _signals(a)
    fa, fb = a.factorize(sig), b.factorize(sig)
    G = np.random.default_rng(1).normal(size=w.w_rec.shape)
    for name in ("input", "recurrent"):
        assert max_rel_err(fb[name], fa[name]) < tol, name
    assert max_rel_err(b.contract("recurrent", G), a.contract("recurrent", G)) < tol
    for name, mask in (("input", w.mask_in), ("recurrent", w.mask_rec)):
        assert max_rel_err(b.row_norms(name, mask), a.row_norms(name, mask)) < tol, name


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_keep_reset_factors_are_bptt_through_the_reset(name, loss) -> None:
    """Σ_t L*_t e_t with the reset kept in both is BPTT with the reset differentiated; k = 0 is the direct
    signal, the level recursion reaches L* at k = T − 1; and L* through the reset is another signal."""
    tr = _trial(name, loss)
    f = ModelFactors(tr, keep_reset=True)
    g = f.factorize(f.ideal_signal()[None])
    full = model_bptt(tr, detach_reset=False)[0]
    for proj in ("input", "recurrent"):
        assert max_rel_err(g[proj][0], full[proj]) < REORDERED, proj
    T = tr.n_steps
    lev = f.truncated_signals([0, T - 1], shortcut=False)
    assert max_rel_err(lev[0], direct_signal(tr.params, tr.err, tr.weights.w_out, tr.reg)) < REORDERED
    assert max_rel_err(lev[T - 1], f.ideal_signal()) < REORDERED
    assert max_rel_err(f.ideal_signal(), ModelFactors(tr).ideal_signal()) > DIFFERENT


@pytest.mark.parametrize("name", MODELS)
def test_streamed_reset_kept_eligibility_equals_the_adjoint_factors(name) -> None:
    """RuleFactors (per-synapse e_t streamed from model_eligibilities(keep_reset=True)) = ModelFactors with
    keep_reset (the adjoint scan), for every factor the analyses read."""
    tr = _trial(name)
    f = ModelFactors(tr, keep_reset=True)
    _assert_same_factors(f, RuleFactors(f, tr, None, True), tr.weights)


def test_superspike_factors_are_eprop_on_lif_syn() -> None:
    """lif_syn with SuperSpike's trace at the model's τ (20 ms, 5 ms) is e-prop's eligibility."""
    tr = _trial("lif_syn")
    f = ModelFactors(tr)
    _assert_same_factors(f, RuleFactors(f, tr, _superspike(20.0, 5.0), False), tr.weights)


@pytest.mark.parametrize("name", ["adlif", "alif"])
def test_superspike_factors_are_the_rules_gradient_and_differ_from_eprop(name) -> None:
    """With the trace, Σ_t L̃_t e_t (L̃ the backward κ-filter of c_out B err, plus r) is the rule's own
    gradient (trace_grads); e-prop's eligibility gives another one on these models."""
    tr = _trial(name, "cross_entropy")
    p, w = tr.params, tr.weights
    trace = _superspike(20.0, 5.0)
    f = ModelFactors(tr)
    rf = RuleFactors(f, tr, trace, False)
    L_tilde = p.readout_scale * backward_filter(tr.err, p.kappa) @ w.w_out + tr.reg[None, :]
    mine, eprop = rf.factorize(L_tilde[None]), f.factorize(L_tilde[None])
    want, _ = trace_grads(trace, tr.pre(), tr.traj.psi, p.readout_scale * tr.err @ w.w_out, p.kappa, tr.reg)
    for proj, mask in (("input", w.mask_in), ("recurrent", w.mask_rec)):
        assert max_rel_err(mine[proj][0], np.where(mask, want[proj], 0.0)) < REORDERED, proj
        assert max_rel_err(eprop[proj][0], mine[proj][0]) > DIFFERENT, proj
    assert max_rel_err(rf.row_norms("input", w.mask_in), f.row_norms("input", w.mask_in)) > DIFFERENT
