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
from neuroplast.gradients.trial import mask_grads
from neuroplast.model.dynamics import NetState, Trajectory, advance
from neuroplast.model.losses import Loss, as_loss
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
    loss = as_loss(loss)
    x, target, mask = (np.asarray(a, dtype=float) for a in (x, target, mask))
    T, N, n_out = x.shape[0], params.n_rec, weights.n_out
    sur = get_surrogate(params.surrogate)
    boundaries = set(update_steps(T, every).tolist())
    seg = _Segments(rule, optimizer, train_output, weights, feedback_state)
    acc = _Accumulators(params, weights.n_in, n_out)
    rec = _Recorder(T, N, n_out)
    state = NetState.rest(1, N, n_out)
    for t in range(T):
        if t in boundaries:
            seg.update(t, acc.grads)
            acc.restart()
        z_prev, W = state.z[0], seg.weights[-1]
        state, psi, refr = advance(params, W, state, (W.w_in @ x[t])[None], sur=sur)
        rec.record(t, state, psi, refr)
        err = np.asarray(loss.error(state.y, target[t][None], mask[t : t + 1]), dtype=float)[0]
        acc.step(psi[0], state.z[0], x[t], z_prev, err, seg.feedback[-1])
    grads, esum = mask_grads(seg.weights[-1], acc.grads), mask_grads(seg.weights[-1], acc.esum)
    starts = np.asarray(seg.starts, dtype=np.int64)
    return InTrialResult(rec.trajectory(), starts, seg.weights, seg.feedback, seg.state, grads, esum)


class _Segments:
    """Segments of constant weights: the weights and feedback B in force in each, and the rule's B state.

    :meth:`update` applies one optimizer step with the rule's hooks and opens the next segment.
    """

    def __init__(self, rule: Any, optimizer: Any, train_output: bool, weights: Weights, state: np.ndarray):
        self.rule, self.optimizer, self.train_output = rule, optimizer, train_output
        self.state = np.array(state, dtype=float, copy=True)
        self.weights = [weights]
        self.feedback = [rule.feedback(weights, self.state)]
        self.starts = [0]

    def update(self, t: int, grads: dict[str, np.ndarray]) -> None:
        """The update after step t (1-based; step index t runs with the new weights)."""
        W = self.weights[-1]
        ups = self.optimizer.step(trainable(mask_grads(W, grads), self.train_output))
        W, self.state, _ = apply_updates(self.rule, W, self.state, ups)
        self.weights.append(W)
        self.feedback.append(self.rule.feedback(W, self.state))
        self.starts.append(t)


class _Accumulators:
    """Per-trial e-prop state: eligibility traces and readout traces (never reset), and the gradient
    accumulators ``grads`` (restarted after every in-trial update) and Σ_t e_t (``esum``)."""

    def __init__(self, params: ModelParams, n_in: int, n_out: int) -> None:
        N = params.n_rec
        self.params, self.n_in, self.n_out = params, n_in, n_out
        self.traces = {"input": EligibilityTrace(params, n_in), "recurrent": EligibilityTrace(params, N)}
        self.ebar = {"input": np.zeros((N, n_in)), "recurrent": np.zeros((N, N))}
        self.esum = {"input": np.zeros((N, n_in)), "recurrent": np.zeros((N, N))}
        self.zout = np.zeros(N)  # z̃_t
        self.bf = 0.0  # b̃_t
        self.restart()

    def restart(self) -> None:
        """Fresh (zero) gradient accumulators."""
        N, n_in, n_out = self.params.n_rec, self.n_in, self.n_out
        self.grads = {
            "input": np.zeros((N, n_in)),
            "recurrent": np.zeros((N, N)),
            "output": np.zeros((n_out, N)),
            "bias": np.zeros(n_out),
        }

    def step(
        self,
        psi_t: np.ndarray,
        z_t: np.ndarray,
        x_t: np.ndarray,
        z_prev: np.ndarray,
        err: np.ndarray,
        B: np.ndarray,
    ) -> None:
        """Advance the traces by step t (ψ_t, z_t (N,), input x_t, z_{t−1}) and add the step's terms
        of the gradient with err = dE/dy_t (n_out,) and the feedback B in force."""
        c_in, c_out, kappa = self.params.input_scale, self.params.readout_scale, self.params.kappa
        g = self.grads
        L = c_out * (B @ err)
        for name, pre in (("input", c_in * x_t), ("recurrent", c_in * z_prev)):
            e = self.traces[name].advance(psi_t, pre)
            self.ebar[name] = kappa * self.ebar[name] + e
            g[name] += L[:, None] * self.ebar[name]
            self.esum[name] += e
        self.zout = kappa * self.zout + z_t
        g["output"] += c_out * err[:, None] * self.zout[None, :]
        self.bf = kappa * self.bf + 1.0
        g["bias"] += err * self.bf


class _Recorder:
    """The per-step states of the trial, for its :class:`Trajectory`."""

    def __init__(self, T: int, N: int, n_out: int) -> None:
        self.out = {k: np.empty((T, N)) for k in ("v", "a", "z", "psi")}
        self.refractory = np.empty((T, N), dtype=bool)
        self.y = np.empty((T, n_out))

    def record(self, t: int, state: NetState, psi: np.ndarray, refr: np.ndarray) -> None:
        out = self.out
        out["v"][t], out["a"][t], out["z"][t], out["psi"][t] = state.v[0], state.a[0], state.z[0], psi[0]
        self.refractory[t], self.y[t] = refr[0], state.y[0]

    def trajectory(self) -> Trajectory:
        o = self.out
        return Trajectory(o["v"], o["a"], o["z"], o["psi"], self.refractory, self.y, batched=False)
