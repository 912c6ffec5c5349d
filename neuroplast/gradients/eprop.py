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
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from neuroplast.gradients.eligibility import eligibility_steps
from neuroplast.gradients.trial import TrialData
from neuroplast.model.dynamics import Trajectory
from neuroplast.model.losses import Loss, as_loss
from neuroplast.model.params import ModelParams
from neuroplast.model.signals import (
    backward_filter,
    output_grads,
    output_grads_batch,
    recurrent_pre,
    side_by_side,
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
    adjoint of the ε^a recursion, and the α-filter of ε^v by its adjoint (the backward α-filter)::

        q^T = 0,   q^s = c^{s+1} + d^{s+1} q^{s+1},   c = −β h,  d = ρ − β ψ
        F = h + ψ q,   G_s = F_s + α G_{s+1},   grad = Gᵀ pre   (= Fᵀ z̄,  z̄ = ε^v = forward α-filter of pre)

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
    h = Lf if reg_signal is None else Lf + np.asarray(reg_signal, dtype=float)[None, :]
    h = np.multiply(h, psi)[:, None]
    ((g,),) = _factorized_batch(params, psi[:, None], h, [[_drive(pre)]])
    return g


#: Presynaptic drives with at most this fraction of nonzero entries (spikes) are contracted as sums of G's
#: rows at their spike times (:func:`_contract`); denser ones by one BLAS product.
SPARSE_FRACTION = 0.1


def _factorized_batch(
    params: ModelParams,
    psi: np.ndarray,
    h: np.ndarray,
    pres: Sequence[Sequence[_Drive]],
    *,
    threads: int = 1,
) -> list[list[np.ndarray]]:
    """The formulas of :func:`factorized_grads` for a batch of B trials and several projections at once.

    Parameters
    ----------
    psi : ndarray, shape (T, B, N)
        Trial b is ``psi[:, b]`` (steps first: each step of the time loop is one slice).
    h : ndarray, shape (T, B, N)
        h = (L̃ + R) ψ of every trial (L̃: the learning signal as it multiplies e_t); overwritten.
    pres : per trial, the presynaptic drives (T, n_pre) of its projections (:func:`_drive`).
    threads : int, optional
        Threads for the contractions (:func:`_each`; the scan is one for the batch).

    Returns
    -------
    list (per trial) of lists (per projection) of ndarrays (N, n_pre)
        Each the same to the bit as :func:`factorized_grads` of that trial and projection alone (with
        the same h): the time loop is elementwise, so a trial's numbers see the same operations in the
        same order whatever B is, and each contraction Gᵀ pre (:func:`_contract`) reads only that trial's
        G and pre.  G is computed once for all projections.
    """
    G = _adjoint_scan(params, psi, h)
    return _each(lambda b: [_contract(G[:, b], pre) for pre in pres[b]], len(pres), threads)


class _Drive(NamedTuple):
    """A presynaptic drive (T, n_pre) by its nonzero entries: presynaptic neuron, step and value of each,
    grouped by neuron with the steps ascending; ``dense`` makes the whole array."""

    cols: np.ndarray
    steps: np.ndarray
    vals: np.ndarray
    shape: tuple[int, int]
    dense: Callable[[], np.ndarray]


def _drive(pre: np.ndarray) -> _Drive:
    """The nonzero entries of ``pre`` (T, n_pre)."""
    pre = np.asarray(pre, dtype=float)
    cols, steps = np.nonzero((pre != 0.0).T)
    return _Drive(cols, steps, pre[steps, cols], pre.shape, lambda: pre)


def _recurrent_drive(params: ModelParams, z: np.ndarray) -> _Drive:
    """:func:`_drive` of ``recurrent_pre(params, z)`` (c_in z_{t−1}) straight from the spikes z (T, N)."""
    z = np.asarray(z, dtype=float)
    cols, steps = np.nonzero((z[:-1] != 0.0).T)
    vals = params.input_scale * z[steps, cols]  # the products recurrent_pre makes, element by element
    return _Drive(cols, steps + 1, vals, z.shape, lambda: recurrent_pre(params, z))


def _contract(G: np.ndarray, pre: _Drive) -> np.ndarray:
    """Gᵀ pre for G (T, N) and a presynaptic drive (T, n_pre): (N, n_pre).

    Spike trains (at most :data:`SPARSE_FRACTION` nonzero) as Σ over each presynaptic neuron's spike steps
    of pre_t G_t, in step order; denser drives by one BLAS matrix product (read in place: a row stride
    changes no sum).  Which form is used, and the order of every sum, depend on ``pre`` alone.
    """
    T, n_pre = pre.shape
    if pre.cols.size > SPARSE_FRACTION * T * n_pre:
        return G.T @ pre.dense()
    out = np.zeros((n_pre, G.shape[1]))
    if pre.cols.size:
        rows = np.multiply(G[pre.steps], pre.vals[:, None])
        counts = np.bincount(pre.cols, minlength=n_pre)
        firing = np.flatnonzero(counts)
        out[firing] = np.add.reduceat(rows, (np.cumsum(counts) - counts)[firing], axis=0)
    return out.T


def _adjoint_scan(params: ModelParams, psi: np.ndarray, h: np.ndarray) -> np.ndarray:
    """G = the backward α-filter of F = h + ψ q (:func:`factorized_grads`) for a batch, in place of h.

    With arrays (T, B, N) (trial b at ``[:, b]``), from t = T down to 1::

        q_t = (ρ − β ψ_{t+1}) q_{t+1} − β h_{t+1},   q_T = 0,   F_t = h_t + ψ_t q_t,   G_t = F_t + α G_{t+1}

    — the adjoint of the ε^a recursion over the adapting neurons only (β ≠ 0; elsewhere q = 0 and F = h)
    and the adjoint of ε^v's α-filter, fused in one loop over (B, ·) slices.  Each element sees exactly
    these multiplies, adds and subtractions in this order (in place, ``out=``), whatever B is.

    Returns
    -------
    ndarray, shape (T, B, N)
        ``h``, now holding G.
    """
    T, B, N = psi.shape
    G = h
    alif = np.flatnonzero(params.beta != 0.0)
    if alif.size == 0:
        sel: slice | np.ndarray | None = None
    elif alif[-1] - alif[0] + 1 == alif.size:
        sel = slice(int(alif[0]), int(alif[-1]) + 1)  # a view of each slice, not a copy
    else:
        sel = alif
    if sel is not None:
        neg_beta, beta, rho = -params.beta[sel], params.beta[sel], params.rho[sel]
        q, c, tmp = np.zeros((B, alif.size)), np.empty((B, alif.size)), np.empty((B, alif.size))
    acc = np.empty((B, N))
    for t in range(T - 1, -1, -1):
        g_t = G[t]
        if sel is not None:
            if t < T - 1:  # q_t from q_{t+1} (q_T = 0) and c = −β h_{t+1}, kept from the step before
                np.subtract(rho, np.multiply(beta, psi[t + 1][:, sel], out=tmp), out=tmp)
                np.add(np.multiply(tmp, q, out=q), c, out=q)
            np.multiply(neg_beta, g_t[:, sel], out=c)  # −β h_t, for q_{t−1}
            if t < T - 1:
                f_a = np.add(g_t[:, sel], np.multiply(psi[t][:, sel], q, out=tmp), out=tmp)
                g_t[:, sel] = f_a
        if t < T - 1:
            np.add(g_t, np.multiply(params.alpha, G[t + 1], out=acc), out=g_t)
    return G


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


def eprop_grads_batch(
    trials: Sequence[TrialData], method: str = "factorized", *, threads: int | None = None
) -> list[dict[str, Any]]:
    """:func:`eprop_grads` of every trial of a batch, each with its own feedback B (``trial.feedback``,
    or W_outᵀ when it has none).

    The trials share the model (``params``), the number of steps and the network sizes; input,
    target, mask, trajectory, weights and B may differ.  With ``"factorized"`` every time scan runs once
    for the whole batch (arrays (B, T, ·)) instead of once per trial and projection, and the result of
    each trial is the same to the bit as ``eprop_grads(trial)`` (see :func:`_factorized_batch`);
    ``"online"`` (no batched form) runs trial by trial.

    Parameters
    ----------
    trials : sequence of TrialData
    method : str, optional
        ``"factorized"`` (default) or ``"online"``.
    threads : int, optional
        Factorized only: the per-trial work (h = (L̃ + R) ψ, the spike lists and the contractions Gᵀ pre)
        of consecutive parts of the batch runs in this many threads (NumPy's loops and BLAS leave Python's
        lock while they run); the time scans stay one for the whole batch.  Each trial's numbers are made
        by the same operations whatever the value: the same to the bit.  Default: one thread per
        :data:`BATCH_TRIALS_PER_THREAD` trials, at most one per available core.

    Returns
    -------
    list of dicts, one per trial, as :func:`eprop_grads`.
    """
    if method not in GRAD_METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(GRAD_METHODS)}")
    trials = list(trials)
    if method != "factorized":
        return [eprop_grads(t, method=method) for t in trials]
    n = _batch_threads(len(trials)) if threads is None else max(1, min(int(threads), len(trials)))
    return _eprop_factorized_batch(trials, [_default_feedback(t) for t in trials], threads=n)


def _each(fn: Callable[[int], Any], n: int, threads: int) -> list[Any]:
    """``[fn(0), …, fn(n − 1)]``, the indices cut into ``threads`` consecutive parts run in threads of their
    own (the calling thread takes the first part)."""
    if threads <= 1 or n <= 1:
        return [fn(i) for i in range(n)]
    bounds = np.linspace(0, n, min(threads, n) + 1).round().astype(int)
    parts = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    pool = _pool()
    later = [pool.submit(lambda part: [fn(i) for i in part], part) for part in parts[1:]]
    out = [fn(i) for i in parts[0]]
    for fut in later:
        out += fut.result()
    return out


#: Trials of a batch per gradient thread in :func:`eprop_grads_batch`'s default (for fewer, handing work
#: to a thread costs about what it gains).
BATCH_TRIALS_PER_THREAD = 8
_POOL: list[ThreadPoolExecutor] = []


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _batch_threads(n_trials: int) -> int:
    return max(1, min(_cores(), n_trials // BATCH_TRIALS_PER_THREAD))


def _pool() -> ThreadPoolExecutor:
    """The process's gradient threads, one fewer than the cores (the caller's thread is the other);
    parts beyond that wait their turn."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max(1, _cores() - 1), thread_name_prefix="neuroplast-grad"))
    return _POOL[0]


def _check_batch(trials: list[TrialData]) -> tuple[int, int]:
    """(T, N) of the batch's non-empty ``trials``, which must share params, steps and sizes."""
    p = trials[0].params
    shape = (trials[0].psi.shape, trials[0].x.shape)
    for t in trials[1:]:
        if not _same_params(t.params, p) or (t.psi.shape, t.x.shape) != shape:
            raise ValueError("the trials of a batch must share params, the number of steps and the sizes")
    return shape[0]


def _default_feedback(trial: TrialData) -> np.ndarray:
    return trial.feedback if trial.feedback is not None else trial.weights.w_out.T


def _same_params(a: ModelParams, b: ModelParams) -> bool:
    return a is b or all(
        np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(ModelParams)
    )


def _eprop_factorized_batch(
    trials: list[TrialData], feedbacks: list[np.ndarray], *, threads: int = 1
) -> list[dict[str, Any]]:
    """Factorized e-prop of each trial with the given B: the trials side by side (arrays (T, B, ·)), one
    backward scan of the readout errors, one adjoint scan (:func:`_adjoint_scan`) for the batch.

    L̃ = c_out ẽrr Bᵀ with ẽrr the backward κ-filter of err (the same numbers as filtering L = c_out err Bᵀ
    up to rounding, at a fraction of the cost: n_out columns are filtered instead of N), and the readout's
    gradients c_out ẽrrᵀ z come from the same ẽrr (:func:`output_grads_batch`)."""
    if not trials:
        return []
    T, N = _check_batch(trials)
    p = trials[0].params
    regs = [t.reg for t in trials]
    with_reg = [r is not None for r in regs]
    if any(with_reg) and not all(with_reg):  # the rate regularizer on some trials only
        return _by_groups(trials, feedbacks, with_reg, threads)
    B = len(trials)
    err_f = backward_filter(np.stack([t.err for t in trials], axis=1), p.kappa)  # (T, B, n_out)
    psi = side_by_side([t.psi for t in trials])
    h = np.empty((T, B, N))

    def prepare(b: int) -> tuple[_Drive, _Drive]:
        """Trial b's h and its presynaptic drives (= t.pre, sparse)."""
        t = trials[b]
        Lf = (p.readout_scale * err_f[:, b]) @ np.asarray(feedbacks[b], dtype=float).T  # L̃, as for B = 1
        if t.reg is not None:
            np.add(Lf, t.reg, out=Lf)
        np.multiply(Lf, psi[:, b], out=h[:, b])
        return _drive(p.input_scale * t.x), _recurrent_drive(p, t.z)

    drives = _each(prepare, B, threads)
    hidden = _factorized_batch(p, psi, h, drives, threads=threads)
    readout = output_grads_batch(p, [t.z for t in trials], [t.err for t in trials], err_filtered=err_f)
    return [
        t.masked({"input": g_in, "recurrent": g_rec, "output": g_out, "bias": g_b})
        for t, (g_in, g_rec), (g_out, g_b) in zip(trials, hidden, readout, strict=True)
    ]


def _by_groups(
    trials: list[TrialData], feedbacks: list[np.ndarray], key: list[bool], threads: int = 1
) -> list[dict[str, Any]]:
    """:func:`_eprop_factorized_batch` of the trials with each value of ``key`` separately (e.g. with and
    without the rate regularizer), in the original order."""
    out: list[dict[str, Any]] = [{} for _ in trials]
    for value in (False, True):
        idx = [b for b, k in enumerate(key) if k == value]
        grads = _eprop_factorized_batch(
            [trials[b] for b in idx], [feedbacks[b] for b in idx], threads=threads
        )
        for b, g in zip(idx, grads, strict=True):
            out[b] = g
    return out
