"""e-prop and BPTT derived from a neuron model's equations (neuroplast.gradients.derived).

* ``alif``: the derived e-prop and BPTT equal the hand-written ones of neuroplast.gradients (≤ 1e-12
  relative: the derived recursion sums the same terms in another order).
* ``lif_syn``, ``adlif``: the derived eligibility equals the recursion written out here from the equations
  of docs/model.md §10 (≤ 1e-12), BPTT with the reset kept equals finite differences of the loss in the
  smooth spike mode, and the ideal learning signal gives BPTT exactly: Σ_t L*_t e_t = dE/dW (≤ 1e-10).
* Every comparison can disagree: with recurrence, e-prop is not BPTT.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.bptt import bptt_grads
from neuroplast.gradients.derived import (
    ModelTrial,
    model_bptt,
    model_eligibility,
    model_eprop_grads,
    model_factorization,
    model_ideal_signal,
    model_rtrl,
    model_signal_parts,
)
from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.model.derive import derive
from neuroplast.model.dynamics import simulate
from neuroplast.model.signals import reg_signal
from neuroplast.model.stepper import simulate_model
from tests.helpers import max_rel_err, model_problem

MODELS = ["alif", "lif_syn", "adlif"]
#: Two orders of summing the same terms: ≈ T · 1e-16 relative; 1e-12 leaves room.
REORDERED = 1e-12


def _trial(name: str, *, c_reg: float = 0.0, smooth: float | None = None, **kw) -> ModelTrial:
    model, values, params, w, x, target, mask, loss = model_problem(name, **kw)
    traj = simulate_model(model, values, params, w, x, smooth_slope=smooth)
    err = np.asarray(loss.error(traj.y, target, mask), dtype=float)
    reg = reg_signal(traj.z, c_reg, 0.02) if c_reg else None
    return ModelTrial(derive(model), values, params, w, x, traj, err, reg)


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("n_ref", [0, 2])
def test_alif_derived_equals_the_hand_written_gradients(loss_name: str, n_ref: int) -> None:
    model, values, params, w, x, target, mask, loss = model_problem("alif", n_ref=n_ref, loss_name=loss_name)
    trial = TrialData.make(params, w, x, target, mask, loss, c_reg=0.3, f_target=0.02)
    mt = _trial("alif", n_ref=n_ref, loss_name=loss_name, c_reg=0.3)
    for name, want in eprop_grads(trial).items():
        assert max_rel_err(model_eprop_grads(mt)[name], want) < REORDERED, name
    for detach in (True, False):
        got, _ = model_bptt(mt, detach_reset=detach)
        for name, want in bptt_grads(trial, detach_reset=detach).items():
            assert max_rel_err(got[name], want) < REORDERED, (name, detach)


def _eligibility_by_hand(name: str, mt: ModelTrial, pre: np.ndarray) -> list[np.ndarray]:
    """docs/model.md §10's eligibility recursions written out (per synapse, (N, n_pre))."""
    v, psi = mt.values, mt.traj.psi
    T, N = psi.shape
    e1 = np.zeros((N, pre.shape[1]))
    e2 = np.zeros_like(e1)
    psi_prev = np.zeros((N, 1))
    out = []
    for t in range(T):
        if name == "lif_syn":  # ε^I, ε^v: no spike path (the reset is detached)
            e1, e2 = v["alpha_s"] * e1 + pre[t], v["alpha_s"] * e1 + v["alpha"] * e2 + pre[t]
            e = psi[t][:, None] * e2
        else:  # adlif: ε^v, ε^w
            al, rw, a, b = v["alpha"], v["rho_w"], v["adapt_a"], v["adapt_b"]
            e1, e2 = (
                al * e1 - (1 - al) * e2 + (1 - al) * pre[t],
                (1 - rw) * (a + b * psi_prev) * e1 + rw * e2,
            )
            e = psi[t][:, None] * e1
        psi_prev = psi[t][:, None]
        out.append(e)
    return out


@pytest.mark.parametrize("name", ["lif_syn", "adlif"])
def test_derived_eligibility_is_the_written_recursion(name: str) -> None:
    mt = _trial(name, n_ref=2)
    assert mt.traj.z.sum() > 20
    for proj, pre in mt.pre().items():
        want = _eligibility_by_hand(name, mt, pre)
        got = [e for _, e in model_eligibility(mt, pre)]
        worst = max(max_rel_err(g, w_, floor=1e-300) for g, w_ in zip(got, want, strict=True) if np.any(w_))
        assert worst < REORDERED, (proj, worst)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_the_ideal_signal_gives_bptt_and_eprop_differs(name: str, loss_name: str) -> None:
    """Σ_t L*_t e_t = dE/dW (the factorization, reset detached); e-prop (L = the readout path) is not."""
    mt = _trial(name, loss_name=loss_name, c_reg=0.5, n_ref=1)
    exact, _ = model_bptt(mt)
    L = model_ideal_signal(mt)
    for proj, pre in mt.pre().items():
        g = sum(L[t][:, None] * e for t, e in model_eligibility(mt, pre))
        g = np.where(mt.weights.mask_in if proj == "input" else mt.weights.mask_rec, g, 0.0)
        assert max_rel_err(g, exact[proj]) < 1e-10, proj
        assert max_rel_err(model_eprop_grads(mt)[proj], exact[proj]) > 1e-3, proj  # it can disagree


@pytest.mark.parametrize("name", ["lif_syn", "adlif"])
def test_bptt_with_the_reset_is_the_derivative_of_the_loss(name: str) -> None:
    """Smooth spikes σ(slope · u / v_th) (ψ their exact derivative): BPTT with the reset kept = central
    finite differences of E (relative 1e-5: step 1e-6 on weights of order 0.1–1)."""
    slope, h = 3.0, 1e-6
    mt = _trial(name, smooth=slope, loss_name="mse")
    model, values, params, w, x, target, mask, loss = model_problem(name, loss_name="mse")
    grads, _ = model_bptt(mt, detach_reset=False)
    detached, _ = model_bptt(mt, detach_reset=True)

    def energy(w_):
        y = simulate_model(model, values, params, w_, x, smooth_slope=slope).y
        return float(loss.value(y, target, mask))

    rng = np.random.default_rng(0)
    for proj, attr in (("input", "w_in"), ("recurrent", "w_rec")):
        mask_ = w.mask_in if proj == "input" else w.mask_rec
        picks = [tuple(ix) for ix in np.argwhere(mask_)[rng.choice(int(mask_.sum()), 4, replace=False)]]
        for ix in picks:
            diffs = []
            for sign in (1, -1):
                m = getattr(w, attr).copy()
                m[ix] += sign * h
                kw = {"w_in": w.w_in, "w_rec": w.w_rec, attr: m}
                diffs.append(
                    energy(type(w)(kw["w_in"], kw["w_rec"], w.w_out, w.b_out, w.mask_in, w.mask_rec))
                )
            fd = (diffs[0] - diffs[1]) / (2 * h)
            scale = np.max(np.abs(grads[proj]))
            assert abs(grads[proj][ix] - fd) < 1e-5 * scale, (proj, ix, grads[proj][ix], fd)
        # the check can disagree: the detached reset is not the derivative
        assert max_rel_err(detached[proj], grads[proj]) > 1e-4, proj


def test_alif_generic_trajectory_feeds_the_hand_written_trial() -> None:
    """The generic stepper's ψ is the reference's: the derived and hand-written gradients read the same."""
    model, values, params, w, x, *_ = model_problem("alif")
    assert (
        simulate(params, w, x).squeeze().psi.tobytes()
        == simulate_model(model, values, params, w, x).psi.tobytes()
    )


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_rtrl_forward_equals_bptt_backward(name: str, loss_name: str) -> None:
    """The two factorizations of the same gradient — RTRL forward in time, BPTT backward — agree to
    rounding, with the reset detached and kept (measured ≤ 1.1e-15); each differs from the other's
    other reset mode, so the check can fail."""
    mt = _trial(name, loss_name=loss_name, c_reg=0.5, n_ref=2)
    for detach in (True, False):
        forward, (backward, _) = model_rtrl(mt, detach_reset=detach), model_bptt(mt, detach_reset=detach)
        for proj in ("input", "recurrent", "output", "bias"):
            assert max_rel_err(forward[proj], backward[proj], floor=1e-300) < REORDERED, (detach, proj)
    other, _ = model_bptt(mt, detach_reset=False)
    assert max_rel_err(model_rtrl(mt)["recurrent"], other["recurrent"]) > 1e-6


def test_rtrl_refuses_a_network_beyond_its_cost_in_one_line() -> None:
    mt = _trial("lif_syn")
    with pytest.raises(ValueError) as err:
        model_rtrl(mt, max_ops=1.0)
    assert "small networks" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", MODELS)
def test_the_signal_parts_sum_to_bptt(name: str) -> None:
    """compare's split: Σ L^kept e + Σ L^rec e = BPTT (reset detached); the kept part is e-prop's
    unfiltered-signal form (symmetric B), so it equals e-prop to rounding."""
    mt = _trial(name, loss_name="mse", c_reg=0.5, n_ref=1)
    exact, _ = model_bptt(mt)
    parts = model_signal_parts(mt)
    eprop = model_eprop_grads(mt)
    for proj in ("input", "recurrent"):
        assert max_rel_err(parts["eprop"][proj] + parts["recurrent"][proj], exact[proj]) < 1e-10
        assert max_rel_err(parts["eprop"][proj], eprop[proj]) < REORDERED
        assert np.any(parts["recurrent"][proj] != 0)


def test_alif_factorization_is_the_hand_written_one() -> None:
    """plot's per-step split of BPTT, derived for any model, equals the hand-written one on alif."""
    from neuroplast.gradients.bptt import factorization_decomposition

    model, values, params, w, x, target, mask, loss = model_problem("alif", n_ref=2)
    mt = ModelTrial.make(model, values, params, w, x, target, mask, loss, c_reg=0.5, f_target=0.02)
    hand = TrialData.make(params, w, x, target, mask, loss, c_reg=0.5, f_target=0.02)
    want, got = factorization_decomposition(hand), model_factorization(mt)
    for proj in ("input", "recurrent"):
        for key in (
            "bptt",
            "kept",
            "recurrent",
            "kept_norm",
            "recurrent_norm",
            "kept_along",
            "recurrent_along",
        ):
            assert max_rel_err(got[proj][key], want[proj][key], floor=1e-300) < REORDERED, (proj, key)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_the_eligibility_with_the_reset_gives_bptt_with_the_reset_without_recurrence(
    name: str, loss_name: str
) -> None:
    """The eligibility that keeps the reset (rule ``ostl``): without recurrent weights the online
    gradient Σ_t L_t ē_t + R Σ_t e_t is BPTT with the reset differentiated (OSTL's gradient equivalence in
    networks without recurrence; ≤ 1e-12, two summation orders), while e-prop's is BPTT with the reset
    detached.  Both comparisons can disagree: the two eligibilities differ from each other, and with
    recurrent weights neither is BPTT."""
    mt = _trial(name, loss_name=loss_name, c_reg=0.5, n_ref=2, w_rec_std=0.0)
    full, _ = model_bptt(mt, detach_reset=False)
    detached, _ = model_bptt(mt)
    ostl, eprop = model_eprop_grads(mt, keep_reset=True), model_eprop_grads(mt)
    assert mt.traj.z.sum() > 20  # the reset acts
    for proj in ("input", "recurrent", "output", "bias"):
        assert max_rel_err(ostl[proj], full[proj]) < REORDERED, proj
        assert max_rel_err(eprop[proj], detached[proj]) < REORDERED, proj
    for proj in ("input", "recurrent"):
        assert max_rel_err(ostl[proj], eprop[proj]) > 1e-2, proj
    rec = _trial(name, loss_name=loss_name, c_reg=0.5, n_ref=2)
    rec_full, _ = model_bptt(rec, detach_reset=False)
    for proj in ("input", "recurrent"):
        assert max_rel_err(model_eprop_grads(rec, keep_reset=True)[proj], rec_full[proj]) > 1e-2, proj


def test_ostl_rule_is_the_derived_eligibility_with_the_reset() -> None:
    """Rule ``ostl`` on an ``alif`` trial (TrialData): its NumPy formula is the derived eligibility with the
    reset kept, and without recurrence it equals the hand-written BPTT with the reset
    (gradients/bptt.py, another derivation; ≤ 1e-12)."""
    from neuroplast.config import TrainingConfig
    from neuroplast.gradients.derived import alif_trial
    from neuroplast.plasticity.rules import get_rule

    rule = get_rule("ostl")(TrainingConfig())
    assert rule.keeps_reset and rule.own_eligibility and rule.simulated and not rule.eprop_gradient
    for w_rec_std in (0.0, 0.3):
        model, values, params, w, x, target, mask, loss = model_problem("alif", n_ref=2, w_rec_std=w_rec_std)
        trial = TrialData.make(params, w, x, target, mask, loss, c_reg=0.5, f_target=0.02)
        got = rule.numpy_grads(trial)
        want = model_eprop_grads(alif_trial(trial), keep_reset=True)
        for proj in ("input", "recurrent", "output", "bias"):
            assert max_rel_err(got[proj], want[proj]) < REORDERED, proj
        exact = bptt_grads(trial, detach_reset=False)
        err = max(max_rel_err(got[p], exact[p]) for p in ("input", "recurrent"))
        assert (err < REORDERED) if w_rec_std == 0.0 else (err > 1e-2), (w_rec_std, err)
