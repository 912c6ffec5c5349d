"""Eligibility traces ∂h_t/∂W of the LIF/ALIF network, computed forward in time (docs/model.md §3).

Per projection, with pre_t its presynaptic drive (c_in x_t, or c_in z_{t−1})::

    ε^v_t = α ε^v_{t−1} + pre_t                                     (per presynaptic i)
    ε^a_t = (ρ_j − β_j ψ_{t−1}) ε^a_{t−1} + ψ_{t−1} ε^v_{t−1},  ε^a_1 = 0  (per synapse)
    e_t   = ψ_t (ε^v_t − β ε^a_t)

Shared by the e-prop gradient, the exact-gradient decomposition and the in-trial learning reference.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from neuroplast.model.dynamics import Trajectory
from neuroplast.model.params import ModelParams
from neuroplast.model.signals import trial_arrays

__all__ = ["EligibilityTrace", "eligibility_steps"]


def eligibility_steps(
    params: ModelParams, traj_single: Trajectory, pre: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, e_t)`` with the per-synapse eligibility traces e_t, shape (N, n_pre).

    The literal forward recursion of the module docstring; ``e_t`` is in units of
    [pre]/[v] (ψ times a filtered presynaptic drive); a fresh array is yielded each step.

    Parameters
    ----------
    params : ModelParams
    traj_single : Trajectory
        One trial (see :func:`trial_arrays`); only ``psi`` is read.
    pre : ndarray, shape (T, n_pre)
        Presynaptic drive per step (c_in x_t or c_in z_{t−1}).
    """
    psi = trial_arrays(traj_single)["psi"]
    pre = np.asarray(pre, dtype=float)
    T, N = psi.shape
    if pre.ndim != 2 or pre.shape[0] != T:
        raise ValueError(f"pre must have shape (T={T}, n_pre), got {pre.shape}")
    trace = EligibilityTrace(params, pre.shape[1])
    for t in range(T):
        yield t, trace.advance(psi[t], pre[t])


class EligibilityTrace:
    """The per-synapse eligibility recursion of one projection, advanced one step at a time.

    Holds ε^v_{t−1} (per presynaptic neuron), ε^a_{t−1} (per synapse) and ψ_{t−1}; used by
    :func:`eligibility_steps` and by the in-trial learning reference, which needs e_t as soon as
    step t is simulated.

    Parameters
    ----------
    params : ModelParams
    n_pre : int
        Number of presynaptic neurons.
    """

    def __init__(self, params: ModelParams, n_pre: int) -> None:
        self.alpha = params.alpha
        self.rho = params.rho[:, None]
        self.beta = params.beta[:, None]
        self.ev = np.zeros(n_pre)  # ε^v_{t-1}: shared by all postsynaptic neurons (α is a scalar)
        self.ea = np.zeros((params.n_rec, n_pre))  # ε^a_{t-1}
        self.psi_prev = np.zeros((params.n_rec, 1))

    def advance(self, psi_t: np.ndarray, pre_t: np.ndarray) -> np.ndarray:
        """e_t (N, n_pre) from ψ_t (N,) and the presynaptic drive pre_t (n_pre,); a fresh array."""
        self.ea = (self.rho - self.beta * self.psi_prev) * self.ea + self.psi_prev * self.ev[None, :]
        self.ev = self.alpha * self.ev + pre_t
        psi_col = np.asarray(psi_t, dtype=float)[:, None]
        self.psi_prev = psi_col
        return psi_col * (self.ev[None, :] - self.beta * self.ea)
