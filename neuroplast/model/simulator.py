"""What a simulator of the model returns per trial (:class:`TrialResult`) and what the trainer needs of it
(:class:`Simulator`).

Brian2-free, so that non-network code (the trainer, analyses, a NumPy simulator) can use both without
importing :mod:`neuroplast.network`. The Brian2 implementation is
:class:`neuroplast.network.builder.Brian2Network`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from neuroplast.devices import Capabilities
from neuroplast.model.params import Weights

__all__ = ["TrialResult", "Simulator"]


@dataclass
class TrialResult:
    """What one simulated trial returns.

    Attributes
    ----------
    v, a, z, psi, L : ndarray (T, N) or None   recorded recurrent states (when ``record``)
    refractory : bool ndarray (T, N) or None   r̂_t, z forced to 0 (when ``record``)
    y : ndarray (T, n_out)                      readout
    grads : mapping of str to ndarray or None   online gradient per projection, dense
        (``"input"``, ``"recurrent"``, ``"output"``, ``"bias"``), without rate regularization; a trial of
        a chunk made dense only when read (a new array at each read: take ``dict(grads)`` once)
    esum : dict[str, ndarray] or None           Σ_t e_t per synapse (dense) for the
        regularization term, for ``"input"`` and ``"recurrent"``
    spike_count : ndarray (N,)                  spikes per recurrent neuron
    spikes : tuple(ndarray, ndarray)            (step index, neuron id) of recurrent spikes
    in_trial : dict[str, ndarray] or None       with in-trial updates: the weights in force from step
        0, k, 2k, … on, shape (n_segments, n_edges) in edge order (``"input"``, ``"recurrent"``,
        ``"output"``, ``"feedback"`` (B of each readout edge), ``"bias"`` (n_segments, n_out));
        ``grads`` then holds only what was accumulated after the last in-trial update
    adam : dict or None                         in-trial Adam: moments ``m``, ``v`` after the trial
        (``projection -> edge-order vector``, ``bias`` per readout unit)
    regularized : bool                          ``grads`` already include the rate-regularization term
        (a trial of a chunk that the simulation itself stepped the optimizer on; ``esum`` is then None)
    ran_with : dict or None                     a trial of a chunk: the weights it ran with, as the
        simulation had them (edge-order vectors ``input``, ``recurrent``, ``output``, ``bias``)
    state : dict or None                        every state variable of the neuron model (T, N) by name,
        for a model other than ``alif`` (docs/model.md §10; ``v`` is then also :attr:`v` if it has one)
    weights_end : Weights or None               a simulation with its own plasticity (capability
        ``nest_plasticity``): the weights at the end of the trial, which the trainer takes as they are;
        ``grads`` then hold the sum of the gradients the synapses gave their optimizer during the trial
    """

    y: np.ndarray
    spike_count: np.ndarray
    spikes: tuple[np.ndarray, np.ndarray]
    v: np.ndarray | None = None
    a: np.ndarray | None = None
    z: np.ndarray | None = None
    psi: np.ndarray | None = None
    refractory: np.ndarray | None = None
    L: np.ndarray | None = None
    grads: Mapping[str, np.ndarray] | None = None
    esum: dict[str, np.ndarray] | None = None
    in_trial: dict[str, np.ndarray] | None = None
    adam: dict[str, dict[str, np.ndarray]] | None = None
    regularized: bool = False
    ran_with: dict[str, np.ndarray] | None = None
    state: dict[str, np.ndarray] | None = None
    weights_end: Weights | None = None


class Simulator(Protocol):
    """What the trainer needs from a network: built once for sizes, connectivity and trial length, then run
    trial by trial from rest.

    Attributes
    ----------
    edges : mapping str -> (ndarray, ndarray)
        (source, target) ids of the synaptic projections ``"input"``, ``"recurrent"``, ``"output"``, in
        the run log's edge order (the order of every edge vector in :attr:`TrialResult.in_trial` and
        :attr:`TrialResult.adam`).
    adam : bool
        Whether in-trial updates use Adam with per-synapse moments (then :meth:`run_trial` takes and
        returns them).
    n_steps : int
        Steps per trial T.
    device : str
        Its name, for the user (a device of :data:`neuroplast.devices.DEVICES`, or e.g. ``"numpy"``).
    capabilities : Capabilities
        What it can do beyond one trial per launch (:class:`neuroplast.devices.Capabilities`); the trainer
        uses nothing it does not declare.

    A simulator may also run a batch's trials side by side: an attribute ``batch`` (B > 1) and a method
    ``run_batch(weights, trials, *, feedback=None)`` taking up to B ``(x, target, mask)`` and returning one
    :class:`TrialResult` per trial, each equal to what :meth:`run_trial` gives for it (the trainer uses it
    when present, docs/model.md §8).
    """

    edges: Mapping[str, tuple[np.ndarray, np.ndarray]]
    adam: bool
    n_steps: int
    device: str
    capabilities: Capabilities

    def run_trial(
        self,
        weights: Weights,
        x: np.ndarray,
        *,
        target: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        feedback: np.ndarray | None = None,
        learning_rate: float = 0.0,
        output_learning_rate: float | None = None,
        weight_decay: float = 0.0,
        adam: dict | None = None,
    ) -> TrialResult:
        """Simulate one trial from rest.

        Parameters
        ----------
        weights : Weights
            Dense weights (within the connectivity the simulator was built with).
        x : ndarray (T, n_in)
            Input spikes (0/1) per step.
        target : ndarray (T, n_out), optional
            y* (regression) or one-hot π* (classification); zeros if omitted.
        mask : ndarray (T,), optional
            Recall-window mask for cross-entropy (ones if omitted).
        feedback : ndarray (N, n_out), optional
            Learning-signal weights B (default W_outᵀ, symmetric e-prop).
        learning_rate, output_learning_rate, weight_decay : float
            In-trial updates only: step size η of the input and recurrent weights, of the readout weights
            and bias (default η; 0 keeps the readout fixed), and the rule's weight decay λ.
        adam : dict, optional
            In-trial Adam only: ``t`` (steps taken before this trial), ``b1``, ``b2``, ``eps`` and the
            moments ``m``, ``v`` (dicts ``input``, ``recurrent``, ``output``, ``bias`` of edge-order
            vectors); the moments after the trial come back in :attr:`TrialResult.adam`.

        Returns
        -------
        TrialResult
        """
        ...
