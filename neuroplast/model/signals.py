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
    "direct_signal",
    "recurrent_pre",
    "reg_signal",
    "output_grads",
    "output_grads_batch",
    "side_by_side",
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


def direct_signal(
    params: ModelParams,
    err: np.ndarray,
    w_out: np.ndarray,
    reg: np.ndarray | None = None,
    *,
    err_filtered: np.ndarray | None = None,
) -> np.ndarray:
    """direct_t = c_out (backward κ-filtered err)_t W_out + R (T, N): dE/dz_t through the readout and the
    rate regularizer — the part of the ideal learning signal that symmetric e-prop keeps, and the start of
    every backward pass (exact BPTT, its truncations, any neuron model's).

    Parameters
    ----------
    err : ndarray, shape (T, n_out)
        dE/dy_t (explicit part, ``loss.error``).
    w_out : ndarray, shape (n_out, N)
    reg : ndarray, shape (N,), optional
        The regularizer's per-neuron signal R_j (units of [E] per spike), or None.
    err_filtered : ndarray, shape (T, n_out), optional
        ``backward_filter(err, params.kappa)`` if already computed (a batch's, in one scan).
    """
    if err_filtered is None:
        err_filtered = backward_filter(err, params.kappa)
    direct = params.readout_scale * err_filtered @ w_out
    return direct if reg is None else direct + reg[None, :]


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


def side_by_side(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The per-trial arrays (T, N) as one array (T, B, N), trial b at ``[:, b]``.

    When the trials are consecutive column blocks of one (T, B·N) array (as a simulation of the trials
    side by side records them), this is a view of that array and nothing is copied; otherwise a stack.
    """
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    first = arrays[0]
    if first.ndim == 2 and len(arrays) > 1:
        T, N = first.shape
        base = first.base
        step = N * first.itemsize
        start = first.__array_interface__["data"][0]
        if (
            base is not None
            and first.strides[1] == first.itemsize
            and all(
                a.base is base
                and a.shape == first.shape
                and a.strides == first.strides
                and a.__array_interface__["data"][0] == start + b * step
                for b, a in enumerate(arrays)
            )
        ):
            # element (t, b, n) is element (t, n) of arrays[b]: the view holds exactly the trials' numbers
            return np.lib.stride_tricks.as_strided(
                first,
                shape=(T, len(arrays), N),
                strides=(first.strides[0], step, first.itemsize),
                writeable=False,
            )
    return np.stack(arrays, axis=1)


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
        Σ_t err_t ⊗ (c_out z̃_t), z̃_t = κ z̃_{t−1} + z_t, computed as c_out Σ_t ẽrr_t ⊗ z_t with ẽrr
        the backward κ-filter of err (the adjoint of z̃'s filter: n_out columns filtered instead of N).
    db : ndarray, shape (n_out,)
        Σ_t err_t b̃_t, b̃_t = κ b̃_{t−1} + 1.
    """
    z = np.asarray(z, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (T, N), got {z.shape}")
    return output_grads_batch(params, [z], [err])[0]


def output_grads_batch(
    params: ModelParams,
    zs: Sequence[np.ndarray],
    errs: Sequence[np.ndarray],
    *,
    err_filtered: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`output_grads` of every trial of a batch, with one time scan for the whole batch.

    Parameters
    ----------
    zs : sequence of B ndarrays, shape (T, N)
        Spikes of each trial.
    errs : sequence of B ndarrays, shape (T, n_out)
        dE/dy_t of each trial.
    err_filtered : ndarray, shape (T, B, n_out), optional
        ``backward_filter(errs stacked on axis 1, params.kappa)`` if already computed.

    Returns
    -------
    list of B ``(dW_out, db)``
        Per trial, the same numbers as :func:`output_grads` of that trial alone, to the bit: the
        filter is elementwise and each product is the same BLAS matrix product of (T, ·) arrays (read in
        place; a row stride changes no sum).
    """
    errs = [np.asarray(e, dtype=float) for e in errs]
    if len(zs) != len(errs):
        raise ValueError(f"{len(zs)} spike trains for {len(errs)} errors")
    if err_filtered is None:
        err_filtered = backward_filter(np.stack(errs, axis=1), params.kappa)
    btil = forward_filter(np.ones(err_filtered.shape[0]), params.kappa)
    out = []
    for b, (z, err) in enumerate(zip(zs, errs, strict=True)):
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[0] != err_filtered.shape[0]:
            raise ValueError(f"z must have shape (T, N) with T = {err_filtered.shape[0]}, got {z.shape}")
        out.append(((params.readout_scale * err_filtered[:, b]).T @ z, err.T @ btil))
    return out
