"""``Rule.numpy_grads_batch``: the batch's gradients, trial by trial what ``numpy_grads`` gives.

Equality is ``np.array_equal``: the batched e-prop does the same float operations in the same order as
the per-trial one (see tests/gradients/test_eprop_batch.py), and the other rules loop over
``numpy_grads`` itself, so nothing may differ at all.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import neuroplast.plasticity.rules as rules_mod
from neuroplast.gradients.bptt import bptt_grads
from neuroplast.gradients.eprop import eprop_grads
from neuroplast.plasticity.rules import EpropRandom, Rule, get_rule
from neuroplast.training.trainer import PATH_FNS
from tests.gradients.test_eprop_batch import KEYS, assert_same_bits, make_trials

TRAINING = SimpleNamespace(feedback_scale=1.0, weight_decay=0.01)


class DoubledEprop(EpropRandom):
    """A rule with its own NumPy formula (twice e-prop): the batch must use it."""

    name = "test-doubled"

    def numpy_grads(self, trial):
        return {k: 2.0 * v for k, v in eprop_grads(trial).items()}


@pytest.fixture(scope="module")
def trials():
    return make_trials("alif", "mse", 4, c_reg=0.4, own_feedback=True)


@pytest.mark.parametrize("name", ["eprop", "eprop-random", "eprop-adaptive"])
def test_eprop_family_uses_the_batched_eprop(name, trials, monkeypatch):
    rule = get_rule(name)(TRAINING)
    assert type(rule).numpy_grads is Rule.numpy_grads  # the family keeps the base formula
    calls = []
    batched = rules_mod.eprop_grads_batch

    def spy(ts, method="factorized"):
        calls.append(len(ts))
        return batched(ts, method=method)

    monkeypatch.setattr(rules_mod, "eprop_grads_batch", spy)
    out = rule.numpy_grads_batch(trials)
    assert calls == [len(trials)]
    for g, t in zip(out, trials, strict=True):
        assert_same_bits(g, rule.numpy_grads(t))


def test_an_overriding_rule_gets_its_own_formula(trials, monkeypatch):
    monkeypatch.setattr(rules_mod, "eprop_grads_batch", lambda *a, **k: pytest.fail("batched e-prop used"))
    rule = DoubledEprop(TRAINING)
    out = rule.numpy_grads_batch(trials)
    for g, t in zip(out, trials, strict=True):
        plain = eprop_grads(t)
        for k in KEYS:
            assert np.array_equal(g[k], 2.0 * plain[k])
            assert not np.array_equal(g[k], plain[k])


@pytest.mark.parametrize("name, detach", [("bptt", True), ("bptt-full", False)])
def test_bptt_batch_is_each_trials_bptt(name, detach, trials):
    rule = get_rule(name)(TRAINING)
    out = rule.numpy_grads_batch(trials)
    for g, t in zip(out, trials, strict=True):
        assert_same_bits(g, bptt_grads(t, detach_reset=detach))
        assert_same_bits(rule.numpy_grads(t), g)


def test_bptt_full_differs_from_bptt_through_the_reset(trials):
    """The two BPTT rules differ by the reset's path in the backward pass: on a spiking recurrent trial
    their recurrent gradients must differ (well above rounding), while the readout's, which no reset
    reaches, agree."""
    t = trials[0]
    det, full = get_rule("bptt")(TRAINING).numpy_grads(t), get_rule("bptt-full")(TRAINING).numpy_grads(t)
    rel = np.linalg.norm(det["recurrent"] - full["recurrent"]) / np.linalg.norm(full["recurrent"])
    assert rel > 1e-3
    np.testing.assert_allclose(det["output"], full["output"], rtol=1e-12, atol=0)  # same trajectory, same err


def test_the_factorized_path_makes_one_call_per_batch(trials):
    seen = []

    class Spy(EpropRandom):
        name = "test-spy"

        def numpy_grads_batch(self, ts):
            seen.append(list(ts))
            return super().numpy_grads_batch(ts)

    trainer = SimpleNamespace(rule=Spy(TRAINING), compiled_gradients=False)
    out = PATH_FNS["factorized"](trainer, [None] * len(trials), trials)
    assert len(seen) == 1 and seen[0] == trials
    for g, t in zip(out, trials, strict=True):
        assert_same_bits(g, eprop_grads(t))
