"""``kill -9`` of ``neuroplast run`` outside training (issue 28): while the log is being created, and while
the network compiles.  A log killed during its creation is recognisably never started (a hidden file, never
a half-made log under its name) and the next run replaces it without ``--force``, saying so in one line;
the compiler processes of a killed run end with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY_TOML, assert_one_line_error, cli_args, cli_env, run_cli, write_text

pytestmark = pytest.mark.e2e

NUMPY_TOML = TINY_TOML.replace('device = "runtime"', 'device = "numpy"')

#: argv: ``neuroplast``'s arguments.  The process kills itself (SIGKILL) halfway through writing the layout
#: of its new log.
KILLED_CREATING = """
import os, signal, sys

import neuroplast.io.layout as layout


def killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)


layout._projections = killed
from neuroplast.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_a_log_killed_while_created_is_replaced_without_force(tmp_path: Path) -> None:
    work = write_text(tmp_path, "tiny.toml", NUMPY_TOML)
    args = ["run", "tiny.toml", "--iterations", "2", "--out", "run.h5", "--quiet"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_CREATING, *args],
        cwd=work,
        env=cli_env(),
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in work.iterdir() if p.name != "tiny.toml"]
    assert len(left) == 1 and left[0].startswith(".run.h5.creating-"), left  # never a half-made run.h5
    resume = run_cli("run", "tiny.toml", "--resume", "run.h5", cwd=work)
    assert_one_line_error(resume, "no such run log; to start a new run, leave out --resume")
    again = run_cli(*args, cwd=work)
    assert again.returncode == 0, again.stderr
    note = again.stderr.strip()
    assert "\n" not in note and f"{left[0]}: removed a run log that was never started" in note, note
    assert sorted(p.name for p in work.iterdir()) == ["run.h5", "tiny.toml"]


def _compiling(cache: Path) -> list[int]:
    """Live processes compiling into ``cache``: make and the compilers of a standalone project run in its
    folder; the Cython runtime's compilers (and their guards) name their sources and outputs there."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if state != "Z" and (cwd.startswith(str(cache)) or f"{cache}/" in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.brian2
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="reads /proc")
@pytest.mark.parametrize("device", ["cpp_standalone", "runtime"])
def test_the_compilers_of_a_killed_run_end_with_it(tmp_path: Path, device: str) -> None:
    """A run killed during its first compile (a fresh, empty cache) leaves no make or compiler running:
    cpp_standalone's ``make`` and the Cython runtime's compilers alike."""
    work = write_text(tmp_path, "tiny.toml", TINY_TOML.replace('device = "runtime"', f'device = "{device}"'))
    cache = tmp_path / "cache"
    env = {**cli_env(), "NEUROPLAST_CACHE": str(cache)}
    run = subprocess.Popen(cli_args("run", "tiny.toml", "--out", "run.h5", "--quiet"), cwd=work, env=env)
    try:
        end = time.monotonic() + 240
        while not _compiling(cache) and run.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert _compiling(cache), "the compile never started"
        time.sleep(0.5)  # the compilers have started
        assert _compiling(cache), "the compile ended before the kill: nothing tested"
        run.kill()
        run.wait()
        # killed at once (a compile left running takes seconds more: one Cython module ≈ 2–5 s)
        end = time.monotonic() + 1.0
        while _compiling(cache) and time.monotonic() < end:
            time.sleep(0.05)
        assert _compiling(cache) == [], "compiler processes outlived their killed run"
    finally:
        run.kill()
