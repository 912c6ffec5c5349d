"""NumPy reference of learning *inside* a trial (``training.update_every_steps = k``).

The trial runs from rest as usual (docs/model.md §6).  The e-prop accumulators of §3 collect

    g_ji = Σ_t L_j^t ē_ji^t      (input, recurrent),   readout and bias as in §3,

and after every k-th step t = k, 2k, … < T the weights take an optimizer step on what was collected
since the previous update, the accumulators restart from 0, and step t + 1 runs with the new
weights.  The eligibility traces ε^v, ε^a, ē and the readout traces z̃, b̃ are properties of the
trajectory and are *not* reset.  The feedback B follows the rule (symmetric: W_outᵀ after every
update; random: fixed; adaptive: the Kolen–Pollack step), with the rule's own Python hooks
(:func:`neuroplast.plasticity.optim.apply_updates`).  What is collected after the last in-trial update, and
the firing-rate regularization term (a property of the whole trial), are returned for the
trial-end update that the trainer applies as in per-trial learning.

This literal step-by-step loop (per-synapse state, O(N · n_pre) per step) is the oracle of the
Brian2 implementation (``Brian2Network(update_every=k)``); it is meant for tests and small nets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroplast.gradients.eligibility import EligibilityTrace
from neuroplast.model.dynamics import NetState, Trajectory, advance
from neuroplast.model.losses import Loss, get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.surrogates import get_surrogate
from neuroplast.plasticity.optim import SGD, apply_updates, trainable

__all__ = ["InTrialResult", "update_steps", "in_trial_learning"]


def update_steps(n_steps: int, every: int) -> np.ndarray:
    """0-based indices of the steps that start with new weights: k, 2k, … < T.

    Parameters
    ----------
    n_steps : int
        Trial length T (steps).
    every : int
        k, steps between in-trial updates (≥ 1).

    Returns
    -------
    ndarray of int64, length (T − 1) // k
        The update after step m·k (1-based) takes effect from 0-based step index m·k on.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1 step, got {every}")
    return np.arange(every, n_steps, every, dtype=np.int64)


@dataclass(frozen=True)
class InTrialResult:
    """One trial with in-trial updates.

    Attributes
    ----------
    traj : Trajectory
        The trajectory (unbatched), simulated with the weights in force at each step.
    starts : ndarray of int (n_segments,)
        First step index of each segment of constant weights: 0, k, 2k, …
    weights : list of Weights
        Weights in force during each segment (``weights[0]`` are the trial's initial weights).
    feedback : list of ndarray (N, n_out)
        Effective feedback B during each segment.
    feedback_state : ndarray (N, n_out)
        The rule's B state after the last in-trial update.
    grads : dict
        Gradient estimate accumulated after the last in-trial update (``input``, ``recurrent``,
        ``output``, ``bias``; dense, masked; without regularization).
    esum : dict
        Σ_t e_t over the whole trial (``input``, ``recurrent``), for the regularization term.
    """

    traj: Trajectory
    starts: np.ndarray
    weights: list[Weights]
    feedback: list[np.ndarray]
    feedback_state: np.ndarray
    grads: dict[str, np.ndarray]
    esum: dict[str, np.ndarray]


def in_trial_learning(
    params: ModelParams,
    weights: Weights,
    x: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    loss: Loss | str,
    rule: Any,
    feedback_state: np.ndarray,
    *,
    every: int,
    learning_rate: float | None = None,
    optimizer: Any = None,
    train_output: bool = True,
) -> InTrialResult:
    """Simulate one trial from rest, applying an optimizer step after every ``every`` steps.

    Parameters
    ----------
    params : ModelParams
    weights : Weights
        Weights at the start of the trial.
    x : ndarray (T, n_in)
        Input spikes.
    target : ndarray (T, n_out)
        y* or one-hot π*.
    mask : ndarray (T,)
        Recall-window mask (losses that read it).
    loss : Loss or str
    rule : Rule
        Supplies ``feedback``, ``adjust_updates`` and ``after_update``.
    feedback_state : ndarray (N, n_out)
        The rule's B state at the start of the trial.
    every : int
        k, steps between updates.
    learning_rate : float, optional
        SGD step size η ([weight] per unit gradient), when no ``optimizer`` is given.
    optimizer : optional
        An optimizer of :data:`neuroplast.plasticity.optim.OPTIMIZERS` (e.g. ``Adam``); its ``step`` gives
        every update and its state (moments, step count) advances in place.
    train_output : bool
        If false the readout weights and bias receive no gradient step (as ``training.train_output``).

    Returns
    -------
    InTrialResult
    """
    if optimizer is None:
        if learning_rate is None:
            raise ValueError("give learning_rate (SGD) or an optimizer")
        optimizer = SGD(learning_rate)

    loss = get_loss(loss) if isinstance(loss, str) else loss
    x = np.asarray(x, dtype=float)
    target = np.asarray(target, dtype=float)
    mask = np.asarray(mask, dtype=float)
    T = x.shape[0]
    N, n_in, n_out = params.n_rec, weights.n_in, weights.n_out
    sur = get_surrogate(params.surrogate)
    c_in, c_out, kappa = params.input_scale, params.readout_scale, params.kappa
    boundaries = set(update_steps(T, every).tolist())

    W = weights
    fb_state = np.array(feedback_state, dtype=float, copy=True)
    B = rule.feedback(W, fb_state)
    seg_w, seg_b, starts = [W], [B], [0]
    tr = {"input": EligibilityTrace(params, n_in), "recurrent": EligibilityTrace(params, N)}
    ebar = {"input": np.zeros((N, n_in)), "recurrent": np.zeros((N, N))}
    esum = {"input": np.zeros((N, n_in)), "recurrent": np.zeros((N, N))}

    def zero_grads() -> dict[str, np.ndarray]:
        return {
            "input": np.zeros((N, n_in)),
            "recurrent": np.zeros((N, N)),
            "output": np.zeros((n_out, N)),
            "bias": np.zeros(n_out),
        }

    g = zero_grads()
    zout = np.zeros(N)
    bf = 0.0
    out = {k: np.empty((T, N)) for k in ("v", "a", "z", "psi")}
    out_ref = np.empty((T, N), dtype=bool)
    out_y = np.empty((T, n_out))
    state = NetState.rest(1, N, n_out)
    for t in range(T):
        if t in boundaries:
            ups = optimizer.step(trainable(_masked(g, W), train_output))
            W, fb_state, _ = apply_updates(rule, W, fb_state, ups)
            B = rule.feedback(W, fb_state)
            seg_w.append(W)
            seg_b.append(B)
            starts.append(t)
            g = zero_grads()
        z_prev = state.z[0]
        state, psi, refr = advance(params, W, state, (W.w_in @ x[t])[None], sur=sur)
        z_t, psi_t = state.z[0], psi[0]
        out["v"][t], out["a"][t], out["z"][t], out["psi"][t] = state.v[0], state.a[0], z_t, psi_t
        out_ref[t], out_y[t] = refr[0], state.y[0]
        err = np.asarray(loss.error(state.y, target[t][None], mask[t : t + 1]), dtype=float)[0]
        L = c_out * (B @ err)
        for name, pre in (("input", c_in * x[t]), ("recurrent", c_in * z_prev)):
            e = tr[name].advance(psi_t, pre)
            ebar[name] = kappa * ebar[name] + e
            g[name] += L[:, None] * ebar[name]
            esum[name] += e
        zout = kappa * zout + z_t
        g["output"] += c_out * err[:, None] * zout[None, :]
        bf = kappa * bf + 1.0
        g["bias"] += err * bf
    grads = _masked(g, W)
    esum = _masked(esum, W)
    traj = Trajectory(out["v"], out["a"], out["z"], out["psi"], out_ref, out_y, batched=False)
    return InTrialResult(traj, np.asarray(starts, dtype=np.int64), seg_w, seg_b, fb_state, grads, esum)


def _masked(g: dict[str, np.ndarray], w: Weights) -> dict[str, np.ndarray]:
    """Gradients with zeros where there is no synapse (the optimizer never sees absent synapses)."""
    masks = {"input": w.mask_in, "recurrent": w.mask_rec, "output": w.mask_out}
    return {k: (np.where(masks[k], v, 0.0) if k in masks else v) for k, v in g.items()}
