"""The analyses' per-neuron factors of any neuron model (neuroplast.gradients.model_truncated).

* ``alif``: the derived path (:class:`ModelFactors` of the model's Jacobians) equals the hand-written fast
  path (:class:`AlifFactors`, neuroplast.gradients.truncated) to ≤ 1e-12 relative — the generic path
  proven by the model whose answer is known.
* ``lif_syn``, ``adlif`` and the example plugin's ``resonate``: the k-hop truncated signal gives e-prop's
  gradient at k = 0 and BPTT's at k = T (≤ 1e-10), and k = 1 differs from both (the comparison can
  disagree); contractions and row norms equal the literal per-synapse eligibility of
  :func:`~neuroplast.gradients.derived.model_eligibilities`.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.derived import (
    ModelTrial,
    alif_trial,
    model_bptt,
    model_eligibilities,
    model_eprop_grads,
    model_ideal_signal,
)
from neuroplast.gradients.model_truncated import AlifFactors, ModelFactors, as_factors, model_jacobians
from neuroplast.gradients.trial import TrialData
from neuroplast.model.neurons import NeuronModel, Parameter
from neuroplast.model.params import Weights
from tests.helpers import PROBLEM_BETAS, make_problem, max_rel_err, model_problem

#: The same terms summed in another order: ≈ T · 1e-16 relative.
REORDERED = 1e-12
#: Against another estimator's formula (e-prop, BPTT).
TOL = 1e-10
MODELS = ["lif_syn", "adlif", "resonate"]
PROJ = ("input", "recurrent")
#: A linear model whose eligibility is shared by a presynaptic neuron's synapses (scalar parameters, the
#: spike only in the reset) and whose u reads both state variables: the cross terms of the shared row norms.
TWIN = NeuronModel(
    "twin",
    "two leaky integrators of the drive, u = v − β a (test model)",
    state=("v", "a"),
    step=(("v", "alpha * v + c - R(v_th * z)"), ("a", "rho * a + 0.5 * c")),
    threshold="v - beta * a - v_th",
    parameters=(Parameter("alpha", "decay"), Parameter("rho", "decay"), Parameter("beta", "coupling")),
)


def _alif(loss: str, seed: int = 0) -> TrialData:
    params, w, x, target, mask, lossf = make_problem(
        PROBLEM_BETAS["mixed"], loss_name=loss, n_ref=2, seed=seed
    )
    rng = np.random.default_rng(seed + 11)
    w = Weights(w.w_in, w.w_rec, w.w_out, w.b_out, rng.random(w.w_in.shape) < 0.8, w.mask_rec)
    return TrialData.make(params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)


def _model(name: str, loss: str = "mse", seed: int = 0) -> ModelTrial:
    if name == "twin":
        params, w, x, target, mask, lossf = make_problem(
            PROBLEM_BETAS["lif"], loss_name=loss, n_ref=2, seed=seed
        )
        values = {"alpha": float(params.alpha), "rho": 0.95, "beta": 0.4}
        return ModelTrial.make(TWIN, values, params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)
    model, values, params, w, x, target, mask, lossf = model_problem(name, n_ref=2, loss_name=loss, seed=seed)
    return ModelTrial.make(model, values, params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)


def test_jacobians_of_all_steps_are_those_of_each_step() -> None:
    trial = _model("adlif")
    jac = model_jacobians(trial)
    for t in (0, 1, 57, trial.n_steps - 1):
        one = trial.jacobians(t)
        for key in ("D", "S", "S_reset", "b", "du"):
            assert np.array_equal(jac[key][..., t, :], one[key]), (key, t)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_derived_factors_of_alif_equal_the_fast_path(loss) -> None:
    tr = _alif(loss)
    fast, derived = AlifFactors(tr), ModelFactors(alif_trial(tr))
    assert np.array_equal(fast.psi, derived.psi)  # the same trajectory, bit for bit
    T = tr.psi.shape[0]
    assert max_rel_err(derived.ideal_signal(), fast.ideal_signal()) < REORDERED
    ks = [0, 1, 3, T]
    a, b = fast.truncated_signals(ks), derived.truncated_signals(ks)
    levels = derived.truncated_signals([0, 2, T - 1], shortcut=False)  # the level recursion itself
    for k in ks:
        assert max_rel_err(b[k], a[k]) < REORDERED, k
    assert (
        max_rel_err(levels[2], a[3]) > 1e-6 and max_rel_err(levels[2], fast.truncated_signals([2])[2]) < 1e-12
    )
    assert max_rel_err(levels[T - 1], fast.ideal_signal()) < REORDERED
    stack = np.stack([a[0], a[1], a[T]])
    ga, gb = fast.factorize(stack), derived.factorize(stack)
    rng = np.random.default_rng(3)
    for name in PROJ:
        mask = tr.weights.mask_in if name == "input" else tr.weights.mask_rec
        assert max_rel_err(gb[name], ga[name]) < REORDERED, name
        G = np.where(mask, rng.normal(size=mask.shape), 0.0)
        assert max_rel_err(derived.contract(name, G), fast.contract(name, G)) < REORDERED, name
        assert max_rel_err(derived.row_norms(name, mask), fast.row_norms(name, mask)) < REORDERED, name


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_k0_is_eprop_kT_is_bptt_and_k1_differs(name, loss) -> None:
    trial = _model(name, loss)
    T = trial.n_steps
    f = as_factors(trial)
    assert isinstance(f, ModelFactors) and f.model == name
    sig = f.truncated_signals([0, 1, T])
    g = f.factorize(np.stack([sig[0], sig[1], sig[T]]))
    eprop = model_eprop_grads(trial)  # symmetric feedback, with the rate regularizer
    bptt, _ = model_bptt(trial)
    assert max_rel_err(sig[T], model_ideal_signal(trial)) < TOL
    assert max_rel_err(f.truncated_signals([T - 1], shortcut=False)[T - 1], sig[T]) < TOL  # T − 1 hops: L*
    for proj in PROJ:
        assert max_rel_err(g[proj][0], eprop[proj]) < TOL, proj  # k = 0: e-prop
        assert max_rel_err(g[proj][2], bptt[proj]) < TOL, proj  # k = T: BPTT
        assert max_rel_err(g[proj][1], bptt[proj]) > 1e-3, proj  # k = 1: neither
        assert max_rel_err(g[proj][1], eprop[proj]) > 1e-3, proj
        assert max_rel_err(eprop[proj], bptt[proj]) > 1e-3, proj  # with W_rec, e-prop is not BPTT


@pytest.mark.parametrize("name", [*MODELS, "twin"])
def test_contractions_and_row_norms_equal_the_literal_eligibility(name) -> None:
    trial = _model(name, "cross_entropy", seed=2)
    f = ModelFactors(trial)
    T, N = f.psi.shape
    rng = np.random.default_rng(5)
    masks = {"input": rng.random(trial.weights.w_in.shape) < 0.7, "recurrent": trial.weights.mask_rec}
    Gs = {k: rng.normal(size=m.shape) for k, m in masks.items()}
    L = rng.normal(size=(2, T, N))
    want_u = {k: np.zeros((T, N)) for k in masks}
    want_s = {k: np.zeros((T, N)) for k in masks}
    want_g = {k: np.zeros((2, *m.shape)) for k, m in masks.items()}
    for t, es in model_eligibilities(trial, f.pre):
        for k, e in es.items():
            want_u[k][t] = np.sum(Gs[k] * e, axis=1)
            want_s[k][t] = np.sum(masks[k] * e * e, axis=1)
            want_g[k] += np.where(masks[k], L[:, t, :, None] * e[None], 0.0)
    got_g = f.factorize(L, masks)
    for k in masks:
        assert max_rel_err(f.contract(k, Gs[k]), want_u[k]) < REORDERED, k
        assert max_rel_err(f.row_norms(k, masks[k]), want_s[k]) < REORDERED, k
        assert max_rel_err(got_g[k], want_g[k]) < REORDERED, k
    assert np.any(want_s["recurrent"] > 0)
    assert f.shared == (name != "adlif")  # adlif's spike enters w: its ε is per synapse (both paths tested)
    assert len(f._du_rows) == (2 if name == "twin" else 1)


def test_as_factors_keeps_the_alif_fast_path() -> None:
    tr = _alif("mse")
    assert isinstance(as_factors(tr), AlifFactors)
    f = ModelFactors(alif_trial(tr))
    assert as_factors(f) is f
    with pytest.raises(ValueError, match="hop counts"):
        f.truncated_signals([-1])
