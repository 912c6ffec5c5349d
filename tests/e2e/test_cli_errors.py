"""``neuroplast`` command-line errors: one line on stderr naming the key or file, exit status 2,
no traceback, nothing overwritten.

Every case runs the real command in a subprocess (``python -m neuroplast.cli``) with a stand-in
``brian2`` package first on the path that aborts on import: an input error must be reported before
any network is built or simulated, so these tests stay fast and a late check fails loudly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.helpers import BRIAN2_IMPORTED, EVIDENCE, SINE, assert_one_line_error, run_cli, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def no_brian2(tmp_path_factory) -> Path:
    """A folder with a ``brian2`` package that exits with BRIAN2_IMPORTED when imported."""
    root = tmp_path_factory.mktemp("no_brian2")
    (root / "brian2").mkdir()
    (root / "brian2" / "__init__.py").write_text(
        "import sys\n"
        "sys.stderr.write('brian2 imported: an input error was not caught before building\\n')\n"
        f"sys.exit({BRIAN2_IMPORTED})\n"
    )
    return root


@pytest.fixture
def cli(no_brian2, tmp_path):
    """Run ``python -m neuroplast.cli ARGS`` in ``tmp_path``; returns the CompletedProcess."""

    def run(*args: str | Path, allow_brian2: bool = False) -> subprocess.CompletedProcess:
        return run_cli(*args, cwd=tmp_path, timeout=120, pythonpath=() if allow_brian2 else (no_brian2,))

    return run


# ------------------------------------------------------------------ help
def test_help(cli) -> None:
    proc = cli("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for word in ("run", "inspect", "HDF5"):
        assert word in proc.stdout


def test_run_help_explains_options(cli) -> None:
    proc = cli("run", "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    options = ("CONFIG", "--out", "--iterations", "--seed", "--rule", "--force", "--trace", "--trace-neurons")
    for opt in options:
        assert opt.lower() in proc.stdout.lower(), opt
    assert "overwrite" in proc.stdout and "TOML" in proc.stdout


def test_inspect_help(cli) -> None:
    proc = cli("inspect", "--help")
    assert proc.returncode == 0 and "run log" in proc.stdout


def test_no_command_shows_help(cli) -> None:
    proc = cli()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "run" in proc.stdout and "inspect" in proc.stdout


def test_console_script_installed_next_to_python() -> None:
    script = Path(sys.executable).with_name("neuroplast")
    if not script.exists():
        pytest.skip("the neuroplast console script is not installed in this environment")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "inspect" in proc.stdout


# ------------------------------------------------------------------ run: config errors
def test_missing_config_file(cli, tmp_path) -> None:
    assert_one_line_error(cli("run", tmp_path / "no_such.toml"), "no_such.toml", "not found")


def test_config_folder(cli, tmp_path) -> None:
    assert_one_line_error(cli("run", tmp_path), str(tmp_path))


def test_unknown_key_in_config(cli, tmp_path) -> None:
    cfg = write_config(tmp_path / "bad.toml", "tau_m_ms = 30.0", "tau_m_ms = 30.0\ntau_mm_ms = 3.0")
    assert_one_line_error(cli("run", cfg, "--out", tmp_path / "o.h5"), "network.tau_mm_ms", "unknown key")
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("tau_m_ms = 30.0", "tau_m_ms = -3.0", "network.tau_m_ms"),
        ("n_rec = 100", 'n_rec = "100"', "network.n_rec"),
        ("n_out = 1", "n_out = 2", "network.n_out"),
        ('rule = "eprop"', 'rule = "no_such_rule"', "training.rule"),
        ('optimizer = "adam"', 'optimizer = "adamw"', "training.optimizer"),
        ('name = "sine"', 'name = "no_such_task"', "task.name"),
        ('device = "auto"', 'device = "gpu"', "simulation.device"),
    ],
)
def test_bad_value_in_config(cli, tmp_path, old, new, key) -> None:
    cfg = write_config(tmp_path / "bad.toml", old, new)
    assert_one_line_error(cli("run", cfg, "--out", tmp_path / "o.h5"), key)


def test_invalid_toml(cli, tmp_path) -> None:
    cfg = write_config(tmp_path / "broken.toml", "[network]", "[network")
    line = assert_one_line_error(cli("run", cfg), "broken.toml", "TOML")
    assert str(cfg) in line


# ------------------------------------------------------------------ run: option errors
def test_unknown_rule(cli, tmp_path) -> None:
    line = assert_one_line_error(cli("run", SINE, "--rule", "hebb", "--out", tmp_path / "o.h5"), "--rule")
    assert "'hebb'" in line and "eprop" in line


@pytest.mark.parametrize("n", ["0", "-3"])
def test_iterations_below_one(cli, tmp_path, n) -> None:
    assert_one_line_error(cli("run", SINE, "--iterations", n, "--out", tmp_path / "o.h5"), "--iterations")


def test_negative_seed(cli, tmp_path) -> None:
    assert_one_line_error(cli("run", SINE, "--seed", "-1", "--out", tmp_path / "o.h5"), "--seed")


def test_unknown_trace_variable(cli, tmp_path) -> None:
    proc = cli("run", SINE, "--trace", "v,voltage", "--out", tmp_path / "o.h5")
    line = assert_one_line_error(proc, "--trace", "'voltage'")
    assert "psi" in line  # lists the known variables


def test_trace_neurons_below_one(cli, tmp_path) -> None:
    proc = cli("run", SINE, "--trace", "v", "--trace-neurons", "0", "--out", tmp_path / "o.h5")
    assert_one_line_error(proc, "--trace-neurons")


def test_existing_out_without_force_is_kept(cli, tmp_path) -> None:
    out = tmp_path / "existing.h5"
    payload = np.random.default_rng(0).bytes(4096)
    out.write_bytes(payload)
    mtime = out.stat().st_mtime_ns
    assert_one_line_error(cli("run", SINE, "--out", out), "existing.h5", "--force")
    assert out.read_bytes() == payload
    assert out.stat().st_mtime_ns == mtime


def test_existing_out_kept_when_config_is_bad(cli, tmp_path) -> None:
    out = tmp_path / "existing.h5"
    out.write_bytes(b"precious")
    cfg = write_config(tmp_path / "bad.toml", "v_th = 0.03", "v_th = 0.0")
    assert_one_line_error(cli("run", cfg, "--out", out, "--force"), "network.v_th")
    assert out.read_bytes() == b"precious"


def test_out_in_missing_folder(cli, tmp_path) -> None:
    out = tmp_path / "no_such_folder" / "o.h5"
    assert_one_line_error(cli("run", SINE, "--out", out), "no_such_folder")
    assert not out.parent.exists()


def test_out_is_a_folder(cli, tmp_path) -> None:
    folder = tmp_path / "folder.h5"
    folder.mkdir()
    assert_one_line_error(cli("run", SINE, "--out", folder, "--force"), "folder.h5")
    assert folder.is_dir()


def test_evidence_config_reaches_building(cli, tmp_path) -> None:
    """A valid config passes every check: the stand-in brian2 is the first thing to stop it."""
    proc = cli("run", EVIDENCE, "--out", tmp_path / "o.h5", "--iterations", "1", "--quiet")
    assert proc.returncode == BRIAN2_IMPORTED, proc.stderr
    assert not (tmp_path / "o.h5").exists()


# ------------------------------------------------------------------ inspect
def test_inspect_missing_file(cli, tmp_path) -> None:
    assert_one_line_error(cli("inspect", tmp_path / "no_such.h5"), "no_such.h5")


def test_inspect_not_hdf5(cli, tmp_path) -> None:
    path = tmp_path / "text.h5"
    path.write_text("this is not HDF5\n")
    assert_one_line_error(cli("inspect", path), "text.h5", "HDF5")


def test_inspect_empty_file(cli, tmp_path) -> None:
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    assert_one_line_error(cli("inspect", path), "empty.h5")


def test_inspect_plain_hdf5(cli, tmp_path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.attrs["note"] = "no neuroplast attributes here"
        f.create_dataset("x", data=np.arange(5))
    line = assert_one_line_error(cli("inspect", path), "plain.h5")
    assert "neuroplast" in line.split(": error: ", 1)[1]


def test_inspect_folder(cli, tmp_path) -> None:
    assert_one_line_error(cli("inspect", tmp_path), str(tmp_path))
