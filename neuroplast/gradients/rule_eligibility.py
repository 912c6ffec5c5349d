"""A rule's own eligibility in ``neuroplast analyze``: one function that streams it, and the per-neuron
factors of the analyses on it.

e-prop's eligibility is derived from the neuron model (:mod:`neuroplast.gradients.derived`); a rule may learn
with one of its own (:attr:`neuroplast.plasticity.rules.Rule.own_eligibility`): a
:class:`~neuroplast.gradients.traces.Trace` (``superspike``: variables of every presynaptic neuron, e_t an
expression of them and ψ_t) or the model's derived eligibility that keeps the reset term (``ostl``,
:attr:`~neuroplast.plasticity.rules.Rule.keeps_reset`).  Every analysis that multiplies a learning signal
with an eligibility must use the rule's, so:

* :func:`rule_eligibilities` is the **one** place that produces a rule's per-step eligibility e_t
  (N, n_pre) of every projection: :func:`~neuroplast.gradients.traces.trace_eligibilities` for a trace,
  :func:`~neuroplast.gradients.derived.model_eligibilities` with ``keep_reset`` otherwise.  A change of the
  trace contract changes this function only;
* :class:`RuleFactors` is the :class:`~neuroplast.gradients.model_truncated.TrialFactors` of a trial with
  that eligibility: the learning signals (L*, the k-hop signals) come from the model's factors (for a rule
  that keeps the reset, :class:`~neuroplast.gradients.model_truncated.ModelFactors` with ``keep_reset``:
  L* then differentiates the reset too), and the sums Σ_t L_t ⊙ e_t, the contractions Σ_i G_ji e_ji^t and
  the row norms Σ_i M_ji (e_ji^t)² are accumulated over t from :func:`rule_eligibilities`.

Identities (tests/gradients/test_rule_eligibility.py): with a trace, Σ_t L_t ⊙ e_t with the backward
κ-filtered c_out B err + r is the rule's gradient (:func:`~neuroplast.gradients.traces.trace_grads`);
``superspike`` on ``lif_syn`` with the model's time constants is e-prop's eligibility, so its factors equal
e-prop's to rounding; with the reset kept, Σ_t L*_t e_t (L* through the reset) is BPTT with the reset
differentiated.

Cost: the eligibility is never stored over time — memory O(m·N·n_pre) per projection for m signals; time
O(T·m·N·n_pre) plus the trace's own update (a trace evaluates its statements per step in Python).  Each
call of :meth:`RuleFactors.factorize`, :meth:`~RuleFactors.contract` and :meth:`~RuleFactors.row_norms`
streams the eligibility once.  Pure NumPy; imports :mod:`~neuroplast.gradients.traces`,
:mod:`~neuroplast.gradients.derived` and :mod:`~neuroplast.gradients.model_truncated`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from neuroplast.gradients.derived import ModelTrial, model_eligibilities
from neuroplast.gradients.model_truncated import TrialFactors
from neuroplast.gradients.traces import Trace, eprop_signal, trace_eligibilities, trace_signals

__all__ = ["rule_eligibilities", "rule_signal", "RuleFactors"]


def rule_eligibilities(
    trace: Trace | None,
    keep_reset: bool,
    trial: ModelTrial,
    pres: Mapping[str, np.ndarray],
    feedback: np.ndarray | None = None,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(t, {projection: e_t (N, n_pre)})``: the eligibility a rule learns with, step by step.

    Parameters
    ----------
    trace : Trace or None
        The rule's own trace (``Rule.eligibility_trace(cfg)``); None: the model's derived eligibility.
    keep_reset : bool
        With no trace: the derived eligibility that keeps the reset term (``Rule.keeps_reset``); False is
        e-prop's.
    trial : ModelTrial
        The trial (its ψ, and the model's Jacobians for a derived eligibility).
    pres : mapping str -> ndarray (T, n_pre)
        Presynaptic drive of each projection wanted (:meth:`ModelTrial.pre`).
    feedback : ndarray (N, n_out), optional
        The trial's B, for a trace whose state reads e-prop's learning signal ``L`` = c_out B err_t.
    """
    if trace is not None:
        yield from trace_eligibilities(
            trace, pres, trial.traj.psi, z=trial.traj.z, L=eprop_signal(trial, feedback)
        )
    else:
        yield from model_eligibilities(trial, pres, keep_reset=keep_reset)


def rule_signal(trial: ModelTrial, trace: Trace, feedback: np.ndarray) -> np.ndarray:
    """A trace rule's own learning signal L^rule_t (T, N) (:attr:`Trace.signal`; e-prop's L_t for the
    default ``"L"``), before the readout's κ filter."""
    L = eprop_signal(trial, feedback)
    assert L is not None
    return trace_signals(trace, trial.traj.psi, L, trial.traj.z)


class RuleFactors:
    """:class:`~neuroplast.gradients.model_truncated.TrialFactors` on a rule's own eligibility.

    Parameters
    ----------
    signals : TrialFactors
        The model's factors of the same trial, for the learning signals (L*, k-hop) and the trial's
        attributes (for a rule that keeps the reset: :class:`~neuroplast.gradients.model_truncated.
        ModelFactors` with ``keep_reset=True``).
    trial : ModelTrial
        The same trial as a :class:`ModelTrial` (its trajectory is the one ``signals`` read).
    trace : Trace or None
        As :func:`rule_eligibilities`.
    keep_reset : bool
        As :func:`rule_eligibilities`.
    feedback : ndarray (N, n_out), optional
        The trial's B, as :func:`rule_eligibilities` (a trace whose state reads ``L``).
    """

    def __init__(
        self,
        signals: TrialFactors,
        trial: ModelTrial,
        trace: Trace | None,
        keep_reset: bool,
        feedback: np.ndarray | None = None,
    ) -> None:
        self.signals = signals
        self.trial = trial
        self.trace = trace
        self.keep_reset = bool(keep_reset)
        self.feedback = feedback
        self.params, self.weights = signals.params, signals.weights
        self.psi, self.z, self.err, self.reg = signals.psi, signals.z, signals.err, signals.reg
        self.pre = trial.pre()

    def _stream(self, names: Sequence[str]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        pres = {n: self.pre[n] for n in names}
        return rule_eligibilities(self.trace, self.keep_reset, self.trial, pres, self.feedback)

    def ideal_signal(self) -> np.ndarray:
        """L* (T, N) of :attr:`signals`."""
        return self.signals.ideal_signal()

    def truncated_signals(
        self, ks: Sequence[int], *, shortcut: bool = True, full: np.ndarray | None = None
    ) -> dict[int, np.ndarray]:
        """L^(k) (T, N) of :attr:`signals`."""
        return self.signals.truncated_signals(ks, shortcut=shortcut, full=full)

    def factorize(
        self, signals: np.ndarray, masks: Mapping[str, np.ndarray | None] | None = None
    ) -> dict[str, np.ndarray]:
        """Σ_t L_t ⊙ e_t (m, N, n_pre) per projection with the rule's e_t, for a stack ``signals`` (m, T, N).

        ``masks``: ``projection -> (N, n_pre)`` bool or None (default: the weights' masks); zero elsewhere.
        """
        sig = np.asarray(signals, dtype=float)
        masks = (
            {"input": self.weights.mask_in, "recurrent": self.weights.mask_rec} if masks is None else masks
        )
        N = sig.shape[2]
        out = {name: np.zeros((sig.shape[0], N, self.pre[name].shape[1])) for name in masks}
        for t, es in self._stream(list(masks)):
            for name, e in es.items():
                out[name] += sig[:, t, :, None] * e[None]
        return {name: g if masks[name] is None else np.where(masks[name], g, 0.0) for name, g in out.items()}

    def contract(self, name: str, G: np.ndarray) -> np.ndarray:
        """u_j^t = Σ_i G_ji e_ji^t (T, N) with the rule's e_t, for a fixed G (N, n_pre) of ``name``."""
        G = np.asarray(G, dtype=float)
        u = np.empty(self.psi.shape)
        for t, es in self._stream([name]):
            u[t] = np.sum(G * es[name], axis=1)
        return u

    def row_norms(self, name: str, mask: np.ndarray) -> np.ndarray:
        """s_j^t = Σ_i M_ji (e_ji^t)² (T, N) with the rule's e_t, of projection ``name``."""
        M = np.asarray(mask, dtype=float)
        s = np.empty(self.psi.shape)
        for t, es in self._stream([name]):
            e = es[name]
            s[t] = np.sum(M * e * e, axis=1)
        return s
