"""Every registered rule against exact BPTT (NumPy only, via the public neuroplast.testing helper).

Tolerance 1e-10: both sides sum the same O(T·N) float64 products in different orders (~1e-15).
Each check also shows the disagreement theory predicts, so the comparator is not blind.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.config import TrainingConfig
from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.plasticity.rules import get_rule, rule_names
from neuroplast.testing import compare_rule_with_bptt
from tests.helpers import PROBLEM_N_REC, make_problem, max_rel_err

EXACT = 1e-10


@pytest.mark.parametrize("rule", rule_names())
def test_readout_gradients_are_exact(rule):
    m = compare_rule_with_bptt(rule)
    for case in ("recurrent", "no_recurrence"):
        for p in ("output", "bias"):
            assert m[case][p]["rel_error"] < EXACT, (rule, case, p)


def test_symmetric_eprop_exact_without_recurrence_only():
    m = compare_rule_with_bptt("eprop")
    for p in ("input", "recurrent"):
        assert m["no_recurrence"][p]["rel_error"] < EXACT
        assert m["recurrent"][p]["rel_error"] > 1e-3  # the part through W_rec is dropped


def test_bptt_rule_is_exact():
    m = compare_rule_with_bptt("bptt")
    for case in m.values():
        for p, v in case.items():
            assert v["rel_error"] < EXACT, p


@pytest.mark.parametrize("rule", ["eprop-random", "eprop-adaptive", "three-factor"])
def test_random_feedback_differs_even_without_recurrence(rule):
    m = compare_rule_with_bptt(rule)
    for case in m.values():
        for p in ("input", "recurrent"):
            assert case[p]["rel_error"] > 1e-2


def test_three_factor_is_one_global_signal_times_eprops_trace():
    """three-factor: B = 1 rᵀ, so L_t is the same scalar M_t = c_out rᵀ err_t for every neuron, and its
    gradient is e-prop's formula with that B (NumPy, exact) — it differs from e-prop's per-neuron signal."""
    rule = get_rule("three-factor")(TrainingConfig())
    params, w, x, target, mask, loss = make_problem(np.zeros(PROBLEM_N_REC), n_ref=2)
    B = rule.init_feedback(w, np.random.default_rng(0))
    assert B.shape == (w.n_rec, w.n_out) and np.all(B == B[0]) and np.any(B != 0)
    trial = TrialData.make(params, w, x, target, mask, loss, feedback=B)
    L = params.readout_scale * trial.err @ B.T
    assert np.all(L == L[:, :1])  # one scalar per step
    got, want = rule.numpy_grads(trial), eprop_grads(trial, method="factorized")
    sym = eprop_grads(TrialData.make(params, w, x, target, mask, loss), method="factorized")
    for p in ("input", "recurrent"):
        assert np.array_equal(got[p], want[p])
        assert max_rel_err(got[p], sym[p]) > 1e-2  # not e-prop's per-neuron signal
