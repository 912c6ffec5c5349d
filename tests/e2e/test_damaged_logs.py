"""Every command that reads a run log (``inspect``, ``plot``, ``compare``, ``run --resume``) on every kind of
damaged file: exit status 2, exactly one line on stderr naming the file, no traceback, and the file (or
folder) left exactly as it was.

The logs are synthetic (``write_synthetic_run``: ``neuroplast run``'s code on the numpy device), damaged in
a copy.
The commands run in a subprocess with a stand-in ``brian2`` that aborts on import, so a damaged file must be
reported before anything is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from tests.helpers import (
    BRIAN2_IMPORTED,
    SINE,
    assert_one_line_error,
    copy_file,
    run_cli,
    write_synthetic_run,
)

pytestmark = pytest.mark.e2e


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _zero_trial_table(p: Path) -> None:
    """Zero the bytes from the first to the last chunk of the trial table (``/trials``), as a damaged disk
    region would.  Located through HDF5, not at a fixed fraction of the file: where the writer puts the
    table depends on its flush schedule (``neuroplast run`` flushes at every iteration, so the table lies
    after the projections and spikes, whose zeroed values no reader can tell from real ones)."""
    with h5py.File(p, "r") as f:
        spans = []
        for ds in f["trials"].values():
            for i in range(ds.id.get_num_chunks()):
                chunk = ds.id.get_chunk_info(i)
                spans.append((chunk.byte_offset, chunk.byte_offset + chunk.size))
    a, b = min(s for s, _ in spans), max(e for _, e in spans)
    data = bytearray(p.read_bytes())
    data[a:b] = bytes(b - a)
    p.write_bytes(bytes(data))


def _delete(name: str) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        with h5py.File(p, "r+") as f:
            del f[name]

    return damage


def _garbage_config(p: Path) -> None:
    with h5py.File(p, "r+") as f:
        f.attrs["config"] = "[simulation\ndt_ms = = 1.0 ]]"


def _not_hdf5(p: Path) -> None:
    p.write_text("neuroplast-run, but not HDF5\n")


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _directory(p: Path) -> None:
    p.unlink()
    p.mkdir()
    (p / "inside.txt").write_text("a folder named like a run log\n")


#: kind -> (damage, a word the error line must contain)
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "truncated"),
    "zeroed-trial-table": (_zero_trial_table, "damaged"),
    "missing-weights": (_delete("projections/recurrent/weights"), "weights"),
    "missing-spikes": (_delete("spikes/recurrent"), "spikes"),
    "garbage-config": (_garbage_config, "config"),
    "not-hdf5": (_not_hdf5, "HDF5"),
    "empty": (_empty, "empty"),
    "directory": (_directory, "directory"),
}

COMMANDS: dict[str, Callable[[Path, Path], list[str | Path]]] = {
    "inspect": lambda log, tmp: ["inspect", log],
    "plot": lambda log, tmp: ["plot", log, "--out", tmp / "figs"],
    "compare": lambda log, tmp: ["compare", log, "--quiet"],
    "run-resume": lambda log, tmp: ["run", SINE, "--resume", log, "--quiet"],
}


@pytest.fixture(scope="module")
def no_brian2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("no_brian2")
    (root / "brian2").mkdir()
    (root / "brian2" / "__init__.py").write_text(f"import sys\nsys.exit({BRIAN2_IMPORTED})\n")
    return root


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    # unfinished (killed mid-iteration), so that `run --resume` would otherwise continue it
    return write_synthetic_run(tmp_path_factory.mktemp("log") / "run.h5", n_iter=3, partial_iteration=True)


def _snapshot(p: Path) -> tuple:
    st = p.stat()
    if p.is_dir():
        return ("dir", st.st_mtime_ns, sorted((c.name, c.read_bytes()) for c in p.iterdir()))
    return ("file", st.st_mtime_ns, p.read_bytes())


def test_the_synthetic_log_is_accepted(log, tmp_path, no_brian2) -> None:
    """The comparator can disagree: the undamaged log passes (``inspect`` exits 0)."""
    proc = run_cli("inspect", log, cwd=tmp_path, timeout=120, pythonpath=(no_brian2,))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_damaged_log(kind, command, log, tmp_path, no_brian2) -> None:
    damage, word = DAMAGE[kind]
    path = copy_file(log, tmp_path / "damaged.h5")
    damage(path)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # an old mtime: any write would change it
    before = _snapshot(path)
    proc = run_cli(*COMMANDS[command](path, tmp_path), cwd=tmp_path, timeout=120, pythonpath=(no_brian2,))
    assert proc.returncode != BRIAN2_IMPORTED, "Brian2 imported before the damaged file was reported"
    line = assert_one_line_error(proc, "damaged.h5")
    assert word.lower() in line.lower(), line
    assert _snapshot(path) == before, "the damaged file was changed"
    assert not (tmp_path / "figs").exists(), "figures were written for a damaged file"
