"""What a writer does when the disk fails it: a full disk, a quota, an I/O error.

A run log stays consistent when its writer is *killed* at any point of a flush (the counters are written
after what they count, docs/hdf5.md).  An I/O error is made to end the same way:

* **before a flush** the writer reserves the disk space the flush can take (:func:`make_room`: the
  chunks it starts, which HDF5 allocates whole, :data:`METADATA` per dataset and :data:`MARGIN`) past the
  end of the log, where the system allows it (Linux ``fallocate``), else checks the free space
  (:func:`check_room`).  A disk that filled up between two flushes (the usual case) is refused there,
  before one byte of the flush is written: the file is exactly the flush before.  With the space
  reserved, another process cannot take it while HDF5 writes.
* **during a flush** (the space could not be reserved — no ``fallocate`` on this file system — and another
  process took it, or an error that is not one of space, such as ``EIO``) HDF5 fails in the middle of its
  writes.  HDF5 cannot be told to stop writing, and closing such a file normally makes it write (and fail)
  again, and has crashed the process (a segmentation fault, HDF5 2.0).  :func:`seal` therefore points
  HDF5's file descriptor at ``/dev/null`` at once: nothing it writes from then on reaches the log, which
  is left as a kill at that moment leaves it — readable, its counters at the last complete flush,
  resumable.  This is best effort: when the first failure shows only in HDF5's metadata cache (an object
  released, not a write the writer called), HDF5 2.0 can still crash before the writer learns of it
  (measured while creating a file on a full disk without a reservation); the reservation is what keeps
  HDF5 away from a full disk.

Either way the writer reports one :class:`~neuroplast.errors.RunFileError` (:func:`failure_message`) and
writes nothing more.  h5py reports the errors of HDF5 objects released during such a failure as
"Exception ignored" tracebacks on stderr; :func:`quiet_dealloc` keeps those (and only those) quiet while a
writer works.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py

from neuroplast.io.schema import CHUNK_BYTES, RunFileError

__all__ = [
    "MARGIN",
    "SLACK",
    "METADATA",
    "check_room",
    "failure_message",
    "failure_reason",
    "is_full",
    "make_room",
    "release_room",
    "quiet_dealloc",
    "seal",
    "writing_error",
]

#: Room (bytes) a flush needs beyond its chunks and :data:`METADATA` per dataset: the rest of HDF5's
#: metadata (the heap of names, attributes, the counters), checked by tests/io/test_disk_room.py.
MARGIN = 1 << 18
#: Room (bytes) for a dataset a flush creates, besides its rows: the chunk it starts but may not fill (at
#: most :data:`~neuroplast.io.schema.CHUNK_BYTES`).  Datasets that exist are counted by the chunks that
#: the rows appended start (:meth:`WriteBuffer.room <neuroplast.io.buffer.WriteBuffer.room>`).
SLACK = CHUNK_BYTES
#: Room (bytes) for the metadata of each dataset a flush writes (its chunk index and object header).
METADATA = 4096

#: Errors that mean "no room": a full disk or an exhausted quota.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError`` or one of h5py's errors, which carry HDF5's message) says that the disk
    or the quota is full."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            return True
        text = str(e) if e is not None else ""
        if any(f"errno = {n}," in text or os.strerror(n) in text for n in _NO_ROOM):
            return True
    return False


def failure_reason(exc: BaseException) -> str:
    """``"the disk is full"``, or what the error says (its type and text, on one line)."""
    if is_full(exc):
        return "the disk is full"
    what = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return f"{type(exc).__name__}: {what}"


def failure_message(exc: BaseException, iterations: int) -> str:
    """The one line that says what failed, where the log now ends, and what to do next.

    Parameters
    ----------
    exc : BaseException
        The error of the failed write (or of the room check).
    iterations : int
        Complete iterations in the log (its ``n_iterations_complete``).
    """
    kept = f"the log is closed at its last complete iteration ({iterations})"
    if is_full(exc):
        return f"the disk is full; {kept}: free some space, then `neuroplast run --resume` continues it"
    return f"writing the log failed ({failure_reason(exc)}); {kept}: `neuroplast run --resume` continues it"


def check_room(path: Path, nbytes: int) -> None:
    """Refuse a flush of ``nbytes`` that does not fit on the file system of ``path`` (with :data:`MARGIN`).

    Raises
    ------
    OSError
        ``ENOSPC`` when the free space (for this user) is below ``nbytes + MARGIN``.  A file system whose
        free space cannot be read passes.
    """
    try:
        st = os.statvfs(path)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    need = int(nbytes) + MARGIN
    if free < need:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({free} bytes free, {need} needed)")


_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE (linux/falloc.h)
_fallocate_fn: list[Any] = []


def _fallocate() -> Any:
    """glibc's ``fallocate`` (Linux), or ``None``."""
    if not _fallocate_fn:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).fallocate
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = None
        _fallocate_fn.append(fn)
    return _fallocate_fn[0]


def make_room(fd: int, path: Path, nbytes: int) -> None:
    """Reserve the disk space that writing ``nbytes`` more to the file open as ``fd`` (read/write) needs,
    before anything is written: ``nbytes + MARGIN`` bytes past its end are allocated to it without changing
    its size (Linux ``fallocate(FALLOC_FL_KEEP_SIZE)``), so that no other process can take them and HDF5's
    writes into them cannot fail for want of space.  Where the system cannot reserve, the free space is
    checked instead (:func:`check_room`).  :func:`release_room` gives back what was not used.

    Raises
    ------
    OSError
        ``ENOSPC`` (or ``EDQUOT``) when there is no such room: nothing was written, and nothing stays
        allocated (the free space is checked before the reservation, and a failed reservation is cut back).
    """
    fn = _fallocate()
    if fn is None:
        check_room(path, nbytes)
        return
    st = os.fstat(fd)
    # Never ask the file system for more than it has: some (XFS) allocate what they can before failing
    # and keep it, which would fill the disk for every other process until the file is cut.  Blocks this
    # file already holds past its end (an earlier reservation) count as room.
    held = max(0, st.st_blocks * 512 - st.st_size)
    check_room(path, max(0, int(nbytes) - held))
    if fn(int(fd), _KEEP_SIZE, st.st_size, int(nbytes) + MARGIN) == 0:
        return
    err = ctypes.get_errno()
    with contextlib.suppress(OSError):  # give back whatever a failed call allocated
        os.ftruncate(fd, st.st_size)
    if err in _NO_ROOM:
        raise OSError(err, f"{os.strerror(err)} (reserving {int(nbytes) + MARGIN} bytes for the log)")


def release_room(path: Path) -> None:
    """Give back the space :func:`make_room` reserved past the end of ``path`` and the writes did not use
    (cutting a file to its own size frees what lies past its end); errors are ignored."""
    with contextlib.suppress(OSError):
        os.truncate(path, os.stat(path).st_size)


def seal(f: h5py.File) -> None:
    """Make every later write of HDF5 to ``f`` go to ``/dev/null`` (its descriptor is replaced in place), so
    that the file keeps what is on disk now and ``f`` can be closed without HDF5 writing into it."""
    with contextlib.suppress(Exception):
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, int(fd))
        finally:
            os.close(null)


_DEALLOC = "h5py._objects.ObjectID.__dealloc__"
_quiet = 0
_quiet_lock = threading.Lock()
_previous_hook: Any = None


def _hook(unraisable: Any) -> None:
    if _quiet and str(getattr(unraisable, "object", "")) == _DEALLOC:
        return  # an HDF5 object released while a write failed: that failure is reported once, by the writer
    (_previous_hook or sys.__unraisablehook__)(unraisable)


@contextlib.contextmanager
def quiet_dealloc() -> Iterator[None]:
    """Keep h5py's "Exception ignored in ObjectID.__dealloc__" reports quiet during the block (thread safe;
    every other unraisable exception is reported as before)."""
    global _quiet, _previous_hook
    with _quiet_lock:
        if sys.unraisablehook is not _hook:
            _previous_hook, sys.unraisablehook = sys.unraisablehook, _hook
        _quiet += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet -= 1


def writing_error(path: Path, exc: BaseException, iterations: int) -> RunFileError:
    """:class:`RunFileError` naming ``path`` with :func:`failure_message`."""
    return RunFileError(path, failure_message(exc, iterations))
