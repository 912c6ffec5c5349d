"""The exclusive lock a writer holds on its run log, so that no other process replaces or rewrites it.

Every process that writes a run log (:class:`~neuroplast.io.RunWriter`, a new one or one reopened by
``append``, and :func:`~neuroplast.io.add_gradients`) holds an exclusive ``flock`` on the file itself for
as long as it has it open, and opens it with HDF5's own file locking off (the two would collide inside one
process).  ``flock`` locks belong to the open file, so the kernel releases them when the process ends, also
on ``SIGKILL``: a killed writer never leaves a stale lock behind.  HDF5 readers (which take a shared
``flock``) are refused while a writer holds the file, as before; so is ``--force`` (which would delete it),
``--resume`` and ``compare``.

On a file system without ``flock`` (or on a platform without :mod:`fcntl`) files are written unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from neuroplast.io.schema import RunFileError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["BUSY", "WriteLock", "check_not_busy"]

#: What a refused file is told (after its name).
BUSY = (
    "is open in another process (a live `neuroplast run` writing it, or a program reading it); "
    "wait for it to end or stop it first"
)


class WriteLock:
    """An exclusive ``flock`` on a file, held until :meth:`release` (or until the process ends).

    Use :meth:`acquire` (existing file) or :meth:`create` (new file).

    Attributes
    ----------
    path : Path
        The locked file.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: str | Path) -> WriteLock:
        """Lock the existing file ``path`` without waiting.

        Raises
        ------
        RunFileError
            If another process holds it (:data:`BUSY`), or it cannot be opened.
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise RunFileError(path, f"cannot open: {exc.strerror}") from exc
        return cls._locked(path, fd)

    @classmethod
    def create(cls, path: str | Path) -> WriteLock:
        """Create ``path`` (empty; it must not exist) and lock it before anyone else can.

        Raises
        ------
        RunFileError
            If it exists already or cannot be created.
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError as exc:
            raise RunFileError(path, "already exists (created by another process meanwhile?)") from exc
        except OSError as exc:
            raise RunFileError(path, f"cannot create: {exc.strerror}") from exc
        return cls._locked(path, fd)

    @classmethod
    def _locked(cls, path: Path, fd: int) -> WriteLock:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise RunFileError(path, BUSY) from None
                # ENOLCK, EOPNOTSUPP ...: this file system cannot lock; write unlocked
        return cls(path, fd)

    def fileno(self) -> int:
        """The descriptor the lock is held on (read/write for a file made by :meth:`create`).

        Raises
        ------
        RunFileError
            If the lock was released.
        """
        if self._fd is None:
            raise RunFileError(self.path, "lock already released")
        return self._fd

    @property
    def held(self) -> bool:
        """Whether the lock is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor of the open file releases its flock

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit os may be half torn down
            self.release()

    def __repr__(self) -> str:
        return f"WriteLock({str(self.path)!r}, {'held' if self.held else 'released'})"


def check_not_busy(path: str | Path) -> None:
    """Refuse a file that another process has open (a live writer, or an HDF5 reader).

    A missing or unreadable file passes (the caller's own checks report it).

    Raises
    ------
    RunFileError
        :data:`BUSY`, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        lock = WriteLock.acquire(path)
    except RunFileError as exc:
        if exc.problem == BUSY:
            raise
        return
    lock.release()
