"""A disk that fills up while ``neuroplast run`` writes its log (issue 28), on a real 3 MB tmpfs.

The disk is filled at a fixed point of the run by a child process (a filler file written until the file
system refuses more), so every case is deterministic: right after the flush that completes iteration
``FILL_AFTER`` (in the writer's thread, before the next flush can start), or while the log is being
created.  Two ways the full disk is met: the writer's room check before a flush (the usual case), and
HDF5 failing in the middle of its writes (the check switched off in the child: another process took the
room after the check).  Every case must end with one line and exit status 2, the log at its last complete
iteration, and ``--resume`` (after the filler is removed) must give the uninterrupted run bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TINY_TOML, assert_one_line_error, assert_same_datasets, cli_env, run_cli, write_text

pytestmark = pytest.mark.e2e

#: TINY_TOML on the NumPy reference device: no compile, one flush per iteration (in the writer thread).
NUMPY_TOML = TINY_TOML.replace('device = "runtime"', 'device = "numpy"')
ITERATIONS = 4
FILL_AFTER = 2

#: argv: FILL_AFTER, MODE (``before-flush``, ``inside-hdf5``, ``creating``), the filler's path, then
#: ``neuroplast``'s arguments.
FULL_CHILD = """
import sys
from pathlib import Path

import neuroplast.io.failure as failure
import neuroplast.io.writer as writer

FILL_AFTER, MODE, FILLER = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def fill():
    with open(FILLER, "ab", buffering=0) as fh:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    fh.write(b"x" * size)
            except OSError:
                pass


if MODE == "creating":
    make_room = failure.make_room

    def filled_first(*args):
        fill()
        return make_room(*args)

    failure.make_room = filled_first
else:
    if MODE == "inside-hdf5":
        failure.make_room = writer.make_room = lambda fd, path, nbytes: None
    write_job = writer.RunWriter._write_job

    def then_fill(self, f, job):
        write_job(self, f, job)
        if job.buffer.n_iterations_written == FILL_AFTER:
            fill()

    writer.RunWriter._write_job = then_fill
from neuroplast.cli import main

sys.exit(main(sys.argv[4:]))
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs mounted for the test (root only), unmounted after it."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    disk = tmp_path / "small"
    disk.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run, on the ordinary disk."""
    work = write_text(tmp_path_factory.mktemp("disk_full_ref"), "tiny.toml", NUMPY_TOML)
    proc = run_cli("run", "tiny.toml", "--iterations", ITERATIONS, "--out", "ref.h5", "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work / "ref.h5"


def _run_filled(work: Path, mode: str, out: Path, filler: Path) -> subprocess.CompletedProcess:
    args = ["run", "tiny.toml", "--iterations", ITERATIONS, "--out", out, "--quiet"]
    cmd = [sys.executable, "-c", FULL_CHILD, str(FILL_AFTER), mode, str(filler), *map(str, args)]
    return subprocess.run(cmd, cwd=work, env=cli_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode", ["before-flush", "inside-hdf5"])
def test_disk_full_during_the_run(mode: str, small_disk: Path, tmp_path: Path, reference: Path) -> None:
    from neuroplast.io import open_run

    work = write_text(tmp_path, "tiny.toml", NUMPY_TOML)
    out, filler = small_disk / "run.h5", small_disk / "filler"
    proc = _run_filled(work, mode, out, filler)
    line = assert_one_line_error(
        proc, str(out), "the disk is full", f"last complete iteration ({FILL_AFTER})"
    )
    assert "--resume" in line
    run = open_run(out)  # readable: the log ends at its last complete iteration
    assert (run.n_iterations, run.finished) == (FILL_AFTER, False)
    assert run.n_trials == FILL_AFTER * 2  # batch_size 2
    filler.unlink()
    resumed = run_cli("run", "tiny.toml", "--resume", out, "--quiet", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {out} after iteration {FILL_AFTER}" in resumed.stdout
    assert_same_datasets(out, reference)


def test_disk_full_while_creating_the_log(small_disk: Path, tmp_path: Path) -> None:
    work = write_text(tmp_path, "tiny.toml", NUMPY_TOML)
    out, filler = small_disk / "run.h5", small_disk / "filler"
    proc = _run_filled(work, "creating", out, filler)
    assert_one_line_error(proc, str(out), "cannot create: the disk is full; nothing was written")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no log, no half-made hidden one
