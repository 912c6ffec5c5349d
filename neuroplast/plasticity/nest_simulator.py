"""The ``nest-current`` device: NEST 3.10's current e-prop models as the trainer's simulator.

:class:`NestCurrentSimulator` runs :class:`neuroplast.plasticity.nest_current.NestNetwork` one sequence
(one trainer trial) per call.  As in NEST, the network is never reset: sequence k + 1 starts with the
membranes, traces, optimizer states and weights that sequence k left, and the weights change during a
sequence (per presynaptic spike, or per step with ``nest.optimize_each_step``).  The trainer takes the
weights at the end of the sequence (:attr:`~neuroplast.model.simulator.TrialResult.weights_end`) and
applies no update of its own (capability ``nest_plasticity``).

Time: NEST's spike generators give a sequence's input spike j the time k·T + j + 1 ms; it arrives in
NEST's step k·T + j + 2, which is step j of trial k here.  Before the first trial the network runs NEST's
two steps in which no spike can arrive yet (their states, e.g. the rate filter of the regularization,
count).  Step j of trial k is therefore NEST's step k·T + j + 2 and its readout error the one NEST records
there: the per-sequence loss ½ Σ_j (y_j − y*_j)² is NEST's (docs/validation.md).

What the run log gets (docs/validation.md, "the nest-current device"): per iteration the weights before
the sequence and their change over the sequence (the sum of NEST's in-sequence updates, not one update
at its end); per trial the sum of the gradients the synapses gave their optimizer during the sequence
(history steps up to two steps before its end: NEST integrates a step's history two steps later).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroplast.devices import Capabilities
from neuroplast.model.connectivity import Connectivity
from neuroplast.model.params import Weights
from neuroplast.model.simulator import TrialResult
from neuroplast.plasticity.nest_current import NestNetwork, NestSettings

__all__ = ["NestCurrentSimulator", "nest_settings"]

#: NEST's steps before the first spike can arrive (input generators start at 1 ms, delay 1 ms).
WARM_UP_STEPS = 2


def nest_settings(cfg: Any) -> NestSettings:
    """The :class:`NestSettings` of a resolved config (its ``[nest]`` table and sizes).

    Parameters
    ----------
    cfg : Config
        ``nest.*`` are NEST's parameters; ``network.n_alif`` the number of ``eprop_iaf_adapt`` neurons
        (the last ones), ``simulation.n_steps`` the steps of a sequence, ``training.iterations`` the
        sequences.
    """
    n = cfg.nest
    dt = cfg.simulation.dt_ms
    return NestSettings(
        n_iter=cfg.training.iterations,
        steps_sequence=cfg.simulation.n_steps,
        neuron="eprop_iaf",
        tau_m=n.tau_m_ms,
        tau_m_out=n.tau_m_readout_ms,
        v_th=n.v_th,
        t_ref=n.t_ref_ms,
        c_reg=n.c_reg,
        f_target=n.f_target_hz,
        kappa=n.kappa,
        kappa_reg=n.kappa_reg,
        surrogate=n.surrogate,
        height=n.surrogate_height,
        width=n.surrogate_width,
        cutoff=int(round(n.isi_trace_cutoff_ms / dt)),
        optimizer=n.optimizer,
        eta=n.eta,
        beta_1=n.beta_1,
        beta_2=n.beta_2,
        epsilon=n.epsilon,
        batch_size=n.optimizer_batch_size,
        optimize_each_step=n.optimize_each_step,
        w_min=n.w_min,
        w_max=n.w_max,
        adapt_beta=n.adapt_beta,
        adapt_tau=n.adapt_tau_ms,
        n_adaptive=cfg.network.n_alif,
    )


class NestCurrentSimulator:
    """The trainer's simulator on NEST's current models (module docstring).

    Parameters
    ----------
    settings : NestSettings
    weights : Weights
        Initial weights (all to all without autapses, no readout bias).
    feedback : ndarray (N, n_out)
        NEST's feedback weights B (fixed).
    n_steps : int
        Steps per sequence T.
    """

    device = "nest-current"
    #: The simulation learns by itself, inside each sequence (:class:`neuroplast.devices.Capabilities`).
    capabilities = Capabilities(nest_plasticity=True)
    #: No Adam moments travel between the trainer and this simulator (NEST's optimizer keeps its own).
    adam = False

    def __init__(self, settings: NestSettings, weights: Weights, feedback: np.ndarray, n_steps: int) -> None:
        self.settings = settings
        self.n_steps = int(n_steps)
        self.connectivity = Connectivity.of(weights)
        self.edges = self.connectivity.edges
        self._masks = (weights.mask_in, weights.mask_rec, weights.mask_out)
        self.feedback = np.array(feedback, dtype=float)
        self.net = NestNetwork(settings, weights.w_in, weights.w_rec, weights.w_out, self.feedback)
        self._weights = weights.copy()

    @classmethod
    def of(cls, setup: Any) -> NestCurrentSimulator:
        """For a :class:`~neuroplast.build.Setup` (its ``[nest]`` table, initial weights and B)."""
        cfg = setup.cfg
        return cls(nest_settings(cfg), setup.weights, setup.feedback, cfg.simulation.n_steps)

    def run_trial(
        self,
        weights: Weights,
        x: np.ndarray,
        *,
        target: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        feedback: np.ndarray | None = None,
        **unused: Any,
    ) -> TrialResult:
        """The next sequence, from the state the previous one left.

        Parameters
        ----------
        weights : Weights
            Must be the weights the previous sequence ended with (the trainer's, which it takes from
            here): NEST's network keeps its own.
        x : ndarray (T, n_in)
            Input spikes (0/1) arriving in each step.
        target : ndarray (T, n_out), optional
            y* (zeros if omitted).
        mask : ndarray (T,), optional
            NEST's learning window (ones if omitted): the error of a step counts where it is 1.
        feedback : ndarray (N, n_out), optional
            Must be NEST's fixed B if given.
        **unused
            The other arguments of :meth:`neuroplast.model.simulator.Simulator.run_trial`, which learn
            with neuroplast's in-trial updates; given non-zero they are refused.

        Returns
        -------
        TrialResult
            ``y``, spikes, ``grads`` (Σ of the gradients given to the optimizer, dense, ``bias`` 0) and
            ``weights_end``.
        """
        if any(v not in (None, 0, 0.0) for v in unused.values()):
            raise ValueError("NestCurrentSimulator: learns with NEST's own optimizer; no in-trial arguments")
        own = self._weights
        for name in ("w_in", "w_rec", "w_out", "b_out"):
            if not np.array_equal(getattr(weights, name), getattr(own, name)):
                raise ValueError(
                    f"NestCurrentSimulator: {name} is not what the last sequence ended with "
                    "(NEST's network keeps its own weights from one sequence to the next)"
                )
        if feedback is not None and not np.array_equal(feedback, self.feedback):
            raise ValueError("NestCurrentSimulator: the feedback B is NEST's fixed one")
        net = self.net
        T = np.shape(x)[0]
        if net.t == 0:  # NEST's steps before any spike can arrive
            w = WARM_UP_STEPS
            net.run(np.zeros((w, net.n_in)), np.zeros((w, net.n_out)), np.zeros(w))
        target = np.zeros((T, net.n_out)) if target is None else target
        window = np.ones(T) if mask is None else mask
        y, _, z = net.run(x, target, window)
        given = net.take_given()
        now = net.weights()
        mask_in, mask_rec, mask_out = self._masks
        w_end = Weights(
            now["w_in"], now["w_rec"] * mask_rec, now["w_out"], own.b_out.copy(), mask_in, mask_rec, mask_out
        )
        self._weights = w_end.copy()
        steps, ids = np.nonzero(z > 0.5)
        grads = {
            "input": given["input"],
            "recurrent": given["recurrent"],
            "output": given["output"],
            "bias": np.zeros(net.n_out),
        }
        return TrialResult(
            y=y,
            spike_count=z.sum(axis=0),
            spikes=(steps.astype(np.int64), ids.astype(np.int64)),
            z=z,
            grads=grads,
            weights_end=w_end,
        )
