"""Validation only (not part of the model): NEST's late update of some input synapses, emulated.

NEST's ``eprop_synapse_bsshslm_2020`` applies the update of sequence k lazily, at the synapse's first
presynaptic spike in sequence k + 1.  The learning signal of the last step T of sequence k reaches the
recurrent neurons only after the start of sequence k + 1 (readout and feedback delays), so an input
synapse whose presynaptic neuron spikes at step 2 of the next sequence (step 1 never has a spike)
computes its gradient without the term L_T ē_T: its update is −η (Σ_t L_t ē_t − L_T ē_T + R Σ_t e_t).
The term is lost, not deferred.  The update after the last sequence of a NEST run is forced by a spike
after all learning signals have arrived and is complete.

:class:`LateUpdateSimulator` is :class:`~neuroplast.plasticity.reference.NumpySimulator` with that term
removed from the returned input gradient on exactly those synapses; :func:`missing_term` gives the term.
docs/validation.md shows its size per iteration.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from neuroplast.gradients.eprop import factorized_grads, learning_signal
from neuroplast.model.dynamics import Trajectory
from neuroplast.plasticity.reference import NumpySimulator

ROOT = Path(__file__).resolve().parents[2]
#: NEST's own numbers: published losses with provenance, and scripts/make_nest_reference.py's output.
PUBLISHED = ROOT / "data" / "nest_published.json"
REFERENCE = ROOT / "data" / "nest_reference.h5"


def late_inputs(x: np.ndarray) -> np.ndarray:
    """Inputs whose first spike of a sequence is at its second step (NEST's late updates), bool (n_in,)."""
    x = np.asarray(x) > 0
    return x[1] & ~x[0]


def missing_term(sim: NumpySimulator, res, x: np.ndarray, target, mask, feedback) -> np.ndarray:
    """L_T ē_T of every input synapse (N, n_in): Σ_t L_t ē_t with L kept at the last step only."""
    L = learning_signal(sim.params, res.y, target, mask, sim.loss, feedback)
    last = np.zeros_like(L)
    last[-1] = L[-1]
    traj = Trajectory(res.v, res.a, res.z, res.psi, res.refractory, res.y, batched=False)
    return factorized_grads(sim.params, traj, sim.params.input_scale * np.asarray(x, float), last)


class LateUpdateSimulator(NumpySimulator):
    """NumpySimulator whose input gradient misses L_T ē_T on the synapses of :func:`late_inputs`.

    ``terms`` collects the removed term (dense (N, n_in), zero elsewhere) of every trial.
    """

    terms: list[np.ndarray]

    def run_trial(self, weights, x, *, target=None, mask=None, feedback=None, **kw):
        res = super().run_trial(weights, x, target=target, mask=mask, feedback=feedback, **kw)
        fb = weights.w_out.T if feedback is None else feedback
        term = missing_term(self, res, x, target, mask, fb)
        term[:, ~late_inputs(x)] = 0.0
        res.grads["input"] = res.grads["input"] - term
        self.__dict__.setdefault("terms", []).append(term)
        return res


def reference() -> dict[str, np.ndarray]:
    """Every dataset of ``data/nest_reference.h5`` (``sine/loss``, ``sine/updates/input``, …)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(REFERENCE, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out
