"""Build commands die with the process that started them (``neuroplast.network.processes``, no Brian2):
the exit status comes back, and the whole process group (the command and every child it started) is
killed when the Python process is killed with SIGKILL or interrupted while it waits."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroplast.network.processes import compilers_in_group, guarded, run_in_group
from tests.helpers import cli_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")

#: A command that records its process group and leaves two sleeping children in it (as make leaves g++).
SLEEPERS = "echo $$ > {pgid}; sleep 60 & sleep 60"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies (dead, not yet reaped by init) still count for killpg: look at their states
    out = subprocess.run(["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return any(not s.startswith("Z") for s in out.split())


def _wait_for(path: Path, timeout: float = 30.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def _wait_gone(pgid: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _group_alive(pgid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("command", "status"), [("true", 0), ("exit 3", 3), ("echo x > /dev/null", 0)])
def test_the_status_of_the_command_comes_back(command: str, status: int) -> None:
    assert run_in_group(command) == status


def _parent_code(how: str, pgid_file: Path) -> str:
    """A Python parent that starts the sleepers: through ``run_in_group`` (cpp_standalone's make), or as
    distutils spawns a compiler named by CC — the guarded command's words, no shell between."""
    if how == "group":
        command = SLEEPERS.format(pgid=pgid_file)
        return f"from neuroplast.network.processes import run_in_group; run_in_group({command!r})"
    command = guarded(f"sh -c {SLEEPERS.format(pgid=pgid_file)!r}")
    return f"import shlex, subprocess; subprocess.run(shlex.split({command!r}))"


@pytest.mark.parametrize("how", ["group", "guard"])
def test_a_killed_parent_takes_its_build_with_it(tmp_path: Path, how: str) -> None:
    """Killed with SIGKILL, the parent takes the build's whole group with it: make's (run_in_group) and a
    guarded compiler's (the Cython runtime's, within 2 s: the kernel's parent-death signal)."""
    pgid_file = tmp_path / "pgid"
    parent = subprocess.Popen([sys.executable, "-c", _parent_code(how, pgid_file)], env=cli_env())
    try:
        pgid = _wait_for(pgid_file)
        assert _group_alive(pgid) and pgid != os.getpgid(0)  # a group of its own
        parent.kill()  # SIGKILL: nothing in the parent runs
        parent.wait()
        gone = _wait_gone(pgid, timeout=2.0 if how == "guard" else 5.0)
        assert gone, "the build outlived its killed parent"
    finally:
        parent.kill()


def test_an_interrupted_wait_kills_the_build(tmp_path: Path) -> None:
    pgid_file = tmp_path / "pgid"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_in_group(SLEEPERS.format(pgid=pgid_file))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < 20  # killed, not waited for (the sleepers take 60 s)
    assert _wait_gone(_wait_for(pgid_file))


# The guard of Python's build tools' compilers (the Cython runtime device): ``guarded(command)`` as
# ``CC``/``CXX`` hold it.


@pytest.mark.parametrize(
    ("command", "status"), [("true", 0), ("sh -c 'exit 3'", 3), ("sh -c 'kill -9 $$'", 128 + 9)]
)
def test_the_guard_passes_the_status_back(command: str, status: int) -> None:
    assert subprocess.run(shlex.split(guarded(command))).returncode == status


def test_an_interrupted_guard_kills_its_compiler(tmp_path: Path) -> None:
    pgid_file = tmp_path / "pgid"
    guard = subprocess.Popen(shlex.split(guarded(f"sh -c {SLEEPERS.format(pgid=pgid_file)!r}")))
    try:
        pgid = _wait_for(pgid_file)
        time.sleep(0.3)  # the guard has set its signal handlers
        os.kill(guard.pid, signal.SIGTERM)
        assert guard.wait(timeout=10) == 128 + signal.SIGTERM
        assert _wait_gone(pgid, timeout=2.0)
    finally:
        guard.kill()


def test_the_compilers_are_guarded_only_within_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "my-cc -O1")
    monkeypatch.delenv("CXX", raising=False)
    with compilers_in_group():
        assert os.environ["CC"] == guarded("my-cc -O1")
        assert os.environ["CXX"].startswith(guarded("")) and len(os.environ["CXX"]) > len(guarded(""))
        with compilers_in_group():  # nested: not guarded twice
            assert os.environ["CC"] == guarded("my-cc -O1")
    assert os.environ["CC"] == "my-cc -O1" and "CXX" not in os.environ
