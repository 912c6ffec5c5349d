"""Room on the disk for a run log (``neuroplast.io.failure``, no Brian2): every flush and the layout of a new
file fit in the space reserved for them before HDF5 writes, a refused reservation writes nothing, and a new
log appears under its name only complete (a kill while creating it leaves a hidden file that the next
creation removes, with one warning)."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import numpy as np
import pytest

import neuroplast.io.failure as failure
import neuroplast.io.writer as writer_module
from neuroplast.io import RunFileError, open_run
from neuroplast.io.lock import WriteLock
from neuroplast.io.paths import creating_path
from tests.helpers import small_run_writer

N_IN, N_REC, N_OUT, T = 40, 30, 2, 200


def _trial(w, it: int, rng: np.random.Generator, *, grads: bool, extras: bool) -> None:
    x = (rng.random((T, N_IN)) < 0.05).astype(np.uint8)
    steps = np.sort(rng.integers(0, T, 300))
    g = {p: {"eprop": rng.standard_normal(n), "bptt": rng.standard_normal(n)} for p, n in _edges().items()}
    w.add_trial(
        it,
        x,
        rng.standard_normal((T, N_OUT)),
        loss=float(rng.random()),
        spikes={"recurrent": (steps, rng.integers(0, N_REC, steps.size))},
        extras={"rate": 1.0, "accuracy": 0.5} if extras else None,
        grads=g if grads else None,
    )


def _edges() -> dict[str, int]:
    return {"input": N_IN * N_REC, "recurrent": N_REC - 1, "output": N_REC * N_OUT, "bias": N_OUT}


def _iteration(w, rng: np.random.Generator) -> None:
    weights = {p: rng.standard_normal(n) for p, n in _edges().items()}
    state = {"w/in": rng.standard_normal((N_IN, N_REC)), "adam/m": rng.standard_normal(N_IN * N_REC)}
    w.add_iteration(weights, {p: 0.01 * v for p, v in weights.items()}, state=state)


@pytest.mark.parametrize(
    ("flush_iterations", "grads", "extras", "trace", "background"),
    [
        (1, False, False, False, False),
        (1, True, True, True, True),
        (3, True, False, True, False),
        (5, False, True, False, True),
    ],
)
def test_every_flush_fits_in_the_room_reserved_for_it(
    tmp_path: Path,
    monkeypatch,
    flush_iterations: int,
    grads: bool,
    extras: bool,
    trace: bool,
    background: bool,
) -> None:
    """The file grows by at most what was reserved before each flush (and before the layout): HDF5 never
    writes past the reservation, so it can never meet a full disk in the middle of a flush."""
    reserved: list[tuple[int, int, int]] = []  # (fd, size before, bytes reserved)

    def checked(fd: int, path: Path, nbytes: int) -> None:
        if reserved:  # the previous flush is complete on disk now (its thread was waited for)
            fd0, size0, room = reserved[-1]
            assert os.fstat(fd0).st_size - size0 <= room
        reserved.append((fd, os.fstat(fd).st_size, nbytes + failure.MARGIN))

    monkeypatch.setattr(failure, "make_room", checked)
    monkeypatch.setattr(writer_module, "make_room", checked)
    rng = np.random.default_rng(3)
    path = tmp_path / "run.h5"
    w = small_run_writer(path, N_IN, N_REC, N_OUT, T, flush_every=4)
    w.flush_iterations, w.background = flush_iterations, background
    with w:
        for it in range(12):
            for _ in range(2):
                _trial(w, it, rng, grads=grads, extras=extras)
                if trace:
                    w.add_trace("recurrent", "v", rng.standard_normal((T, N_REC)), np.arange(N_REC))
            _iteration(w, rng)
        w.flush()
        checked(w._f.id.get_vfd_handle(), path, 0)  # noqa: SLF001 - the last flush, measured the same way
    assert len(reserved) >= 12 // flush_iterations + 2  # the layout, every flush, the final check
    assert open_run(path).n_iterations == 12


def test_a_refused_reservation_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    """No room for the next flush: one RunFileError saying where the log ends, the file byte for byte as
    after the flush before, and nothing more written (close included)."""
    rng = np.random.default_rng(4)
    path = tmp_path / "run.h5"
    w = small_run_writer(path, N_IN, N_REC, N_OUT, T)
    _trial(w, 0, rng, grads=True, extras=False)
    _iteration(w, rng)
    w._wait()  # noqa: SLF001 - the first flush is on disk
    before = path.read_bytes()

    def full(fd: int, p: Path, nbytes: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer_module, "make_room", full)
    _trial(w, 1, rng, grads=True, extras=False)
    with pytest.raises(RunFileError, match=r"run\.h5: the disk is full; .*last complete iteration \(1\)"):
        _iteration(w, rng)
    w.close()
    assert path.read_bytes() == before
    assert open_run(path).n_iterations == 1


def test_make_room_reserves_past_the_end_and_release_gives_it_back(tmp_path: Path) -> None:
    """On Linux the space is allocated to the file without changing its size, then freed by release_room;
    elsewhere (no fallocate) the call only checks the free space."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    fd = os.open(path, os.O_RDWR)
    try:
        failure.make_room(fd, path, 3 << 20)
        st = os.fstat(fd)
        assert st.st_size == 1000
        if failure._fallocate() is not None and st.st_blocks * 512 >= 3 << 20:  # noqa: SLF001
            failure.release_room(path)
            assert os.stat(path).st_blocks * 512 < 1 << 20
        blocks = os.fstat(fd).st_blocks
        with pytest.raises(OSError) as info:
            failure.make_room(fd, path, 1 << 62)  # more than any disk: refused before anything is allocated
        assert info.value.errno == errno.ENOSPC
        assert os.fstat(fd).st_blocks <= blocks
    finally:
        os.close(fd)


def test_a_failed_reservation_gives_back_what_it_allocated(tmp_path: Path, monkeypatch) -> None:
    """Some file systems (XFS) allocate part of a reservation before failing with ENOSPC and keep that part:
    make_room must cut it back, or one refused flush would leave the disk full for every other process."""
    if failure._fallocate() is None:  # noqa: SLF001
        pytest.skip("fallocate is Linux-only")
    real = failure._fallocate()  # noqa: SLF001

    def partial(fd: int, mode: int, offset: int, length: int) -> int:
        real(fd, mode, offset, 1 << 20)  # what the file system managed before it ran out
        ctypes.set_errno(errno.ENOSPC)
        return -1

    monkeypatch.setattr(failure, "_fallocate", lambda: partial)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(OSError) as info:
            failure.make_room(fd, path, 2 << 20)
        assert info.value.errno == errno.ENOSPC
        st = os.fstat(fd)
        assert st.st_size == 1000
        assert st.st_blocks * 512 < 1 << 20  # the partial megabyte was given back
    finally:
        os.close(fd)


def test_a_log_appears_only_complete(tmp_path: Path, monkeypatch) -> None:
    """An error while the layout is written (here: the last part of it) leaves neither the log nor the
    hidden file it was written under."""
    import neuroplast.io.layout as layout

    def broken(f, spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(layout, "_projections", broken)
    path = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        small_run_writer(path, N_IN, N_REC, N_OUT, T)
    assert list(tmp_path.iterdir()) == []


def test_what_a_killed_creation_left_is_removed_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    leftover = path.with_name(".run.h5.creating-4194304")  # a pid no process holds the lock of
    leftover.write_bytes(b"\x89HDF half")
    assert creating_path(path).name.startswith(".run.h5.creating-")
    with pytest.warns(RuntimeWarning, match=r"\.run\.h5\.creating-4194304: removed a run log that was never"):
        small_run_writer(path, N_IN, N_REC, N_OUT, T).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_a_log_being_created_by_a_live_process_is_left_alone(tmp_path: Path, recwarn) -> None:
    path = tmp_path / "run.h5"
    other = path.with_name(".run.h5.creating-4194305")
    other.write_bytes(b"")
    lock = WriteLock.acquire(other)  # held, as by the process creating it
    try:
        small_run_writer(path, N_IN, N_REC, N_OUT, T).close()
    finally:
        lock.release()
    assert other.exists() and not [w for w in recwarn if "never started" in str(w.message)]
