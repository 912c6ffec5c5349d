"""Several iterations per launch with a batch's trials side by side give one trial per launch's records,
bit for bit.

The spec is identity: a launch of K iterations of B copies steps the optimizer at every iteration boundary
on the batch's mean gradient, computed with NumPy's operations in NumPy's order (``trainer._batch_mean``:
the trials' gradients added in trial order, then divided by B; docs/model.md §7, §8), so every spike,
gradient, weight, update and resume state is the same double as when every trial has a launch of its own.
Each case trains twice — ``simulation.chunk_iterations = 1`` and K = 2 iterations of B = 3 trials per
launch over 5 iterations (launches of 2, 2 and 1) — and compares every array of every
:class:`IterationRecord` byte for byte (−0.0 ≠ 0.0, as the run-log diff).
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from neuroplast.build import build
from neuroplast.config import parse_config
from neuroplast.training.trainer import Trainer, chunk_length
from tests.helpers import SMALL_EVIDENCE_TOML as EVIDENCE
from tests.helpers import assert_same_records
from tests.training.test_chunked import MODES, NEST_EVIDENCE, SINE

#: The batch's trials side by side, 5 iterations, on the online path unless a case names the factorized one
#: (both chunked: docs/model.md §7, §9).
BATCH = {"batch_size": 3, "path": "online", "iterations": 5}


def _cfg(text: str, chunk: int, threads: int = 1, changes: dict | None = None):
    data = tomllib.loads(text)
    data["simulation"]["chunk_iterations"] = chunk
    data["simulation"]["threads"] = threads
    data["training"].update(BATCH)
    for section, values in (changes or {}).items():
        data[section].update(values)
    return parse_config(data)


def _train(text: str, chunk: int, threads: int = 1, changes: dict | None = None) -> tuple[Trainer, list]:
    tr = Trainer.from_config(_cfg(text, chunk, threads, changes))
    records = [tr.run_iteration() for _ in range(tr.cfg.training.iterations)]
    return tr, records


def _factorized(changes: dict) -> dict:
    """``changes`` on the factorized gradient path (computed by the binary at every boundary)."""
    return {**changes, "training": {**changes.get("training", {}), "path": "factorized"}}


@pytest.mark.brian2
@pytest.mark.parametrize(
    ("text", "changes", "frozen", "threads"),
    [
        # event-driven eligibility, Adam, the rate regularizer; the sine task gives every trial of a batch
        # the same input, so the evidence cases below are the ones whose trials differ
        pytest.param(SINE, {}, [], 1, id="sine-adam"),
        # the modes are values of the launch: they share sine-adam's compiled network
        *(pytest.param(SINE, c, f, 1, id=f"sine-{name}") for name, (c, f) in MODES.items()),
        # ALIF neurons, cross-entropy with recall windows (a mask column per copy), random feedback, SGD,
        # the sweep path
        pytest.param(EVIDENCE, {}, ["feedback"], 1, id="evidence-sgd"),
        pytest.param(EVIDENCE, {}, ["feedback"], 2, id="evidence-sgd-2-threads", marks=pytest.mark.slow),
        pytest.param(
            EVIDENCE, NEST_EVIDENCE, ["bias", "feedback"], 1, id="evidence-nest", marks=pytest.mark.slow
        ),
        # the factorized path: every copy's gradient computed by the binary at each boundary, then the
        # batch's mean (no bias, adam-nest and averaging are values of the launch: evidence-factorized's
        # network)
        pytest.param(SINE, _factorized({}), [], 1, id="sine-adam-factorized"),
        pytest.param(EVIDENCE, _factorized({}), ["feedback"], 1, id="evidence-sgd-factorized"),
        pytest.param(
            EVIDENCE,
            _factorized(NEST_EVIDENCE),
            ["bias", "feedback"],
            1,
            id="evidence-nest-factorized",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_batch_chunked_equals_per_trial(text: str, changes: dict, frozen: list[str], threads: int) -> None:
    """K = 2 iterations of 3 trials side by side per launch (with ``threads`` OpenMP threads) = one trial
    per launch with one thread, byte for byte, on either gradient path; what is not trained stays, what is
    trained moves."""
    one, want = _train(text, 1, changes=changes)
    many, got = _train(text, 2, threads, changes)
    assert one.chunk == 0 and one.batch == 1, one.chunk_reason
    assert many.chunk == 2 and many.batch == 3, many.chunk_reason
    path = changes.get("training", {}).get("path", BATCH["path"])
    assert one.gradient_path == many.gradient_path == path
    assert many.compiled_gradients == (path == "factorized")
    assert "each its 3 trials side by side" in many.chunk_reason
    assert many.threads == threads
    assert_same_records(want, got)
    first, last = got[0].weights_before, many.final_weights()
    for key in ("input", "recurrent", "output", "bias", "feedback"):
        assert (not np.array_equal(first[key], last[key])) == (key not in frozen), (key, frozen)
    if text == EVIDENCE:  # not vacuous: the trials of a batch and their gradients differ
        g = [t.grads["recurrent"][many.rule_name] for t in got[0].trials]
        assert not np.array_equal(g[0], g[1]) and not np.array_equal(g[1], g[2])


@pytest.mark.brian2
def test_resume_inside_a_launch_equals_uninterrupted() -> None:
    """A run stopped at a launch boundary (after 2 of 5 iterations: launches of iterations 0–1, 2–3, 4) or
    inside a launch (after 3: the launch of 2–3 ran, iteration 3's results still in flight)
    and continued from its state by a new trainer (as ``--resume`` does; its launches then start
    elsewhere) gives the uninterrupted run's records, byte for byte."""
    ref, want = _train(EVIDENCE, 2)
    for stop in (2, 3):  # a launch boundary; inside the second launch
        first = Trainer.from_config(_cfg(EVIDENCE, 2))
        head = [first.run_iteration() for _ in range(stop)]
        assert first.in_flight == (stop % 2), stop
        state = first.flat_state()
        again = Trainer.from_config(_cfg(EVIDENCE, 2))
        again.load_flat_state(state)
        tail = [again.run_iteration() for _ in range(stop, again.cfg.training.iterations)]
        assert_same_records(want, head + tail)


def test_chunk_length_counts_the_trials_side_by_side() -> None:
    """Auto: the memory budget holds the K iterations' B trials each (a batch of B fits B times fewer)."""
    one = _cfg(EVIDENCE, 0).replace("training", batch_size=1)
    big = one.replace("simulation", n_steps=100_000)
    k1 = chunk_length(big, 1000)
    assert 3 <= k1 < 100
    assert chunk_length(big.replace("training", batch_size=3), 1000) == k1 // 3
    assert chunk_length(_cfg(EVIDENCE, 7), 1000) == 7  # a given K is kept


class _Unbuilt:
    """Stands in for the Brian2 network: the plan is made before it is built (nothing compiled here)."""

    def __init__(self, *args, **kwargs) -> None:
        self.kwargs = kwargs


@pytest.mark.parametrize(
    ("changes", "record", "chunk", "reason"),
    [
        ({}, False, 2, "up to 2 iterations per launch, each its 3 trials side by side"),
        (
            {"training": {"path": "factorized"}},
            False,
            2,
            "up to 2 iterations per launch, each its 3 trials side by side",
        ),
        (
            {"training": {"rule": "bptt", "path": "auto"}},
            False,
            0,
            "one batch per launch, its 3 trials side by side: the factorized gradient path reads every "
            "trial's recorded trajectory",
        ),
        ({}, True, 0, "one batch per launch, its 3 trials side by side: traces are recorded"),
        (
            {"simulation": {"chunk_iterations": 1}},
            False,
            0,
            "one trial per launch: simulation.chunk_iterations = 1",
        ),
    ],
)
def test_a_batch_that_cannot_run_several_iterations_per_launch_says_why(
    monkeypatch, changes: dict, record: bool, chunk: int, reason: str
) -> None:
    """What ``neuroplast run``'s "network ready" line says (``Trainer.chunk_reason``) for a batch of 3 on
    cpp_standalone, and the network the trainer asks for: K iterations of B copies, or one launch per batch
    (B copies) or per trial."""
    from neuroplast.network import builder

    monkeypatch.setattr(builder, "Brian2Network", _Unbuilt)
    tr = Trainer(build(_cfg(EVIDENCE, 2, changes=changes)), record=record)
    assert (tr.chunk, tr.chunk_reason) == (chunk, reason)
    batch = 1 if "chunk_iterations = 1" in reason else 3
    assert tr.batch == batch and tr.net.kwargs["batch"] == batch
    assert tr.net.kwargs.get("chunk_trials", 0) == chunk
    # the binary computes the factorized gradient (at every boundary of a chunk); NumPy reads the trajectory
    factorized = changes.get("training", {}).get("path") == "factorized"
    assert tr.net.kwargs.get("factorized", False) == factorized
    assert tr.net.kwargs["gradients"] == (tr.gradient_path == "online")
