"""Learning signals between e-prop and BPTT, and factorized sums over the eligibility traces.

Pure NumPy, one trial, no per-synapse × per-step array (memory O(T·N + N·n_pre)):

* :func:`truncated_learning_signals` — the ideal learning signal L*_t (docs/model.md §3) with the paths
  through the recurrent weights truncated to at most k hops: k = 0 is what e-prop with symmetric feedback
  keeps, k ≥ T − 1 is L* itself (a hop through W_rec takes one step, so no path has more hops);
* :func:`factorized_many` — Σ_t L_t ⊙ e_t for several learning signals L at once (the factorized form of
  :func:`neuroplast.gradients.eprop.factorized_grads`, with ``filtered=False``);
* :func:`eligibility_contract` — u_j^t = Σ_i G_ji e_ji^t, the traces contracted with a fixed matrix G;
* :func:`eligibility_row_norms` — s_j^t = Σ_i M_ji (e_ji^t)², the squared norm of neuron j's traces.

The last two give, for any per-neuron signal D (T, N), the per-step contribution D_t ⊙ e_t to a gradient
as a norm (√Σ_j (D_j^t)² s_j^t) and as a projection on G (Σ_j D_j^t u_j^t) without forming D_t ⊙ e_t.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import ModelParams
from neuroplast.model.signals import direct_signal, forward_filter, linear_scan

__all__ = [
    "truncated_learning_signals",
    "factorized_many",
    "eligibility_contract",
    "eligibility_row_norms",
    "adaptation_adjoint",
    "presynaptic_trace",
]


def truncated_learning_signals(
    trial: TrialData, ks: Sequence[int], *, shortcut: bool = True, full: np.ndarray | None = None
) -> dict[int, np.ndarray]:
    """Ideal learning signal with at most k hops back through W_rec, for every k of ``ks``.

    With direct_t = c_out (backward κ-filtered err)_t W_out + R (the regularizer's signal), level m has
    the adjoints of the full backward pass (reset detached) in which the term c_in W_recᵀ dv_{t+1} is
    taken from level m − 1 (level −1 is 0)::

        L^(m)_t  = direct_t + c_in W_recᵀ dv^(m−1)_{t+1}
        dv^(m)_t = ψ_t (L^(m)_t + da^(m)_{t+1}) + α dv^(m)_{t+1},  da^(m)_t = −β ψ_t (…) + ρ da^(m)_{t+1}

    so L^(0) = direct (symmetric e-prop's signal) and L^(m) = L* for m ≥ T − 1.  One backward sweep
    computes every level (state (K + 1, N), K = max k; time O(T·K·N²)).

    Parameters
    ----------
    trial : TrialData
        The simulated trial.
    ks : sequence of int
        Hop counts (≥ 0).
    shortcut : bool
        If True, levels k ≥ T − 1 are taken from the full adjoint (identical by the argument above,
        and costs one sweep instead of T levels); False runs the level recursion up to max(ks) (tests).
    full : ndarray (T, N), optional
        L* of the trial if already computed (used by the shortcut).

    Returns
    -------
    dict int -> ndarray (T, N)
        L^(k), [E] per spike; multiplies the unfiltered eligibility trace e_t.
    """
    from neuroplast.gradients.bptt import ideal_learning_signal

    ks = [int(k) for k in ks]
    if any(k < 0 for k in ks):
        raise ValueError(f"hop counts must be >= 0, got {ks}")
    p, w = trial.params, trial.weights
    psi = trial.psi
    T, N = psi.shape
    direct = direct_signal(p, trial.err, w.w_out, trial.reg)
    out: dict[int, np.ndarray] = {}
    if shortcut and any(k >= T - 1 for k in ks):
        if full is None:
            full = ideal_learning_signal(trial)["total"]
        out.update({k: full for k in ks if k >= T - 1})
    todo = sorted({k for k in ks if k not in out})
    if not todo:
        return out
    K = todo[-1]
    rows = {k: i for i, k in enumerate(todo)}
    sig = np.empty((len(todo), T, N))
    dv = np.zeros((K + 1, N))
    da = np.zeros((K + 1, N))
    rec = np.zeros((K + 1, N))
    sel = np.asarray(todo)
    for t in range(T - 1, -1, -1):
        rec[1:] = p.input_scale * (dv[:-1] @ w.w_rec)  # c_in W_recᵀ dv^(m−1)_{t+1}
        L = direct[t] + rec
        sig[:, t] = L[sel]
        psi_dz = psi[t] * (L + da)
        dv = psi_dz + p.alpha * dv
        da = -p.beta * psi_dz + p.rho * da
    out.update({k: sig[rows[k]] for k in todo})
    return out


def adaptation_adjoint(params: ModelParams, psi: np.ndarray, h: np.ndarray) -> np.ndarray:
    """F = h + ψ q with q the adjoint of the ε^a recursion (docs/model.md §3), for h (…, T, N).

    q_T = 0, q_t = −β h_{t+1} + (ρ − β ψ_{t+1}) q_{t+1}; then Σ_t h_t ⊙ (ε^v_t − β ε^a_t) = Fᵀ z̄.
    Leading axes of ``h`` are batch axes (the scan runs once for all of them).
    """
    h = np.asarray(h, dtype=float)
    if not np.any(params.beta != 0):
        return h  # LIF only: q = 0
    T = psi.shape[0]
    hm = np.moveaxis(h, -2, 0)  # (T, ..., N)
    c_next = np.zeros_like(hm)
    c_next[:-1] = -params.beta * hm[1:]
    d_next = np.ones((T,) + (1,) * (hm.ndim - 2) + psi.shape[1:])
    d_next[:-1] = np.reshape(params.rho - params.beta * psi[1:], (T - 1,) + (1,) * (hm.ndim - 2) + (-1,))
    q = linear_scan(c_next, d_next, reverse=True, per_step=True)
    psi_b = np.reshape(psi, (T,) + (1,) * (hm.ndim - 2) + psi.shape[1:])
    return np.moveaxis(hm + psi_b * q, 0, -2)


def factorized_many(
    params: ModelParams,
    psi: np.ndarray,
    pre: np.ndarray | None,
    signals: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    zbar: np.ndarray | None = None,
) -> np.ndarray:
    """Σ_t L_t ⊙ e_t (unfiltered traces) for a stack of learning signals, by the factorized form.

    Parameters
    ----------
    params : ModelParams
    psi : ndarray (T, N)
        Pseudo-derivative of the trial.
    pre : ndarray (T, n_pre)
        Presynaptic drive of the projection (c_in x_t or c_in z_{t−1}).
    signals : ndarray (m, T, N)
        Learning signals, [E] per spike.
    mask : ndarray (N, n_pre) of bool, optional
        Synapses that exist; the result is zero elsewhere.
    zbar : ndarray (T, n_pre), optional
        :func:`presynaptic_trace` of ``pre`` if already computed (``pre`` is then not read).

    Returns
    -------
    ndarray (m, N, n_pre)
        One gradient per signal, [E] per unit weight (what ``factorized_grads(..., filtered=False)``
        returns for each signal).
    """
    psi = np.asarray(psi, dtype=float)
    signals = np.asarray(signals, dtype=float)
    F = adaptation_adjoint(params, psi, signals * psi)  # (m, T, N)
    if zbar is None:
        zbar = presynaptic_trace(params, pre)
    m, T, N = F.shape
    F_t = np.ascontiguousarray(np.moveaxis(F, 1, 0)).reshape(T, m * N)  # one GEMM over time
    g = (zbar.T @ F_t).reshape(-1, m, N).transpose(1, 2, 0)
    return np.ascontiguousarray(g) if mask is None else np.where(mask, g, 0.0)


def presynaptic_trace(params: ModelParams, pre: np.ndarray) -> np.ndarray:
    """z̄ = ε^v, the forward α-filter of the presynaptic drive (T, n_pre) (shared by every synapse)."""
    return forward_filter(np.asarray(pre, dtype=float), params.alpha)


def _ea_contract(params: ModelParams, psi: np.ndarray, c: np.ndarray) -> np.ndarray:
    """w_t = (ρ − β ψ_{t−1}) w_{t−1} + ψ_{t−1} c_{t−1}, w_1 = 0: Σ_i G_ji ε^a_ji,t when c = z̄ Gᵀ."""
    T = psi.shape[0]
    x = np.zeros_like(c)
    x[1:] = psi[:-1] * c[:-1]
    decay = np.ones_like(c)
    decay[1:] = params.rho - params.beta * psi[:-1]
    return linear_scan(x, decay, per_step=True) if T else x


def eligibility_contract(
    params: ModelParams,
    psi: np.ndarray,
    pre: np.ndarray | None,
    G: np.ndarray,
    *,
    zbar: np.ndarray | None = None,
) -> np.ndarray:
    """u_j^t = Σ_i G_ji e_ji^t for a fixed matrix G (N, n_pre), without per-synapse state.

    e_ji^t = ψ_j^t (z̄_i,t − β_j ε^a_ji,t) and ε^a is linear in z̄, so u = ψ ⊙ (z̄ Gᵀ − β w) with w the
    ε^a recursion run on the per-neuron drive z̄ Gᵀ.  Zero G entries (absent synapses) drop out.

    ``zbar`` as in :func:`factorized_many`.

    Returns
    -------
    ndarray (T, N)
        [G]·[pre]/[v].
    """
    psi = np.asarray(psi, dtype=float)
    if zbar is None:
        zbar = presynaptic_trace(params, pre)
    c = zbar @ np.asarray(G, dtype=float).T  # (T, N)
    if np.any(params.beta != 0):
        c = c - params.beta * _ea_contract(params, psi, c)
    return psi * c


def eligibility_row_norms(
    params: ModelParams,
    psi: np.ndarray,
    pre: np.ndarray | None,
    mask: np.ndarray,
    *,
    zbar: np.ndarray | None = None,
) -> np.ndarray:
    """s_j^t = Σ_i M_ji (e_ji^t)², the squared norm of neuron j's eligibility traces at step t.

    LIF neurons (β_j = 0): ψ² ⊙ (z̄² Mᵀ), one matrix product.  Adaptive neurons: the ε^a recursion is
    run for their rows only (state (n_alif, n_pre), time O(T·n_alif·n_pre)); no per-step array of
    synapses is kept.  ``zbar`` as in :func:`factorized_many`.

    Returns
    -------
    ndarray (T, N)
        ([pre]/[v])².
    """
    psi = np.asarray(psi, dtype=float)
    mask = np.asarray(mask, dtype=float)
    if zbar is None:
        zbar = presynaptic_trace(params, pre)
    s = psi**2 * ((zbar**2) @ mask.T)
    beta = np.broadcast_to(params.beta, psi.shape[1:])
    rows = np.flatnonzero(beta != 0)
    if rows.size:
        rho = np.broadcast_to(params.rho, psi.shape[1:])[rows][:, None]
        b = beta[rows][:, None]
        m = mask[rows]
        ea = np.zeros((rows.size, zbar.shape[1]))
        psi_prev = np.zeros((rows.size, 1))
        for t in range(psi.shape[0]):
            if t:
                ea = (rho - b * psi_prev) * ea + psi_prev * zbar[t - 1][None, :]
            psi_prev = psi[t, rows][:, None]
            d = zbar[t][None, :] - b * ea
            s[t, rows] = psi_prev[:, 0] ** 2 * np.sum(m * d * d, axis=1)
    return s
