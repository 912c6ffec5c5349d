"""The scripting API (``import neuroplast as npl``): its names, ``train`` with a callback and a simulator,
and examples/train_script.py run as a user runs it (NumPy simulator: no compiler, seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import neuroplast as npl
from neuroplast.errors import NeuroplastError
from tests.helpers import ROOT, cli_env, write_config

ITERATIONS = 3


@pytest.fixture(scope="module")
def small_sine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/sine.toml with 300 steps per trial and 3 iterations (the NumPy reference trains it in < 1 s)."""
    folder = tmp_path_factory.mktemp("api")
    path = write_config(folder / "small.toml", "n_steps = 1000", "n_steps = 300")
    return write_config(path, "iterations = 40", f"iterations = {ITERATIONS}", source=path)


def test_every_name_resolves_and_is_documented() -> None:
    for name in npl.__all__:
        obj = getattr(npl, name)
        assert obj is not None
        if callable(obj) and not isinstance(obj, type(npl.RULES)):
            assert (obj.__doc__ or "").strip(), f"npl.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        npl.nothing  # noqa: B018


def test_import_is_light() -> None:
    """``import neuroplast`` loads neither Brian2 nor the trainer; using the API loads the trainer, and
    still not Brian2 (it is imported when a network is built)."""
    code = (
        "import sys, neuroplast as npl\n"
        "print('brian2' in sys.modules, 'neuroplast.training.runner' in sys.modules)\n"
        "npl.train\n"
        "print('brian2' in sys.modules, 'neuroplast.training.runner' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "False", "True"]


def test_train_returns_the_log_and_calls_back_every_iteration(small_sine: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, list[float]]] = []
    run = npl.train(
        small_sine,
        tmp_path / "run.h5",
        callback=lambda rec: seen.append((rec.iteration, list(rec.losses))),
        simulator=npl.NumpySimulator.of,
    )
    assert isinstance(run, npl.RunLog) and run.finished and run.n_iterations == ITERATIONS
    assert [it for it, _ in seen] == list(range(ITERATIONS))
    # the callback saw exactly what the log holds (same floats: both are the trainer's values)
    np.testing.assert_array_equal(np.concatenate([losses for _, losses in seen]), run.trials["loss"])


def test_a_failing_callback_keeps_the_finished_iterations(small_sine: Path, tmp_path: Path) -> None:
    def stop_at_1(rec) -> None:
        if rec.iteration == 1:
            raise RuntimeError("the user's callback stops")

    out = tmp_path / "stopped.h5"
    with pytest.raises(RuntimeError, match="callback stops"):
        npl.train(small_sine, out, callback=stop_at_1, device="numpy")
    run = npl.open_run(out)
    assert not run.finished and run.n_iterations >= 1  # iteration 0 at least (1 was logged before the call)
    done = npl.train(small_sine, out, resume=True, device="numpy")
    straight = npl.train(small_sine, tmp_path / "straight.h5", device="numpy")
    with h5py.File(done.path) as a, h5py.File(straight.path) as b:
        np.testing.assert_array_equal(a["trials"]["loss"][()], b["trials"]["loss"][()])


def test_bad_input_is_the_usual_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(NeuroplastError, match="config file not found"):
        npl.train(tmp_path / "missing.toml", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.e2e
def test_example_script_runs(tmp_path: Path) -> None:
    out = tmp_path / "ex.h5"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_script.py"), "--numpy", "--iterations", "2"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(),  # this checkout's neuroplast, whatever the environment has installed
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("iteration ") for line in lines) == 2
    assert any("recurrent" in line and "eprop: cosine to BPTT" in line for line in lines)
    assert npl.open_run(out).n_iterations == 2
