"""The stopping criterion (``training.stop_error``): the rule itself, the runner stopping on it, resume.

NumPy device runs of the synthetic classification task (tests/helpers.py): the stopped run must be the
first n iterations of the same run without a criterion, bit for bit, with n what
:func:`~neuroplast.tasks.criterion.iterations_to_criterion` finds in that unstopped log.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.errors import ConfigError
from neuroplast.io import open_run
from neuroplast.tasks.criterion import criterion_met, iterations_to_criterion, window_error
from neuroplast.training.runner import run_training
from tests.helpers import _Killed, _stopped_before_update, _synthetic_config

N_ITER = 10


def test_window_error_counts_wrong_answers_exactly() -> None:
    correct = [np.ones(80), np.r_[np.ones(72), np.zeros(8)]]
    assert window_error(correct, 3) is None  # fewer iterations than the window
    assert window_error(correct, 1) == 0.1  # 8 of 80 wrong: exactly 0.1 (1 - 0.9 is not)
    assert window_error(correct, 2) == 0.05
    assert not criterion_met(correct, 0.1, 1)  # 0.1 is not below 0.1
    assert criterion_met(correct, 0.100001, 1)
    assert not criterion_met(correct, 0.0, 1)  # 0 switches it off


def test_iterations_to_criterion_from_a_trial_table() -> None:
    it = np.repeat(np.arange(5), 4)
    acc = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], dtype=float)
    # errors per iteration 0.75, 0.25, 0, 0.5, 0; window 2: n=2 → 0.5, n=3 → 0.125, n=4 → 0.25, n=5 → 0.25
    assert iterations_to_criterion(it, acc, 0.2, 2) == 3
    assert iterations_to_criterion(it, acc, 0.6, 2) == 2
    assert iterations_to_criterion(it, acc, 0.1, 2) is None
    assert iterations_to_criterion(it, acc, 0.1, 1) == 3
    with pytest.raises(ValueError, match="shape"):
        iterations_to_criterion(it, acc[:-1], 0.2, 2)


def _cfg(stop_error: float = 0.0, window: int = 1):
    cfg = _synthetic_config("classification", batch=4, iterations=N_ITER)
    return cfg.replace("training", stop_error=stop_error, stop_window=window, learning_rate=0.05)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run without criterion."""
    return run_training(_cfg(), tmp_path_factory.mktemp("stop") / "full.h5", progress=False)


def _stop_point(full: Path, window: int) -> tuple[float, int]:
    """The threshold that stops ``full`` where its error over ``window`` iterations first reaches its
    lowest value, and that iteration count (counted here, independently of the criterion module)."""
    run = open_run(full)
    it, acc = np.asarray(run.trials["iteration"]), np.asarray(run.trials["accuracy"])
    wrong = [np.sum(acc[it == i] == 0) for i in range(N_ITER)]
    errors = [sum(wrong[n - window : n]) / (4 * window) for n in range(window, N_ITER + 1)]
    threshold = min(errors) + 0.01
    n = errors.index(min(errors)) + window
    assert window < n < N_ITER, f"the seed must stop the run in its middle (errors {errors})"
    assert iterations_to_criterion(it, acc, threshold, window) == n
    return threshold, n


@pytest.fixture(scope="module", params=[1, 2], ids=["window-1", "window-2"])
def unstopped(full_run: Path, request: pytest.FixtureRequest) -> tuple[Path, float, int, int]:
    """The full run, a threshold that stops it in its middle, that iteration count, the window."""
    return (full_run, *_stop_point(full_run, request.param), request.param)


def _same_first_iterations(short: Path, full: Path, n: int) -> None:
    a, b = open_run(short), open_run(full)
    assert a.n_iterations == n and a.n_trials == 4 * n
    for name in a.projection_names:
        pa, pb = a.projection(name), b.projection(name)
        np.testing.assert_array_equal(pa.weights[:n], pb.weights[:n])  # bit for bit: the same computation
        np.testing.assert_array_equal(pa.updates, pb.updates[:n])
        np.testing.assert_array_equal(pa.weights[n], pb.weights[n])  # final weights = after update n
    np.testing.assert_array_equal(a.trials["loss"], b.trials["loss"][: 4 * n])


def test_the_run_stops_where_the_criterion_is_first_met(unstopped, tmp_path: Path) -> None:
    full, threshold, n, window = unstopped
    path = run_training(_cfg(threshold, window), tmp_path / "stopped.h5", progress=False)
    run = open_run(path)
    assert run.finished and run.status() == "finished"
    assert run.stopped is not None and run.stopped.startswith(f"stopped after iteration {n}: error ")
    _same_first_iterations(path, full, n)
    # resuming it (even with more iterations) leaves it as it is: the criterion is met
    before = path.read_bytes()
    run_training(_cfg(threshold, window), None, resume=path, iterations=N_ITER + 5, progress=False)
    assert path.read_bytes() == before


def test_a_killed_stopping_run_resumes_to_the_same_stop(unstopped, tmp_path: Path) -> None:
    """Killed before the update of the iteration that meets the criterion: the resumed run meets it there
    too (with window 2 only if it continues from the logged iterations' answers)."""
    full, threshold, n, window = unstopped
    path = tmp_path / "killed.h5"
    with _stopped_before_update(n - 1), contextlib.suppress(_Killed):
        run_training(_cfg(threshold, window), path, progress=False)
    assert not open_run(path).finished and open_run(path).n_iterations == n - 1
    run_training(_cfg(threshold, window), None, resume=path, progress=False)
    run = open_run(path)
    assert run.finished and run.stopped is not None
    _same_first_iterations(path, full, n)


def test_a_run_shorter_than_its_stop_is_extended_to_the_stop(unstopped, tmp_path: Path) -> None:
    """A run that ended at its iterations without meeting the criterion is extended as any finished run,
    and stops where the criterion is met (here: the threshold is met at n > the first run's length)."""
    full, threshold, n, window = unstopped
    path = run_training(_cfg(threshold, window), tmp_path / "short.h5", iterations=n - 1, progress=False)
    assert open_run(path).stopped is None and open_run(path).n_iterations == n - 1
    run_training(_cfg(threshold, window), None, resume=path, iterations=N_ITER, progress=False)
    _same_first_iterations(path, full, n)
    assert open_run(path).stopped is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stop_error": 1.0}, r"training.stop_error: must be in \[0, 1\)"),
        ({"stop_error": -0.1}, r"training.stop_error: must be in \[0, 1\)"),
        ({"stop_error": 0.1, "stop_window": 0}, "training.stop_window: must be > 0"),
    ],
)
def test_bad_criterion_keys_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg().replace("training", **change)


def test_a_regression_task_has_no_error_to_stop_on() -> None:
    cfg = _synthetic_config("regression")
    data = {"simulation": {"n_steps": 60}, "task": {"name": "sine"}, "training": {"stop_error": 0.1}}
    with pytest.raises(ConfigError, match="training.stop_error: .*classification task"):
        parse_config(data)
    assert cfg.training.stop_error == 0.0  # the default: off
