"""Trials of a batch side by side (one launch per batch) give one trial per launch's records, bit for bit.

Each config trains twice — ``simulation.chunk_iterations = 1`` (one trial per launch) and the default (the
batch's trials side by side in one network) — and every array of every :class:`IterationRecord` must be the
same bytes: each copy of the batched network computes exactly what the one-copy network computes.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.network import factorized as fz
from neuroplast.training.trainer import Trainer
from tests.helpers import IN_TRIAL_TOML, SMALL_EVIDENCE_TOML, assert_same_records, norm_rel_err

pytestmark = pytest.mark.brian2

#: (config, changes): ALIF neurons, cross-entropy with recall windows, random feedback, Adam, the factorized
#: path on cpp_standalone (also with 2 and 3 threads sharing the gradient computed in the binary: 20 neurons'
#: columns split 10/10 and 6/7/7, every thread a part however small the work, ``MIN_THREAD_WORK`` = 0); LIF
#: regression on the online path (eligibility traces in every copy), runtime.  The one-trial-per-launch run
#: of every case has one thread.
_EVIDENCE = {"training": {"optimizer": "adam", "iterations": 3, "batch_size": 3, "path": "factorized"}}
CASES = {
    "evidence-factorized-cpp": (SMALL_EVIDENCE_TOML, _EVIDENCE),
    "evidence-factorized-cpp-2-threads": (SMALL_EVIDENCE_TOML, {**_EVIDENCE, "simulation": {"threads": 2}}),
    "evidence-factorized-cpp-3-threads": (SMALL_EVIDENCE_TOML, {**_EVIDENCE, "simulation": {"threads": 3}}),
    "sine-online-runtime": (
        IN_TRIAL_TOML,
        {
            "simulation": {"n_steps": 150, "device": "runtime"},
            "training": {"update_every_steps": 0, "iterations": 3, "batch_size": 2, "path": "online"},
        },
    ),
}


def _train(case: str, chunk: int) -> tuple[Trainer, list]:
    text, changes = CASES[case]
    data = tomllib.loads(text)
    for table, values in changes.items():
        data[table].update(values)
    data["simulation"]["chunk_iterations"] = chunk
    if chunk == 1:
        data["simulation"]["threads"] = 1
    tr = Trainer.from_config(parse_config(data))
    return tr, [tr.run_iteration() for _ in range(tr.cfg.training.iterations)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_side_by_side_equals_one_trial_per_launch(case: str, monkeypatch) -> None:
    one, want = _train(case, 1)
    with monkeypatch.context() as m:
        if "threads" in case:
            m.setattr(fz, "MIN_THREAD_WORK", 0)
        side, got = _train(case, 0)
    assert one.batch == 1 and side.batch == side.cfg.training.batch_size > 1
    assert "side by side" in side.chunk_reason
    assert one.threads == 1 and side.threads == side.cfg.simulation.threads
    assert_same_records(want, got)
    # not vacuous: the weights moved and the network spiked; the evidence task's trials differ within a batch
    # (the sine task repeats one input), and so do their gradients
    assert not np.array_equal(want[0].weights_before["recurrent"], want[-1].weights_before["recurrent"])
    first = want[0].trials
    assert all(t.spikes["recurrent"][0].size for t in first)
    if case.startswith("evidence"):
        g = [t.grads["recurrent"][one.rule_name] for t in first]
        assert not np.array_equal(g[0], g[1])


def test_gradients_computed_in_the_binary_equal_numpys() -> None:
    """cpp_standalone computes a batch's factorized gradients inside its binary (docs/model.md §9), the
    runtime device records ψ and NumPy contracts it: the same spikes, and losses, gradients and weights equal
    to ≤ 1e-10 relative (the devices' readouts differ by rounding, test_equality.py, and BLAS sums in its own
    order) for whole iterations."""
    runs = {}
    for device in ("cpp_standalone", "runtime"):
        data = tomllib.loads(SMALL_EVIDENCE_TOML)
        data["simulation"]["device"] = device
        data["training"].update(_EVIDENCE["training"], iterations=2)
        tr = Trainer.from_config(parse_config(data))
        assert tr.compiled_gradients == (device == "cpp_standalone")
        runs[device] = [tr.run_iteration() for _ in range(2)]
    for a, b in zip(runs["cpp_standalone"], runs["runtime"], strict=True):
        np.testing.assert_allclose(a.losses, b.losses, rtol=1e-10, atol=0)
        for ta, tb in zip(a.trials, b.trials, strict=True):
            for pop in ("recurrent", "input"):
                assert all(np.array_equal(x, y) for x, y in zip(ta.spikes[pop], tb.spikes[pop], strict=True))
            for proj, by_rule in ta.grads.items():
                ga, gb = by_rule["eprop-random"], tb.grads[proj]["eprop-random"]
                assert np.linalg.norm(ga) > 0 and norm_rel_err(ga, gb) <= 1e-10, proj
        for proj, w in a.weights_before.items():
            assert norm_rel_err(w, b.weights_before[proj]) <= 1e-10, proj
