"""What ``run_training(..., resume=...)`` refuses before anything is built (no Brian2): a diverged log, a
config that differs in anything but ``training.iterations``, fewer iterations than the log holds; and a
finished log given no more iterations is left as it is.  The runs themselves: tests/e2e/test_run_safety.py.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from neuroplast.io import RunFileError, open_run
from neuroplast.training.runner import run_training
from tests.helpers import _synthetic_config, write_synthetic_run

N_ITER = 3


@pytest.fixture()
def finished(tmp_path: Path) -> Path:
    path = write_synthetic_run(tmp_path / "synthetic.h5", n_iter=N_ITER)
    assert open_run(path).finished and open_run(path).n_iterations == N_ITER
    return path


def _cfg():
    return _synthetic_config("regression", 0.5)  # the config write_synthetic_run logs


def test_refusals_name_the_reason_and_leave_the_file(finished: Path) -> None:
    before = finished.read_bytes()
    cases = [
        (dict(iterations=N_ITER - 1), f"--iterations {N_ITER - 1} is fewer than the {N_ITER} iterations"),
        (dict(iterations=N_ITER + 2, seed=9), "config differs at simulation.seed"),
        (dict(iterations=N_ITER + 2, rule="eprop-random"), "config differs at training.rule"),
    ]
    for kw, words in cases:
        with pytest.raises(RunFileError) as err:
            run_training(_cfg(), None, resume=finished, progress=False, **kw)
        assert words in str(err.value) and "\n" not in str(err.value), (kw, str(err.value))
    changed = _cfg().replace("training", learning_rate=2e-6)
    with pytest.raises(RunFileError, match="config differs at training.learning_rate"):
        run_training(changed, None, resume=finished, progress=False, iterations=N_ITER + 2)
    assert finished.read_bytes() == before


def test_a_finished_log_given_no_more_iterations_is_left_alone(finished: Path) -> None:
    before = finished.read_bytes()
    # the config file may say another count: --iterations N decides, and N = done means nothing to do
    other = _cfg().replace("training", iterations=500)
    assert run_training(other, None, resume=finished, progress=False, iterations=N_ITER) == finished
    assert finished.read_bytes() == before


def test_a_diverged_log_is_not_resumed(finished: Path) -> None:
    with h5py.File(finished, "r+") as f:
        f.attrs["finished"] = 0
        f.attrs["diverged"] = "diverged at iteration 4: the recurrent gradient is not finite"
    with pytest.raises(RunFileError) as err:
        run_training(_cfg(), None, resume=finished, progress=False, iterations=N_ITER + 1)
    msg = str(err.value)
    assert (
        "cannot resume: the run diverged (diverged at iteration 4: the recurrent" in msg and "\n" not in msg
    )
