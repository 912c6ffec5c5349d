"""NumPy reference of the discrete-time LIF/ALIF network (docs/model.md, eqs. 1–6).

Per step t = 1..T, from rest (all state 0 at t = 0)::

    v_t = α v_{t−1} + c_in (W_in x_t + W_rec z_{t−1}) − v_th z_{t−1}
    a_t = ρ a_{t−1} + z_{t−1},         A_t = v_th + β a_t
    z_t = H(v_t − A_t) · (1 − r̂_t),   r̂_t = [r_{t−1} > 0]
    r_t = n_ref if z_t else max(r_{t−1} − 1, 0)
    ψ_t = (γ / v_th) s((v_t − A_t)/v_th) · (1 − r̂_t)
    y_t = κ y_{t−1} + c_out W_out z_t + b

All functions are pure and batch-capable: inputs ``x`` have shape (T, n_in) or
(B, T, n_in); the trajectory has matching leading dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.surrogates import get_surrogate

__all__ = ["Trajectory", "NetState", "advance", "simulate", "sigmoid_spike"]


@dataclass(frozen=True)
class Trajectory:
    """States of one simulation, per step (index 0 is step t = 1).

    Attributes
    ----------
    v : ndarray (B, T, N)   membrane potential v_t (units of v_th)
    a : ndarray (B, T, N)   adaptation variable a_t (dimensionless)
    z : ndarray (B, T, N)   spikes z_t ∈ {0, 1} (or σ in the smooth test mode)
    psi : ndarray (B, T, N) pseudo-derivative ψ_t (1/[v])
    refractory : ndarray (B, T, N) bool, r̂_t (z forced to 0)
    y : ndarray (B, T, n_out) readout y_t
    batched : bool          whether the input had a batch dimension
    """

    v: np.ndarray
    a: np.ndarray
    z: np.ndarray
    psi: np.ndarray
    refractory: np.ndarray
    y: np.ndarray
    batched: bool = True

    def trial(self, k: int) -> Trajectory:
        """The trajectory of trial ``k`` alone (still with a batch axis of 1)."""
        s = slice(k, k + 1)
        return Trajectory(self.v[s], self.a[s], self.z[s], self.psi[s], self.refractory[s], self.y[s], True)

    def squeeze(self) -> Trajectory:
        """Drop the batch axis when it was added for an unbatched input."""
        if self.batched:
            return self
        return Trajectory(self.v[0], self.a[0], self.z[0], self.psi[0], self.refractory[0], self.y[0], False)


def sigmoid_spike(u: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth spike function σ(slope·u) and its exact derivative w.r.t. ``u``.

    Used only to test BPTT against finite differences (ψ is then the true derivative).
    """
    s = 1.0 / (1.0 + np.exp(-slope * u))
    return s, slope * s * (1.0 - s)


@dataclass(frozen=True)
class NetState:
    """State of the network after step t (arrays (B, N), readout (B, n_out)).

    ``r`` is the refractory counter r_t (steps left, int); everything is 0 at rest (t = 0).
    """

    v: np.ndarray
    a: np.ndarray
    z: np.ndarray
    r: np.ndarray
    y: np.ndarray

    @classmethod
    def rest(cls, batch: int, n_rec: int, n_out: int) -> NetState:
        """All-zero state v_0 = a_0 = z_0 = r_0 = y_0 = 0."""
        z = np.zeros((batch, n_rec))
        return cls(
            z.copy(), z.copy(), z.copy(), np.zeros((batch, n_rec), dtype=np.int64), np.zeros((batch, n_out))
        )


def advance(
    params: ModelParams,
    weights: Weights,
    state: NetState,
    i_in: np.ndarray,
    *,
    sur=None,
    smooth_slope: float | None = None,
) -> tuple[NetState, np.ndarray, np.ndarray]:
    """One step t of equations (1)–(5): the state after step t−1 → the state after step t.

    Parameters
    ----------
    params : ModelParams
    weights : Weights
        Weights in force during step t (``w_in`` is not read: pass its current ``i_in``).
    state : NetState
        State after step t−1.
    i_in : ndarray (B, N)
        Input current W_in x_t (before the factor c_in).
    sur : Surrogate, optional
        ``get_surrogate(params.surrogate)`` (looked up when omitted).
    smooth_slope : float, optional
        Smooth spike test mode (see :func:`simulate`).

    Returns
    -------
    state : NetState   after step t
    psi : ndarray (B, N)   ψ_t
    refr : ndarray (B, N) bool   r̂_t
    """
    sur = sur or get_surrogate(params.surrogate)
    alpha, rho, beta, v_th = params.alpha, params.rho, params.beta, params.v_th
    v, a, z, r = state.v, state.a, state.z, state.r
    i_rec = z @ weights.w_rec.T
    v = alpha * v + params.input_scale * (i_in + i_rec) - v_th * z
    a = rho * a + z
    thr = v_th + beta * a
    refr = r > 0
    if smooth_slope is None:
        z = np.where(refr, 0.0, (v > thr).astype(float))
        psi = np.where(refr, 0.0, sur.psi(v - thr, v_th, params.gamma))
        r = np.where(z > 0.5, params.n_ref, np.maximum(r - 1, 0))
    else:
        z, dz = sigmoid_spike((v - thr) / v_th, smooth_slope)
        psi = dz / v_th
    y = params.kappa * state.y + params.readout_scale * (z @ weights.w_out.T) + weights.b_out
    return NetState(v, a, z, r, y), psi, refr


def simulate(
    params: ModelParams,
    weights: Weights,
    x: np.ndarray,
    *,
    smooth_slope: float | None = None,
) -> Trajectory:
    """Run the reference dynamics.

    Parameters
    ----------
    params : ModelParams
        Model constants (α, ρ, β, v_th, n_ref, γ, κ, c_in, c_out, surrogate).
    weights : Weights
        Dense weights; ``w_rec`` must have a zero diagonal.
    x : ndarray, shape (T, n_in) or (B, T, n_in)
        Input spikes x_t (0/1, or any real input) for t = 1..T.
    smooth_slope : float, optional
        If given, z_t = σ(slope·(v_t − A_t)/v_th) with ψ its exact derivative in v
        (test mode for finite differences; requires ``n_ref == 0``).

    Returns
    -------
    Trajectory
    """
    x = np.asarray(x, dtype=float)
    batched = x.ndim == 3
    if not batched:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != weights.n_in:
        raise ValueError(f"x must have shape (T, {weights.n_in}) or (B, T, {weights.n_in})")
    if weights.n_rec != params.n_rec:
        raise ValueError("weights and params disagree on the number of recurrent neurons")
    if np.any(np.diag(weights.w_rec) != 0.0):
        raise ValueError("w_rec must have a zero diagonal (no autapses)")
    if smooth_slope is not None and params.n_ref != 0:
        raise ValueError("the smooth spike test mode needs n_ref = 0")
    B, T, _ = x.shape
    N, n_out = weights.n_rec, weights.n_out
    sur = get_surrogate(params.surrogate)

    out_v = np.empty((B, T, N))
    out_a = np.empty((B, T, N))
    out_z = np.empty((B, T, N))
    out_psi = np.empty((B, T, N))
    out_ref = np.empty((B, T, N), dtype=bool)
    out_y = np.empty((B, T, n_out))

    i_in = x @ weights.w_in.T  # (B, T, N): W_in x_t for every step at once
    state = NetState.rest(B, N, n_out)
    for t in range(T):
        state, psi, refr = advance(params, weights, state, i_in[:, t], sur=sur, smooth_slope=smooth_slope)
        out_v[:, t], out_a[:, t], out_z[:, t] = state.v, state.a, state.z
        out_psi[:, t], out_ref[:, t], out_y[:, t] = psi, refr, state.y
    return Trajectory(out_v, out_a, out_z, out_psi, out_ref, out_y, batched)
