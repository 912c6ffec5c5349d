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

from collections.abc import Sequence
from typing import Any

import numpy as np

from neuroplast.gradients.eligibility import eligibility_steps
from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import backward_filter, direct_signal, output_grads, output_grads_batch

__all__ = [
    "trial_loss",
    "bptt_grads",
    "bptt_grads_batch",
    "ideal_learning_signal",
    "factorization_decomposition",
]


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


def _direct_signal(trial: TrialData, err_filtered: np.ndarray | None = None) -> np.ndarray:
    """:func:`~neuroplast.model.signals.direct_signal` of a trial (T, N)."""
    return direct_signal(trial.params, trial.err, trial.weights.w_out, trial.reg, err_filtered=err_filtered)


def _backward(
    params: ModelParams,
    weights: Weights,
    psi: np.ndarray,
    direct: np.ndarray,
    detach_reset: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the adjoint recursion; returns dv (T, N) and the through-W_rec part c_in W_recᵀ dv_{t+1}
    (``psi`` and ``direct`` of a batch (T, B, N): both (T, B, N), see :func:`bptt_grads_batch`)."""
    T = psi.shape[0]
    alpha, rho, beta = params.alpha, params.rho, params.beta
    c_in, v_th = params.input_scale, params.v_th
    w_rec = weights.w_rec
    dv = np.empty(psi.shape)
    rec = np.empty(psi.shape)
    dv_next = np.zeros(psi.shape[1:])
    da_next = np.zeros(psi.shape[1:])
    for t in range(T - 1, -1, -1):
        rec_t = c_in * _times_w_rec(dv_next, w_rec)  # c_in W_recᵀ dv_{t+1}
        dz = direct[t] + rec_t + da_next
        if not detach_reset:
            dz = dz - v_th * dv_next
        psi_dz = psi[t] * dz
        dv_next = psi_dz + alpha * dv_next
        da_next = -beta * psi_dz + rho * da_next
        dv[t] = dv_next
        rec[t] = rec_t
    return dv, rec


def _times_w_rec(dv: np.ndarray, w_rec: np.ndarray) -> np.ndarray:
    """``dv @ w_rec`` for one trial's dv (N,) or a batch's (B, N), each row the same vector-matrix product
    (BLAS gemv) as for that trial alone: a stacked matmul of (B, 1, N) rows, not one matrix product (gemm),
    which sums in another order."""
    if dv.ndim == 1:
        return dv @ w_rec
    return np.matmul(dv[:, None, :], w_rec)[:, 0, :]


def _adjoints(trial: TrialData, detach_reset: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(direct_t, dv_t, c_in W_recᵀ dv_{t+1}), each (T, N), of the backward pass."""
    direct = _direct_signal(trial)
    dv, rec = _backward(trial.params, trial.weights, trial.psi, direct, detach_reset)
    return direct, dv, rec


def _grads_from_adjoint(
    trial: TrialData, dv: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """dE/dW of every projection from the membrane adjoints dv (T, N); masked.  ``out``: the readout's
    ``output_grads`` if already computed (a batch's, :func:`bptt_grads_batch`)."""
    g_in = trial.params.input_scale * dv.T @ trial.x
    g_rec = dv.T @ trial.pre["recurrent"]
    g_out, g_b = output_grads(trial.params, trial.z, trial.err) if out is None else out
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


def bptt_grads_batch(trials: Sequence[TrialData], detach_reset: bool = True) -> list[dict[str, np.ndarray]]:
    """:func:`bptt_grads` of every trial of a batch, with one backward time loop for the whole batch.

    Trials of equal length that share the parameters and the weights (one iteration's batch) run their
    adjoint recursions side by side, (B, N) arrays instead of B loops over T steps: per trial the same
    elementwise operations and the same vector-matrix product W_recᵀ dv (see :func:`_times_w_rec`), so the
    result is :func:`bptt_grads` of each trial to the bit (tests/gradients/test_eprop_batch.py); other batches
    fall back to one trial at a time.

    Parameters
    ----------
    trials : sequence of TrialData
    detach_reset : bool
        As in :func:`bptt_grads`.

    Returns
    -------
    list of dict
        Per trial, what :func:`bptt_grads` returns.
    """
    trials = list(trials)
    if len(trials) < 2 or any(
        t.params is not trials[0].params
        or t.weights is not trials[0].weights
        or t.psi.shape != trials[0].psi.shape
        for t in trials
    ):
        return [bptt_grads(t, detach_reset) for t in trials]
    first = trials[0]
    p, errs = first.params, [t.err for t in trials]
    # the readout error's κ-filter of every trial in one scan (elementwise: each trial's to the bit)
    err_f = backward_filter(np.stack(errs, axis=1), p.kappa)  # (T, B, n_out)
    direct = np.stack([_direct_signal(t, err_f[:, b]) for b, t in enumerate(trials)], axis=1)  # (T, B, N)
    psi = np.stack([t.psi for t in trials], axis=1)
    dv, _ = _backward(p, first.weights, psi, direct, detach_reset)
    outs = output_grads_batch(p, [t.z for t in trials], errs, err_filtered=err_f)
    # each trial's dv as its own C-ordered (T, N) array: the products below then read it as bptt_grads does
    return [_grads_from_adjoint(t, np.ascontiguousarray(dv[:, b]), outs[b]) for b, t in enumerate(trials)]


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
