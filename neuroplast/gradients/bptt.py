"""Exact backpropagation through time (BPTT) for the NumPy reference network.

The loss of one trial is E = E_task(y) + E_reg with E_reg = (c_reg/2) Σ_j (f_j − f*)²,
f_j = (1/T) Σ_t z_j^t.  The spike nonlinearity is differentiated with the
pseudo-derivative of the trajectory: ∂z_t/∂v_t = ψ_t and ∂z_t/∂a_t = −β ψ_t (exact in
the smooth test mode of :func:`neuroplast.model.dynamics.simulate`).

Backward recursion (steps t = T..1, all adjoints 0 at t = T + 1)::

    direct_t = c_out (backward κ-filtered err)_t W_out + c_reg (f − f*)/T
    dz_t = direct_t + c_in W_recᵀ dv_{t+1} + da_{t+1} [− v_th dv_{t+1} if the reset is kept]
    dv_t = ψ_t dz_t + α dv_{t+1}
    da_t = −β ψ_t dz_t + ρ da_{t+1}

    dE/dW_rec = c_in Σ_t dv_t ⊗ z_{t−1},    dE/dW_in = c_in Σ_t dv_t ⊗ x_t

Memory O(T·N + N²); time O(T·N²).

The ideal learning signal L*_t = direct_t + c_in W_recᵀ dv_{t+1} (dE/dz_t through every
path except the neuron's own state) turns e-prop into BPTT exactly when the reset is
detached (the eligibility traces ignore the reset path): Σ_t L*_t e_t = BPTT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroplast.gradients.eligibility import eligibility_steps
from neuroplast.model.dynamics import Trajectory
from neuroplast.model.losses import Loss, get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import backward_filter, output_grads, recurrent_pre, reg_signal, trial_arrays

__all__ = ["trial_loss", "bptt_grads", "ideal_learning_signal", "factorization_decomposition"]


def trial_loss(
    y: np.ndarray,
    z: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    *,
    c_reg: float = 0.0,
    f_target: float | np.ndarray = 0.0,
) -> float:
    """Value of E = E_task + (c_reg/2) Σ_j (f_j − f*)² for one trial.

    Parameters
    ----------
    y : ndarray (T, n_out)     readout
    z : ndarray (T, N)         spikes
    target : ndarray (T, n_out), mask : ndarray (T,), loss : Loss or str
    c_reg : float              regularization strength
    f_target : float           target rate f* (spikes per step)
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    f = np.asarray(z, dtype=float).mean(axis=0)
    return float(loss.value(y, target, mask)) + 0.5 * c_reg * float(np.sum((f - f_target) ** 2))


def _direct_signal(
    params: ModelParams,
    weights: Weights,
    arr: dict[str, np.ndarray],
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss,
    c_reg: float,
    f_target: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(err (T, n_out), direct_t = explicit dE/dz_t (T, N) through the readout and the regularizer)."""
    err = np.asarray(loss.error(arr["y"], np.asarray(target), np.asarray(mask)), dtype=float)
    direct = params.readout_scale * backward_filter(err, params.kappa) @ weights.w_out
    if c_reg != 0.0:
        direct = direct + reg_signal(arr["z"], c_reg, f_target)[None, :]
    return err, direct


def _backward(
    params: ModelParams,
    weights: Weights,
    psi: np.ndarray,
    direct: np.ndarray,
    detach_reset: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the adjoint recursion; returns dv (T, N) and the through-W_rec part c_in W_recᵀ dv_{t+1}."""
    T, N = psi.shape
    alpha, rho, beta = params.alpha, params.rho, params.beta
    c_in, v_th = params.input_scale, params.v_th
    w_rec = weights.w_rec
    dv = np.empty((T, N))
    rec = np.empty((T, N))
    dv_next = np.zeros(N)
    da_next = np.zeros(N)
    for t in range(T - 1, -1, -1):
        rec_t = c_in * (dv_next @ w_rec)  # c_in W_recᵀ dv_{t+1}
        dz = direct[t] + rec_t + da_next
        if not detach_reset:
            dz = dz - v_th * dv_next
        psi_dz = psi[t] * dz
        dv_next = psi_dz + alpha * dv_next
        da_next = -beta * psi_dz + rho * da_next
        dv[t] = dv_next
        rec[t] = rec_t
    return dv, rec


def bptt_grads(
    params: ModelParams,
    weights: Weights,
    x: np.ndarray,
    traj_single: Trajectory,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    *,
    c_reg: float = 0.0,
    f_target: float | np.ndarray = 0.0,
    detach_reset: bool = True,
) -> dict[str, np.ndarray]:
    """Exact gradients of the trial loss (with the pseudo-derivative for the spikes).

    Parameters
    ----------
    params, weights : ModelParams, Weights
    x : ndarray, shape (T, n_in)
        Input of the trial.
    traj_single : Trajectory
        ``simulate(params, weights, x)`` for this trial (unbatched or a batch of one).
    target : ndarray, shape (T, n_out)
    mask : ndarray, shape (T,)
    loss : Loss or str
    c_reg : float
        Rate-regularization strength ([E] per (spikes/step)²).
    f_target : float or ndarray (N,)
        Target rate (spikes per step).
    detach_reset : bool
        If True the reset term −v_th z_{t−1} is not differentiated (as in e-prop); False
        gives the true gradient (e.g. against finite differences in the smooth mode).

    Returns
    -------
    dict
        ``input`` (N, n_in), ``recurrent`` (N, N), ``output`` (n_out, N), ``bias``
        (n_out,): dE/dW in units of [E] per unit weight; zero outside the weight masks.
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    arr = trial_arrays(traj_single)
    x = np.asarray(x, dtype=float)
    err, direct = _direct_signal(params, weights, arr, target, mask, loss, c_reg, f_target)
    dv, _ = _backward(params, weights, arr["psi"], direct, detach_reset)
    g_in = params.input_scale * dv.T @ x
    g_rec = dv.T @ recurrent_pre(params, arr["z"])
    g_out, g_b = output_grads(params, arr["z"], err)
    return {
        "input": np.where(weights.mask_in, g_in, 0.0),
        "recurrent": np.where(weights.mask_rec, g_rec, 0.0),
        "output": np.where(weights.mask_out, g_out, 0.0),
        "bias": g_b,
    }


def ideal_learning_signal(
    params: ModelParams,
    weights: Weights,
    traj_single: Trajectory,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    *,
    c_reg: float = 0.0,
    f_target: float | np.ndarray = 0.0,
    detach_reset: bool = True,
) -> dict[str, np.ndarray]:
    """Ideal learning signal L*_j^t = dE/dz_j^t through every path but the neuron's own state.

    Parameters
    ----------
    As in :func:`bptt_grads` (the input ``x`` is not needed).  ``detach_reset`` selects
    the adjoints dv used in the recurrent part; the factorization identity
    Σ_t L*_t e_t = BPTT holds for ``detach_reset=True``.

    Returns
    -------
    dict of ndarray (T, N), units [E] per spike
        ``total`` = ``eprop`` + ``recurrent``, where ``eprop`` = direct_t (readout path,
        κ-filtered, plus the regularizer; what e-prop with B = W_outᵀ keeps) and
        ``recurrent`` = c_in W_recᵀ dv_{t+1} (the paths through other neurons, which
        e-prop drops).  Use with ``filtered=False`` in the e-prop gradient functions.
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    arr = trial_arrays(traj_single)
    _, direct = _direct_signal(params, weights, arr, target, mask, loss, c_reg, f_target)
    _, rec = _backward(params, weights, arr["psi"], direct, detach_reset)
    return {"total": direct + rec, "eprop": direct, "recurrent": rec}


def factorization_decomposition(
    params: ModelParams,
    weights: Weights,
    x: np.ndarray,
    traj_single: Trajectory,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    *,
    c_reg: float = 0.0,
    f_target: float | np.ndarray = 0.0,
) -> dict[str, dict[str, Any]]:
    """Split the exact gradient of the input and recurrent weights into e-prop's part and the rest.

    With L* = L^kept + L^rec (see :func:`ideal_learning_signal`) and the eligibility
    traces e_t, the BPTT gradient (reset detached) is Σ_t C^kept_t + Σ_t C^rec_t with the
    per-step contribution matrices C^part_t = L^part_t ⊙ e_t (attributed to the time of the
    learning signal).  Costs O(T·N·n_pre) time (the per-synapse recursion).

    Returns
    -------
    dict
        For ``"input"`` and ``"recurrent"`` a dict with

        ``bptt``, ``kept``, ``recurrent`` : ndarray (N, n_pre)
            Total gradients; ``kept + recurrent == bptt`` (to rounding).
        ``kept_norm``, ``recurrent_norm`` : ndarray (T,)
            Frobenius norm of C^part_t.
        ``kept_along``, ``recurrent_along`` : ndarray (T,)
            ⟨C^part_t, Ĝ⟩ with Ĝ the unit BPTT gradient; Σ_t (kept + recurrent) = ‖bptt‖_F.
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    arr = trial_arrays(traj_single)
    sig = ideal_learning_signal(
        params, weights, traj_single, target, mask, loss, c_reg=c_reg, f_target=f_target
    )
    exact = bptt_grads(params, weights, x, traj_single, target, mask, loss, c_reg=c_reg, f_target=f_target)
    projections = {
        "input": (params.input_scale * np.asarray(x, dtype=float), weights.mask_in),
        "recurrent": (recurrent_pre(params, arr["z"]), weights.mask_rec),
    }
    T = arr["z"].shape[0]
    out: dict[str, dict[str, Any]] = {}
    for name, (pre, wmask) in projections.items():
        g = exact[name]
        gnorm = float(np.linalg.norm(g))
        ghat = g / gnorm if gnorm > 0 else np.zeros_like(g)
        parts = {"kept": sig["eprop"], "recurrent": sig["recurrent"]}
        res: dict[str, Any] = {"bptt": g}
        for part in parts:
            res[part] = np.zeros_like(g)
            res[f"{part}_norm"] = np.zeros(T)
            res[f"{part}_along"] = np.zeros(T)
        for t, e in eligibility_steps(params, traj_single, pre):
            e = np.where(wmask, e, 0.0)
            for part, L in parts.items():
                c = L[t][:, None] * e
                res[part] += c
                res[f"{part}_norm"][t] = np.linalg.norm(c)
                res[f"{part}_along"][t] = np.sum(c * ghat)
        out[name] = res
    return out
