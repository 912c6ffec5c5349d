"""Rule plugins (entry points): a plugin that fails to load warns and is skipped."""

from __future__ import annotations

import warnings
from importlib.metadata import EntryPoint


def test_broken_plugin_warns_and_is_skipped(monkeypatch):
    from neuroplast.plasticity import rules

    broken = EntryPoint(
        name="broken-rule", value="neuroplast_no_such_module:Rule", group=rules.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(rules, "entry_points", lambda group: [broken])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = rules.load_plugins(refresh=True)
    assert loaded == []
    assert any(issubclass(w.category, RuntimeWarning) and "broken-rule" in str(w.message) for w in caught)
    assert "eprop" in rules.RULES and "broken-rule" not in rules.RULES
