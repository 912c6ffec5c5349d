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

Brian2's Cython runtime device does not run ``make``: Python's build tools (distutils, in setuptools) start
the C/C++ compiler and the linker themselves, as child processes of this one, from the commands in the
environment variables ``CC`` and ``CXX`` (their documented interface; Brian2 reads them too).
:func:`compilers_in_group` puts this file, run as a script, in front of those commands for as long as a
runtime network compiles: the **guard** starts the real compiler in a process group of its own and kills
that group when this process ends (``SIGKILL`` included: the kernel's parent-death signal on Linux, and a
check of its parent every :data:`POLL_S` seconds everywhere) or when the guard is interrupted or terminated.
This file therefore imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator

__all__ = ["compilers_in_group", "guarded", "run_in_group"]

#: How often (s) a guard checks that the process that started it is still its parent.
POLL_S = 0.25
#: The environment variables naming the compilers that Python's build tools start (distutils/setuptools:
#: ``CC`` compiles and, with the linker flags, links; ``CXX`` links C++ extensions).
COMPILER_VARIABLES = ("CC", "CXX")

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


def guarded(command: str) -> str:
    """``command`` (a compiler command line) run through the guard of this file.

    Parameters
    ----------
    command : str
        A command line, as ``CC`` holds one (``"gcc -pthread"``).

    Returns
    -------
    str
        ``<python> -I <this file> <command>``: Python in isolated mode (no environment, no user site, no
        script folder on the path) runs :func:`_guard` on the words of ``command`` and the arguments that the
        build tool appends.
    """
    return f"{shlex.quote(sys.executable)} -I {shlex.quote(os.path.abspath(__file__))} {command}"


@contextlib.contextmanager
def compilers_in_group() -> Iterator[None]:
    """Within this context, compilers started by Python's build tools die with this process.

    ``CC`` and ``CXX`` (the values set, or Python's own build configuration's) are replaced by their
    :func:`guarded` form and restored afterwards; nested use keeps the outer form.  Outside POSIX nothing
    changes.  Brian2's Cython runtime device puts ``CC`` and ``CXX`` in the name of each compiled module, so
    its cache holds the modules compiled this way under names of their own.
    """
    if os.name != "posix":
        yield
        return
    import sysconfig

    saved = {key: os.environ.get(key) for key in COMPILER_VARIABLES}
    prefix = guarded("")
    try:
        for key, value in saved.items():
            base = value or sysconfig.get_config_var(key)
            if base and not base.startswith(prefix):
                os.environ[key] = prefix + base
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent(signum: int) -> None:
    """Ask the kernel (Linux) to send ``signum`` to this process when its parent ends."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def _guard(argv: list[str]) -> int:
    """Run ``argv`` in a process group of its own that ends when the guard's parent ends.

    Returns the command's exit status (128 + the signal's number for a command ended by a signal; 128 +
    ``SIGKILL`` when the group was killed because the parent had gone).
    """
    if not argv:
        print("neuroplast compiler guard: no command given", file=sys.stderr)
        return 2
    parent = os.getppid()
    started: list[subprocess.Popen] = []

    def end(signum: int, frame: object) -> None:
        for proc in started:
            _kill_group(proc.pid)
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, end)
    _die_with_parent(signal.SIGTERM)
    proc = subprocess.Popen(argv, start_new_session=True)
    started.append(proc)
    while True:
        if os.getppid() != parent:  # the parent has gone (also before the kernel's signal was asked for)
            _kill_group(proc.pid)
            return 128 + signal.SIGKILL
        try:
            status = proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            continue
        return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(_guard(sys.argv[1:]))
