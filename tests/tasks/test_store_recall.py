"""The store-recall task: what a trial shows, what it asks, and its one-line config errors."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.errors import ConfigError
from neuroplast.tasks import TASKS
from neuroplast.tasks.store_recall import GROUPS

BASE = {
    "simulation": {"n_steps": 130, "dt_ms": 1.0, "seed": 4},
    "network": {"n_rec": 10, "n_alif": 5, "n_out": 2, "beta": 0.1, "tau_a_ms": 500.0},
    "task": {"name": "store-recall", "n_in": 8, "n_slots": 6, "slot_ms": 20.0, "cue_rate_hz": 1000.0},
    "training": {"loss": "cross_entropy"},
}


def _config(**task):
    data = {k: dict(v) for k, v in BASE.items()}
    data["task"].update(task)
    return parse_config(data)


def _task(cfg):
    return TASKS.get("store-recall").from_config(cfg, cfg.simulation.seed)


def test_a_trial_shows_bits_one_store_cue_then_the_recall_window() -> None:
    """With cue rate 1000 Hz (one spike per step) every cue is visible step by step."""
    cfg = _config()
    slot, T, g = 20, 130, 2
    start = T - 6 * slot  # 10 steps of noise only (here none) before the first slot
    trials = _task(cfg).trials(3, 16)
    assert len({t.label for t in trials}) == 2  # both answers occur
    for tr in trials:
        x = tr.x.reshape(T, 4, g)
        assert not x[:start].any()
        bits = []
        for s in range(5):
            seg = x[start + s * slot : start + (s + 1) * slot]
            shown = [b for b in (0, 1) if seg[:, 2 + b].all()]
            assert len(shown) == 1 and not seg[:, 3 - shown[0]].any()  # one bit per slot, the other silent
            assert not seg[:, 1].any()  # no recall cue before the recall slot
            bits.append(shown[0])
        stores = [s for s in range(5) if x[start + s * slot : start + (s + 1) * slot, 0].all()]
        assert len(stores) == 1 and not x[:, 0].sum() > slot * g  # one store cue, one slot long
        assert tr.label == bits[stores[0]]
        recall = x[T - slot :]
        assert recall[:, 1].all() and not recall[:, [0, 2, 3]].any()
        np.testing.assert_array_equal(tr.mask, np.r_[np.zeros(T - slot), np.ones(slot)])
        np.testing.assert_array_equal(tr.target[:, tr.label], np.ones(T))


def test_trials_come_from_the_seed_and_the_iteration() -> None:
    cfg = _config(noise_rate_hz=100.0, cue_rate_hz=50.0)
    a, b = _task(cfg).trials(7, 3), _task(cfg).trials(7, 3)
    for ta, tb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ta.x, tb.x)
    other = _task(cfg).trials(8, 3)
    assert any(not np.array_equal(ta.x, to.x) for ta, to in zip(a, other, strict=True))


def test_min_delay_keeps_the_store_cue_away_from_the_recall() -> None:
    cfg = _config(min_delay_slots=3)
    slot, T, g = 20, 130, 2
    start = T - 6 * slot
    slots = set()
    for tr in _task(cfg).trials(0, 40):
        stored_at = np.flatnonzero(tr.x.reshape(T, 4, g)[:, 0].any(axis=1))
        slots |= set((stored_at - start) // slot)
    assert slots == {0, 1}  # slots 0..n_slots-2-min_delay_slots: at least 3 distractor slots follow


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": {"n_in": 10}}, "task.n_in: must be a multiple of 4"),
        ({"task": {"n_slots": 1}}, "task.n_slots: must be >= 2"),
        ({"task": {"min_delay_slots": 5}}, "task.min_delay_slots: at most n_slots - 2 = 4"),
        ({"task": {"slot_ms": 20.5}}, "task.slot_ms: must be a whole number of steps"),
        ({"task": {"slot_ms": 30.0}}, "simulation.n_steps: 6 slots of 30.0 ms need 180 steps"),
        ({"task": {"cue_rate_hz": 2000.0}}, "task.cue_rate_hz: 2000.0 Hz is more than one spike"),
        ({"network": {"n_out": 3}}, "network.n_out: the store-recall task has 2 outputs"),
        ({"training": {"loss": "mse"}}, "training.loss: the store-recall task needs 'cross_entropy'"),
    ],
)
def test_bad_keys_are_one_line_errors(change: dict, message: str) -> None:
    data = {k: dict(v) for k, v in BASE.items()}
    for table, keys in change.items():
        data[table].update(keys)
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_the_groups_are_named_in_channel_order() -> None:
    assert GROUPS == ("store", "recall", "bit 0", "bit 1")
