"""Rule plugins (entry points): a plugin that fails to load warns and is skipped."""

from __future__ import annotations

import warnings
from importlib.metadata import EntryPoint


def test_broken_plugin_warns_and_is_skipped(monkeypatch):
    from neuroplast import registry
    from neuroplast.plasticity import rules

    broken = EntryPoint(
        name="broken-rule", value="neuroplast_no_such_module:Rule", group=rules.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = rules.load_plugins(refresh=True)
    assert loaded == []
    assert any(issubclass(w.category, RuntimeWarning) and "broken-rule" in str(w.message) for w in caught)
    assert "eprop" in rules.RULES and "broken-rule" not in rules.RULES


def test_every_registry_loads_plugins_and_skips_broken_ones(monkeypatch):
    """Losses, surrogates, optimizers and tasks take plugins the same way; a wrong object warns."""
    from neuroplast import registry
    from neuroplast.model.losses import LOSSES
    from neuroplast.model.surrogates import SURROGATES
    from neuroplast.plasticity.optim import OPTIMIZERS
    from neuroplast.tasks import TASKS

    good = EntryPoint(name="sgd2", value="neuroplast.plasticity.optim:SGD", group="neuroplast.optimizers")
    wrong = EntryPoint(name="notaloss", value="neuroplast.plasticity.optim:SGD", group="neuroplast.losses")
    groups = {"neuroplast.optimizers": [good], "neuroplast.losses": [wrong]}
    monkeypatch.setattr(registry, "entry_points", lambda group: groups.get(group, []))
    monkeypatch.setattr(OPTIMIZERS, "_items", dict(OPTIMIZERS._items))
    monkeypatch.setattr(LOSSES, "_items", dict(LOSSES._items))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert OPTIMIZERS.load_plugins(refresh=True) == ["sgd2"]
        assert LOSSES.load_plugins(refresh=True) == []
        assert SURROGATES.load_plugins(refresh=True) == [] and TASKS.load_plugins(refresh=True) == []
    assert "sgd2" in OPTIMIZERS and "notaloss" not in LOSSES
    assert any("loss plugin 'notaloss'" in str(w.message) for w in caught)


def _own_formula_rule():
    from neuroplast.plasticity.rules import EpropRandom

    class OwnFormula(EpropRandom):
        name = "test-own-formula"

        def numpy_grads(self, trial):
            return {k: 2.0 * v for k, v in super().numpy_grads(trial).items()}

    return OwnFormula


def test_a_rule_that_breaks_the_contract_is_refused_when_loaded(monkeypatch):
    """online = True with its own numpy_grads would give the simulation's e-prop on one path and the
    formula on the other: refused by register_rule (one line) and, as a plugin, warned about and skipped;
    a rule made without registering is computed by its formula (the factorized path), never silently."""
    import pytest

    from neuroplast import registry
    from neuroplast.config import TrainingConfig, load_config
    from neuroplast.plasticity import rules
    from neuroplast.training.trainer import choose_path
    from tests.helpers import SINE

    cls = _own_formula_rule()
    with pytest.raises(ValueError) as err:
        rules.register_rule(cls)
    msg = str(err.value)
    assert "test-own-formula" in msg and "online = False" in msg and "\n" not in msg
    assert "test-own-formula" not in rules.RULES
    ep = EntryPoint(name="test-own-formula", value="x:y", group=rules.ENTRY_POINT_GROUP)
    monkeypatch.setattr(EntryPoint, "load", lambda self: cls)
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [ep] if group == rules.ENTRY_POINT_GROUP else []
    )
    monkeypatch.setattr(rules.RULES, "_items", dict(rules.RULES._items))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert rules.load_plugins(refresh=True) == []
    assert any("test-own-formula" in str(w.message) and "online = True" in str(w.message) for w in caught)
    rule = cls(TrainingConfig())
    assert not rule.simulated and rules.get_rule("eprop")(TrainingConfig()).simulated
    assert choose_path(load_config(SINE), rule.simulated) == "factorized"
