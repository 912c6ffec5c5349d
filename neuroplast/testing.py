"""Helpers for plugin authors: check a rule the way neuroplast checks its own.

``compare_rule_with_bptt`` runs a small seeded LIF/ALIF network with the NumPy reference, asks the rule
for its trial estimate (``Rule.numpy_grads``) and returns the relative error and cosine against the
exact BPTT gradient — for a network with and without recurrent weights, so a test can assert both the
agreement theory predicts and the disagreement it predicts::

    from neuroplast.testing import compare_rule_with_bptt
    r = compare_rule_with_bptt("my-rule")  # your registered rule's name
    assert r["no_recurrence"]["output"]["rel_error"] < 1e-10   # readout gradient is exact

``compare_rule_online_with_numpy`` (needs Brian2) runs the same trial in a Brian2 network that
accumulates the rule's estimate online and returns the relative difference to ``numpy_grads``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroplast.config import TrainingConfig
from neuroplast.gradients.bptt import bptt_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.params import ModelParams, Weights
from neuroplast.plasticity.rules import get_rule

__all__ = ["small_problem", "compare_rule_with_bptt", "compare_rule_online_with_numpy"]


def small_problem(seed: int = 0, *, recurrent: bool = True, n_rec: int = 20, n_in: int = 12, T: int = 300):
    """A seeded LIF/ALIF mix (half each) with refractoriness, a 2-output regression target and inputs.

    Returns
    -------
    params : ModelParams, weights : Weights, x : ndarray (T, n_in), target : ndarray (T, 2), mask : (T,)
    """
    rng = np.random.default_rng(seed)
    beta = np.where(np.arange(n_rec) < n_rec // 2, 0.0, 0.05)
    params = ModelParams.from_time_constants(
        n_rec=n_rec, tau_m=20.0, tau_a=200.0, beta=beta, v_th=0.3, n_ref=2, tau_out=20.0
    )
    w_rec = rng.normal(0.0, 0.12, (n_rec, n_rec)) if recurrent else np.zeros((n_rec, n_rec))
    weights = Weights(
        rng.normal(0.05, 0.3, (n_rec, n_in)), w_rec, rng.normal(0.0, 0.3, (2, n_rec)), np.zeros(2)
    )
    x = (rng.random((T, n_in)) < 0.04).astype(float)
    t = np.arange(T)[:, None]
    target = np.sin(2 * np.pi * t / np.array([100.0, 170.0]))
    return params, weights, x, target, np.ones(T)


def _metrics(est: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    from neuroplast.analysis.metrics import cosine_similarity, relative_error

    return {"rel_error": float(relative_error(est, exact)), "cosine": float(cosine_similarity(est, exact))}


def _rule(name: str, training: Any) -> Any:
    """The rule ``name`` as a run of :func:`small_problem` builds it (its own eligibility trace, if any, for
    dt = 1 ms, τ_m = 20 ms and the default τ_syn)."""
    from neuroplast.config import parse_config

    r = get_rule(name)(training)
    cfg = parse_config({"network": {"tau_m_ms": 20.0}}, check_resources=False)
    r.trace = r.eligibility_trace(cfg)
    return r


def compare_rule_with_bptt(rule: str, *, seed: int = 0, training: Any | None = None) -> dict[str, Any]:
    """Metrics of ``rule``'s trial estimate against exact BPTT, with and without W_rec.

    Returns
    -------
    dict
        ``{"recurrent": {proj: {"rel_error", "cosine"}}, "no_recurrence": {...}}``.
    """
    training = training or TrainingConfig()
    out: dict[str, Any] = {}
    for label, rec in (("recurrent", True), ("no_recurrence", False)):
        params, w, x, target, mask = small_problem(seed, recurrent=rec)
        r = _rule(rule, training)
        b = r.feedback(w, r.init_feedback(w, np.random.default_rng(seed)))
        trial = TrialData.make(params, w, x, target, mask, "mse", feedback=b)
        est = r.numpy_grads(trial)
        exact = bptt_grads(trial)
        out[label] = {p: _metrics(np.asarray(est[p]), np.asarray(exact[p])) for p in PROJECTIONS}
    return out


def compare_rule_online_with_numpy(
    rule: str, *, seed: int = 0, device: str = "runtime", training: Any | None = None
) -> dict[str, float]:
    """Relative difference between the Brian2 online accumulation and ``numpy_grads`` per projection."""
    from neuroplast.network.builder import Brian2Network
    from neuroplast.training.trainer import trajectory_of

    training = training or TrainingConfig()
    params, w, x, target, mask = small_problem(seed)
    r = _rule(rule, training)
    if not r.simulated:
        raise ValueError(f"rule {rule!r} is not computed online in Brian2")
    b = r.feedback(w, r.init_feedback(w, np.random.default_rng(seed)))
    net = Brian2Network(
        params, w, x.shape[0], device=device, gradients=True, record=True, trace=r.trace,
        keep_reset=r.keeps_reset,
    )  # fmt: skip
    res = net.run_trial(w, x, target=target, mask=mask, feedback=b)
    trial = TrialData.make(params, w, x, target, mask, "mse", traj=trajectory_of(res, res.y), feedback=b)
    est = r.numpy_grads(trial)
    return {p: float(np.linalg.norm(res.grads[p] - est[p]) / np.linalg.norm(est[p])) for p in PROJECTIONS}
