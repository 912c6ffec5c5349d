"""``open_run`` validation (neuroplast/io/validate.py): a file held by another process, cut short, or with
datasets of the wrong kind is refused with one line that says which; every synthetic log passes.

The command-line view of the same (every command x every damage) is tests/e2e/test_damaged_logs.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.io import RunFileError, open_run
from tests.helpers import copy_file, write_synthetic_run


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("v") / "run.h5")


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_synthetic_logs_pass_strict(tmp_path, kind) -> None:
    path = write_synthetic_run(tmp_path / "r.h5", kind=kind, partial_iteration=kind == "classification")
    assert open_run(path, strict=True).n_trials > 0


def test_file_held_by_another_process_is_reported_as_such(log, tmp_path) -> None:
    path = copy_file(log, tmp_path / "held.h5")
    code = (
        "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(RunFileError, match="open in another process") as exc:
            open_run(path)
        assert "truncated" not in str(exc.value)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert open_run(path, strict=True).n_trials > 0  # released: readable again


def test_truncated_file_is_reported_as_truncated_not_locked(log, tmp_path) -> None:
    path = copy_file(log, tmp_path / "cut.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError, match=r"truncated or damaged file: it has \d+ bytes") as exc:
        open_run(path)
    assert "locked" not in str(exc.value) and "holds the file" not in str(exc.value)
    assert "\n" not in str(exc.value)


def _edit(log: Path, tmp_path: Path, fn) -> Path:
    path = copy_file(log, tmp_path / "edited.h5")
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f[name] = data


CASES = {
    "weights missing": (
        lambda f: f.__delitem__("projections/input/weights"),
        "input/weights is missing",
        False,
    ),
    "weights of ints": (
        lambda f: _replace(f, "projections/output/weights", np.zeros((4, 20), np.int64)),
        "dtype int64",
        False,
    ),
    "weights wrong width": (
        lambda f: _replace(f, "projections/output/weights", np.zeros((4, 3))),
        "has shape (4, 3)",
        False,
    ),
    "inputs 2-D": (lambda f: _replace(f, "inputs/values", np.zeros((6, 60))), "inputs/values", False),
    "config not TOML": (lambda f: f.attrs.__setitem__("config", "a = = 1"), "not valid TOML", False),
    "loss of strings": (
        lambda f: _replace(f, "trials/loss", np.array([b"x"] * 6)),
        "trials/loss has dtype",
        False,
    ),
    "trials overlap": (
        lambda f: f["trials/start_step"].__setitem__(1, 0),
        "trials overlap",
        False,
    ),
    "trial count negative": (
        lambda f: f.attrs.__setitem__("n_trials_complete", -7),
        "root attribute n_trials_complete is -7; must be an integer >= 0",
        False,
    ),
    "iteration count negative": (
        lambda f: f.attrs.__setitem__("n_iterations_complete", np.int64(-1)),
        "root attribute n_iterations_complete is -1",
        False,
    ),
    "trial count a string": (
        lambda f: f.attrs.__setitem__("n_trials_complete", "x"),
        "root attribute n_trials_complete is 'x'",
        False,
    ),
    "trial count a fraction": (
        lambda f: f.attrs.__setitem__("n_trials_complete", 2.5),
        "root attribute n_trials_complete is 2.5",
        False,
    ),
    "spikes missing": (lambda f: f.__delitem__("spikes/recurrent"), "/spikes/recurrent is missing", True),
    "projection missing": (lambda f: f.__delitem__("projections/bias"), "bias missing", True),
    "weights overwritten": (
        lambda f: f["projections/recurrent/weights"].__setitem__(2, 0.0),
        "weights after iteration 2",
        True,
    ),
    "spikes out of order": (
        lambda f: f["spikes/recurrent/timestamps"].__setitem__(slice(0, 3), [5.0, 1.0, 2.0]),
        "not sorted by time",
        True,
    ),
}


def test_killed_log_with_a_begun_but_unwritten_iteration_passes(tmp_path) -> None:
    """A kill mid-flush can leave the next weights row and spike rows resized but never written (zeros)."""
    path = write_synthetic_run(tmp_path / "killed.h5", partial_iteration=True)
    with h5py.File(path, "r+") as f:
        for name in ("weights", "updates"):
            d = f[f"projections/recurrent/{name}"]
            d.resize((d.shape[0] + 1, d.shape[1]))  # row n_iterations begun: zeros
        for name in ("timestamps", "node_ids"):
            d = f[f"spikes/recurrent/{name}"]
            d.resize((d.shape[0] + 3,))  # spikes of an unlisted trial begun: zeros
    run = open_run(path, strict=True)
    assert not run.finished and run.n_iterations == 3


@pytest.mark.parametrize("case", list(CASES))
def test_damage_is_named(log, tmp_path, case) -> None:
    fn, words, strict_only = CASES[case]
    path = _edit(log, tmp_path, fn)
    with pytest.raises(RunFileError) as exc:
        open_run(path, strict=True)
    msg = str(exc.value)
    assert words in msg and "edited.h5" in msg and "\n" not in msg, msg
    if strict_only:  # the storage-level reader (writer's own tests, reopening) still reads it
        open_run(path)
    else:
        with pytest.raises(RunFileError):
            open_run(path)


@pytest.mark.parametrize("attr", ["n_trials_complete", "n_iterations_complete"])
def test_damaged_counter_is_named_when_reopened(log, tmp_path, attr) -> None:
    """``--resume`` (``RunWriter.append``) of a log with a negative counter: one line naming the file and
    the attribute, not a NumPy reduction message."""
    from neuroplast.io import RunWriter

    path = _edit(log, tmp_path, lambda f: f.attrs.__setitem__(attr, -7))
    with pytest.raises(RunFileError) as exc:
        RunWriter.append(path)
    msg = str(exc.value)
    assert f"edited.h5: damaged run log: root attribute {attr} is -7" in msg and "reduction" not in msg, msg
