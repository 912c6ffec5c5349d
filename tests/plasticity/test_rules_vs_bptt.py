"""Every registered rule against exact BPTT (NumPy only, via the public neuroplast.testing helper).

Tolerance 1e-10: both sides sum the same O(T·N) float64 products in different orders (~1e-15).
Each check also shows the disagreement theory predicts, so the comparator is not blind.
"""

from __future__ import annotations

import pytest

from neuroplast.plasticity.rules import rule_names
from neuroplast.testing import compare_rule_with_bptt

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


@pytest.mark.parametrize("rule", ["eprop-random", "eprop-adaptive"])
def test_random_feedback_differs_even_without_recurrence(rule):
    m = compare_rule_with_bptt(rule)
    for case in m.values():
        for p in ("input", "recurrent"):
            assert case[p]["rel_error"] > 1e-2
