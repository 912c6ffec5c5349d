"""NumPy reference of e-prop for the LIF/ALIF network of :mod:`neuroplast.model.reference`.

Two implementations of the same gradient estimate are given:

* :func:`eligibility_grads`, the literal per-synapse recursion of Bellec et al. (2020)
  ("online" e-prop, O(N · n_pre) state per step);
* :func:`factorized_grads`, an algebraically identical form without per-synapse state
  (O(T · (N + n_pre)) memory plus one matrix product), used as a fast checker.

Notation (per trial, steps t = 1..T, array index 0 is t = 1)::

    pre_t        presynaptic drive of the projection (c_in x_t, or c_in z_{t-1} with z_0 = 0)
    ε^v_t      = α ε^v_{t-1} + pre_t                                     (per presynaptic i)
    ε^a_t      = (ρ_j − β_j ψ_{t-1}) ε^a_{t-1} + ψ_{t-1} ε^v_{t-1},  ε^a_1 = 0  (per synapse)
    e_t        = ψ_t (ε^v_t − β ε^a_t)                                   (eligibility trace)
    ē_t        = κ ē_{t-1} + e_t                                         (readout-filtered)
    dE/dW_ji  ≈ Σ_t L_j^t ē_ji^t + R_j Σ_t e_ji^t

with L_t = c_out B err_t the learning signal (B: feedback matrix, err = dE/dy) and
R_j = c_reg (f_j − f*) / T the learning signal of the firing-rate regularizer.

The reset term −v_th z_{t−1} of the membrane is not differentiated (it is part of the
neuron's own state and e-prop drops it), as in the reference e-prop code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from neuroplast.model.losses import Loss, get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.reference import Trajectory

__all__ = [
    "trial_arrays",
    "forward_filter",
    "backward_filter",
    "recurrent_pre",
    "eligibility_steps",
    "EligibilityTrace",
    "eligibility_grads",
    "factorized_grads",
    "learning_signal",
    "reg_signal",
    "output_grads",
    "eprop_trial_grads",
    "GRAD_METHODS",
]


# --------------------------------------------------------------------------- helpers


def trial_arrays(traj: Trajectory) -> dict[str, np.ndarray]:
    """The per-step arrays of a single-trial trajectory, without batch axis.

    Parameters
    ----------
    traj : Trajectory
        Unbatched (arrays (T, ·)) or batched with exactly one trial (arrays (1, T, ·)).

    Returns
    -------
    dict
        ``v, a, z, psi, refractory`` of shape (T, N) and ``y`` of shape (T, n_out).
    """
    names = ("v", "a", "z", "psi", "refractory", "y")
    out = {k: np.asarray(getattr(traj, k)) for k in names}
    if out["v"].ndim == 3:
        if out["v"].shape[0] != 1:
            raise ValueError(f"expected a single trial, got a batch of {out['v'].shape[0]}")
        out = {k: arr[0] for k, arr in out.items()}
    if out["v"].ndim != 2:
        raise ValueError("trajectory arrays must have shape (T, N) or (1, T, N)")
    return out


def forward_filter(x: np.ndarray, decay: float | np.ndarray) -> np.ndarray:
    """Causal exponential filter along axis 0: ``out_t = decay · out_{t−1} + x_t``, out_0 = x_0.

    Parameters
    ----------
    x : ndarray, shape (T, ...)
    decay : float or ndarray broadcastable to ``x[0]`` (dimensionless, per step)
    """
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    acc = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        acc = decay * acc + x[t]
        out[t] = acc
    return out


def backward_filter(x: np.ndarray, decay: float | np.ndarray) -> np.ndarray:
    """Anti-causal filter along axis 0: ``out_t = x_t + decay · out_{t+1}``, out_{T} = x_{T}.

    This is the adjoint of :func:`forward_filter`: Σ_t a_t (F b)_t = Σ_t (Fᵀ a)_t b_t.
    """
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    acc = np.zeros(x.shape[1:])
    for t in range(x.shape[0] - 1, -1, -1):
        acc = x[t] + decay * acc
        out[t] = acc
    return out


def recurrent_pre(params: ModelParams, z: np.ndarray) -> np.ndarray:
    """Presynaptic drive of the recurrent projection, ``pre_t = c_in z_{t−1}`` with z_0 = 0.

    Parameters
    ----------
    z : ndarray, shape (T, N)
        Spikes of the trial (0/1, dimensionless).

    Returns
    -------
    ndarray, shape (T, N)
    """
    z = np.asarray(z, dtype=float)
    pre = np.zeros_like(z)
    pre[1:] = z[:-1]
    return params.input_scale * pre


def _check_signal(L: np.ndarray, T: int, N: int) -> np.ndarray:
    L = np.asarray(L, dtype=float)
    if L.shape != (T, N):
        raise ValueError(f"learning signal must have shape (T, N) = {(T, N)}, got {L.shape}")
    return L


# --------------------------------------------------------------------------- e-prop


def eligibility_steps(
    params: ModelParams, traj_single: Trajectory, pre: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, e_t)`` with the per-synapse eligibility traces e_t, shape (N, n_pre).

    The literal forward recursion of the module docstring; ``e_t`` is in units of
    [pre]/[v] (ψ times a filtered presynaptic drive); a fresh array is yielded each step.

    Parameters
    ----------
    params : ModelParams
    traj_single : Trajectory
        One trial (see :func:`trial_arrays`); only ``psi`` is read.
    pre : ndarray, shape (T, n_pre)
        Presynaptic drive per step (c_in x_t or c_in z_{t−1}).
    """
    psi = trial_arrays(traj_single)["psi"]
    pre = np.asarray(pre, dtype=float)
    T, N = psi.shape
    if pre.ndim != 2 or pre.shape[0] != T:
        raise ValueError(f"pre must have shape (T={T}, n_pre), got {pre.shape}")
    trace = EligibilityTrace(params, pre.shape[1])
    for t in range(T):
        yield t, trace.advance(psi[t], pre[t])


class EligibilityTrace:
    """The per-synapse eligibility recursion of one projection, advanced one step at a time.

    Holds ε^v_{t−1} (per presynaptic neuron), ε^a_{t−1} (per synapse) and ψ_{t−1}; used by
    :func:`eligibility_steps` and by the in-trial learning reference, which needs e_t as soon as
    step t is simulated.

    Parameters
    ----------
    params : ModelParams
    n_pre : int
        Number of presynaptic neurons.
    """

    def __init__(self, params: ModelParams, n_pre: int) -> None:
        self.alpha = params.alpha
        self.rho = params.rho[:, None]
        self.beta = params.beta[:, None]
        self.ev = np.zeros(n_pre)  # ε^v_{t-1}: shared by all postsynaptic neurons (α is a scalar)
        self.ea = np.zeros((params.n_rec, n_pre))  # ε^a_{t-1}
        self.psi_prev = np.zeros((params.n_rec, 1))

    def advance(self, psi_t: np.ndarray, pre_t: np.ndarray) -> np.ndarray:
        """e_t (N, n_pre) from ψ_t (N,) and the presynaptic drive pre_t (n_pre,); a fresh array."""
        self.ea = (self.rho - self.beta * self.psi_prev) * self.ea + self.psi_prev * self.ev[None, :]
        self.ev = self.alpha * self.ev + pre_t
        psi_col = np.asarray(psi_t, dtype=float)[:, None]
        self.psi_prev = psi_col
        return psi_col * (self.ev[None, :] - self.beta * self.ea)


def eligibility_grads(
    params: ModelParams,
    traj_single: Trajectory,
    pre: np.ndarray,
    L: np.ndarray,
    *,
    reg_signal: np.ndarray | None = None,
    filtered: bool = True,
) -> np.ndarray:
    """E-prop gradient of one projection by the literal per-synapse recursion.

    Parameters
    ----------
    params : ModelParams
    traj_single : Trajectory
        One trial of :func:`neuroplast.model.reference.simulate`.
    pre : ndarray, shape (T, n_pre)
        Presynaptic drive (c_in x_t for the input projection, c_in z_{t−1} for the
        recurrent one, see :func:`recurrent_pre`).
    L : ndarray, shape (T, N)
        Learning signal per step (units of [E] per spike).
    reg_signal : ndarray, shape (N,), optional
        Constant-in-time learning signal of the rate regularizer (see :func:`reg_signal`);
        multiplies the unfiltered trace e_t.
    filtered : bool
        If True (e-prop with a leaky readout), ``L`` multiplies the κ-filtered trace ē_t.
        Use False when ``L`` already contains the readout filter (e.g. the ideal
        learning signal dE/dz of :func:`neuroplast.reference.bptt.ideal_learning_signal`).

    Returns
    -------
    ndarray, shape (N, n_pre)
        Σ_t L_j^t ē_ji^t + R_j Σ_t e_ji^t, in units of [E] per unit weight.
    """
    psi = trial_arrays(traj_single)["psi"]
    T, N = psi.shape
    L = _check_signal(L, T, N)
    pre = np.asarray(pre, dtype=float)
    grad = np.zeros((N, pre.shape[1]))
    ebar = np.zeros_like(grad)
    kappa = params.kappa if filtered else 0.0
    R = None if reg_signal is None else np.asarray(reg_signal, dtype=float)[:, None]
    for t, e in eligibility_steps(params, traj_single, pre):
        ebar = kappa * ebar + e
        grad += L[t][:, None] * ebar
        if R is not None:
            grad += R * e
    return grad


def factorized_grads(
    params: ModelParams,
    traj_single: Trajectory,
    pre: np.ndarray,
    L: np.ndarray,
    *,
    reg_signal: np.ndarray | None = None,
    filtered: bool = True,
) -> np.ndarray:
    """The gradient of :func:`eligibility_grads` without per-synapse state.

    Since ε^v depends only on the presynaptic neuron and ε^a is linear in ε^v, the sum
    Σ_t h_j^t (ε^v_ji,t − β_j ε^a_ji,t), h_j^t = (L̃_j^t + R_j) ψ_j^t, is rewritten by the
    adjoint of the ε^a recursion::

        q^T = 0,   q^s = c^{s+1} + d^{s+1} q^{s+1},   c = −β h,  d = ρ − β ψ
        F = h + ψ q,       grad = Fᵀ z̄,   z̄ = ε^v = forward α-filter of pre

    with L̃ the backward κ-filter of L (L̃_t = L_t + κ L̃_{t+1}) if ``filtered``
    (Σ_t L_t ē_t = Σ_t L̃_t e_t), else L itself.

    Parameters and return value as in :func:`eligibility_grads`; cost O(T·N·n_pre) flops
    in one matrix product and O(T·(N + n_pre)) memory.
    """
    psi = trial_arrays(traj_single)["psi"]
    T, N = psi.shape
    L = _check_signal(L, T, N)
    pre = np.asarray(pre, dtype=float)
    if pre.ndim != 2 or pre.shape[0] != T:
        raise ValueError(f"pre must have shape (T={T}, n_pre), got {pre.shape}")
    Lf = backward_filter(L, params.kappa) if filtered else L
    if reg_signal is not None:
        Lf = Lf + np.asarray(reg_signal, dtype=float)[None, :]
    h = Lf * psi
    c = -params.beta * h
    d = params.rho - params.beta * psi
    q = np.zeros((T, N))
    for s in range(T - 2, -1, -1):
        q[s] = c[s + 1] + d[s + 1] * q[s + 1]
    F = h + psi * q
    zbar = forward_filter(pre, params.alpha)
    return F.T @ zbar


def learning_signal(
    params: ModelParams,
    y: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    feedback: np.ndarray,
) -> np.ndarray:
    """E-prop learning signal L_t = c_out B err_t (unfiltered in time).

    Parameters
    ----------
    y : ndarray, shape (T, n_out)
        Readout of the trial.
    target : ndarray, shape (T, n_out)
        Regression target or one-hot label per step.
    mask : ndarray, shape (T,)
        Recall window (1 = counted), used by losses that read it.
    loss : Loss or str
    feedback : ndarray, shape (N, n_out)
        Feedback matrix B (symmetric e-prop: ``W_out.T``; random e-prop: fixed random).

    Returns
    -------
    ndarray, shape (T, N)
        Units of [E] per spike.
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    err = np.asarray(loss.error(np.asarray(y), np.asarray(target), np.asarray(mask)), dtype=float)
    return params.readout_scale * err @ np.asarray(feedback, dtype=float).T


def reg_signal(z: np.ndarray, c_reg: float, f_target: float | np.ndarray) -> np.ndarray:
    """Learning signal of E_reg = (c_reg/2) Σ_j (f_j − f*)², i.e. dE_reg/dz_j^t.

    Parameters
    ----------
    z : ndarray, shape (T, N)
        Spikes of the trial.
    c_reg : float
        Regularization strength ([E] per (spikes/step)²).
    f_target : float or ndarray (N,)
        Target rate f* in spikes per step.

    Returns
    -------
    ndarray, shape (N,)
        c_reg (f_j − f*) / T, constant over the trial, with f_j = (1/T) Σ_t z_j^t.
    """
    z = np.asarray(z, dtype=float)
    T = z.shape[0]
    f = z.mean(axis=0)
    return c_reg * (f - f_target) / T


def output_grads(params: ModelParams, z: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact gradients of the readout weights and bias (local to the readout).

    Parameters
    ----------
    z : ndarray, shape (T, N)
        Spikes of the trial.
    err : ndarray, shape (T, n_out)
        dE/dy_t (explicit part, ``loss.error``).

    Returns
    -------
    dW_out : ndarray, shape (n_out, N)
        Σ_t err_t ⊗ (c_out z̃_t), z̃_t = κ z̃_{t−1} + z_t.
    db : ndarray, shape (n_out,)
        Σ_t err_t b̃_t, b̃_t = κ b̃_{t−1} + 1.
    """
    err = np.asarray(err, dtype=float)
    ztil = forward_filter(z, params.kappa)
    btil = forward_filter(np.ones(err.shape[0]), params.kappa)
    return params.readout_scale * err.T @ ztil, err.T @ btil


GradFn = Callable[..., np.ndarray]

#: E-prop gradient implementations by name (``eprop_trial_grads(method=...)``).
GRAD_METHODS: dict[str, GradFn] = {
    "factorized": factorized_grads,
    "online": eligibility_grads,
}


def eprop_trial_grads(
    params: ModelParams,
    weights: Weights,
    x: np.ndarray,
    traj_single: Trajectory,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    feedback: np.ndarray,
    c_reg: float = 0.0,
    f_target: float | np.ndarray = 0.0,
    method: str = "factorized",
) -> dict[str, Any]:
    """E-prop gradients of one trial for every projection.

    Parameters
    ----------
    params, weights : ModelParams, Weights
    x : ndarray, shape (T, n_in)
        Input of the trial.
    traj_single : Trajectory
        ``simulate(params, weights, x)`` (one trial).
    target, mask, loss
        See :func:`learning_signal`.
    feedback : ndarray, shape (N, n_out)
        Feedback matrix B.
    c_reg, f_target : float
        Rate regularization strength and target rate (spikes per step).
    method : {"factorized", "online"}
        Implementation (see :data:`GRAD_METHODS`); both give the same numbers.

    Returns
    -------
    dict
        ``input`` (N, n_in), ``recurrent`` (N, N), ``output`` (n_out, N), ``bias`` (n_out,);
        dense arrays, zero outside the weight masks.
    """
    try:
        grad_fn = GRAD_METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; known: {sorted(GRAD_METHODS)}") from None
    loss = get_loss(loss) if isinstance(loss, str) else loss
    arr = trial_arrays(traj_single)
    x = np.asarray(x, dtype=float)
    err = np.asarray(loss.error(arr["y"], np.asarray(target), np.asarray(mask)), dtype=float)
    L = params.readout_scale * err @ np.asarray(feedback, dtype=float).T
    R = reg_signal(arr["z"], c_reg, f_target) if c_reg != 0.0 else None
    g_in = grad_fn(params, traj_single, params.input_scale * x, L, reg_signal=R)
    g_rec = grad_fn(params, traj_single, recurrent_pre(params, arr["z"]), L, reg_signal=R)
    g_out, g_b = output_grads(params, arr["z"], err)
    return {
        "input": np.where(weights.mask_in, g_in, 0.0),
        "recurrent": np.where(weights.mask_rec, g_rec, 0.0),
        "output": np.where(weights.mask_out, g_out, 0.0),
        "bias": g_b,
    }
