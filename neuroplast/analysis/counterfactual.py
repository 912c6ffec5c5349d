"""Counterfactual learning rules evaluated on logged trials, without a new simulation.

On each replayed trial (weights, spikes and pseudo-derivatives as logged), other learning signals are put
into the same factorization ĝ = Σ_t L_t ⊙ e_t (unfiltered traces; see :mod:`neuroplast.analysis.analyze`
for the common footing) and compared with exact BPTT g* on the hidden weights (input and recurrent):

* **truncated backpropagation**: L^(k) with at most k hops back through W_rec
  (:meth:`~neuroplast.gradients.model_truncated.TrialFactors.truncated_signals`, for any neuron model:
  the ``alif`` fast path :func:`neuroplast.gradients.truncated.truncated_learning_signals`, any other
  model through its derived Jacobians); k = 0 is e-prop with symmetric feedback B = W_outᵀ, k = T is BPTT;
* **fixed feedback matrices**: e-prop with L̃^B_t = c_out B ẽrr_t + R (ẽrr the backward κ-filtered
  error).  **B*** minimizes Σ_trials Σ_t ‖(L*_t − R) − c_out B ẽrr_t‖² (least squares in signal space over
  the analysed trials): the best fixed linear map from the error to the ideal learning signal, and the
  cosine it reaches bounds what a fixed-feedback e-prop can get from that map.  B* is found from the
  pooled normal equations (n_out × n_out, n_out × N sums).

Since ĝ(B) is linear in B, ĝ(B)_ji = Σ_k B_jk M^k_ji + gR_ji with M^k = Σ_t c_out ẽrr_k,t e_t and
gR = Σ_t R e_t, each trial keeps only per-neuron moments (N × n_out²) from which the cosine of any B
follows (:class:`FeedbackMoments`, :func:`feedback_cosines`) — no per-trial gradient is stored.

Loss-decrease proxies (first order in the step): ``decrease_unit_step`` = ⟨ĝ, g*⟩ / ‖ĝ‖, the decrease of
E per unit length of a step along −ĝ ([E] per unit weight; ‖g*‖ for BPTT), and ``decrease_same_lr`` =
⟨ĝ, g*⟩ / ‖g*‖², the decrease of an SGD step with ĝ relative to one with g* at the same learning rate
(1 for BPTT).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroplast.gradients.derived import ModelTrial
from neuroplast.gradients.model_truncated import TrialFactors, as_factors
from neuroplast.gradients.trial import TrialData
from neuroplast.model.signals import backward_filter

__all__ = [
    "DEFAULT_KS",
    "counterfactual_trial",
    "FeedbackMoments",
    "bstar_solve",
    "feedback_cosines",
    "summarize",
]

#: Hop counts of the truncated learning signal analysed by default ("T": the trial length, i.e. BPTT).
DEFAULT_KS: tuple[int | str, ...] = (0, 1, 2, 4, 8, 16, 32, "T")

_HIDDEN = ("input", "recurrent")

#: One trial of any neuron model (:func:`~neuroplast.gradients.model_truncated.as_factors`).
AnyTrial = TrialData | ModelTrial | TrialFactors


def _fixed_feedback_signal(trial: AnyTrial, B: np.ndarray) -> np.ndarray:
    p = trial.params
    L = p.readout_scale * backward_filter(trial.err, p.kappa) @ np.asarray(B, dtype=float).T
    return L if trial.reg is None else L + trial.reg[None, :]


def _stats(g: dict[str, np.ndarray], g_star: dict[str, np.ndarray]) -> dict[str, float]:
    """Dot products of an estimate with g*: per projection and hidden (both)."""
    out: dict[str, float] = {}
    for part in (*_HIDDEN, "hidden"):
        names = _HIDDEN if part == "hidden" else (part,)
        out[f"{part}_dot"] = float(sum(np.sum(g[n] * g_star[n]) for n in names))
        out[f"{part}_sq"] = float(sum(np.sum(g[n] * g[n]) for n in names))
        out[f"{part}_star_sq"] = float(sum(np.sum(g_star[n] * g_star[n]) for n in names))
    return out


def counterfactual_trial(
    trial: AnyTrial,
    ks: list[int],
    g_star: dict[str, np.ndarray],
    g_rule: dict[str, np.ndarray],
    random_feedback: np.ndarray,
    *,
    grads: dict[str, dict[Any, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Truncated and fixed-feedback estimates of one trial, as dot products with g*.

    Parameters
    ----------
    trial : TrialData, ModelTrial or TrialFactors
        The trial, of any neuron model.
    ks : list of int
        Hop counts (values ≥ T − 1 are BPTT).
    g_star, g_rule : dict
        Exact and the rule's gradients of ``input`` and ``recurrent`` (N, n_pre), dense, masked.
    random_feedback : ndarray (N, n_out)
        A fixed random B for reference.
    grads : dict, optional
        Already factorized gradients, ``projection -> {("k", k): g, "random": g}`` (every k of ``ks``);
        computed here when not given.

    Returns
    -------
    dict
        ``k``: list (one per k) of :func:`_stats` dicts (``{part}_dot``, ``{part}_sq``, ``{part}_star_sq``
        for ``input``, ``recurrent``, ``hidden``), ``random`` and ``rule`` the same for the random B and
        the logged rule.
    """
    if grads is None:
        f = as_factors(trial)
        sig = f.truncated_signals(ks)
        stack = np.stack([sig[k] for k in ks] + [_fixed_feedback_signal(f, random_feedback)])
        grads = {
            name: {**{("k", k): g[i] for i, k in enumerate(ks)}, "random": g[-1]}
            for name, g in f.factorize(stack).items()
        }
    per_k = [_stats({n: grads[n][("k", k)] for n in _HIDDEN}, g_star) for k in ks]
    return {
        "k": per_k,
        "random": _stats({n: grads[n]["random"] for n in _HIDDEN}, g_star),
        "rule": _stats(g_rule, g_star),
    }


class FeedbackMoments:
    """Pooled normal equations of B* and per-trial moments giving the cosine of any fixed B.

    Per trial (hidden projections together): ``Q`` (N, n_out, n_out) Σ_i M^k_ji M^l_ji, ``P`` (N, n_out)
    Σ_i M^k_ji gR_ji, ``S`` (N,) Σ_i gR_ji², ``a`` (N, n_out) Σ_i M^k_ji g*_ji, ``c`` (N,) Σ_i gR_ji g*_ji
    and ``gg`` ‖g*‖²; pooled: ``xtx`` = Σ XᵀX, ``xty`` = Σ XᵀY, ``yy`` = Σ ‖Y‖² with X = c_out ẽrr (T, n_out)
    and Y = L* − R (T, N); ``xtx_w``, ``xty_w`` the same with every trial weighted by 1 / Σ_t ‖Y_t‖² (so
    that no trial dominates by the size of its L*).
    """

    def __init__(self, n_rec: int, n_out: int) -> None:
        self.xtx = np.zeros((n_out, n_out))
        self.xty = np.zeros((n_out, n_rec))
        self.yy = 0.0
        self.xtx_w = np.zeros((n_out, n_out))  # every trial weighted by 1 / Σ_t ‖Y_t‖²
        self.xty_w = np.zeros((n_out, n_rec))
        self.trials: list[dict[str, np.ndarray]] = []

    def add(
        self,
        trial: AnyTrial,
        g_star: dict[str, np.ndarray],
        L_star: np.ndarray,
        *,
        grads: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Add one trial (its exact hidden gradients and ideal learning signal L* (T, N)).

        ``grads``: ``projection -> (n_out + 1, N, n_pre)`` the factorized gradients of
        :meth:`signals` if already computed."""
        p = trial.params
        X = p.readout_scale * backward_filter(trial.err, p.kappa)  # (T, n_out)
        R = np.zeros(L_star.shape[1]) if trial.reg is None else trial.reg
        Y = L_star - R[None, :]
        self.xtx += X.T @ X
        self.xty += X.T @ Y
        yy = float(np.sum(Y * Y))
        self.yy += yy
        if yy > 0:
            self.xtx_w += X.T @ X / yy
            self.xty_w += X.T @ Y / yy
        n_out = X.shape[1]
        m = {"Q": 0.0, "P": 0.0, "S": 0.0, "a": 0.0, "c": 0.0}
        if grads is None:
            grads = as_factors(trial).factorize(self.signals(trial))
        for name in _HIDDEN:
            G = grads[name]
            M, gR, gs = G[:n_out], G[n_out], g_star[name]
            m["Q"] = m["Q"] + np.einsum("kji,lji->jkl", M, M)
            m["P"] = m["P"] + np.einsum("kji,ji->jk", M, gR)
            m["S"] = m["S"] + np.sum(gR * gR, axis=1)
            m["a"] = m["a"] + np.einsum("kji,ji->jk", M, gs)
            m["c"] = m["c"] + np.sum(gR * gs, axis=1)
        m["gg"] = np.array(sum(float(np.sum(g_star[n] ** 2)) for n in _HIDDEN))
        self.trials.append(m)

    @staticmethod
    def signals(trial: AnyTrial) -> np.ndarray:
        """(n_out + 1, T, N): c_out ẽrr_k broadcast over neurons (k < n_out), then R broadcast over time."""
        p = trial.params
        X = p.readout_scale * backward_filter(trial.err, p.kappa)
        T, n_out = X.shape
        N = trial.weights.n_rec
        R = np.zeros(N) if trial.reg is None else trial.reg
        stack = np.empty((n_out + 1, T, N))
        stack[:n_out] = np.moveaxis(np.broadcast_to(X[:, :, None], (T, n_out, N)), 1, 0)
        stack[n_out] = R[None, :]
        return stack


#: Relative cut-off of the singular values of XᵀX in :func:`bstar_solve`.
_RCOND_NORMAL = 1e-12


def bstar_solve(mom: FeedbackMoments, *, per_trial_weights: bool = False) -> np.ndarray:
    """B* (N, n_out), the least-squares feedback of the pooled normal equations (minimum-norm if singular).

    ``per_trial_weights``: every trial's squared residual divided by its Σ_t ‖L*_t − R‖² (a relative fit).
    """
    a, b = (mom.xtx_w, mom.xty_w) if per_trial_weights else (mom.xtx, mom.xty)
    # The normal equations square the singular values: 1e-12 here is 1e-6 on X itself.  Cross-entropy errors
    # sum to 0 over the outputs, so X has an exact null direction, which must be dropped, not inverted.
    sol, *_ = np.linalg.lstsq(a, b, rcond=_RCOND_NORMAL)
    return sol.T


def feedback_cosines(mom: FeedbackMoments, B: np.ndarray) -> dict[str, np.ndarray]:
    """Per-trial cosine between ĝ(B) and g* on the hidden weights, and ⟨ĝ(B), g*⟩, ‖ĝ(B)‖² (n_trials,)."""
    B = np.asarray(B, dtype=float)
    dot, sq, cos = [], [], []
    for m in mom.trials:
        d = float(np.sum(B * m["a"]) + np.sum(m["c"]))
        q = float(np.einsum("jk,jkl,jl->", B, m["Q"], B) + 2 * np.sum(B * m["P"]) + np.sum(m["S"]))
        dot.append(d)
        sq.append(q)
        den = np.sqrt(max(q, 0.0) * float(m["gg"]))
        cos.append(d / den if den > 0 else np.nan)
    return {"cosine": np.asarray(cos), "dot": np.asarray(dot), "sq": np.asarray(sq)}


def _metrics(rows: list[dict[str, float]], part: str) -> dict[str, np.ndarray]:
    dot = np.array([r[f"{part}_dot"] for r in rows])
    sq = np.array([r[f"{part}_sq"] for r in rows])
    ss = np.array([r[f"{part}_star_sq"] for r in rows])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "cosine": dot / np.sqrt(sq * ss),
            "decrease_unit_step": dot / np.sqrt(sq),
            "decrease_same_lr": dot / ss,
        }


def _mean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def summarize(
    rows: list[dict[str, Any]],
    ks: list[int],
    T: int,
    mom: FeedbackMoments,
    B_star: np.ndarray,
    random_feedback: np.ndarray,
) -> dict[str, Any]:
    """Per-trial arrays and means over trials of every counterfactual.

    Returns
    -------
    dict
        ``ks`` (hop counts; values ≥ T − 1 mean BPTT), ``k_is_bptt`` (bool per k), ``truncated``: part →
        metric → (n_k, n_trials) with metrics ``cosine``, ``decrease_unit_step``, ``decrease_same_lr``,
        and their ``*_mean`` (n_k,); ``rule``, ``random``: part → metric → (n_trials,); ``B_star`` (N, n_out),
        ``bstar_cosine`` (n_trials,) and its mean, ``bstar_fit_r2`` (1 − residual/‖Y‖² of the least
        squares), ``B_star_relative`` and ``bstar_relative_cosine(_mean)`` the same with every trial
        weighted by 1 / Σ_t ‖L*_t − R‖², ``random_feedback`` (N, n_out), ``random_cosine_moments`` (the
        same cosines through the moments, a consistency check).
    """
    out: dict[str, Any] = {"ks": list(ks), "k_is_bptt": [k >= T - 1 for k in ks], "truncated": {}}
    for part in (*_HIDDEN, "hidden"):
        per = [_metrics([r["k"][i] for r in rows], part) for i in range(len(ks))]
        d = {m: np.stack([p[m] for p in per]) for m in per[0]}
        d.update({f"{m}_mean": np.array([_mean(p[m]) for p in per]) for m in per[0]})
        out["truncated"][part] = d
        for ref in ("rule", "random"):
            out.setdefault(ref, {})[part] = _metrics([r[ref] for r in rows], part)
    bc = feedback_cosines(mom, B_star)
    B_rel = bstar_solve(mom, per_trial_weights=True)
    bw = feedback_cosines(mom, B_rel)
    resid = mom.yy - 2 * float(np.sum(B_star.T * mom.xty)) + float(np.sum((B_star @ mom.xtx) * B_star))
    out.update(
        B_star=B_star,
        bstar_cosine=bc["cosine"],
        bstar_cosine_mean=_mean(bc["cosine"]),
        bstar_fit_r2=1.0 - resid / mom.yy if mom.yy > 0 else float("nan"),
        B_star_relative=B_rel,
        bstar_relative_cosine=bw["cosine"],
        bstar_relative_cosine_mean=_mean(bw["cosine"]),
        random_feedback=random_feedback,
        random_cosine_moments=feedback_cosines(mom, random_feedback)["cosine"],
    )
    return out
