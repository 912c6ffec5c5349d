"""Build commands that die with the process that started them (no Brian2 here).

Brian2 runs ``make`` through ``os.system``: killed with ``kill -9`` (or a sweep worker ended by Dask), the
Python process left ``make -j`` and its compilers running for half a minute, writing into the compiled-
network cache.  :func:`run_in_group` runs a shell command instead

* in a **process group of its own** (a new session: the terminal's Ctrl-C reaches Python alone, which
  decides), every compiler ``make`` starts being in that group;
* with a **watcher** in the group that reads a pipe whose writing end only this process holds.  When the
  process ends in any way — ``SIGKILL`` included, the kernel closes the pipe — the watcher reads end of file
  and kills the whole group with ``SIGKILL``.  A Python exception while waiting (``KeyboardInterrupt``) kills
  the group at once.

What is guaranteed: on Linux and other POSIX systems, no process of the group outlives the Python process
by more than the time the kernel takes to deliver ``SIGKILL``.  Processes that leave the group on purpose
(``setsid``) are not followed; compilers do not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["run_in_group"]

#: The shell script around ``command``: the watcher (a subshell blocked in ``read`` on the pipe from
#: Python, kept as descriptor 3: a background job's standard input is ``/dev/null``) kills the group
#: (``kill 0``) when the pipe reaches end of file; once the command has ended normally the watcher is
#: stopped and the command's status returned.
_SCRIPT = (
    "exec 3<&0\n"
    "( read _line <&3; kill -s KILL 0 ) &\n"
    "w=$!\n"
    "{{\n{command}\n}} </dev/null 3<&-\n"
    "s=$?\n"
    "kill $w 2>/dev/null\n"
    "exit $s\n"
)


def run_in_group(command: str) -> int:
    """Run ``command`` with ``/bin/sh`` in a process group that ends with this process.

    Parameters
    ----------
    command : str
        A shell command line (as ``os.system`` takes it); its standard output and error are this process's
        (file descriptors 1 and 2, so Brian2's ``std_silent`` redirections apply).

    Returns
    -------
    int
        The command's exit status (0: success).

    Raises
    ------
    BaseException
        Whatever interrupted the wait (``KeyboardInterrupt``), after the group was killed.
    """
    proc = subprocess.Popen(
        ["/bin/sh", "-c", _SCRIPT.format(command=command)],
        stdin=subprocess.PIPE,
        start_new_session=True,  # its own session and process group (pgid = its pid)
    )
    try:
        return proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
