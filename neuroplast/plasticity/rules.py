"""The plasticity-rule contract, the rule registry and the built-in rules.

A rule estimates dE/dW for one trial.  Every e-prop-like rule has the form

    ĝ_ji = Σ_t L_j^t ē_ji^t (+ regularization),   L_j^t = c_out Σ_k B_jk err_k^t

and differs only in its feedback matrix B (symmetric, random, adaptive, ...).  The
Brian2 network carries the eligibility traces and the summed learning signal for
any B (:mod:`neuroplast.network.builder`), so such a rule plugs in with

* ``name`` (its options are read from the ``[training]`` section, ``self.training``),
* ``init_feedback`` / ``feedback`` / ``after_update`` — how B is made and evolves,
* ``numpy_grads(trial)`` — the NumPy formula of the same estimate for one
  :class:`~neuroplast.gradients.trial.TrialData` (used by the factorized
  path and by the tests that compare the Brian2 accumulators with it);
  ``numpy_grads_batch(trials)`` gives it for a whole batch (the factorized path's one call per
  batch; batched e-prop for rules that keep the base ``numpy_grads``).

Rules that can also learn *inside* a trial (``training.update_every_steps``) give the same
update as Brian2 abstract code in ``brian2_update`` (see :class:`Rule`); the NumPy reference of
in-trial learning (:mod:`neuroplast.plasticity.in_trial`) applies the rule's Python hooks instead, and
the tests hold the two to the same numbers.

Rules that need the exact backward pass (``bptt``) set ``online = False``: the
network only records the forward trajectory and ``numpy_grads`` does the rest.

Third-party rules register through the ``neuroplast.rules`` entry-point group (the
entry point loads a :class:`Rule` subclass); a plugin that fails to load gives a
``RuntimeWarning`` and is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from neuroplast.gradients.bptt import bptt_grads, bptt_grads_batch
from neuroplast.gradients.derived import alif_trial, model_eprop_grads
from neuroplast.gradients.eprop import eprop_grads, eprop_grads_batch
from neuroplast.gradients.traces import Trace, trial_trace_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import Weights
from neuroplast.registry import Registry

__all__ = [
    "Rule",
    "RULES",
    "contract_error",
    "register_rule",
    "get_rule",
    "rule_names",
    "load_plugins",
    "TrialData",
]

ENTRY_POINT_GROUP = "neuroplast.rules"


class Rule:
    """Base class and contract of a plasticity rule (see module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    online: ClassVar[bool] = True  # the Brian2 eligibility machinery computes this rule's estimate
    #: Whether B starts random (then an initializer that draws its own B, e.g. ``network.init =
    #: "nest-sine"``, provides it instead of :meth:`init_feedback`).
    random_feedback: ClassVar[bool] = False
    #: Brian2 abstract code of one in-trial update (``training.update_every_steps``), or ``None`` when
    #: the rule cannot learn inside a trial.  Keys ``"hidden"`` (run on every input and recurrent
    #: synapse) and ``"readout"`` (run on every readout synapse, which also holds its feedback
    #: weight).  Each statement list runs after the optimizer's step ``dw`` (SGD: −η g; Adam: from the
    #: synapse's moments) and before ``w = w + dw; g = 0``, and
    #: may read ``w`` (weight before the update), ``g`` (dE/dw accumulated since the last update),
    #: ``eta`` (learning rate), ``lam`` (``training.weight_decay``) and, on readout synapses, ``B``
    #: (the feedback weight B_jk of this W_out,kj); it may change ``dw`` and ``B``.  It must do
    #: exactly what :meth:`adjust_updates`, :meth:`after_update` and :meth:`feedback` do with an
    #: optimizer update (the in-trial equality tests check that).
    brian2_update: ClassVar[dict[str, str] | None] = None
    #: What :meth:`numpy_grads` reads of a trial's trajectory (:class:`TrialData`: ``z``, ``psi`` and any
    #: of ``v``, ``a``, ``refractory``): on the factorized path the simulation records only these (the
    #: others are None).  The base class's e-prop reads ``z`` and ``psi``; a subclass that overrides
    #: :meth:`numpy_grads` without setting it gets the whole trajectory.
    trajectory: ClassVar[tuple[str, ...]] = ("z", "psi")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "numpy_grads" in cls.__dict__ and "trajectory" not in cls.__dict__:
            cls.trajectory = ("v", "a", "z", "psi", "refractory")

    #: The rule's own eligibility trace of this run (:class:`~neuroplast.gradients.traces.Trace`, set from
    #: :meth:`eligibility_trace` by :func:`neuroplast.build.build`); ``None``: e-prop's, derived from the
    #: neuron model.
    trace: Trace | None = None
    #: Whether the rule's eligibility keeps the reset term: the neuron's own spike z_{t−1} differentiated
    #: through ψ_{t−1} in the reset R(…) too, J_t = D_t + (S_t + S_reset,t) ψ_{t−1} du_{t−1}ᵀ, derived for
    #: every neuron model (:func:`neuroplast.gradients.derived.model_eligibilities`) and generated into
    #: the network (per synapse); e-prop's (False) leaves the reset undifferentiated.  Such a rule runs
    #: on the online path, one trial (or batch) per launch, like a rule with its own :attr:`trace`.
    keeps_reset: ClassVar[bool] = False
    #: The projections whose optimizer updates :meth:`adjust_updates` and :meth:`after_update` read or
    #: change.  Where the optimizer steps on edge vectors (a large sparse network), the trainer makes only
    #: these dense for them (given a dict of those keys alone) and keeps the others edge vectors; a rule
    #: that overrides neither method needs none.  Default: every projection.
    dense_updates: ClassVar[tuple[str, ...]] = ("input", "recurrent", "output", "bias")

    def __init__(self, training: Any) -> None:
        self.training = training  # the run's ``[training]`` options (learning rate, feedback_scale, ...)

    def eligibility_trace(self, cfg: Any) -> Trace | None:
        """The rule's own eligibility trace for a run of config ``cfg`` (default ``None``: e-prop's).

        A :class:`~neuroplast.gradients.traces.Trace` is both the simulation's code (generated next to the
        neuron model's, on every device with ``neuron_models``) and its NumPy reference: state per
        presynaptic neuron, per postsynaptic neuron and per synapse, the eligibility e_t and, optionally,
        the rule's own learning signal (an expression of e-prop's c_out B err, the postsynaptic state, ψ
        and z); the rest — ē and Σ L ē — stays e-prop's (docs/plugins.md).
        """
        return None

    def init_feedback(self, weights: Weights, rng: np.random.Generator) -> np.ndarray:
        """Initial feedback matrix B, shape (N, n_out). Default: W_outᵀ."""
        return weights.w_out.T.copy()

    def feedback(self, weights: Weights, b: np.ndarray) -> np.ndarray:
        """B for the next trial, given the current weights and the rule's B state."""
        return b

    def adjust_updates(self, updates: dict[str, np.ndarray], weights: Weights) -> dict[str, np.ndarray]:
        """Change the optimizer's updates before they are applied (default: none)."""
        return updates

    def after_update(self, b: np.ndarray, weights: Weights, updates: dict[str, np.ndarray]) -> np.ndarray:
        """The rule's B after ``weights`` (before the update) received ``updates``."""
        return b

    def numpy_grads(self, trial: TrialData) -> dict[str, np.ndarray]:
        """NumPy formula of this rule's estimate of one trial: dense arrays per projection.

        Default: e-prop with the trial's feedback B (``trial.feedback``), see
        :func:`neuroplast.gradients.eprop.eprop_grads`; with the rule's own :attr:`trace`, the same sums
        with that trace's eligibility (:func:`neuroplast.gradients.traces.trial_trace_grads`).
        """
        if self.trace is not None:
            return trial_trace_grads(trial, self.trace)
        if self.keeps_reset:
            return model_eprop_grads(alif_trial(trial), trial.feedback, keep_reset=True)
        return eprop_grads(trial, method="factorized")

    def numpy_grads_batch(self, trials: Sequence[TrialData]) -> list[dict[str, np.ndarray]]:
        """:meth:`numpy_grads` of every trial of a batch (the factorized path calls this once per batch).

        Default: ``[self.numpy_grads(t) for t in trials]``; a rule that keeps the base
        :meth:`numpy_grads` (e-prop with the trial's B) gets the batched e-prop
        (:func:`neuroplast.gradients.eprop.eprop_grads_batch`), bit for bit the same numbers in one
        time scan per batch.  A rule may override this for speed; it must return what the per-trial
        :meth:`numpy_grads` returns, trial by trial.
        """
        if type(self).numpy_grads is Rule.numpy_grads and not self.own_eligibility:
            return eprop_grads_batch(trials, method="factorized")
        return [self.numpy_grads(t) for t in trials]

    @property
    def simulated(self) -> bool:
        """Whether the simulation can compute this rule's gradient: ``online`` and the base
        :meth:`numpy_grads` (e-prop with the rule's B, what the network accumulates).  A rule with a
        formula of its own is computed by NumPy from the recorded trajectory (the factorized path)."""
        return bool(self.online) and type(self).numpy_grads is Rule.numpy_grads

    @property
    def eprop_gradient(self) -> bool:
        """Whether this rule's gradient is the base class's e-prop with the trial's B (neither
        :meth:`numpy_grads` nor :meth:`numpy_grads_batch` overridden): a simulator that computes that
        gradient itself (the cpp_standalone binary, docs/model.md §9) may then stand in for them."""
        cls = type(self)
        same = cls.numpy_grads is Rule.numpy_grads and cls.numpy_grads_batch is Rule.numpy_grads_batch
        return same and not self.own_eligibility

    @property
    def own_eligibility(self) -> bool:
        """Whether the eligibility is not e-prop's derived one: the rule's own :attr:`trace`, or one that
        :attr:`keeps_reset` (the network is then generated from the neuron model's equations, ``alif``
        included, and learns on the online path one trial or batch per launch)."""
        return self.trace is not None or bool(self.keeps_reset)


def contract_error(cls: type[Rule]) -> str | None:
    """What breaks the rule contract in ``cls``, in one line, or ``None``.

    A rule that declares ``online = True`` says that the simulation's eligibility machinery computes its
    gradient (e-prop with its B); overriding :meth:`Rule.numpy_grads` then gives two different gradients,
    the simulation's on the online path and the formula on the factorized one.
    """
    if cls.online and cls.numpy_grads is not Rule.numpy_grads:
        return (
            f"rule {cls.name!r} overrides numpy_grads but declares online = True: the simulation would "
            "compute e-prop with its B, not that formula; set online = False (its gradient is then "
            "computed from the recorded trajectory) or keep the base numpy_grads"
        )
    return None


def _check_rule(obj: object, name: str) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Rule)):
        raise TypeError(f"{obj!r} is not a Rule subclass")
    if obj.name.lower() != name.lower():
        raise ValueError(f"entry point name {name!r} differs from the rule's name {obj.name!r}")
    error = contract_error(obj)
    if error:
        raise ValueError(error)


RULES: Registry[type[Rule]] = Registry("rule", group=ENTRY_POINT_GROUP, check=_check_rule)


def register_rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator: register a :class:`Rule` subclass under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        raise TypeError(f"{cls!r} is not a neuroplast Rule subclass")
    error = contract_error(cls)
    if error:
        raise ValueError(error)
    RULES.register(cls.name, cls)
    return cls


def load_plugins(refresh: bool = False) -> list[str]:
    """Load third-party rules from the ``neuroplast.rules`` entry points (:meth:`Registry.load_plugins`)."""
    return RULES.load_plugins(refresh)


def get_rule(name: str) -> type[Rule]:
    """Rule class by name, built-ins and plugins."""
    return RULES.get(name)


def rule_names() -> list[str]:
    """Names of the built-in and plugin rules, sorted."""
    return RULES.names()


@register_rule
class EpropSymmetric(Rule):
    """e-prop with symmetric feedback B = W_outᵀ (tracks W_out)."""

    name = "eprop"
    description = "e-prop, symmetric feedback B = W_out^T"
    brian2_update = {"hidden": "", "readout": "B = w + dw"}

    def feedback(self, weights: Weights, b: np.ndarray) -> np.ndarray:
        return weights.w_out.T.copy()


@register_rule
class EpropRandom(Rule):
    """e-prop with fixed random feedback (random e-prop).

    B ~ N(0, σ²) with σ = ``feedback_scale`` × the standard deviation of the initial W_out (1/√N if
    W_out starts at zero), so that random and symmetric learning signals have the same magnitude.
    """

    name = "eprop-random"
    description = "e-prop, fixed random feedback"
    random_feedback = True
    brian2_update = {"hidden": "", "readout": ""}

    def init_feedback(self, weights: Weights, rng: np.random.Generator) -> np.ndarray:
        sd = float(np.std(weights.w_out))
        scale = self.training.feedback_scale * (sd if sd > 0 else 1.0 / np.sqrt(weights.n_rec))
        return rng.normal(0.0, scale, (weights.n_rec, weights.n_out))


@register_rule
class EpropAdaptive(EpropRandom):
    """e-prop with adaptive (Kolen–Pollack) feedback.

    B starts random and receives W_out's optimizer update (transposed); both B and
    W_out decay by the factor (1 − ``training.weight_decay``) per update, so B → W_outᵀ
    over training.
    """

    name = "eprop-adaptive"
    description = "e-prop, Kolen-Pollack adaptive feedback"
    brian2_update = {"hidden": "", "readout": "dw = dw - lam * w\nB = (1 - lam) * B + (dw + lam * w)"}
    dense_updates = ("output",)

    def adjust_updates(self, updates: dict[str, np.ndarray], weights: Weights) -> dict[str, np.ndarray]:
        out = dict(updates)
        out["output"] = updates["output"] - self.training.weight_decay * weights.w_out
        return out

    def after_update(self, b: np.ndarray, weights: Weights, updates: dict[str, np.ndarray]) -> np.ndarray:
        lam = self.training.weight_decay
        # ΔW_out = −η g − λ W_out  ⇒  B ← (1 − λ) B − η gᵀ
        return (1.0 - lam) * b + (updates["output"] + lam * weights.w_out).T


@register_rule
class ThreeFactor(Rule):
    """A three-factor (neo-Hebbian) rule: one global learning signal for every neuron.

    ĝ_ji = Σ_t M_t ē_ji^t with M_t = c_out Σ_k r_k err_k^t, one scalar per step broadcast to all neurons
    (a neuromodulator), times the same eligibility trace as e-prop: B = 1 rᵀ, every row the same
    fixed random vector r ~ N(0, σ²), σ as :class:`EpropRandom`'s.  (Σ_k err_k alone, r = 1, vanishes
    for a softmax readout, Σ_k (π_k − π*_k) = 0.)  The baseline that asks how much e-prop's per-neuron
    learning signals matter: reward-modulated STDP and its kin (Frémaux & Gerstner 2016, Front. Neural
    Circuits 9:85; Gerstner et al. 2018, Front. Neural Circuits 12:53).
    """

    name = "three-factor"
    description = "three-factor rule: one global learning signal M_t = c_out r^T err_t for every neuron"
    brian2_update = {"hidden": "", "readout": ""}

    def init_feedback(self, weights: Weights, rng: np.random.Generator) -> np.ndarray:
        sd = float(np.std(weights.w_out))
        scale = self.training.feedback_scale * (sd if sd > 0 else 1.0 / np.sqrt(weights.n_rec))
        r = rng.normal(0.0, scale, weights.n_out)
        return np.repeat(r[None, :], weights.n_rec, axis=0)


@register_rule
class SuperSpike(EpropSymmetric):
    """e-prop's learning signal (symmetric feedback B = W_outᵀ) with SuperSpike's eligibility trace, which
    knows nothing of the neuron model.

    e_ji,t = ψ_j,t · q_i,t with q the presynaptic drive filtered twice, by the synaptic and the membrane
    time constant: p_t = α_s p_{t−1} + pre_t, q_t = α q_{t−1} + p_t (α_s = exp(−dt/τ_syn),
    ``network.tau_syn_ms``; α = exp(−dt/τ_m)) — the kernel of a current-based LIF neuron, for any model
    (Zenke & Ganguli 2018, Neural Comput. 30:1514).  On ``lif_syn`` it is e-prop's own trace (equal to
    rounding); on models with other dynamics (adaptation, the ALIF threshold, AdLIF's current) it is an
    approximation of it: how much does a model-specific eligibility matter?
    """

    name = "superspike"
    description = "e-prop's learning signal, SuperSpike's model-agnostic double-exponential eligibility"
    brian2_update = None  # in-trial learning runs e-prop's own trace

    def eligibility_trace(self, cfg: Any) -> Trace:
        dt, net = cfg.simulation.dt_ms, cfg.network
        return Trace(
            "superspike",
            ("p", "q"),
            (("p", "a_s * p + pre"), ("q", "a_m * q + p")),
            "psi * q",
            (("a_s", float(np.exp(-dt / net.tau_syn_ms))), ("a_m", float(np.exp(-dt / net.tau_m_ms)))),
        )


@register_rule
class Ostl(EpropSymmetric):
    """e-prop's learning signal (symmetric feedback B = W_outᵀ) with the neuron's whole temporal gradient:
    the eligibility keeps the reset term (:attr:`Rule.keeps_reset`), as online spatio-temporal learning
    does (OSTL; Bohnstingl et al. 2022, IEEE Trans. Neural Netw. Learn. Syst., arXiv:2007.12723).

    OSTL splits dE/dW into a spatial part (the learning signal) and a temporal part (the eligibility, the
    full derivative of the neuron's own state with respect to its weights).  e-prop's eligibility leaves
    the reset −v_th z_{t−1} (any ``R(…)`` term) undifferentiated; OSTL's follows the neuron's own spike
    into its reset through ψ_{t−1} as well, so it keeps more of the exact credit.  Without recurrent
    weights that is all of it: the gradient equals BPTT with the reset differentiated (``neuroplast compare
    --keep-reset``), as OSTL is gradient-equivalent to BPTT in networks without recurrence; with W_rec it
    drops, as e-prop does, the paths through other neurons (the recurrent spatial terms).  Per-synapse
    eligibility vectors on every device with ``neuron_models`` (J_t depends on ψ_{t−1}), every model.
    """

    name = "ostl"
    description = "e-prop's learning signal, the eligibility with the reset differentiated (OSTL)"
    keeps_reset = True
    brian2_update = None  # in-trial learning runs e-prop's own eligibility


@register_rule
class Bptt(Rule):
    """Exact BPTT gradient of the trial (Brian2 forward, NumPy backward)."""

    name = "bptt"
    description = "exact BPTT (reset path detached), Brian2 forward + NumPy backward"
    online = False
    trajectory = ("z", "psi")  # bptt_grads reads the spikes and ψ only
    #: Whether the reset −v_th z_{t−1} is left out of the backward pass (as e-prop's eligibility leaves it
    #: out: then e-prop with the ideal learning signal is this gradient, docs/model.md).
    detach_reset = True

    def numpy_grads(self, trial: TrialData) -> dict[str, np.ndarray]:
        return bptt_grads(trial, self.detach_reset)

    def numpy_grads_batch(self, trials: Sequence[TrialData]) -> list[dict[str, np.ndarray]]:
        """:func:`~neuroplast.gradients.bptt.bptt_grads_batch`: the batch's backward passes in one time loop,
        each trial's gradient to the bit what :meth:`numpy_grads` gives."""
        return bptt_grads_batch(trials, self.detach_reset)


@register_rule
class BpttFull(Bptt):
    """Exact BPTT through the reset too: the whole surrogate gradient, what automatic differentiation of the
    network gives (the e-prop reference code's BPTT).  Without the reset's negative feedback in the backward
    pass, the adjoints of long trials can grow without bound (docs/results.md measures it on evidence
    accumulation); with it they stay bounded."""

    name = "bptt-full"
    description = (
        "exact BPTT through the reset too (autodiff's surrogate gradient), Brian2 forward + NumPy backward"
    )
    detach_reset = False
