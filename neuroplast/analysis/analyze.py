"""Where and why a local rule departs from the exact gradient (``neuroplast analyze``).

Every analysis replays logged trials with the NumPy reference (:func:`neuroplast.analysis.compare.
replay_trial`, which rebuilds them through ``neuroplast.build`` and the log's connectivity) and uses the
factorized forms of :mod:`neuroplast.gradients.model_truncated` (:class:`~neuroplast.gradients.
model_truncated.TrialFactors`): per-neuron factors (T, N) and matrix products, never a per-synapse ×
per-step array.  Any neuron model is analysed: ``alif`` through its hand-written fast path
(:mod:`neuroplast.gradients.truncated`, memory O(T·N + N·n_pre) per trial), every other model through the
factors derived from its Jacobians (the same quantities; on ``alif`` the two agree to ≤ 1e-12).

**Common footing of the two learning signals.**  e-prop's signal L̂_t = c_out B err_t multiplies the
κ-filtered trace ē_t; the ideal signal L*_t (:func:`~neuroplast.gradients.bptt.ideal_learning_signal`)
already contains the readout filter and multiplies the unfiltered trace e_t.  Since Σ_t L̂_t ē_t =
Σ_t L̃_t e_t with L̃ the backward κ-filter of L̂ (L̃_t = L̂_t + κ L̃_{t+1}), the rule's signal is taken as

    L̃_t = backward κ-filter of (c_out B err)_t + R       (R: the rate regularizer's signal, exact in e-prop)

and every comparison is on the unfiltered traces: ĝ = Σ_t L̃_t ⊙ e_t, g* = Σ_t L*_t ⊙ e_t (BPTT, reset
detached), and the gap g* − ĝ = Σ_t gap_t with gap_t = (L*_t − L̃_t) ⊙ e_t, attributed to the step of the
learning signal.  B is the feedback matrix logged for the trial's iteration (``projections/feedback``);
``--rule bptt`` runs use L̃ = L* (no gap).  "hidden" means the input and recurrent projections together
(the readout and bias gradients are exact in every e-prop rule).

Analyses (all in :func:`analyze_run`, each also callable per trial):

1. **time** — per step, ‖gap_t‖_F and ⟨gap_t, G⟩ / ‖G‖² (G = g* − ĝ; sums to 1 over the trial), averaged over
   trials, with the task's events (:func:`task_events`) and the fraction of the gap in each event window;
2. **neurons** — per neuron j, the cosine over time between L̃_j and L*_j weighted by the squared norm of
   its eligibility traces s_j^t = Σ_i (e_ji^t)² (``cosine``: sums pooled over trials, so trials with a
   large L* dominate; ``cosine_trial_mean``: each trial's cosine, averaged), firing rate, and the neuron's
   kind from its model (``kind``, e.g. LIF/ALIF; ``adaptive``; :meth:`~neuroplast.model.neurons.
   NeuronModel.neuron_kinds`);
3. **counterfactual** — learning signals truncated to k hops through W_rec (k = 0: symmetric e-prop;
   k = T: BPTT), their cosine with BPTT and loss-decrease proxies; the least-squares fixed feedback B*
   (the best fixed linear map from the filtered error to L*) and the cosine it reaches; symmetric, random
   and the logged feedback for reference (:mod:`neuroplast.analysis.counterfactual`);
4. **training** — cosine between the updates the rule applied (``updates``) and −g* per iteration and
   accumulated over iterations, and the singular values of the accumulated ΔW_rec.

**A rule with an eligibility of its own** (:attr:`~neuroplast.plasticity.rules.Rule.own_eligibility`:
``superspike``'s trace, ``ostl``'s eligibility that keeps the reset): every product of a learning signal with
an eligibility above — ĝ, the gap, s_j^t, the k-hop and fixed-feedback gradients, B*'s moments — uses the
rule's e_t, streamed over t from the one function
:func:`neuroplast.gradients.rule_eligibility.rule_eligibilities`
(:class:`~neuroplast.gradients.rule_eligibility.RuleFactors`), never e-prop's.  The learning signals stay
those of the model (L̃ as above, L*, L^(k)), and the exact gradient g_ref is the model's:

* ``ostl`` (reset kept): g_ref is BPTT with the reset differentiated (``reference = "bptt_full"``), which
  its eligibility factorizes exactly with L* taken through the reset (L*, L^(k), B* and the training
  alignment then keep the reset too), so every identity above holds (k = T is g_ref; without W_rec the
  rule is g_ref);
* a trace (``superspike``): g_ref is BPTT (reset detached), and no learning signal makes the trace exact,
  so the rule has no ideal signal: L* is kept as the target signal, the gap of analysis 1 is the learning
  signal's part Σ_t (L*_t − L̃_t) ⊙ e_t of the rule's eligibility (g*_e − ĝ, g*_e = Σ_t L*_t e_t), k = T
  is g*_e (not BPTT), and the eligibility's own part g_ref − g*_e is reported as one number
  (``eligibility_gap``; ``notes`` says so in one line).  On ``lif_syn`` with its time constants the trace
  is e-prop's eligibility and the analysis equals that of e-prop on the same trials.

For every run, ``logged_check`` holds |ĝ − logged| / |logged| per trial (hidden weights): the rule's
gradient as computed here, Σ_t L̃_t ⊙ e_t with its eligibility, against the one the run logged under the
rule's name; for a rule with its own eligibility also the same sum with e-prop's eligibility, which
differs where the two eligibilities do (the check can disagree).

Runs that learned inside their trials (root attribute
``update_every_steps`` > 0) are refused: their
weights change within a trial, so there is no single-weights L*, BPTT gradient or gap of "the trial", and
their ``updates`` hold only the trial-end update.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.analysis.compare import ReplayContext, replay_context, replay_trial
from neuroplast.analysis.counterfactual import (
    DEFAULT_KS,
    FeedbackMoments,
    bstar_solve,
    counterfactual_trial,
)
from neuroplast.errors import UsageError
from neuroplast.gradients.derived import ModelTrial
from neuroplast.gradients.model_truncated import AlifFactors, ModelFactors, TrialFactors, as_factors
from neuroplast.gradients.rule_eligibility import RuleFactors
from neuroplast.gradients.rule_eligibility import rule_signal as own_signal
from neuroplast.gradients.traces import Trace
from neuroplast.gradients.trial import TrialData
from neuroplast.io import RunFileError, open_run
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.neurons import alif_values
from neuroplast.model.signals import backward_filter, output_grads
from neuroplast.progress import Progress

__all__ = [
    "HIDDEN",
    "parse_trials",
    "task_events",
    "rule_signal",
    "time_resolved",
    "neuron_quality",
    "training_alignment",
    "Eligibility",
    "rule_eligibility",
    "eligibility_notes",
    "LOGGED_RTOL",
    "analyze_run",
]

#: Projections whose gradient goes through a learning signal (the "hidden" weights).
HIDDEN = ("input", "recurrent")


def parse_trials(sel: str | None, n: int) -> np.ndarray:
    """Trial indices from a selection like ``all``, ``0:50``, ``::10``, ``-20:``, ``0,5,9`` or ``0:10,50``.

    Slices follow Python's rules over range(n); the result is sorted and unique.

    Raises
    ------
    UsageError
        One line naming ``--trials`` if the selection does not parse or selects nothing.
    """
    if sel is None or sel.strip().lower() in ("", "all"):
        return np.arange(n)
    idx: set[int] = set()
    for part in sel.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bits) > 3:
                    raise ValueError
                idx.update(range(n)[slice(*bits)])
            else:
                k = int(part)
                if not -n <= k < n:
                    raise UsageError(f"--trials: trial {k} out of range (the run has {n} trials)")
                idx.add(k % n)
        except ValueError:
            raise UsageError(f"--trials: cannot parse {part!r} (use e.g. all, 0:50, ::10, 0,5,9)") from None
    if not idx:
        raise UsageError(f"--trials: {sel!r} selects no trial (the run has {n} trials)")
    return np.array(sorted(idx))


def task_events(cfg: Any, T: int) -> dict[str, Any]:
    """The task's events as step windows, for aligning per-step quantities.

    Evidence: every cue window, the delay and the recall window.  Sine: quarters of the longest period
    (``phase`` per step in [0, 1)), labelled by their time within it, e.g. ``"0–250 ms"``.  Other tasks:
    the whole trial.

    Returns
    -------
    dict
        ``windows``: list of ``(label, first_step, stop_step)`` (0-based, stop exclusive, disjoint,
        labels repeat for the cues); ``groups``: label → list of windows' indices; ``phase``: (T,)
        array or None; ``title``: what the windows are, in words.
    """
    name = type(cfg.task).__module__.rsplit(".", 1)[-1]
    dt = float(cfg.simulation.dt_ms)
    windows: list[tuple[str, int, int]] = []
    phase = None
    title = "the task's windows"
    if name == "evidence":
        p = cfg.task
        step = int(round((p.cue_ms + p.gap_ms) / dt))
        cue = int(round(p.cue_ms / dt))
        recall = int(round(p.recall_ms / dt))
        for c in range(p.n_cues):
            windows.append(("cues", c * step, c * step + cue))
            windows.append(("gaps", c * step + cue, (c + 1) * step))
        windows.append(("delay", p.n_cues * step, T - recall))
        windows.append(("recall", T - recall, T))
    elif name == "sine":
        period_ms = max(cfg.task.periods_ms)
        period = period_ms / dt
        phase = (np.arange(1, T + 1) % period) / period
        q = np.minimum((phase * 4).astype(int), 3)
        for t0 in np.flatnonzero(np.r_[True, q[1:] != q[:-1]]):
            t1 = t0 + int(np.argmax(q[t0:] != q[t0])) if np.any(q[t0:] != q[t0]) else T
            a, b = q[t0] * period_ms / 4, (q[t0] + 1) * period_ms / 4
            windows.append((f"{a:g}–{b:g} ms", int(t0), int(t1)))
        title = f"quarters of the target's longest period ({period_ms:g} ms)"
    else:
        windows.append(("trial", 0, T))
    windows = [(lab, a, b) for lab, a, b in windows if b > a]
    groups: dict[str, list[int]] = {}
    for i, (lab, _, _) in enumerate(windows):
        groups.setdefault(lab, []).append(i)
    return {"windows": windows, "groups": groups, "phase": phase, "title": title}


#: One trial as the analyses take it: the ``alif`` model's :class:`TrialData`, any model's
#: :class:`ModelTrial`, or their factors (:func:`~neuroplast.gradients.model_truncated.as_factors`).
AnyTrial = TrialData | ModelTrial | TrialFactors


def rule_signal(trial: AnyTrial, feedback: np.ndarray | None) -> np.ndarray:
    """The rule's learning signal on the footing of L* (module docstring), (T, N), [E] per spike.

    ``feedback`` None means exact BPTT (the signal is L* itself).
    """
    if feedback is None:
        return as_factors(trial).ideal_signal()
    p = trial.params
    if isinstance(trial, RuleFactors) and trial.trace is not None and trial.trace.own_signal:
        # the rule's own signal L^rule_t (an expression of its postsynaptic state), κ-filtered backward
        L = backward_filter(own_signal(trial.trial, trial.trace, feedback), p.kappa)
    else:
        L = p.readout_scale * backward_filter(trial.err, p.kappa) @ np.asarray(feedback, dtype=float).T
    return L if trial.reg is None else L + trial.reg[None, :]


def _masks(trial: AnyTrial) -> dict[str, np.ndarray]:
    return {"input": trial.weights.mask_in, "recurrent": trial.weights.mask_rec}


def time_resolved(
    trial: AnyTrial,
    L_rule: np.ndarray,
    L_star: np.ndarray | None = None,
    *,
    grads: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Per-step contribution gap_t = (L*_t − L̃_t) ⊙ e_t to the gap G = g* − ĝ of one trial.

    Parameters
    ----------
    trial : TrialData, ModelTrial or TrialFactors
        The trial of any neuron model (pass its factors to share their cached parts between analyses).
    L_rule : ndarray (T, N)
        The rule's signal L̃ (:func:`rule_signal`).
    L_star : ndarray (T, N), optional
        The ideal signal (computed when not given).
    grads : dict, optional
        ``projection -> (g*, ĝ)`` already factorized (computed when not given).

    Returns
    -------
    dict
        For each of ``input``, ``recurrent`` and ``hidden`` (both): ``gap_norm`` (T,) ‖gap_t‖_F,
        ``gap_along`` (T,) ⟨gap_t, G⟩ (Σ_t = ‖G‖²), ``gap_total`` ‖G‖, and ``exact_along``, ``rule_along``
        (T,) the projections of L*_t ⊙ e_t and L̃_t ⊙ e_t on the unit g* (Σ_t: ‖g*‖ and ⟨ĝ, g*⟩/‖g*‖);
        per projection also ``G``, ``g_star``, ``g_rule`` (N, n_pre); ``elig_sq`` (T, N) s_j^t summed
        over the hidden projections.  Units [E] per unit weight (squared for ``gap_along``).
    """
    f = as_factors(trial)
    if L_star is None:
        L_star = f.ideal_signal()
    D = L_star - L_rule
    out: dict[str, Any] = {}
    elig_sq = np.zeros_like(f.psi)
    if grads is None:
        both = f.factorize(np.stack([L_star, L_rule]))
        grads = {name: (g[0], g[1]) for name, g in both.items()}
    for name, mask in _masks(f).items():
        g_star, g_rule = grads[name]
        G = g_star - g_rule
        s = f.row_norms(name, mask)
        elig_sq += s
        u_gap = f.contract(name, G)
        u_star = f.contract(name, g_star)
        out[name] = {
            "G": G,
            "g_star": g_star,
            "g_rule": g_rule,
            "gap_sq": np.sum(D**2 * s, axis=1),
            "gap_along": np.sum(D * u_gap, axis=1),
            "exact_dot": np.sum(L_star * u_star, axis=1),
            "rule_dot": np.sum(L_rule * u_star, axis=1),
            "gg": float(np.sum(G * G)),
            "ss": float(np.sum(g_star * g_star)),
        }
    hid = {
        k: sum(out[n][k] for n in HIDDEN)
        for k in ("gap_sq", "gap_along", "exact_dot", "rule_dot", "gg", "ss")
    }
    for part in (*HIDDEN, "hidden"):
        d = hid if part == "hidden" else out[part]
        sn = np.sqrt(d["ss"])
        d["gap_norm"] = np.sqrt(d.pop("gap_sq"))
        d["gap_total"] = float(np.sqrt(d.pop("gg")))
        d["exact_along"] = d.pop("exact_dot") / sn if sn > 0 else np.zeros_like(d["gap_norm"])
        d["rule_along"] = d.pop("rule_dot") / sn if sn > 0 else np.zeros_like(d["gap_norm"])
        d["g_star_norm"] = float(sn)
        d.pop("ss")
    out["hidden"] = hid
    out["elig_sq"] = elig_sq
    return out


def neuron_quality(L_rule: np.ndarray, L_star: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Eligibility-weighted sums for the per-neuron cosine between L̃_j and L*_j over time.

    Returns the sums (pool them over trials, then take :func:`neuron_cosine`): ``weight`` Σ_t w,
    ``dot`` Σ_t w L̃ L*,
    ``rule_sq`` Σ_t w L̃², ``star_sq`` Σ_t w L*², each (N,), with w = ``weight`` (T, N) ≥ 0, and the
    unweighted ``dot0``, ``rule_sq0``, ``star_sq0``.
    """
    return {
        "weight": np.sum(weight, axis=0),
        "dot": np.sum(weight * L_rule * L_star, axis=0),
        "rule_sq": np.sum(weight * L_rule**2, axis=0),
        "star_sq": np.sum(weight * L_star**2, axis=0),
        "dot0": np.sum(L_rule * L_star, axis=0),
        "rule_sq0": np.sum(L_rule**2, axis=0),
        "star_sq0": np.sum(L_star**2, axis=0),
    }


def neuron_cosine(dot: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """dot / √(a_sq · b_sq), NaN where a neuron has no weight (silent or never eligible)."""
    den = np.sqrt(a_sq * b_sq)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, dot / np.where(den > 0, den, 1.0), np.nan)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.sum(a * b) / (na * nb)) if na > 0 and nb > 0 else float("nan")


def training_alignment(
    ctx: ReplayContext, gstar: dict[str, dict[int, np.ndarray]], iterations: np.ndarray
) -> dict[str, Any]:
    """Cosine between the applied updates and −g*, per iteration and accumulated, and the ΔW_rec spectrum.

    Parameters
    ----------
    ctx : ReplayContext
    gstar : dict
        ``projection -> trial index -> (n_edges,)`` exact gradient of each analysed trial.
    iterations : ndarray (n_trials,)
        Iteration of every trial of the run.

    Returns
    -------
    dict
        ``iterations`` (those whose trials were all analysed, in order), per projection ``per_iteration``
        and ``cumulative`` cosines (dimensionless, one per listed iteration), ``spectrum`` the singular values
        of Σ ΔW_rec over all logged iterations (dense N × N, descending, [weight]) and ``spectrum_grad``
        those of −Σ g*_rec over the listed iterations ([E] per unit weight), ``effective_rank`` (Σ s)² / Σ s².
    """
    run = ctx.run
    trials_of = {int(it): np.flatnonzero(iterations == it) for it in np.unique(iterations)}
    its = [
        it
        for it in range(run.n_iterations)
        if it in trials_of and all(int(k) in gstar["recurrent"] for k in trials_of[it])
    ]
    out: dict[str, Any] = {"iterations": np.asarray(its, dtype=int)}
    for name in PROJECTIONS:
        upd = run.projection(name).updates
        per, cum = [], []
        acc_u, acc_g = 0.0, 0.0
        for it in its:
            g = np.mean([gstar[name][int(k)] for k in trials_of[it]], axis=0)
            acc_u, acc_g = acc_u + upd[it], acc_g + g
            per.append(_cos(upd[it], -g))
            cum.append(_cos(acc_u, -acc_g))
        out[name] = {"per_iteration": np.asarray(per), "cumulative": np.asarray(cum)}
    dw = ctx.connectivity.to_dense("recurrent", run.projection("recurrent").updates.sum(axis=0))
    s = np.linalg.svd(dw, compute_uv=False)
    out["spectrum"] = s
    out["effective_rank"] = float(s.sum() ** 2 / np.sum(s**2)) if np.any(s > 0) else float("nan")
    if its:
        gsum = sum(np.mean([gstar["recurrent"][int(k)] for k in trials_of[it]], axis=0) for it in its)
        out["spectrum_grad"] = np.linalg.svd(-ctx.connectivity.to_dense("recurrent", gsum), compute_uv=False)
    else:
        out["spectrum_grad"] = np.zeros(0)
    return out


def _refuse_in_trial(run: Any) -> None:
    if run.update_every_steps:
        raise RunFileError(
            run.path,
            f"the run learned inside its trials (training.update_every_steps = {run.update_every_steps}): "
            "its weights change during a trial, so there is no single-weights BPTT gradient, ideal learning "
            "signal or gap to analyse; analyse a run with per-trial updates",
        )


#: Largest relative difference between the rule's gradient as analyze computes it (Σ_t L̃_t ⊙ e_t with the
#: rule's eligibility) and the logged one for which ``logged_check`` reports agreement: the same sums in
#: another order are ≈ 1e-15; a simulator's own accumulation (Brian2) is held to 1e-9 by its tests.
LOGGED_RTOL = 1e-9


@dataclass(frozen=True)
class Eligibility:
    """The eligibility a run's rule learns with, as the analyses use it.

    Attributes
    ----------
    trace : Trace or None
        The rule's own trace (``Rule.eligibility_trace(cfg)``).
    keep_reset : bool
        The model's derived eligibility with the reset kept (``Rule.keeps_reset``).
    """

    trace: Trace | None = None
    keep_reset: bool = False

    @property
    def own(self) -> bool:
        """Whether it is not e-prop's derived eligibility."""
        return self.trace is not None or self.keep_reset

    @property
    def reference(self) -> str:
        """The exact gradient the analyses compare with: ``bptt_full`` (BPTT with the reset differentiated,
        what the eligibility that keeps the reset factorizes) or ``bptt`` (reset detached)."""
        return "bptt_full" if self.keep_reset and self.trace is None else "bptt"

    @property
    def label(self) -> str:
        """In words, for the report."""
        if self.trace is not None:
            return f"its own trace {self.trace.name!r}"
        return "the model's derived eligibility with the reset kept" if self.keep_reset else "e-prop's"


def rule_eligibility(cfg: Any) -> Eligibility:
    """The :class:`Eligibility` of the rule of a run's config (``training.rule``): exact BPTT through the
    reset (``bptt-full``, ``Bptt.detach_reset = False``) is analysed on the eligibility that keeps the reset,
    whose Σ_t L*_t e_t it is."""
    from neuroplast.plasticity.rules import Bptt, get_rule

    rule = get_rule(cfg.training.rule)(cfg.training)
    through_reset = isinstance(rule, Bptt) and not rule.detach_reset
    return Eligibility(rule.eligibility_trace(cfg), bool(rule.keeps_reset) or through_reset)


def eligibility_notes(
    elig: Eligibility, rule: str, eligibility_gap: float, eligibility_cosine: float = float("nan")
) -> list[str]:
    """One line per analysis whose meaning changes for a rule with an eligibility of its own (none for
    e-prop's): what it measures instead, or that it has none.

    ``eligibility_gap``: mean over trials of |g_ref − Σ_t L*_t e_t| / |g_ref| with the rule's e_t;
    ``eligibility_cosine``: of cos(Σ_t L*_t e_t, g_ref)."""
    if elig.trace is not None:
        own = (
            f"; its learning signal is its own ({elig.trace.signal!r}: g_rule and the fixed-feedback "
            "reference use it, the k-hop signals and B* are e-prop's kind of signal)"
            if elig.trace.own_signal
            else ""
        )
        return [
            f"rule {rule!r} learns with {elig.label}{own}: no learning signal makes it exact, so there is no "
            "ideal signal for it; L* (e-prop's, reset detached) is used as the target signal, k = T is L* on "
            "the rule's eligibility (not BPTT), and the gap sum_t L*_t e_t - g_rule (1.) covers the learning "
            f"signal only; the eligibility's own part |g* - sum_t L*_t e_t| / |g*| = {_fmt(eligibility_gap)} "
            f"(cosine {_fmt(eligibility_cosine)})",
        ]
    if elig.keep_reset:
        return [
            f"rule {rule!r} learns with {elig.label}: the reference is BPTT with the reset differentiated "
            "(bptt_full), which that eligibility factorizes with L* through the reset; L*, the k-hop "
            "signals, B* and the training alignment are taken through the reset too "
            f"(check |bptt_full - sum_t L*_t e_t| / |bptt_full| = {_fmt(eligibility_gap)})",
        ]
    return []


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _feedbacks(ctx: ReplayContext) -> tuple[np.ndarray | None, np.ndarray]:
    """The logged feedback per iteration (None for a BPTT rule: ``bptt``, ``bptt-full``, which learn with no
    feedback matrix) and a fixed random reference B."""
    from neuroplast.plasticity.rules import Bptt, get_rule

    cfg = ctx.config
    fb = ctx.run.projection("feedback").weights if "feedback" in ctx.run.projection_names else None
    if issubclass(get_rule(cfg.training.rule), Bptt):
        fb = None
    w0 = ctx.dense_weights({n: ctx.run.projection(n).weights[0] for n in PROJECTIONS})
    rand = get_rule("eprop-random")(cfg.training).init_feedback(
        w0, np.random.default_rng([int(cfg.simulation.seed), 3])
    )
    return fb, rand


@dataclass(frozen=True)
class _Replayed:
    """One replayed trial as the analyses take it.

    ``factors`` on the rule's eligibility (every analysis); ``exact`` the model's factors whose Σ_t L*_t e_t
    is the reference gradient (``factors`` itself for e-prop's eligibility); ``eprop`` e-prop's derived
    eligibility for the logged check's comparator (None for e-prop's own runs); ``target`` the trial's.
    """

    factors: TrialFactors
    exact: TrialFactors
    eprop: TrialFactors | None
    target: np.ndarray


def _trial_factors(
    ctx: ReplayContext, k: int, elig: Eligibility, feedback: np.ndarray | None = None
) -> _Replayed | None:
    """Trial k replayed, as its factors (the ``alif`` fast path, any model's derived ones, or
    :class:`~neuroplast.gradients.rule_eligibility.RuleFactors` on the rule's own eligibility); None if the
    weights of its iteration are not in the log."""
    from neuroplast.analysis.compare import model_trial

    tr = replay_trial(ctx, k)
    if tr is None:
        return None
    mt = model_trial(ctx, tr) if ctx.derived_model or elig.own else None
    if mt is not None and (elig.keep_reset and elig.trace is None):
        exact: TrialFactors = ModelFactors(mt, keep_reset=True)
        return _Replayed(RuleFactors(exact, mt, None, True), exact, ModelFactors(mt), tr.target)
    if mt is not None and ctx.derived_model:
        exact = ModelFactors(mt)
    else:
        trial = TrialData(
            ctx.params, tr.weights, tr.x, tr.traj, tr.target, tr.mask, ctx.loss, ctx.c_reg, ctx.f_target
        )
        exact = AlifFactors(trial)
    if mt is not None and elig.trace is not None:
        return _Replayed(RuleFactors(exact, mt, elig.trace, False, feedback), exact, exact, tr.target)
    return _Replayed(exact, exact, None, tr.target)


class _Pool:
    """Running sums over analysed trials (time profiles, neuron sums, counterfactuals, B* moments)."""

    def __init__(self, T: int, N: int, n_out: int) -> None:
        self.n = 0
        self.time: dict[str, dict[str, np.ndarray]] = {}
        self.neuron: dict[str, np.ndarray] = {}
        self.rate = np.zeros(N)
        self.cf: list[dict[str, Any]] = []
        self.moments = FeedbackMoments(N, n_out)
        self.gstar: dict[str, dict[int, np.ndarray]] = {name: {} for name in PROJECTIONS}
        self.trials: list[int] = []
        self.target: np.ndarray | None = None  # target of the first analysed trial (for the figures)
        self.eligibility_gap: list[float] = []  # |g_ref − Σ_t L*_t e_t| / |g_ref|, rule's e_t, per trial
        self.eligibility_cos: list[float] = []  # cos(Σ_t L*_t e_t, g_ref) per trial
        self.logged_rule: list[float] = []  # |ĝ − logged| / |logged| per trial with a logged gradient
        self.logged_eprop: list[float] = []  # the same with e-prop's eligibility (own eligibility only)

    def add_time(self, tres: dict[str, Any]) -> None:
        for part in (*HIDDEN, "hidden"):
            d = tres[part]
            gt = d["gap_total"]
            sn = d["g_star_norm"]
            rows = {
                "gap_norm_rel": d["gap_norm"] / gt if gt > 0 else np.zeros_like(d["gap_norm"]),
                "gap_density": d["gap_along"] / gt**2 if gt > 0 else np.zeros_like(d["gap_norm"]),
                "exact_density": d["exact_along"] / sn if sn > 0 else np.zeros_like(d["gap_norm"]),
                "rule_density": d["rule_along"] / sn if sn > 0 else np.zeros_like(d["gap_norm"]),
                "gap_over_exact": np.array(gt / sn if sn > 0 else np.nan),
            }
            acc = self.time.setdefault(part, {})
            for key, v in rows.items():
                acc[key] = acc.get(key, 0.0) + v


def _factorize_all(
    trial: TrialFactors, L_star: np.ndarray, L_rule: np.ndarray, ks: list[int], rand: np.ndarray
) -> dict[str, dict[Any, np.ndarray]]:
    """Every gradient one trial's analyses need, one factorized product per projection.

    Labels: ``"star"``, ``"rule"``, ``("k", k)``, ``"random"``, ``"moments"`` ((n_out + 1, N, n_pre),
    :meth:`FeedbackMoments.signals`).  Signals that are the same array are factorized once (k ≥ T − 1 is
    L*; k = 0 is the rule's signal for symmetric feedback).
    """
    T = L_star.shape[0]
    trunc = trial.truncated_signals([k for k in ks if k < T - 1], full=L_star)
    bank: list[tuple[Any, np.ndarray]] = [("star", L_star), ("rule", L_rule)]
    alias: dict[Any, Any] = {}
    for k in ks:
        if k >= T - 1:
            alias[("k", k)] = "star"
        elif np.array_equal(trunc[k], L_rule):
            alias[("k", k)] = "rule"
        else:
            bank.append((("k", k), trunc[k]))
    bank.append(("random", rule_signal(trial, rand)))
    mom = FeedbackMoments.signals(trial)
    stack = np.concatenate([np.stack([sig for _, sig in bank]), mom])
    grads: dict[str, dict[Any, np.ndarray]] = {}
    for name, g in trial.factorize(stack).items():
        d: dict[Any, np.ndarray] = {lab: g[i] for i, (lab, _) in enumerate(bank)}
        d.update({lab: d[src] for lab, src in alias.items()})
        d["moments"] = g[len(bank) :]
        grads[name] = d
    return grads


def _hidden_rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """|a − b| / |b| over the hidden projections together (0 when both are 0)."""
    num = np.sqrt(sum(float(np.sum((a[n] - b[n]) ** 2)) for n in HIDDEN))
    den = np.sqrt(sum(float(np.sum(b[n] ** 2)) for n in HIDDEN))
    return float(num / den) if den > 0 else (0.0 if num == 0 else float("inf"))


def _logged_grads(ctx: ReplayContext, k: int) -> dict[str, np.ndarray] | None:
    """The hidden gradient the run logged for trial k under its rule's name (edge order), or None."""
    rule = str(ctx.config.training.rule)
    out = {}
    for name in HIDDEN:
        p = ctx.run.projection(name)
        if rule not in p.estimators:
            return None
        out[name] = np.asarray(p.grad(rule)[k], dtype=float)
    return out


def _analyse_trial(
    ctx: ReplayContext,
    pool: _Pool,
    k: int,
    feedback: np.ndarray | None,
    ks: list[int],
    rand: np.ndarray,
    elig: Eligibility | None = None,
) -> bool:
    """Replay trial k and add every per-trial analysis to ``pool``; False if it has no weights.

    Every product of a learning signal with an eligibility uses the rule's (``elig``, default e-prop's); the
    reference g_ref (BPTT, or BPTT through the reset for a rule that keeps it) comes from the model's."""
    got = _trial_factors(ctx, k, Eligibility() if elig is None else elig, feedback)
    if got is None:
        return False
    trial, target = got.factors, got.target
    L_star = trial.ideal_signal()
    L_rule = rule_signal(trial, feedback)
    grads = _factorize_all(trial, L_star, L_rule, ks, rand)
    g_rule = {n: grads[n]["rule"] for n in HIDDEN}
    g_elig = {n: grads[n]["star"] for n in HIDDEN}  # Σ_t L*_t e_t on the rule's eligibility
    g_eprop_rule = None  # the rule's signal on e-prop's eligibility (the logged check's comparator)
    if got.exact is trial:
        g_ref = g_elig
    else:
        both = got.eprop is got.exact
        ex = got.exact.factorize(np.stack([L_star, L_rule] if both else [L_star]))
        g_ref = {n: ex[n][0] for n in HIDDEN}
        assert got.eprop is not None
        ep = ex if both else got.eprop.factorize(L_rule[None])
        g_eprop_rule = {n: ep[n][-1] for n in HIDDEN}
    pool.eligibility_gap.append(_hidden_rel(g_elig, g_ref))
    pool.eligibility_cos.append(
        _cos(
            np.concatenate([g_elig[n].ravel() for n in HIDDEN]),
            np.concatenate([g_ref[n].ravel() for n in HIDDEN]),
        )
    )
    logged = _logged_grads(ctx, k)
    if logged is not None:
        pool.logged_rule.append(_hidden_rel({n: ctx.edge_vector(n, g_rule[n]) for n in HIDDEN}, logged))
        if g_eprop_rule is not None:
            mine = {n: ctx.edge_vector(n, g_eprop_rule[n]) for n in HIDDEN}
            pool.logged_eprop.append(_hidden_rel(mine, logged))
    tres = time_resolved(trial, L_rule, L_star, grads={n: (g_elig[n], g_rule[n]) for n in HIDDEN})
    pool.add_time(tres)
    nq = neuron_quality(L_rule, L_star, tres["elig_sq"])
    for key, v in nq.items():
        pool.neuron[key] = pool.neuron.get(key, 0.0) + v
    c = neuron_cosine(nq["dot"], nq["rule_sq"], nq["star_sq"])  # this trial's, averaged over trials
    pool.neuron["trial_cos_sum"] = pool.neuron.get("trial_cos_sum", 0.0) + np.nan_to_num(c)
    pool.neuron["trial_cos_n"] = pool.neuron.get("trial_cos_n", 0.0) + np.isfinite(c)
    pool.rate += trial.z.mean(axis=0) * 1e3 / ctx.run.dt_ms
    pool.cf.append(counterfactual_trial(trial, ks, g_ref, g_rule, rand, grads=grads))
    pool.moments.add(trial, g_ref, L_star, grads={n: grads[n]["moments"] for n in HIDDEN})
    g_out, g_b = output_grads(trial.params, trial.z, trial.err)
    full = {**g_ref, "output": np.where(trial.weights.mask_out, g_out, 0.0), "bias": g_b}
    for name, dense in full.items():
        pool.gstar[name][k] = ctx.edge_vector(name, dense)
    pool.trials.append(k)
    if pool.target is None:
        pool.target = np.asarray(target, dtype=float)
    pool.n += 1
    return True


def analyze_run(
    path: str | Path,
    *,
    trials: str | np.ndarray | None = None,
    ks: tuple[int | str, ...] = DEFAULT_KS,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every analysis of the module docstring on the selected trials of a run log (read only).

    Parameters
    ----------
    path : str or Path
        Run log of ``neuroplast run`` with per-trial updates.
    trials : str or ndarray, optional
        Selection (:func:`parse_trials`) or indices; default all trials.
    ks : tuple of int or "T"
        Hop counts of the truncated learning signals ("T": the trial length, i.e. BPTT).
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    dict
        ``file``, ``rule``, ``task_kind``, ``trials`` (analysed indices), ``T``, ``dt_ms``, ``events``
        (:func:`task_events`), ``time``, ``neurons``, ``counterfactual``, ``training`` (see the functions
        above and :func:`neuroplast.analysis.counterfactual.summarize`); ``eligibility`` (in words),
        ``own_eligibility`` (bool), ``reference`` (``bptt`` or ``bptt_full``), ``eligibility_gap``
        (``per_trial`` |g_ref − Σ_t L*_t e_t| / |g_ref| with the rule's e_t, its ``mean``, ``cosine`` and
        ``cosine_mean`` of the two), ``logged_check`` (``estimator``, ``rule`` per-trial relative
        difference from the logged gradient, its ``max``, ``eprop_eligibility`` the same with e-prop's
        eligibility (None for e-prop's own), ``eprop_eligibility_min``, ``tolerance``
        (:data:`LOGGED_RTOL`), ``ok``; empty arrays and ``ok`` None when the log holds no such gradient),
        ``notes`` (one line per analysis whose meaning changes for the rule's eligibility, module
        docstring); arrays are NumPy.

    Raises
    ------
    RunFileError
        Not a replayable run log, in-trial learning, or trials of different lengths.
    UsageError
        A bad trial selection.
    """
    run = open_run(path)
    if run.n_trials == 0:
        raise RunFileError(run.path, "has no complete trials to analyse")
    _refuse_in_trial(run)
    sel = parse_trials(trials, run.n_trials) if not isinstance(trials, np.ndarray) else trials
    lengths = np.unique(run.trials["n_steps"][sel])
    if lengths.size != 1:
        raise RunFileError(run.path, f"the selected trials have different lengths ({lengths.tolist()})")
    ctx = replay_context(run)
    elig = rule_eligibility(ctx.config)
    T, N = int(lengths[0]), ctx.n_rec
    kk = sorted({T if k == "T" else int(k) for k in ks})
    fb, rand = _feedbacks(ctx)
    pool = _Pool(T, N, ctx.n_out)
    it_of = run.trials["iteration"].astype(int)
    bar = Progress(len(sel), 0, "analyze", enabled=progress, unit="trial")  # the style of `neuroplast run`
    try:
        for k in sel:
            B = None if fb is None else ctx.connectivity.feedback(fb[it_of[k]])
            _analyse_trial(ctx, pool, int(k), B, kk, rand, elig)
            bar.step()
    finally:
        bar.close()
    if pool.n == 0:
        raise RunFileError(run.path, "none of the selected trials has the weights of its iteration")
    return _results(ctx, pool, kk, T, rand, it_of, elig)


def _results(
    ctx: ReplayContext,
    pool: _Pool,
    ks: list[int],
    T: int,
    rand: np.ndarray,
    it_of: np.ndarray,
    elig: Eligibility,
) -> dict[str, Any]:
    """Averages and summaries of the pooled sums: the dict :func:`analyze_run` returns."""
    from neuroplast.analysis.counterfactual import summarize

    n = pool.n
    events = task_events(ctx.config, T)
    events["target"] = pool.target
    time = {part: {k: v / n for k, v in acc.items()} for part, acc in pool.time.items()}
    for d in time.values():
        d["gap_over_exact"] = float(d["gap_over_exact"])
        d["window_fraction"] = {
            lab: float(sum(d["gap_density"][a:b].sum() for (_, a, b) in (events["windows"][i] for i in idx)))
            for lab, idx in events["groups"].items()
        }
        d["window_steps"] = {
            lab: int(sum(events["windows"][i][2] - events["windows"][i][1] for i in idx))
            for lab, idx in events["groups"].items()
        }
    nq = pool.neuron
    values = ctx.neuron_values if ctx.derived_model else alif_values(ctx.params)
    kinds, adaptive = ctx.neuron.neuron_kinds(values, ctx.n_rec)
    neurons = {
        "cosine": neuron_cosine(nq["dot"], nq["rule_sq"], nq["star_sq"]),
        "cosine_unweighted": neuron_cosine(nq["dot0"], nq["rule_sq0"], nq["star_sq0"]),
        "cosine_trial_mean": np.where(
            nq["trial_cos_n"] > 0, nq["trial_cos_sum"] / np.maximum(nq["trial_cos_n"], 1), np.nan
        ),
        "rate_hz": pool.rate / n,
        "model": ctx.neuron.name,
        "kind": kinds,
        "adaptive": adaptive,
        "eligibility": nq["weight"] / n,
    }
    B_star = bstar_solve(pool.moments)
    cf = summarize(pool.cf, ks, T, pool.moments, B_star, rand)
    rule = str(ctx.config.training.rule)
    gap, cosg = np.asarray(pool.eligibility_gap), np.asarray(pool.eligibility_cos)
    logged_rule, logged_eprop = np.asarray(pool.logged_rule), np.asarray(pool.logged_eprop)
    logged = {
        "estimator": rule,
        "rule": logged_rule,
        "max": float(logged_rule.max()) if logged_rule.size else float("nan"),
        "eprop_eligibility": logged_eprop if elig.own else None,
        "eprop_eligibility_min": float(logged_eprop.min()) if logged_eprop.size else float("nan"),
        "tolerance": LOGGED_RTOL,
        "ok": bool(logged_rule.max() <= LOGGED_RTOL) if logged_rule.size else None,
    }
    return {
        "file": str(ctx.run.path),
        "rule": rule,
        "eligibility": elig.label,
        "own_eligibility": elig.own,
        "reference": elig.reference,
        "eligibility_gap": {
            "per_trial": gap,
            "mean": float(gap.mean()),
            "cosine": cosg,
            "cosine_mean": float(np.nanmean(cosg)) if np.any(np.isfinite(cosg)) else float("nan"),
        },
        "logged_check": logged,
        "notes": eligibility_notes(elig, rule, float(gap.mean()), float(np.nanmean(cosg))),
        "task_kind": ctx.run.task_kind,
        "trials": np.asarray(pool.trials),
        "T": T,
        "dt_ms": float(ctx.run.dt_ms),
        "events": events,
        "time": time,
        "neurons": neurons,
        "counterfactual": cf,
        "training": training_alignment(ctx, pool.gstar, it_of),
    }
