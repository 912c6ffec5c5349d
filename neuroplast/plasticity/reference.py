"""The trainer's :class:`~neuroplast.model.simulator.Simulator` on the NumPy reference (no Brian2).

:class:`NumpySimulator` simulates a trial with :func:`neuroplast.model.dynamics.simulate` and computes
the same things the Brian2 network returns on the online path — the e-prop gradient Σ_t L_t ē_t with
L_t = c_out B err_t (without the rate regularization), the exact readout and bias gradients, Σ_t e_t per
synapse for the regularization — and the recorded states the factorized path reads.  So
``Trainer(setup, NumpySimulator.of(setup))`` trains a config in NumPy alone: what the default tests use
to compare neuroplast with NEST's published numbers (docs/validation.md).

With ``training.update_every_steps = k`` it learns inside each trial (docs/model.md §6) as the Brian2
network does: the trial is :func:`neuroplast.plasticity.in_trial.in_trial_learning` (the NumPy oracle of
the Brian2 implementation), with SGD or with Adam whose moments come from and go back to the trainer, and
it returns what the Brian2 network returns for such a trial — the weights and B in force from step 0, k,
2k, … on (:attr:`TrialResult.in_trial`, edge order), what was accumulated after the last in-trial update,
Σ_t e_t of the whole trial and, with Adam, the moments after the trial (:attr:`TrialResult.adam`).

Any neuron model (``network.neuron``, docs/model.md §10) runs here: the ``alif`` model through
:func:`~neuroplast.model.dynamics.simulate` and the hand-written e-prop, every other model through
:func:`~neuroplast.model.stepper.simulate_model` and the eligibility derived from its equations
(:func:`neuroplast.gradients.derived.model_eprop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from neuroplast.devices import Capabilities
from neuroplast.gradients.derived import ModelTrial, model_eprop
from neuroplast.gradients.eprop import eprop_grads, factorized_grads
from neuroplast.gradients.traces import Trace, trace_grads
from neuroplast.gradients.trial import TrialData, mask_grads
from neuroplast.model.connectivity import PROJECTIONS, Connectivity
from neuroplast.model.dynamics import simulate
from neuroplast.model.neurons import DEFAULT_NEURON, NeuronModel, get_neuron
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import output_grads
from neuroplast.model.simulator import TrialResult
from neuroplast.model.stepper import parameter_values
from neuroplast.plasticity.in_trial import in_trial_learning
from neuroplast.plasticity.optim import SGD, Adam, make_optimizer

__all__ = ["NumpySimulator"]


class NumpySimulator:
    """Simulator protocol on the NumPy reference dynamics.

    Parameters
    ----------
    params : ModelParams
    weights : Weights
        Initial weights (their masks fix the connectivity, as the Brian2 network's do).
    n_steps : int
        Steps per trial T.
    loss : str
        Registered loss name (its error drives the learning signal).
    neuron : NeuronModel, optional
        The neuron model (default ``alif``, whose parameters are ``params``' α, ρ, β).
    values : mapping, optional
        The model's parameters (floats or (N,) arrays); needed for any model but ``alif``.
    trace : Trace, optional
        The rule's own eligibility trace (default e-prop's).
    keep_reset : bool
        The derived eligibility with the reset differentiated (a rule's ``keeps_reset``, ``ostl``).
    rule : Rule, optional
        The plasticity rule whose hooks (feedback, ``adjust_updates``, ``after_update``) every in-trial
        update applies; needed with ``update_every``.
    update_every : int
        k > 0: learn inside each trial, an update after every k steps (``training.update_every_steps``);
        0: the weights are fixed during a trial.
    adam : bool
        In-trial updates with Adam (moments taken from and returned to the trainer); else SGD.
    """

    device = "numpy"
    #: One trial per call, learning inside it if built with ``update_every``; any neuron model per trial
    #: (:class:`neuroplast.devices.Capabilities`; in-trial learning runs the ``alif`` model, as the config
    #: checks).
    capabilities = Capabilities(in_trial=True, neuron_models=True)

    def __init__(
        self,
        params: ModelParams,
        weights: Weights,
        n_steps: int,
        loss: str,
        *,
        neuron: NeuronModel | None = None,
        values: Mapping[str, Any] | None = None,
        trace: Trace | None = None,
        keep_reset: bool = False,
        rule: Any = None,
        update_every: int = 0,
        adam: bool = False,
    ) -> None:
        #: The rule's own eligibility trace (None: e-prop's, derived from the neuron model).
        self.trace = trace
        #: The derived eligibility with the reset differentiated (a rule's ``keeps_reset``, ``ostl``).
        self.keep_reset = bool(keep_reset)
        self.params = params
        self.n_steps = int(n_steps)
        self.loss = loss
        self.connectivity = Connectivity.of(weights)
        self.edges = self.connectivity.edges
        self.rule = rule
        #: Steps between in-trial updates k (0: none).
        self.update_every = int(update_every)
        if self.update_every and rule is None:
            raise ValueError("NumpySimulator: in-trial learning (update_every > 0) needs the rule")
        #: Whether in-trial updates use Adam, whose moments :meth:`run_trial` takes and returns.
        self.adam = bool(update_every) and bool(adam)
        self.neuron = get_neuron(DEFAULT_NEURON) if neuron is None else neuron
        if self.neuron.name != DEFAULT_NEURON or self.keep_reset:
            if values is None:
                raise ValueError(f"NumpySimulator: neuron model {self.neuron.name!r} needs its parameters")
            self.values = parameter_values(self.neuron, values, weights.n_rec)

    @classmethod
    def of(cls, setup: Any) -> NumpySimulator:
        """For a :class:`~neuroplast.build.Setup` (its rule, in-trial updates and their optimizer)."""
        tr = setup.cfg.training
        return cls(
            setup.params,
            setup.weights,
            setup.cfg.simulation.n_steps,
            tr.loss,
            neuron=setup.neuron,
            values=setup.neuron_values,
            trace=setup.rule.trace,
            keep_reset=setup.rule.keeps_reset,
            rule=setup.rule,
            update_every=tr.update_every_steps,
            adam=isinstance(make_optimizer(tr.optimizer, tr), Adam),
        )

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
        """One trial from rest (arguments as :meth:`neuroplast.model.simulator.Simulator.run_trial`).

        A positive ``learning_rate`` (or ``adam``) learns inside the trial, which the simulator must have
        been built for (``update_every``).
        """
        x = np.asarray(x, dtype=float)
        T = x.shape[0]
        target = np.zeros((T, weights.n_out)) if target is None else target
        mask = np.ones(T) if mask is None else mask
        feedback = weights.w_out.T if feedback is None else feedback
        if learning_rate or adam is not None:
            step = (learning_rate, output_learning_rate, weight_decay)
            return self._in_trial(weights, x, target, mask, feedback, step, adam)
        if self.neuron.name != DEFAULT_NEURON or self.keep_reset:
            return self._model_trial(weights, x, target, mask, feedback)
        traj = simulate(self.params, weights, x).squeeze()
        trial = TrialData(self.params, weights, x, traj, target, mask, self.loss, feedback=feedback)
        if self.trace is not None:
            L = self.params.readout_scale * trial.err @ feedback.T
            grads, esum = self._traced(dict(trial.pre), traj.psi, L, weights, traj.z)
            grads["output"], grads["bias"] = output_grads(self.params, traj.z, trial.err)
            return self._result(traj.y, traj.z, traj.psi, traj.refractory, grads, esum, v=traj.v, a=traj.a)
        ones = np.ones(weights.n_rec)
        zeros = np.zeros((T, weights.n_rec))
        esum = {
            k: trial.masked({k: factorized_grads(self.params, traj, trial.pre[k], zeros, reg_signal=ones)})[k]
            for k in ("input", "recurrent")
        }
        return self._result(
            traj.y, traj.z, traj.psi, traj.refractory, eprop_grads(trial), esum, v=traj.v, a=traj.a
        )

    def _in_trial(
        self,
        weights: Weights,
        x: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        feedback: np.ndarray,
        step: tuple[float, float | None, float],
        adam: dict | None,
    ) -> TrialResult:
        """A trial that learns inside itself: the NumPy oracle, in the Brian2 network's terms.

        ``feedback`` is the B in force at the trial's start; it is the rule's B state for every rule that
        can learn inside a trial (their ``feedback`` either returns the state or ignores it), as the Brian2
        network and the trainer take it.  ``step`` is (η, η of the readout, λ).
        """
        lr, out_lr, decay = step
        if not self.update_every:
            raise ValueError("NumpySimulator: in-trial updates need a simulator built with update_every > 0")
        if self.neuron.name != DEFAULT_NEURON or self.trace is not None:
            raise ValueError(f"NumpySimulator: in-trial learning runs the {DEFAULT_NEURON!r} model's e-prop")
        if out_lr not in (None, 0.0, lr):
            raise ValueError("NumpySimulator: the readout learns with the learning rate of the rest, or not")
        if decay != getattr(self.rule.training, "weight_decay", 0.0):
            raise ValueError("NumpySimulator: the weight decay is the rule's (training.weight_decay)")
        if adam is None:
            optimizer: Any = SGD(lr)
        else:
            optimizer = Adam(lr, adam["b1"], adam["b2"], adam["eps"])
            optimizer.t = int(adam["t"])
            for mom in ("m", "v"):
                setattr(optimizer, mom, {k: self.connectivity.to_dense(k, adam[mom][k]) for k in PROJECTIONS})
        res = in_trial_learning(
            self.params,
            weights,
            x,
            target,
            mask,
            self.loss,
            self.rule,
            feedback,
            every=self.update_every,
            optimizer=optimizer,
            train_output=out_lr != 0.0,
        )
        segments = [
            self.connectivity.weight_vectors(w, b) for w, b in zip(res.weights, res.feedback, strict=True)
        ]
        rows = {k: np.stack([seg[k] for seg in segments]) for k in segments[0]}
        moments = None
        if adam is not None:
            moments = {
                mom: {
                    k: self.connectivity.to_edges(
                        k, getattr(optimizer, mom).get(k, np.zeros(self.connectivity.shape(k)))
                    )
                    for k in PROJECTIONS
                }
                for mom in ("m", "v")
            }
        traj = res.traj
        return self._result(
            traj.y,
            traj.z,
            traj.psi,
            traj.refractory,
            dict(res.grads),
            dict(res.esum),
            v=traj.v,
            a=traj.a,
            in_trial=rows,
            adam=moments,
        )

    def _traced(
        self, pres: dict[str, np.ndarray], psi: np.ndarray, L: np.ndarray, weights: Weights, z: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Σ L^rule ē and Σ e with the rule's own trace and signal (masked), as the simulation accumulates
        them."""
        assert self.trace is not None
        g, esum = trace_grads(self.trace, pres, psi, L, self.params.kappa, z=z)
        return mask_grads(weights, g), mask_grads(weights, esum)

    @staticmethod
    def _result(y, z, psi, refractory, grads, esum, **states: Any) -> TrialResult:
        steps, ids = np.nonzero(z > 0.5)
        return TrialResult(
            y=y,
            spike_count=z.sum(axis=0),
            spikes=(steps.astype(np.int64), ids.astype(np.int64)),
            z=z,
            psi=psi,
            refractory=refractory,
            grads=grads,
            esum=esum,
            **states,
        )

    def _model_trial(
        self, weights: Weights, x: np.ndarray, target: np.ndarray, mask: np.ndarray, feedback: np.ndarray
    ) -> TrialResult:
        """A trial of a neuron model other than ``alif`` (or of ``alif`` with an eligibility that keeps the
        reset): its NumPy step and derived eligibility."""
        trial = ModelTrial.make(self.neuron, self.values, self.params, weights, x, target, mask, self.loss)
        traj = trial.traj
        if self.trace is None:
            grads, esum = model_eprop(trial, feedback, keep_reset=self.keep_reset)
        else:
            L = self.params.readout_scale * trial.err @ feedback.T
            grads, esum = self._traced(trial.pre(), traj.psi, L, weights, traj.z)
            grads["output"], grads["bias"] = output_grads(self.params, traj.z, trial.err)
        return self._result(
            traj.y,
            traj.z,
            traj.psi,
            traj.refractory,
            grads,
            esum,
            v=traj.state.get("v"),
            state=dict(traj.state),
        )
