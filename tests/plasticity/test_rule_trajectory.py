"""What a rule's NumPy gradient reads of a trial (``Rule.trajectory``): all the factorized path records."""

from __future__ import annotations

from neuroplast.plasticity.rules import RULES, Bptt, EpropRandom, EpropSymmetric, Rule

EVERYTHING = ("v", "a", "z", "psi", "refractory")


def test_built_in_rules_read_spikes_and_psi_only():
    for name in ("eprop", "eprop-random", "eprop-adaptive", "bptt", "bptt-full"):
        assert RULES.get(name).trajectory == ("z", "psi"), name
    assert Bptt.trajectory == EpropSymmetric.trajectory == ("z", "psi")


def test_an_overriding_rule_gets_the_whole_trajectory_unless_it_says():
    class Reads(Rule):
        name = "reads-everything"

        def numpy_grads(self, trial):
            return {}

    class Says(Rule):
        name = "says-what-it-reads"
        trajectory = ("z", "psi", "v")

        def numpy_grads(self, trial):
            return {}

    class Inherits(EpropRandom):  # e-prop's own numpy_grads: spikes and ψ
        name = "inherits"

    assert Reads.trajectory == EVERYTHING
    assert Says.trajectory == ("z", "psi", "v")
    assert Inherits.trajectory == ("z", "psi")
