"""Neuron models as their update written once (neuroplast.model.neurons): checks, registry, NumPy steps.

``alif`` run by the generic stepper is :func:`neuroplast.model.dynamics.simulate` bit for bit; ``lif_syn``
and ``adlif`` equal loops written out here from docs/model.md §10, bit for bit (same operations in the same
order as their statements).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neuroplast.model.dynamics import simulate
from neuroplast.model.neurons import NEURONS, NeuronModel, Parameter, get_neuron, register_neuron
from neuroplast.model.stepper import simulate_model
from neuroplast.model.surrogates import get_surrogate
from tests.helpers import MODEL_VALUES, model_problem


def test_builtin_models_are_registered() -> None:
    assert {"alif", "lif_syn", "adlif"} <= set(NEURONS.names())
    assert get_neuron("ADLIF").state == ("v", "w") and get_neuron("adlif").temporaries == ("v_prev",)
    assert "R(v_th * z)" in get_neuron("lif_syn").equations()


@pytest.mark.parametrize(
    ("step", "threshold", "message"),
    [
        ((("v", "alpha * v + c + q"),), "v - v_th", "statement 1 (v ← …): unknown name 'q'"),
        ((("v", "alpha * v + c"), ("v", "v")), "v - v_th", "state variable 'v' assigned twice"),
        ((("x", "c"),), "v - v_th", "state variable 'v' is never assigned"),
        ((("v", "alpha * v +"),), "v - v_th", "statement 1 (v ← …): not an expression"),
        ((("v", "sinh(v) + c"),), "v - v_th", "unknown function 'sinh'"),
        ((("v", "v.real + c"),), "v - v_th", "Attribute is not allowed"),
        ((("v", "alpha * v + c"),), "alpha - v_th", "u must depend on the state"),
        ((("v", "alpha * v + c"),), "v - w", "threshold: unknown name 'w'"),
        ((("alpha", "c"), ("v", "c")), "v - v_th", "cannot assign 'alpha'"),
        ((("z", "c"), ("v", "c")), "v - v_th", "cannot assign 'z'"),
    ],
)
def test_a_broken_model_is_one_line_naming_it(step, threshold, message) -> None:
    with pytest.raises(ValueError) as err:
        NeuronModel("broken", "", ("v",), step, threshold, (Parameter("alpha", "decay"),))
    assert message in str(err.value) and "'broken'" in str(err.value) and "\n" not in str(err.value)


def test_neuron_kinds_name_each_neuron_and_whether_it_adapts() -> None:
    """What analyze calls a model's neurons (NeuronModel.kind, adaptation, adaptive_kind)."""
    beta = np.r_[np.zeros(3), np.full(2, 0.4)]
    kinds, adaptive = get_neuron("alif").neuron_kinds({"alpha": 0.9, "rho": 0.99, "beta": beta}, 5)
    assert kinds.tolist() == ["LIF"] * 3 + ["ALIF"] * 2 and adaptive.tolist() == [False] * 3 + [True] * 2
    adlif = get_neuron("adlif")
    assert adlif.neuron_kinds({"adapt_a": 0.5, "adapt_b": 0.0}, 2)[0].tolist() == ["AdLIF"] * 2
    assert adlif.neuron_kinds({"adapt_a": 0.0, "adapt_b": 0.0}, 2)[1].tolist() == [False, False]
    kinds, adaptive = get_neuron("lif_syn").neuron_kinds({}, 2)
    assert kinds.tolist() == ["LIF (syn. current)"] * 2 and not adaptive.any()
    step = (("v", "alpha * v + c"),)
    plain = NeuronModel("plain", "", ("v",), step, "v - v_th", (Parameter("alpha", "d"),))
    assert plain.neuron_kinds({"alpha": 0.9}, 1)[0].tolist() == ["plain"]  # default: the model's name
    with pytest.raises(ValueError, match="adaptation names 'beta', which is not one of its parameters"):
        dataclasses.replace(plain, adaptation=("beta",))


def test_registry_refuses_duplicates_and_other_objects() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_neuron(get_neuron("alif"))
    with pytest.raises(TypeError, match="not a neuroplast.model.neurons.NeuronModel"):
        NEURONS._check(object(), "x")  # what a plugin's entry point is checked with


@pytest.mark.parametrize(("n_ref", "gamma"), [(0, None), (3, None), (3, 0.5)])
def test_alif_is_the_reference_dynamics_bit_for_bit(n_ref: int, gamma: float | None) -> None:
    model, values, params, w, x, *_ = model_problem("alif", n_ref=n_ref)
    if gamma is not None:  # γ ≠ v_th (the problem's default has γ = v_th = 0.3): ψ's two factors differ
        params = dataclasses.replace(params, gamma=gamma)
    want = simulate(params, w, x).squeeze()
    got = simulate_model(model, values, params, w, x)
    assert want.z.sum() > 20  # the comparison sees spikes
    for name, a, b in [
        ("v", want.v, got.state["v"]),
        ("a", want.a, got.state["a"]),
        ("z", want.z, got.z),
        ("psi", want.psi, got.psi),
        ("refractory", want.refractory, got.refractory),
        ("y", want.y, got.y),
    ]:
        assert a.tobytes() == b.tobytes(), name


def _by_hand(name: str, values: dict, params, w, x) -> dict[str, np.ndarray]:
    """docs/model.md §10 written out: the states and spikes of lif_syn or adlif."""
    T, N = x.shape[0], w.n_rec
    sur = get_surrogate(params.surrogate)
    h1, h2, z, r = np.zeros(N), np.zeros(N), np.zeros(N), np.zeros(N, dtype=np.int64)
    out = {k: np.empty((T, N)) for k in ("h1", "h2", "z", "psi")}
    i_in = (x[None] @ w.w_in.T)[0]
    al = values["alpha"]
    for t in range(T):
        c = params.input_scale * (i_in[t] + (z[None] @ w.w_rec.T)[0])
        if name == "lif_syn":  # h1 = I, h2 = v
            h1 = values["alpha_s"] * h1 + c
            h2 = al * h2 + h1 - params.v_th * z
            u = h2 - params.v_th
        else:  # adlif: h1 = v, h2 = w
            v_prev = h1
            h1 = al * h1 + (1 - al) * (c - h2) - params.v_th * z
            rw = values["rho_w"]
            h2 = rw * h2 + (1 - rw) * (values["adapt_a"] * v_prev + values["adapt_b"] * z)
            u = h1 - params.v_th
        refr = r > 0
        z = np.where(refr, 0.0, (u > 0).astype(float))
        psi = np.where(refr, 0.0, sur.psi(u, params.v_th, params.gamma))
        r = np.where(z > 0.5, params.n_ref, np.maximum(r - 1, 0))
        out["h1"][t], out["h2"][t], out["z"][t], out["psi"][t] = h1, h2, z, psi
    return out


@pytest.mark.parametrize("name", ["lif_syn", "adlif"])
@pytest.mark.parametrize("n_ref", [0, 2])
def test_new_models_step_as_their_equations(name: str, n_ref: int) -> None:
    model, values, params, w, x, *_ = model_problem(name, n_ref=n_ref)
    got = simulate_model(model, values, params, w, x)
    want = _by_hand(name, values, params, w, x)
    assert 0.01 < want["z"].mean() < 0.5, want["z"].mean()  # active, not saturated
    s1, s2 = model.state
    assert got.state[s1].tobytes() == want["h1"].tobytes() and got.state[s2].tobytes() == want["h2"].tobytes()
    assert got.z.tobytes() == want["z"].tobytes() and got.psi.tobytes() == want["psi"].tobytes()
    # the check can fail: a parameter 1e-9 off moves the state
    other = dict(values, alpha=values["alpha"] * (1 + 1e-9))
    assert simulate_model(model, other, params, w, x).state[s2].tobytes() != want["h2"].tobytes()


def test_parameters_are_checked() -> None:
    model, values, params, w, x, *_ = model_problem("adlif")
    with pytest.raises(ValueError, match="no value for parameter 'rho_w'"):
        simulate_model(model, {k: v for k, v in values.items() if k != "rho_w"}, params, w, x)
    with pytest.raises(ValueError, match="'adapt_a' must be a number, got shape"):
        simulate_model(model, dict(values, adapt_a=np.ones(w.n_rec)), params, w, x)
    assert set(MODEL_VALUES) <= set(NEURONS.names())


def test_model_show_prints_the_derived_recursion(capsys: pytest.CaptureFixture[str]) -> None:
    from neuroplast.cli import main

    assert main(["model", "show", "adlif"]) == 0
    out = capsys.readouterr().out
    assert "w ← rho_w * w + (1 - rho_w) * (adapt_a * v_prev + adapt_b * z)" in out
    assert "eps_w_t = ((1 - rho_w)*(adapt_a + adapt_b*psi_prev)) eps_v + (rho_w) eps_w" in out
    assert main(["model", "list"]) == 0
    assert "lif_syn" in capsys.readouterr().out
    assert main(["model", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown neuron model 'nope'" in err and err.count("\n") == 1
