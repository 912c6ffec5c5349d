"""Where a new run log may be written: :func:`check_log_path` refuses every path that ``--force`` must
never delete or write through (a device, a FIFO, a socket, a folder, a dangling symbolic link, the config
file itself), before anything is built, deleted or written.

Only :func:`os.lstat` and :func:`os.stat` are used: nothing is opened (opening a FIFO would block), created
or removed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

from neuroplast.errors import file_kind
from neuroplast.io.lock import WriteLock
from neuroplast.io.schema import RunFileError

__all__ = ["check_log_path", "creating_path", "remove_unstarted"]

#: The hidden name a new log is written under until its layout is complete (``.<name>.creating-<pid>``);
#: only then is it linked to its own name.
CREATING = ".creating-"
_NAME_MAX = 200  # of the log's name kept in the hidden one: the whole stays below the system's 255


def creating_path(path: Path) -> Path:
    """Where :func:`~neuroplast.io.layout.create_run_file` writes ``path``'s layout before linking it into
    place: a kill while a log is being created leaves this hidden file, never a half-made ``path``."""
    return path.with_name(f".{path.name[:_NAME_MAX]}{CREATING}{os.getpid()}")


def remove_unstarted(path: Path) -> list[Path]:
    """Remove what runs killed while creating ``path`` left next to it (:func:`creating_path` files that no
    live process holds), each with a one-line warning; return them.

    A file another process holds (its ``flock``: a run creating the log right now) is left alone.
    """
    prefix = f".{path.name[:_NAME_MAX]}{CREATING}"
    removed = []
    with contextlib.suppress(OSError):
        for leftover in sorted(path.parent.glob(f"{_glob_escape(prefix)}*")):
            if not leftover.name[len(prefix) :].isdigit() or not leftover.is_file() or leftover.is_symlink():
                continue
            try:
                lock = WriteLock.acquire(leftover)
            except RunFileError:
                continue  # being created by a live process
            try:
                leftover.unlink()
            except OSError:
                continue
            finally:
                lock.release()
            removed.append(leftover)
            warnings.warn(
                f"{leftover}: removed a run log that was never started (its run was killed while creating "
                "it)",
                RuntimeWarning,
                stacklevel=2,
            )
    return removed


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def check_log_path(path: str | Path, protect: Mapping[str, str | Path] | None = None) -> Path:
    """Check that a run log may be created at ``path``, replacing what is there only if it is a regular
    file (or a symbolic link to one).

    Whether an existing file may be replaced at all (``--force``) and whether its folder exists and is
    writable are the caller's checks; this one says what ``path`` *is*.

    Parameters
    ----------
    path : str or Path
        The run log to write, as given (a ``str`` keeps a trailing ``/``, which names a folder).
    protect : mapping of str to path, optional
        Files that must never be the run log, by what they are (``{"the config file": "good.toml"}``),
        compared by device and inode (so also through a symbolic link, a hard link or another spelling of
        the same path).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    RunFileError
        One line naming ``path`` and why it is refused: it ends with ``/``; it is a folder, a character or
        block device, a FIFO or a socket; it is a symbolic link to a missing file; it is a protected file;
        or the path itself is unusable (a name too long, a loop of links, no permission).
    """
    text = os.fspath(path)
    p = Path(text)
    if text.endswith(("/", os.sep)) or (os.altsep is not None and text.endswith(os.altsep)):
        if not os.path.isdir(text):
            raise RunFileError(
                p,
                f"given as {text!r}: a trailing '/' names a folder, not a run-log file; give a file name "
                f"such as {text.rstrip('/')}/run.h5",
            )
        raise RunFileError(p, "is a directory, not a run-log file")
    try:
        st: os.stat_result | None = os.lstat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise RunFileError(p, "a folder on its path is not a folder") from None
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES: the path itself cannot be used
        raise RunFileError(p, f"cannot be used as a run-log path ({exc.strerror or exc})") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            target = os.readlink(p)
            raise RunFileError(
                p, f"is a symbolic link to a missing file ({target}); remove the link or give another path"
            ) from None
        except OSError as exc:
            why = exc.strerror or exc
            raise RunFileError(p, f"is a symbolic link that cannot be followed ({why})") from None
    if st is None:
        return p
    if stat.S_ISDIR(st.st_mode):
        raise RunFileError(p, "is a directory, not a run-log file")
    if not stat.S_ISREG(st.st_mode):
        raise RunFileError(
            p,
            f"is {file_kind(st.st_mode)}, not a regular file: a run log is only written to a new path or "
            "over a regular file",
        )
    for what, other in (protect or {}).items():
        try:
            o = os.stat(other)
        except OSError:
            continue
        if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
            raise RunFileError(p, f"is {what} {other}; give another path for the run log")
    return p
