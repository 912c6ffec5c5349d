"""``neuroplast`` command-line errors: one line on stderr naming the key or file, exit status 2,
no traceback, nothing overwritten.

Every case runs the real command in a subprocess (``python -m neuroplast.cli``) with a stand-in
``brian2`` package first on the path that aborts on import: an input error must be reported before
any network is built or simulated, so these tests stay fast and a late check fails loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.helpers import (
    BRIAN2_IMPORTED,
    EVIDENCE,
    SINE,
    assert_one_line_error,
    run_cli,
    write_config,
    write_synthetic_run,
)

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


# ------------------------------------------------------------------ run: --out is only ever a regular file
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the socket file stays
    return path


def _link(path: Path, target: str | Path) -> Path:
    path.symlink_to(target)
    return path


#: --out values that ``--force`` must leave as they are: (make the path in tmp_path, its kind, words).
#: The real /dev/null and /dev/full are safe here: the stand-in brian2 stops any run before a log is created.
NOT_A_LOG = {
    "/dev/null": (lambda tmp: Path(os.devnull), stat.S_ISCHR, "is a character device, not a regular file"),
    "/dev/full": (lambda tmp: Path("/dev/full"), stat.S_ISCHR, "is a character device, not a regular file"),
    "fifo": (lambda tmp: _fifo(tmp / "o.h5"), stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
    "socket": (lambda tmp: _socket(tmp / "o.h5"), stat.S_ISSOCK, "is a socket, not a regular file"),
    "link to /dev/null": (
        lambda tmp: _link(tmp / "o.h5", os.devnull),
        stat.S_ISLNK,
        "is a character device, not a regular file",
    ),
    "dangling link": (
        lambda tmp: _link(tmp / "o.h5", "gone.h5"),
        stat.S_ISLNK,
        "is a symbolic link to a missing file (gone.h5)",
    ),
}


@pytest.mark.parametrize("case", list(NOT_A_LOG))
def test_out_that_is_not_a_regular_file_is_never_replaced(cli, tmp_path, case) -> None:
    make, kind, words = NOT_A_LOG[case]
    out = make(tmp_path)
    if not os.path.lexists(out):
        pytest.skip(f"{out} does not exist here")
    before = os.lstat(out)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert_one_line_error(cli("run", SINE, "--out", out, "--force", "--quiet"), str(out), words)
    after = os.lstat(out)
    assert kind(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # nothing written next to it


@pytest.mark.parametrize(
    "spelling", ["good.toml", "./good.toml", "{tmp}/good.toml", "link.toml", "hard.toml"]
)
def test_out_that_is_the_config_is_refused(cli, tmp_path, spelling) -> None:
    cfg = tmp_path / "good.toml"
    cfg.write_bytes(SINE.read_bytes())
    _link(tmp_path / "link.toml", "good.toml")
    os.link(cfg, tmp_path / "hard.toml")
    out = spelling.format(tmp=tmp_path)
    assert_one_line_error(cli("run", "good.toml", "--out", out, "--force"), "is the config file good.toml")
    assert cfg.read_bytes() == SINE.read_bytes() and (tmp_path / "link.toml").is_symlink()


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("newdir/", "a trailing '/' names a folder, not a run-log file"),
        ("x" * 300 + ".h5", "cannot be used as a run-log path (File name too long)"),
        ("o.h5/run.h5", "a folder on its path is not a folder"),
    ],
    ids=["trailing-slash", "name-too-long", "file-as-folder"],
)
def test_out_path_that_cannot_be_a_log_is_one_line(cli, tmp_path, out, words) -> None:
    (tmp_path / "o.h5").write_bytes(b"precious")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert_one_line_error(cli("run", SINE, "--out", out, "--force"), words)
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert (tmp_path / "o.h5").read_bytes() == b"precious"


def test_out_on_a_file_system_without_storage_names_the_folder(cli, tmp_path) -> None:
    if not Path("/proc").is_dir() or shutil.disk_usage("/proc").total != 0:
        pytest.skip("no /proc of size 0 here")
    line = assert_one_line_error(cli("run", SINE, "--out", "/proc/x.h5", "--force"), "/proc", "output folder")
    assert "training.iterations" not in line


# ------------------------------------------------------------------ run: checks before anything is replaced
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--trace", "v,v"), "--trace: 'v' is given more than once"),
        (("--trace", "v,z,v"), "--trace: 'v' is given more than once"),
        (("--trace", "v,,voltage"), "--trace: unknown variable 'voltage'"),
    ],
)
def test_bad_option_keeps_the_old_log_under_force(cli, tmp_path, args, words) -> None:
    out = tmp_path / "existing.h5"
    out.write_bytes(b"precious")
    assert_one_line_error(cli("run", SINE, "--out", out, "--force", *args), words)
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("dt_ms = 1.0", "dt_ms = 1e306", "simulation.dt_ms"),
        ("dt_ms = 1.0", "dt_ms = 1e-300", "simulation.dt_ms"),
        ("tau_m_ms = 30.0", "tau_m_ms = 1e-300", "network.tau_m_ms"),
        ("tau_out_ms = 30.0", "tau_out_ms = 1e300", "network.tau_out_ms"),
        ("rate_hz = 50.0", "rate_hz = 1e9", "task.rate_hz"),
        ("n_ref = 2", "n_ref = 1000000000", "network.n_ref"),
    ],
)
def test_out_of_bounds_config_keeps_the_old_log_under_force(cli, tmp_path, old, new, key) -> None:
    cfg = write_config(tmp_path / "bad.toml", old, new)
    out = tmp_path / "existing.h5"
    out.write_bytes(b"precious")
    assert_one_line_error(cli("run", cfg, "--out", out, "--force"), key)
    assert out.read_bytes() == b"precious"


# ------------------------------------------------------------------ run: config files that are not files
def test_config_that_is_a_device_says_so(cli) -> None:
    line = assert_one_line_error(
        cli("run", "/dev/zero"), "/dev/zero: is a character device, not a config file"
    )
    assert "not found" not in line


def test_config_from_a_pipe_reaches_building(cli, tmp_path) -> None:
    """A FIFO (what a shell's ``<(cat x.toml)`` passes) is read: the run gets as far as building."""
    fifo = _fifo(tmp_path / "pipe.toml")
    threading.Thread(target=fifo.write_bytes, args=(SINE.read_bytes(),), daemon=True).start()
    proc = cli("run", fifo, "--out", tmp_path / "o.h5", "--iterations", "1", "--quiet")
    assert proc.returncode == BRIAN2_IMPORTED, proc.stderr
    assert not (tmp_path / "o.h5").exists()


def test_resume_of_a_missing_log_says_how_to_start_afresh(cli, tmp_path) -> None:
    assert_one_line_error(cli("run", SINE, "--resume", tmp_path / "nope.h5"), "nope.h5", "leave out --resume")
    assert not (tmp_path / "nope.h5").exists()


def test_resume_of_a_fifo_is_refused(cli, tmp_path) -> None:
    fifo = _fifo(tmp_path / "run.h5")
    assert_one_line_error(cli("run", SINE, "--resume", fifo), "run.h5", "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ------------------------------------------------------------------ analyze, inspect: options, damage
@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    """A synthetic run log of 6 trials (``run_training`` on the numpy device, no Brian2)."""
    return write_synthetic_run(tmp_path_factory.mktemp("small_log") / "run.h5")


@pytest.mark.parametrize(
    ("k", "words"),
    [
        ("T,T", "--k: T is given more than once"),
        ("0,1,1", "--k: 1 is given more than once"),
        ("1,01", "--k: 1"),
    ],
)
def test_analyze_duplicate_hop_counts(cli, small_log, k, words) -> None:
    assert_one_line_error(cli("analyze", small_log, "--k", k, "--quiet"), words)


@pytest.mark.parametrize(
    ("args", "trials"),
    [
        (("--trials", "-2:"), [4, 5]),  # the example of --help, space form
        (("--trials=-2:",), [4, 5]),
        (("--trials", "-1"), [5]),
        (("--trials", "-3:-1"), [3, 4]),
        (("--trials", ":2"), [0, 1]),
    ],
)
def test_analyze_trials_may_start_with_a_minus(cli, small_log, args, trials) -> None:
    proc = cli("analyze", small_log, *args, "--k", "0,T", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trials"] == trials


def test_trials_option_does_not_swallow_the_next_option(cli, small_log) -> None:
    proc = cli("analyze", small_log, "--trials", "--json")  # argparse's own error, one line
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert "argument --trials: expected one argument" in proc.stderr


def test_inspect_negative_trial_count_names_the_attribute(cli, small_log, tmp_path) -> None:
    path = tmp_path / "damaged.h5"
    path.write_bytes(small_log.read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["n_trials_complete"] = -7
    line = assert_one_line_error(cli("inspect", path), "damaged.h5", "n_trials_complete is -7")
    assert "reduction" not in line
