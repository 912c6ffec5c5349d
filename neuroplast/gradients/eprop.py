"""NumPy reference of e-prop for the LIF/ALIF network of :mod:`neuroplast.model.dynamics`.

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

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neuroplast.gradients.eligibility import eligibility_steps
from neuroplast.gradients.trial import TrialData
from neuroplast.model.dynamics import Trajectory
from neuroplast.model.losses import Loss, as_loss
from neuroplast.model.params import ModelParams
from neuroplast.model.signals import (
    forward_filter,
    output_grads,
    output_grads_batch,
    trial_arrays,
)

__all__ = [
    "eligibility_grads",
    "factorized_grads",
    "learning_signal",
    "eprop_grads",
    "eprop_grads_batch",
    "GRAD_METHODS",
]


# --------------------------------------------------------------------------- helpers


def _check_signal(L: np.ndarray, T: int, N: int) -> np.ndarray:
    L = np.asarray(L, dtype=float)
    if L.shape != (T, N):
        raise ValueError(f"learning signal must have shape (T, N) = {(T, N)}, got {L.shape}")
    return L


# --------------------------------------------------------------------------- e-prop


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
        One trial of :func:`neuroplast.model.dynamics.simulate`.
    pre : ndarray, shape (T, n_pre)
        Presynaptic drive (c_in x_t for the input projection, c_in z_{t−1} for the
        recurrent one, see :func:`neuroplast.model.signals.recurrent_pre`).
    L : ndarray, shape (T, N)
        Learning signal per step (units of [E] per spike).
    reg_signal : ndarray, shape (N,), optional
        Constant-in-time learning signal of the rate regularizer
        (:func:`neuroplast.model.signals.reg_signal`); multiplies the unfiltered trace e_t.
    filtered : bool
        If True (e-prop with a leaky readout), ``L`` multiplies the κ-filtered trace ē_t.
        Use False when ``L`` already contains the readout filter (e.g. the ideal
        learning signal dE/dz of :func:`neuroplast.gradients.bptt.ideal_learning_signal`).

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
    zbar = forward_filter(pre, params.alpha)
    R = None if reg_signal is None else np.asarray(reg_signal, dtype=float)[None, :]
    (g,) = _factorized_batch(params, psi[:, None], zbar[:, None], L[:, None], R, [pre.shape[1]], filtered)[0]
    return g


def _factorized_batch(
    params: ModelParams,
    psi: np.ndarray,
    zbar: np.ndarray,
    L: np.ndarray,
    reg: np.ndarray | None,
    widths: Sequence[int],
    filtered: bool = True,
) -> list[list[np.ndarray]]:
    """The formulas of :func:`factorized_grads` for a batch of B trials and several projections at once.

    Parameters
    ----------
    psi : ndarray, shape (T, B, N)
        Trial b is ``psi[:, b]`` (steps first: each step of the time loop is one contiguous slice).
    zbar : ndarray, shape (T, B, ≥ Σ widths)
        z̄ = ε^v, the α-filtered presynaptic drives of the projections side by side (columns
        ``widths[0]`` of the first, then ``widths[1]`` of the second, ...; further columns unused).
    L : ndarray, shape (T, B, N)
    reg : ndarray, shape (B, N), or None
        Rate-regularizer signal R of each trial (all trials or none).
    widths : n_pre of each projection.

    Returns
    -------
    list (per trial) of lists (per projection) of ndarrays (N, n_pre)
        Each the same to the bit as :func:`factorized_grads` of that trial and projection alone: the
        time loop and every other step are elementwise, so a trial's numbers see the same operations in
        the same order, and each contraction Fᵀ z̄ is one BLAS matrix product of (T, ·) arrays of the
        per-trial shapes (read in place, whatever their row stride).  F (so L̃, h and the adjoint q) is
        computed once for all projections.
    """
    F = _adjoint_scan(params, psi, L, reg, filtered)
    edges = np.cumsum([0, *widths])
    cols = list(zip(edges[:-1], edges[1:], strict=True))
    # zbar[:, b, lo:hi] is a (T, width) view with unit column stride: BLAS reads it in place (its row
    # stride is only the leading dimension, which does not change any sum), so no copy per trial.
    return [[F[b].T @ zbar[:, b, lo:hi] for lo, hi in cols] for b in range(len(F))]


def _adjoint_scan(
    params: ModelParams, psi: np.ndarray, L: np.ndarray, reg: np.ndarray | None, filtered: bool
) -> np.ndarray:
    """F = h + ψ q of :func:`factorized_grads` for a batch, in one backward loop over the steps.

    With arrays (T, B, N) (trial b at ``[:, b]``), from t = T down to 1::

        L̃_t = κ L̃_{t+1} + L_t  (L_t if not filtered),   h_t = (L̃_t + R) ψ_t,
        q_t = (ρ − β ψ_{t+1}) q_{t+1} + (−β h_{t+1}),   q_T = 0,   F_t = h_t + ψ_t q_t

    — the backward κ-filter of L and the adjoint scan of the ε^a recursion fused, so that every step
    works on (B, N) slices (no (T, B, N) temporaries).  Each element sees exactly these multiplies,
    adds and subtractions in this order (in place, ``out=``), whatever B is.

    Returns
    -------
    ndarray, shape (B, T, N)
        ``F[b]`` is trial b's F, C-contiguous (T, N).
    """
    T, B, N = psi.shape
    F = np.empty((B, T, N))
    neg_beta = -params.beta
    Lf, q = np.zeros((B, N)), np.zeros((B, N))
    h, h_next, tmp = np.empty((B, N)), np.empty((B, N)), np.empty((B, N))
    for t in range(T - 1, -1, -1):
        if filtered:
            np.add(np.multiply(params.kappa, Lf, out=Lf), L[t], out=Lf)
        else:
            Lf[...] = L[t]
        np.multiply(Lf if reg is None else np.add(Lf, reg, out=h), psi[t], out=h)
        if t < T - 1:  # q_{T} = 0 (the zeros q starts with)
            d = np.subtract(params.rho, np.multiply(params.beta, psi[t + 1], out=tmp), out=tmp)
            np.add(np.multiply(d, q, out=q), np.multiply(neg_beta, h_next, out=tmp), out=q)
        np.add(h, np.multiply(psi[t], q, out=tmp), out=F[:, t])
        h, h_next = h_next, h
    return F


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
    err = np.asarray(as_loss(loss).error(np.asarray(y), np.asarray(target), np.asarray(mask)), dtype=float)
    return _signal(params, err, feedback)


def _signal(params: ModelParams, err: np.ndarray, feedback: np.ndarray) -> np.ndarray:
    """L_t = c_out B err_t from err (T, n_out) and B (N, n_out)."""
    return params.readout_scale * err @ np.asarray(feedback, dtype=float).T


GradFn = Callable[..., np.ndarray]

#: E-prop gradient implementations by name (``eprop_grads(method=...)``).
GRAD_METHODS: dict[str, GradFn] = {
    "factorized": factorized_grads,
    "online": eligibility_grads,
}


def eprop_grads(
    trial: TrialData, feedback: np.ndarray | None = None, method: str = "factorized"
) -> dict[str, Any]:
    """E-prop gradients of one trial for every projection.

    Parameters
    ----------
    trial : TrialData
        The simulated trial (its loss, target, mask and the rate regularizer c_reg, f* enter).
    feedback : ndarray, shape (N, n_out), optional
        Feedback matrix B of the learning signal L_t = c_out B err_t.  Default: ``trial.feedback``,
        or symmetric e-prop B = W_outᵀ when the trial has none.
    method : {"factorized", "online"}
        Implementation (see :data:`GRAD_METHODS`); both give the same numbers.

    Returns
    -------
    dict
        ``input`` (N, n_in), ``recurrent`` (N, N), ``output`` (n_out, N), ``bias`` (n_out,):
        Σ_t L_t ē_t + R Σ_t e_t and the exact readout gradients, in [E] per unit weight; dense
        arrays, zero outside the weight masks.
    """
    if method not in GRAD_METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(GRAD_METHODS)}")
    if feedback is None:
        feedback = _default_feedback(trial)
    if method == "factorized":  # the batched formulas on a batch of one
        return _eprop_factorized_batch([trial], [feedback])[0]
    grad_fn = GRAD_METHODS[method]
    p = trial.params
    L = _signal(p, trial.err, feedback)
    g_in = grad_fn(p, trial.traj, trial.pre["input"], L, reg_signal=trial.reg)
    g_rec = grad_fn(p, trial.traj, trial.pre["recurrent"], L, reg_signal=trial.reg)
    g_out, g_b = output_grads(p, trial.z, trial.err)
    return trial.masked({"input": g_in, "recurrent": g_rec, "output": g_out, "bias": g_b})


def eprop_grads_batch(trials: Sequence[TrialData], method: str = "factorized") -> list[dict[str, Any]]:
    """:func:`eprop_grads` of every trial of a batch, each with its own feedback B (``trial.feedback``,
    or W_outᵀ when it has none).

    The trials share the model (``params``), the number of steps and the network sizes; input,
    target, mask, trajectory, weights and B may differ.  With ``"factorized"`` every time scan runs once
    for the whole batch (arrays (B, T, ·)) instead of once per trial and projection, and the result of
    each trial is the same to the bit as ``eprop_grads(trial)`` (see :func:`_factorized_batch`);
    ``"online"`` (no batched form) runs trial by trial.

    Returns
    -------
    list of dicts, one per trial, as :func:`eprop_grads`.
    """
    if method not in GRAD_METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(GRAD_METHODS)}")
    trials = list(trials)
    if method != "factorized":
        return [eprop_grads(t, method=method) for t in trials]
    return _eprop_factorized_batch(trials, [_default_feedback(t) for t in trials])


def _default_feedback(trial: TrialData) -> np.ndarray:
    return trial.feedback if trial.feedback is not None else trial.weights.w_out.T


def _same_params(a: ModelParams, b: ModelParams) -> bool:
    return a is b or all(
        np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(ModelParams)
    )


def _eprop_factorized_batch(trials: list[TrialData], feedbacks: list[np.ndarray]) -> list[dict[str, Any]]:
    """Factorized e-prop of each trial with the given B: the trials side by side (arrays (T, B, ·)), one
    backward loop (:func:`_adjoint_scan`) and one forward scan for every filter of the batch."""
    if not trials:
        return []
    p = trials[0].params
    shape = (trials[0].psi.shape, trials[0].pre["input"].shape)
    for t in trials[1:]:
        if not _same_params(t.params, p) or (t.psi.shape, t.pre["input"].shape) != shape:
            raise ValueError("the trials of a batch must share params, the number of steps and the sizes")
    regs = [t.reg for t in trials]
    with_reg = [r is not None for r in regs]
    if any(with_reg) and not all(with_reg):  # the rate regularizer on some trials only
        return _by_groups(trials, feedbacks, with_reg)
    (T, N), (_, n_in) = shape
    B = len(trials)
    L, psi = np.empty((T, B, N)), np.empty((T, B, N))
    fwd = np.empty((T, B, n_in + 2 * N))  # [c_in x | c_in z_{t-1} | z]: filtered by α, α and κ
    for b, (t, fb) in enumerate(zip(trials, feedbacks, strict=True)):
        L[:, b] = _signal(p, t.err, fb)
        psi[:, b] = t.psi
        fwd[:, b, :n_in] = t.pre["input"]
        fwd[:, b, n_in : n_in + N] = t.pre["recurrent"]
        fwd[:, b, n_in + N :] = t.z
    # One forward scan for z̄ (both projections) and the readout's z̃: elementwise, so each column gets
    # exactly the multiplies and adds of its own filter.
    decay = np.r_[np.full(n_in + N, p.alpha), np.full(N, p.kappa)]
    filt = forward_filter(fwd, decay)
    hidden = _factorized_batch(p, psi, filt, L, None if regs[0] is None else np.stack(regs), [n_in, N])
    readout = output_grads_batch(p, filt[:, :, n_in + N :], [t.err for t in trials], filtered=True)
    return [
        t.masked({"input": g_in, "recurrent": g_rec, "output": g_out, "bias": g_b})
        for t, (g_in, g_rec), (g_out, g_b) in zip(trials, hidden, readout, strict=True)
    ]


def _by_groups(trials: list[TrialData], feedbacks: list[np.ndarray], key: list[bool]) -> list[dict[str, Any]]:
    """:func:`_eprop_factorized_batch` of the trials with each value of ``key`` separately (e.g. with and
    without the rate regularizer), in the original order."""
    out: list[dict[str, Any]] = [{} for _ in trials]
    for value in (False, True):
        idx = [b for b, k in enumerate(key) if k == value]
        grads = _eprop_factorized_batch([trials[b] for b in idx], [feedbacks[b] for b in idx])
        for b, g in zip(idx, grads, strict=True):
            out[b] = g
    return out
