"""The errors a user sees as one line: bad configs, bad run-log files, bad command-line arguments.

Every module raises these (and only these) for problems of the user's input; the command-line tool prints
the message alone (no traceback) and exits with status 2.
"""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = [
    "NeuroplastError",
    "ConfigError",
    "RunFileError",
    "UsageError",
    "DivergedError",
    "first_line",
    "file_kind",
]


class NeuroplastError(Exception):
    """Base class of the one-line user errors."""


class ConfigError(NeuroplastError, ValueError):
    """Invalid configuration; the message is one line naming the key or file."""


class RunFileError(NeuroplastError):
    """A run-log file cannot be written or read.

    Parameters
    ----------
    path : str or Path
        The file concerned; it is named in the message.
    problem : str
        What is wrong, in a few words.  Newlines are folded so that the message is always one line.

    Attributes
    ----------
    path : Path
        The file concerned.
    problem : str
        The one-line problem description (without the file name).
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


class UsageError(NeuroplastError):
    """A command-line argument is wrong (one line naming the option)."""


class DivergedError(NeuroplastError):
    """Training produced a non-finite loss, gradient or weight (the message says what, where and when).

    The iteration that diverged is not applied; every iteration before it is kept and the run log is marked
    with the message (root attribute ``diverged``; such a log is not resumed).  ``neuroplast run`` exits
    with status 3.
    """

    def __init__(self, iteration: int, what: str) -> None:
        self.iteration = int(iteration)
        self.what = " ".join(str(what).split())
        super().__init__(f"diverged at iteration {self.iteration + 1}: {self.what}")


def first_line(exc: BaseException) -> str:
    """What a user is shown of ``exc`` in one line: the first non-blank line of its message, stripped, or
    its type name when the message is blank (the command line's ``error:`` lines, a sweep point's
    ``error``)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words for a one-line error (``"a character device"``,
    ``"a FIFO (named pipe)"``, ``"a socket"``, ...)."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    for test, words in kinds:
        if test(mode):
            return words
    return "not a regular file"  # pragma: no cover - no other kinds on POSIX
