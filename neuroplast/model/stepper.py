"""The NumPy reference of any :class:`~neuroplast.model.neurons.NeuronModel` (docs/model.md §10).

One trial from rest, step by step: the synaptic drive c_t = c_in (W_in x_t + W_rec z_{t−1}), the model's
statements in order (evaluated as written: the same floating-point operations in the same order as the
statement), u_t, the spike and ψ with refractoriness (docs/model.md §1 (3), (4) with u for v − A) and the
readout (5).  For the ``alif`` model this is :func:`neuroplast.model.dynamics.simulate` bit for bit
(tests/model/test_neurons.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType
from typing import Any

import numpy as np

from neuroplast.model.dynamics import sigmoid_spike
from neuroplast.model.neurons import NeuronModel
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.surrogates import get_surrogate

__all__ = ["ModelTrajectory", "simulate_model", "parameter_values"]

_NUMPY = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "tanh": np.tanh,
    "sin": np.sin,
    "cos": np.cos,
    "R": lambda term: term,
}


@dataclass(frozen=True)
class ModelTrajectory:
    """One simulated trial of a neuron model (arrays (T, ·); index 0 is step t = 1).

    Attributes
    ----------
    state : dict str -> ndarray (T, N)
        Every state variable after each step.
    u : ndarray (T, N)       threshold argument u_t
    z : ndarray (T, N)       spikes z_t ∈ {0, 1} (σ in the smooth test mode)
    psi : ndarray (T, N)     pseudo-derivative ψ_t
    refractory : ndarray (T, N) bool, r̂_t
    c : ndarray (T, N)       synaptic drive c_t
    y : ndarray (T, n_out)   readout
    """

    state: dict[str, np.ndarray]
    u: np.ndarray
    z: np.ndarray
    psi: np.ndarray
    refractory: np.ndarray
    c: np.ndarray
    y: np.ndarray


@lru_cache(maxsize=64)
def _compiled(model: NeuronModel) -> tuple[tuple[tuple[str, CodeType], ...], CodeType]:
    step = tuple((t, compile(e, f"<{model.name}: {t}>", "eval")) for t, e in model.step)
    return step, compile(model.threshold, f"<{model.name}: threshold>", "eval")


def parameter_values(model: NeuronModel, values: Mapping[str, Any], n_rec: int) -> dict[str, Any]:
    """The model's parameters as floats or (N,) arrays; a missing or misshapen one is a ``ValueError``."""
    out: dict[str, Any] = {}
    for p in model.parameters:
        if p.name not in values:
            raise ValueError(f"neuron model {model.name!r}: no value for parameter {p.name!r}")
        v = np.asarray(values[p.name], dtype=float)
        if v.ndim == 0:
            out[p.name] = float(v)
        elif v.shape == (n_rec,) and p.per_neuron:
            out[p.name] = v
        else:
            raise ValueError(
                f"neuron model {model.name!r}: parameter {p.name!r} must be a number"
                + (f" or one per neuron ({n_rec},)" if p.per_neuron else "")
                + f", got shape {v.shape}"
            )
    return out


def simulate_model(
    model: NeuronModel,
    values: Mapping[str, Any],
    params: ModelParams,
    weights: Weights,
    x: np.ndarray,
    *,
    smooth_slope: float | None = None,
) -> ModelTrajectory:
    """Simulate one trial of ``model`` from rest.

    Parameters
    ----------
    model : NeuronModel
    values : mapping
        The model's parameters (:attr:`NeuronModel.parameters`), floats or (N,) arrays.
    params : ModelParams
        What every model shares: v_th, γ, n_ref, κ, c_in, c_out, the surrogate (its α, ρ, β are not read).
    weights : Weights
        Dense weights, zero diagonal of ``w_rec``.
    x : ndarray (T, n_in)
        Input per step.
    smooth_slope : float, optional
        z_t = σ(slope · u_t / v_th) with ψ its exact derivative in u (finite-difference tests; n_ref = 0).

    Returns
    -------
    ModelTrajectory
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != weights.n_in:
        raise ValueError(f"x must have shape (T, {weights.n_in})")
    if np.any(np.diag(weights.w_rec) != 0.0):
        raise ValueError("w_rec must have a zero diagonal (no autapses)")
    if smooth_slope is not None and params.n_ref != 0:
        raise ValueError("the smooth spike test mode needs n_ref = 0")
    T, N, n_out = x.shape[0], weights.n_rec, weights.n_out
    par = parameter_values(model, values, N)
    step, threshold = _compiled(model)
    sur = get_surrogate(params.surrogate)
    v_th, c_in = params.v_th, params.input_scale
    state = {s: np.zeros(N) for s in model.state}
    z, r, y = np.zeros(N), np.zeros(N, dtype=np.int64), np.zeros(n_out)
    out = {s: np.empty((T, N)) for s in model.state}
    out_u, out_z, out_psi, out_c = (np.empty((T, N)) for _ in range(4))
    out_ref, out_y = np.empty((T, N), dtype=bool), np.empty((T, n_out))
    # the shapes of dynamics.simulate (a batch of one): the same BLAS calls, the same sums
    i_in = (x[None] @ weights.w_in.T)[0]
    for t in range(T):
        c = c_in * (i_in[t] + (z[None] @ weights.w_rec.T)[0])
        env: dict[str, Any] = {**_NUMPY, **par, **state, "z": z, "c": c, "v_th": v_th}
        for target, code in step:
            env[target] = eval(code, {"__builtins__": {}}, env)  # checked by NeuronModel: names, calls
        state = {s: np.broadcast_to(np.asarray(env[s], dtype=float), (N,)).copy() for s in model.state}
        u = np.broadcast_to(np.asarray(eval(threshold, {"__builtins__": {}}, env), dtype=float), (N,))
        refr = r > 0
        if smooth_slope is None:
            z = np.where(refr, 0.0, (u > 0).astype(float))
            psi = np.where(refr, 0.0, sur.psi(u, v_th, params.gamma))
            r = np.where(z > 0.5, params.n_ref, np.maximum(r - 1, 0))
        else:
            z, dz = sigmoid_spike(u / v_th, smooth_slope)
            psi = dz / v_th
        y = params.kappa * y + params.readout_scale * (z[None] @ weights.w_out.T)[0] + weights.b_out
        for s in model.state:
            out[s][t] = state[s]
        out_u[t], out_z[t], out_psi[t], out_ref[t], out_c[t], out_y[t] = u, z, psi, refr, c, y
    return ModelTrajectory(out, out_u, out_z, out_psi, out_ref, out_c, out_y)
