"""One simulated trial as the gradient estimators see it: :class:`TrialData`.

Every estimator of :mod:`neuroplast.gradients` (e-prop, BPTT, the factorization analysis) and every
rule's ``numpy_grads`` reads the same things about a trial — the model, the weights in force, input,
target, recall mask, loss, regularizer and the recorded trajectory — and derives the same arrays from
them (the error dE/dy, the presynaptic drive of each projection, the regularizer's learning signal).
:class:`TrialData` holds the former and computes the latter once, on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

import numpy as np

from neuroplast.model.dynamics import Trajectory, simulate
from neuroplast.model.losses import Loss, as_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import recurrent_pre, reg_signal, trial_arrays

__all__ = ["TrialData", "mask_grads"]


def mask_grads(weights: Weights, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``grads`` with zeros where ``weights`` has no synapse (keys ``input``/``recurrent``/``output``;
    any other key, e.g. ``bias``, passes unchanged)."""
    masks = {"input": weights.mask_in, "recurrent": weights.mask_rec, "output": weights.mask_out}
    return {k: (np.where(masks[k], v, 0.0) if k in masks else v) for k, v in grads.items()}


@dataclass(frozen=True, eq=False)
class TrialData:
    """Everything the gradient formulas need about one simulated trial (immutable).

    Build it with :meth:`make` (which simulates the trial with the NumPy reference when no trajectory
    is given) or directly (``traj`` may then be ``None`` for a trial whose trajectory was not
    recorded; the derived arrays then raise).  The derived attributes (:attr:`arrays`, :attr:`err`,
    :attr:`pre`, :attr:`reg`) are computed on first use and cached; do not modify them.

    Attributes
    ----------
    params : ModelParams
    weights : Weights
        Weights in force during the trial.
    x : ndarray (T, n_in)
        Input of the trial (float).
    traj : Trajectory or None
        Recorded v, a, z, ψ, refractoriness, y of this trial, unbatched (arrays (T, ·)); a batch of
        one is accepted and unbatched.
    target : ndarray (T, n_out)
        Regression target y* or one-hot label π*.
    mask : ndarray (T,)
        Recall window (1 = counted), for losses that read it.
    loss : Loss
        Task loss (a registered name is resolved on construction).
    c_reg : float
        Rate-regularization strength ([E] per (spikes/step)²).
    f_target : float or ndarray (N,)
        Target rate f* (spikes per step).
    feedback : ndarray (N, n_out) or None
        Feedback matrix B of the e-prop learning signal (rules that use one).
    """

    params: ModelParams
    weights: Weights
    x: np.ndarray
    traj: Trajectory | None
    target: np.ndarray
    mask: np.ndarray
    loss: Loss
    c_reg: float = 0.0
    f_target: float | np.ndarray = 0.0
    feedback: np.ndarray | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalize the fields once, here
        put(self, "x", np.asarray(self.x, dtype=float))
        put(self, "target", np.asarray(self.target))
        put(self, "mask", np.asarray(self.mask))
        put(self, "loss", as_loss(self.loss))
        if self.traj is not None:
            put(self, "traj", Trajectory(**trial_arrays(self.traj), batched=False))
        if self.feedback is not None:
            put(self, "feedback", np.asarray(self.feedback, dtype=float))

    @classmethod
    def make(
        cls,
        params: ModelParams,
        weights: Weights,
        x: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        loss: Loss | str,
        *,
        traj: Trajectory | None = None,
        c_reg: float = 0.0,
        f_target: float | np.ndarray = 0.0,
        feedback: np.ndarray | None = None,
    ) -> TrialData:
        """The trial of input ``x``; simulated with :func:`~neuroplast.model.dynamics.simulate` when
        ``traj`` is not given.  Parameters as the attributes of :class:`TrialData`."""
        if traj is None:
            traj = simulate(params, weights, x).squeeze()
        return cls(params, weights, x, traj, target, mask, loss, c_reg, f_target, feedback)

    # ------------------------------------------------------------ derived arrays (cached)

    @cached_property
    def arrays(self) -> Mapping[str, np.ndarray]:
        """``v, a, z, psi, refractory`` (T, N) and ``y`` (T, n_out) of the trajectory."""
        if self.traj is None:
            raise ValueError(
                "this TrialData has no trajectory (build it with TrialData.make to simulate one)"
            )
        return MappingProxyType(trial_arrays(self.traj))

    @property
    def z(self) -> np.ndarray:
        """Spikes z_t, (T, N)."""
        return self.arrays["z"]

    @property
    def psi(self) -> np.ndarray:
        """Pseudo-derivative ψ_t, (T, N), 1/[v]."""
        return self.arrays["psi"]

    @property
    def y(self) -> np.ndarray:
        """Readout y_t, (T, n_out)."""
        return self.arrays["y"]

    @cached_property
    def err(self) -> np.ndarray:
        """dE/dy_t, the explicit error of the loss, (T, n_out)."""
        return np.asarray(self.loss.error(self.y, self.target, self.mask), dtype=float)

    @cached_property
    def pre(self) -> Mapping[str, np.ndarray]:
        """Presynaptic drive per projection, (T, n_pre): ``input`` c_in x_t, ``recurrent`` c_in z_{t−1}."""
        return MappingProxyType(
            {"input": self.params.input_scale * self.x, "recurrent": recurrent_pre(self.params, self.z)}
        )

    @cached_property
    def reg(self) -> np.ndarray | None:
        """Learning signal of the rate regularizer c_reg (f_j − f*)/T, (N,); ``None`` when c_reg = 0."""
        return reg_signal(self.z, self.c_reg, self.f_target) if self.c_reg != 0.0 else None

    def masked(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``grads`` with zeros outside the weight masks (see :func:`mask_grads`)."""
        return mask_grads(self.weights, grads)
