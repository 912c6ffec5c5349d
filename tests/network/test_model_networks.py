"""The Brian2 network of a neuron model other than alif, generated from its equations
(:mod:`neuroplast.network.model_code`, docs/model.md §10), equals the NumPy reference of that model.

For ``lif_syn`` and ``adlif`` on both devices, with sparse connectivity, refractoriness, another surrogate
and both losses, and two trials side by side: the spikes are identical; the states, ψ, the readout and
the online gradients (the derived eligibility, Σ_t L_t ē_t, and Σ_t e_t) agree with
:func:`~neuroplast.model.stepper.simulate_model` and :func:`~neuroplast.gradients.derived.model_eprop` to
rounding.  They are not bit for bit: the network sums a neuron's synaptic input synapse by synapse, NumPy
by a BLAS matrix product (another order), which moves v by ≈ 1e-15.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neuroplast.gradients.derived import ModelTrial, model_eprop
from neuroplast.model.params import Weights
from tests.helpers import MODEL_VALUES, make_input, model_problem

pytestmark = pytest.mark.brian2

#: Relative agreement with the NumPy reference: the input sums in another order (≈ 1e-16 each) carried
#: through ≤ 150 steps of the model and the eligibility; measured ≤ 2e-15 on both devices.
RTOL = 1e-12

#: (model, device) -> surrogate and loss of its network (every pair differs from the default's).
CASES = {
    ("lif_syn", "runtime"): ("fast_sigmoid", "mse"),
    ("adlif", "runtime"): ("piecewise_linear", "cross_entropy"),
    ("lif_syn", "cpp_standalone"): ("piecewise_linear", "cross_entropy"),
    ("adlif", "cpp_standalone"): ("exponential", "mse"),
}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale


@pytest.fixture(scope="module", params=list(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def case(request):
    """A network of two copies for one (model, device), the problem it runs and its results."""
    from neuroplast.network.builder import Brian2Network

    name, device = request.param
    surrogate, loss_name = CASES[request.param]
    model, values, params, w, x, target, mask, loss = model_problem(name, n_ref=2, loss_name=loss_name)
    params = dataclasses.replace(params, surrogate=surrogate)
    rng = np.random.default_rng(3)
    w = Weights(
        w.w_in, w.w_rec, w.w_out, w.b_out, rng.random(w.w_in.shape) < 0.8, rng.random(w.w_rec.shape) < 0.6
    )
    net = Brian2Network(
        params,
        w,
        x.shape[0],
        device=device,
        loss=loss.name,
        gradients=True,
        record=True,
        batch=2,
        neuron=model,
        neuron_values=values,
    )
    fb = rng.normal(0.0, 0.5, (w.n_rec, w.n_out))
    x2 = make_input(seed=11, T=x.shape[0], n_in=w.n_in)
    trials = [(x, target, mask), (x2, target, mask)]
    side = net.run_batch(w, trials, feedback=fb)
    alone = net.run_trial(w, x, target=target, mask=mask, feedback=fb)
    return model, values, params, w, fb, trials, side, alone, loss


def test_the_generated_network_is_the_models_numpy_reference(case) -> None:
    model, values, params, w, fb, trials, side, _, loss = case
    for k, ((x, target, mask), res) in enumerate(zip(trials, side, strict=True)):
        ref = ModelTrial.make(model, values, params, w, x, target, mask, loss, c_reg=0.0)
        grads, esum = model_eprop(ref, fb)
        assert ref.traj.z.sum() > 0.01 * ref.traj.z.size, f"trial {k}: the test network must be active"
        assert np.array_equal(res.z, ref.traj.z), f"trial {k}: spikes differ"
        assert np.array_equal(res.refractory, ref.traj.refractory)
        for s in model.state:
            assert _rel(res.state[s], ref.traj.state[s]) <= RTOL, (k, s)
        assert _rel(res.psi, ref.traj.psi) <= RTOL and _rel(res.y, ref.traj.y) <= RTOL
        for key in ("input", "recurrent", "output", "bias"):
            assert _rel(res.grads[key], grads[key]) <= RTOL, (k, key)
        for key in ("input", "recurrent"):
            assert _rel(res.esum[key], esum[key]) <= RTOL, (k, key)
            assert np.all(res.grads[key][~(w.mask_in if key == "input" else w.mask_rec)] == 0.0)


def test_a_trial_alone_equals_its_copy_in_the_batch(case) -> None:
    *_, side, alone, _ = case
    assert np.array_equal(alone.z, side[0].z) and np.array_equal(alone.y, side[0].y)
    for key in alone.grads:
        assert np.array_equal(alone.grads[key], side[0].grads[key]), key


def test_the_comparison_can_disagree(case) -> None:
    """A parameter 1 % off in the reference moves it far beyond RTOL (the check sees the model's values)."""
    model, values, params, w, fb, trials, side, _, loss = case
    other = dict(values)
    key = "alpha_s" if model.name == "lif_syn" else "adapt_a"
    other[key] = values[key] * 1.01
    x, target, mask = trials[0]
    ref = ModelTrial.make(model, other, params, w, x, target, mask, loss)
    grads, _ = model_eprop(ref, fb)
    assert _rel(side[0].grads["recurrent"], grads["recurrent"]) > 1e3 * RTOL
    assert key in MODEL_VALUES[model.name](params)


@pytest.mark.slow  # compiles two networks of its own (a minute or more)
def test_alif_generated_from_its_equations_is_the_hand_written_network() -> None:
    """The alif model run through the generated statements (under another name, so that the network does
    not take its hand-written path) against the hand-written LIF/ALIF network of §5: the same spikes, the
    same states and online gradients to rounding — two Brian2 views of one model."""
    from neuroplast.model.neurons import get_neuron
    from neuroplast.network.builder import Brian2Network

    alif = get_neuron("alif")
    twin = dataclasses.replace(alif, name="alif_generated")
    model, values, params, w, x, target, mask, loss = model_problem("alif", n_ref=2)
    kw = dict(device="runtime", loss=loss.name, gradients=True, record=True, event_driven=False)
    generated = Brian2Network(
        params,
        w,
        x.shape[0],
        neuron=twin,
        neuron_values=values,
        **kw,
    )
    got = generated.run_trial(w, x, target=target, mask=mask)
    written = Brian2Network(params, w, x.shape[0], **kw)
    want = written.run_trial(w, x, target=target, mask=mask)
    assert np.any(params.beta != 0) and want.z.sum() > 0.01 * want.z.size  # ALIF neurons, active
    assert np.array_equal(got.z, want.z)
    assert _rel(got.state["v"], want.v) <= RTOL and _rel(got.state["a"], want.a) <= RTOL
    assert _rel(got.psi, want.psi) <= RTOL
    for key in ("input", "recurrent", "output", "bias"):
        assert _rel(got.grads[key], want.grads[key]) <= RTOL, key
    for key in ("input", "recurrent"):
        assert _rel(got.esum[key], want.esum[key]) <= RTOL, key


def test_a_rules_own_trace_runs_online_in_brian2() -> None:
    """``superspike`` brings its own eligibility trace: generated next to the (alif) model's code, its online
    gradient equals the rule's NumPy formula on the same trial (neuroplast.testing's helper for plugin
    authors), to rounding."""
    from neuroplast.testing import compare_rule_online_with_numpy

    diffs = compare_rule_online_with_numpy("superspike", device="runtime")
    assert set(diffs) == {"input", "recurrent", "output", "bias"}
    assert max(diffs.values()) <= RTOL, diffs


def test_an_eligibility_with_the_reset_runs_online_in_brian2() -> None:
    """``ostl`` keeps the reset in its eligibility: the alif network is generated from the model's equations
    with J_t = D_t + (S_t + S_reset,t) ψ_{t−1} du_{t−1}ᵀ per synapse, and its online gradient equals the
    rule's NumPy formula (the derived recursion) to rounding; e-prop's differs from it."""
    from neuroplast.testing import compare_rule_online_with_numpy

    diffs = compare_rule_online_with_numpy("ostl", device="runtime")
    assert set(diffs) == {"input", "recurrent", "output", "bias"}
    assert max(diffs.values()) <= RTOL, diffs


def test_a_models_eligibility_with_the_reset_equals_numpy_on_cpp_standalone() -> None:
    """adlif with the reset kept in the eligibility (rule ``ostl``) on cpp_standalone: identical spikes and
    the online gradients of :func:`~neuroplast.gradients.derived.model_eprop` with ``keep_reset`` (≤ RTOL);
    e-prop's eligibility (``keep_reset=False``) is not what the network computed (> 1e-3)."""
    from neuroplast.network.builder import Brian2Network

    model, values, params, w, x, target, mask, loss = model_problem("adlif", n_ref=2)
    net = Brian2Network(
        params, w, x.shape[0], device="cpp_standalone", loss=loss.name, gradients=True, record=True,
        neuron=model, neuron_values=values, keep_reset=True,
    )  # fmt: skip
    got = net.run_trial(w, x, target=target, mask=mask)
    ref = ModelTrial.make(model, values, params, w, x, target, mask, loss, c_reg=0.0)
    want, esum = model_eprop(ref, keep_reset=True)
    plain, _ = model_eprop(ref)
    assert np.array_equal(got.z, ref.traj.z)
    for key in ("input", "recurrent", "output", "bias"):
        assert _rel(got.grads[key], want[key]) <= RTOL, key
    for key in ("input", "recurrent"):
        assert _rel(got.esum[key], esum[key]) <= RTOL, key
        assert _rel(got.grads[key], plain[key]) > 1e-3, key


#: A rule's trace with state of every kind: presynaptic (SuperSpike's double filter), postsynaptic (a
#: filtered learning signal m, the spike count n: it reads L_t and z_t), per synapse (s, a filter of ψ q),
#: and its own learning signal.
FULL_TRACE = dict(
    name="full",
    variables=("p", "q"),
    update=(("p", "a_s * p + pre"), ("q", "a_m * q + p")),
    post_variables=("m", "n"),
    post_update=(("m", "a_l * m + L"), ("n", "n + z")),
    synapse_variables=("s",),
    synapse_update=(("s", "a_e * s + psi * q"),),
    eligibility="s + 0.5 * psi * q * n",
    signal="m * (1.0 + n)",
    constants=(("a_s", 0.8), ("a_m", 0.95), ("a_l", 0.6), ("a_e", 0.7)),
)


@pytest.mark.parametrize("device", ["runtime", "cpp_standalone"])
def test_a_trace_with_postsynaptic_and_synapse_state_and_its_own_signal(device: str) -> None:
    """Every kind of trace state and the rule's own learning signal, generated into the lif_syn network (two
    trials side by side): the online gradients equal :func:`~neuroplast.gradients.traces.trace_grads` of
    each trial (≤ RTOL; identical spikes), and e-prop's signal with the same eligibility is another
    gradient (> 1e-2)."""
    from neuroplast.gradients.traces import Trace, trace_grads
    from neuroplast.gradients.trial import mask_grads
    from neuroplast.model.signals import output_grads
    from neuroplast.network.builder import Brian2Network

    trace = Trace(**FULL_TRACE)
    model, values, params, w, x, target, mask, loss = model_problem("lif_syn", n_ref=2)
    net = Brian2Network(
        params, w, x.shape[0], device=device, loss=loss.name, gradients=True, record=True, batch=2,
        neuron=model, neuron_values=values, trace=trace,
    )  # fmt: skip
    fb = np.random.default_rng(5).normal(0.0, 0.5, (w.n_rec, w.n_out))
    x2 = make_input(seed=11, T=x.shape[0], n_in=w.n_in)
    got = net.run_batch(w, [(x, target, mask), (x2, target, mask)], feedback=fb)
    plain = Trace(**{**FULL_TRACE, "signal": "L"})
    for res, xi in zip(got, (x, x2), strict=True):
        ref = ModelTrial.make(model, values, params, w, xi, target, mask, loss, c_reg=0.0)
        assert np.array_equal(res.z, ref.traj.z)
        assert ref.traj.z.sum() > 0
        L = params.readout_scale * ref.err @ fb.T
        args = (ref.pre(), ref.traj.psi, L, params.kappa)
        want = mask_grads(w, trace_grads(trace, *args, z=ref.traj.z)[0])
        other = mask_grads(w, trace_grads(plain, *args, z=ref.traj.z)[0])
        want["output"], want["bias"] = output_grads(params, ref.traj.z, ref.err)
        for key in ("input", "recurrent", "output", "bias"):
            assert _rel(res.grads[key], want[key]) <= RTOL, key
        for key in ("input", "recurrent"):
            assert _rel(res.grads[key], other[key]) > 1e-2, key
