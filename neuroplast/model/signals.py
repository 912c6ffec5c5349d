"""Per-step signals and filters that every gradient estimator (e-prop, BPTT, the analyses) shares.

Arrays are per trial, steps along axis 0 (index 0 is t = 1); shapes (T, N) for recurrent neurons,
(T, n_out) for the readout.  Pure functions of their arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuroplast.model.dynamics import Trajectory
from neuroplast.model.params import ModelParams

__all__ = [
    "trial_arrays",
    "linear_scan",
    "forward_filter",
    "backward_filter",
    "recurrent_pre",
    "reg_signal",
    "output_grads",
    "output_grads_batch",
]


def trial_arrays(traj: Trajectory) -> dict[str, np.ndarray]:
    """The per-step arrays of a single-trial trajectory, without batch axis.

    Parameters
    ----------
    traj : Trajectory
        Unbatched (arrays (T, ·)) or batched with exactly one trial (arrays (1, T, ·)).

    Returns
    -------
    dict
        ``v, a, z, psi, refractory`` of shape (T, N) and ``y`` of shape (T, n_out); ``v``, ``a`` and
        ``refractory`` are None when the simulation did not record them (only ``z``, ``psi`` and ``y`` are
        always there).
    """
    names = ("v", "a", "z", "psi", "refractory", "y")
    out = {k: None if getattr(traj, k) is None else np.asarray(getattr(traj, k)) for k in names}
    if out["psi"].ndim == 3:
        if out["psi"].shape[0] != 1:
            raise ValueError(f"expected a single trial, got a batch of {out['psi'].shape[0]}")
        out = {k: None if arr is None else arr[0] for k, arr in out.items()}
    if out["psi"].ndim != 2:
        raise ValueError("trajectory arrays must have shape (T, N) or (1, T, N)")
    return out


def linear_scan(
    x: np.ndarray, decay: float | np.ndarray, *, reverse: bool = False, per_step: bool = False
) -> np.ndarray:
    """The first-order linear recursion ``acc ← decay · acc + x_t`` along axis 0, from acc = 0.

    The one time loop behind :func:`forward_filter`, :func:`backward_filter` and the adjoint of the
    ε^a recursion in :func:`neuroplast.gradients.eprop.factorized_grads`.  A batch of trials side by
    side (arrays (T, B, ...)) runs in the same loop; each element sees the same multiply and add as in
    a scan of its trial alone, so every trial's result is the same to the bit.

    Parameters
    ----------
    x : ndarray, shape (T, ...)
    decay : float or ndarray
        Broadcastable to ``x[0]`` (the same every step), or with ``per_step`` of shape (T, ...) with
        ``decay[t]`` used at step t (dimensionless).
    reverse : bool
        Run from t = T down to 1 (anti-causal) instead of from t = 1 up to T.

    Returns
    -------
    ndarray, shape of ``x``
        ``out_t`` is the accumulator after step t.
    """
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    acc = np.zeros(x.shape[1:])
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:  # acc = decay · acc + x_t, written straight into out[t] (a view, also for 1-D x)
        o = out[t, ...]
        np.multiply(decay[t] if per_step else decay, acc, out=o)
        acc = np.add(o, x[t], out=o)
    return out


def forward_filter(x: np.ndarray, decay: float | np.ndarray) -> np.ndarray:
    """Causal exponential filter along axis 0: ``out_t = decay · out_{t−1} + x_t``, out_0 = x_0.

    Parameters
    ----------
    x : ndarray, shape (T, ...)
    decay : float or ndarray broadcastable to ``x[0]`` (dimensionless, per step)
    """
    return linear_scan(x, decay)


def backward_filter(x: np.ndarray, decay: float | np.ndarray) -> np.ndarray:
    """Anti-causal filter along axis 0: ``out_t = x_t + decay · out_{t+1}``, out_{T} = x_{T}.

    This is the adjoint of :func:`forward_filter`: Σ_t a_t (F b)_t = Σ_t (Fᵀ a)_t b_t.
    """
    return linear_scan(x, decay, reverse=True)


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
    z = np.asarray(z, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (T, N), got {z.shape}")
    return output_grads_batch(params, z[:, None], [err])[0]


def output_grads_batch(
    params: ModelParams, z: np.ndarray, errs: Sequence[np.ndarray], *, filtered: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`output_grads` of every trial of a batch, with one time scan for the whole batch.

    Parameters
    ----------
    z : ndarray, shape (T, B, N)
        Spikes of each trial (trial b is ``z[:, b]``).
    errs : sequence of B ndarrays, shape (T, n_out)
        dE/dy_t of each trial.
    filtered : bool
        ``z`` is already z̃ = ``forward_filter(z, params.kappa)`` (e.g. computed in one scan with other
        filters).

    Returns
    -------
    list of B ``(dW_out, db)``
        Per trial, the same numbers as :func:`output_grads` of that trial alone, to the bit: the
        filters are elementwise and each product is the same BLAS matrix product of (T, ·) arrays
        (read in place; a row stride changes no sum).
    """
    z = np.asarray(z, dtype=float)
    if z.ndim != 3 or len(errs) != z.shape[1]:
        raise ValueError(f"z must have shape (T, B, N) with B = {len(errs)} errors, got {z.shape}")
    ztil = z if filtered else forward_filter(z, params.kappa)
    btil = forward_filter(np.ones(z.shape[0]), params.kappa)
    out = []
    for b, err in enumerate(errs):
        err = np.asarray(err, dtype=float)
        out.append((params.readout_scale * err.T @ ztil[:, b], err.T @ btil))
    return out
