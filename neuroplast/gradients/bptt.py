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
from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import backward_filter, output_grads

__all__ = ["trial_loss", "bptt_grads", "ideal_learning_signal", "factorization_decomposition"]


def trial_loss(trial: TrialData) -> float:
    """Value of E = E_task(y) + (c_reg/2) Σ_j (f_j − f*)² for one trial.

    Parameters
    ----------
    trial : TrialData
        The simulated trial (readout y, spikes z, target, mask, loss, c_reg, f*).

    Returns
    -------
    float
        [E]; f_j = (1/T) Σ_t z_j^t in spikes per step.
    """
    f = np.asarray(trial.z, dtype=float).mean(axis=0)
    task = float(trial.loss.value(trial.y, trial.target, trial.mask))
    return task + 0.5 * trial.c_reg * float(np.sum((f - trial.f_target) ** 2))


def _direct_signal(trial: TrialData) -> np.ndarray:
    """direct_t = explicit dE/dz_t (T, N) through the readout and the regularizer."""
    p = trial.params
    direct = p.readout_scale * backward_filter(trial.err, p.kappa) @ trial.weights.w_out
    if trial.reg is not None:
        direct = direct + trial.reg[None, :]
    return direct


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


def _adjoints(trial: TrialData, detach_reset: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(direct_t, dv_t, c_in W_recᵀ dv_{t+1}), each (T, N), of the backward pass."""
    direct = _direct_signal(trial)
    dv, rec = _backward(trial.params, trial.weights, trial.psi, direct, detach_reset)
    return direct, dv, rec


def _grads_from_adjoint(trial: TrialData, dv: np.ndarray) -> dict[str, np.ndarray]:
    """dE/dW of every projection from the membrane adjoints dv (T, N); masked."""
    g_in = trial.params.input_scale * dv.T @ trial.x
    g_rec = dv.T @ trial.pre["recurrent"]
    g_out, g_b = output_grads(trial.params, trial.z, trial.err)
    return trial.masked({"input": g_in, "recurrent": g_rec, "output": g_out, "bias": g_b})


def bptt_grads(trial: TrialData, detach_reset: bool = True) -> dict[str, np.ndarray]:
    """Exact gradients of the trial loss :func:`trial_loss` (pseudo-derivative for the spikes).

    Parameters
    ----------
    trial : TrialData
        The simulated trial (its loss, target, mask and the rate regularizer c_reg, f* enter).
    detach_reset : bool
        If True the reset term −v_th z_{t−1} is not differentiated (as in e-prop); False
        gives the true gradient (e.g. against finite differences in the smooth mode).

    Returns
    -------
    dict
        ``input`` (N, n_in), ``recurrent`` (N, N), ``output`` (n_out, N), ``bias``
        (n_out,): dE/dW in units of [E] per unit weight; zero outside the weight masks.
    """
    _, dv, _ = _adjoints(trial, detach_reset)
    return _grads_from_adjoint(trial, dv)


def ideal_learning_signal(trial: TrialData, detach_reset: bool = True) -> dict[str, np.ndarray]:
    """Ideal learning signal L*_j^t = dE/dz_j^t through every path but the neuron's own state.

    Parameters
    ----------
    trial : TrialData
        The simulated trial (the input ``x`` is not read).
    detach_reset : bool
        Selects the adjoints dv used in the recurrent part (see :func:`bptt_grads`); the
        factorization identity Σ_t L*_t e_t = BPTT holds for ``detach_reset=True``.

    Returns
    -------
    dict of ndarray (T, N), units [E] per spike
        ``total`` = ``eprop`` + ``recurrent``, where ``eprop`` = direct_t (readout path,
        κ-filtered, plus the regularizer; what e-prop with B = W_outᵀ keeps) and
        ``recurrent`` = c_in W_recᵀ dv_{t+1} (the paths through other neurons, which
        e-prop drops).  Use with ``filtered=False`` in the e-prop gradient functions.
    """
    direct, _, rec = _adjoints(trial, detach_reset)
    return {"total": direct + rec, "eprop": direct, "recurrent": rec}


def factorization_decomposition(trial: TrialData) -> dict[str, dict[str, Any]]:
    """Split the exact gradient of the input and recurrent weights into e-prop's part and the rest.

    With L* = L^kept + L^rec (see :func:`ideal_learning_signal`) and the eligibility
    traces e_t, the BPTT gradient (reset detached) is Σ_t C^kept_t + Σ_t C^rec_t with the
    per-step contribution matrices C^part_t = L^part_t ⊙ e_t (attributed to the time of the
    learning signal).  Costs O(T·N·n_pre) time (the per-synapse recursion).

    Parameters
    ----------
    trial : TrialData
        The simulated trial.

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
    direct, dv, rec = _adjoints(trial, detach_reset=True)
    exact = _grads_from_adjoint(trial, dv)
    parts = {"kept": direct, "recurrent": rec}
    masks = {"input": trial.weights.mask_in, "recurrent": trial.weights.mask_rec}
    T = trial.z.shape[0]
    out: dict[str, dict[str, Any]] = {}
    for name, wmask in masks.items():
        g = exact[name]
        gnorm = float(np.linalg.norm(g))
        ghat = g / gnorm if gnorm > 0 else np.zeros_like(g)
        res: dict[str, Any] = {"bptt": g}
        for part in parts:
            res[part] = np.zeros_like(g)
            res[f"{part}_norm"] = np.zeros(T)
            res[f"{part}_along"] = np.zeros(T)
        for t, e in eligibility_steps(trial.params, trial.traj, trial.pre[name]):
            e = np.where(wmask, e, 0.0)
            for part, L in parts.items():
                c = L[t][:, None] * e
                res[part] += c
                res[f"{part}_norm"][t] = np.linalg.norm(c)
                res[f"{part}_along"][t] = np.sum(c * ghat)
        out[name] = res
    return out
