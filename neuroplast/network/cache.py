"""The cache of compiled networks: one cpp_standalone project per code-determining key, reused across runs.

A Brian2 cpp_standalone project is compiled once for everything that determines its code — sizes, trial
length, rule, loss, surrogate, network options, Brian2 and compiler versions; not the connectivity, which
a launch reads from its results folder (:mod:`.edges`) — and kept under ``<cache>/standalone/<key>``.  A
later process with the same key regenerates the code (Brian2 rewrites only files whose content changed),
finds nothing to compile and runs the existing binary.

* Building holds an exclusive lock on ``<key>.lock``, so concurrent runs of the same model never build
  into one folder at the same time; each process writes its results into a folder of its own
  (:func:`results_subdir`, in memory where a RAM-backed file system has room: :func:`ram_dir`), so they
  can run the same binary side by side.
* Running the binary holds a shared lock on the same file (:func:`running`): a build, which rewrites the
  project's static-array files, waits until no trial of another process is reading them, and a trial
  waits for a build in progress (sweep points of one network start while others train).
* A folder whose last build did not finish (``BUILT`` marker missing) or whose build fails is removed and
  built again, with a one-line warning.

The Cython runtime device keeps its own cache (``<cache>/cython``, Brian2's).  A compile that was killed
can leave a module file there that does not load (empty or cut short), and every later runtime network
that needs it fails.  :func:`repair_cython_cache` removes such files (under Brian2's own lock of each
module, so never one that another process is compiling), with a one-line warning, so that they are
compiled again.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.network.devices import cache_dir

__all__ = [
    "cache_key",
    "standalone_root",
    "built",
    "build_cached",
    "results_subdir",
    "ram_dir",
    "running",
    "cache_info",
    "clear_cache",
    "repair_cython_cache",
]

#: Marker file written into a project folder once its build has finished.
BUILT = "BUILT"


def _digest(h: Any, value: Any) -> None:
    if isinstance(value, Mapping):
        h.update(b"{")
        for k in sorted(value):
            h.update(json.dumps(str(k)).encode())
            _digest(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _digest(h, v)
        h.update(b"]")
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"nd{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    else:
        h.update(json.dumps(value, default=repr, sort_keys=True).encode())


def cache_key(parts: Mapping[str, Any]) -> str:
    """A short hex digest of everything that determines a compiled network's code and data files."""
    h = hashlib.sha256()
    _digest(h, parts)
    return h.hexdigest()[:24]


def standalone_root() -> Path:
    """``<cache>/standalone``: where compiled cpp_standalone projects live."""
    root = cache_dir() / "standalone"
    root.mkdir(parents=True, exist_ok=True)
    return root


def built(folder: Path) -> bool:
    """Whether ``folder`` holds a finished build."""
    return (folder / BUILT).is_file()


@contextlib.contextmanager
def _locked(folder: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    lock = folder.with_name(folder.name + ".lock")
    with open(lock, "a+") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_cached(folder: Path, build: Callable[[Path], None]) -> bool:
    """Build into ``folder`` under its lock, reusing a finished build; rebuild a damaged one once.

    Parameters
    ----------
    folder : Path
        The project folder of the key (:func:`standalone_root` / key).
    build : callable
        ``build(folder)`` generates the code and compiles it (Brian2's ``device.build``); it is called
        every time — Brian2 then finds the files unchanged and compiles nothing.

    Returns
    -------
    bool
        True if a finished build was found and the build changed its binary not at all (nothing was
        compiled or linked).
    """
    with _locked(folder):
        reused = built(folder)
        binary = _stamp(folder / BINARY)
        if folder.exists() and not reused:
            warnings.warn(
                f"neuroplast: compiled-network cache entry {folder} is incomplete; rebuilding it",
                RuntimeWarning,
                stacklevel=3,
            )
            shutil.rmtree(folder, ignore_errors=True)
        try:
            build(folder)
        except Exception as exc:  # noqa: BLE001 - a damaged entry: rebuild from scratch once
            if not reused:
                raise
            warnings.warn(
                f"neuroplast: compiled-network cache entry {folder} is damaged ({type(exc).__name__}); "
                "rebuilding it",
                RuntimeWarning,
                stacklevel=3,
            )
            (folder / BUILT).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            reused = False
        (folder / BUILT).write_text("built\n")
        _remove_orphan_results(folder)
        # "reused" is said only of a binary that the build left as it found it (nothing compiled or linked)
        reused = reused and binary is not None and _stamp(folder / BINARY) == binary
    return reused


#: The program a cpp_standalone build links (Brian2's makefile target on POSIX).
BINARY = "main"


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Inode, size and modification time (ns) of ``path``, or ``None`` when it is missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def running(folder: Path) -> contextlib.AbstractContextManager[None]:
    """A shared lock on the project ``folder`` for as long as its binary runs a trial.

    Builds (:func:`build_cached`, exclusive) rewrite the project's static-array files; they wait for
    running trials, and trials wait for them.
    """
    return _locked(folder, fcntl.LOCK_SH)


#: Free space a RAM-backed file system must have to hold the results folders (:func:`ram_dir`).
RAM_DIR_MIN_FREE = 2**30


def ram_dir() -> Path | None:
    """Where this user's results folders live in memory: ``$NEUROPLAST_RAM_DIR`` (empty: never) or
    ``/dev/shm``, when that is a writable directory with at least :data:`RAM_DIR_MIN_FREE` bytes free;
    else ``None`` (the results folders stay in the project folder).

    A launch's arguments (inputs, weights) and results (monitors, gradients) are files that one process
    writes and the other reads back at once, tens of MB per launch: on a RAM-backed file system they never
    reach the disk's journal.
    """
    root = os.environ.get("NEUROPLAST_RAM_DIR", "/dev/shm")
    if not root:
        return None
    try:
        st = os.statvfs(root)
        if st.f_bavail * st.f_frsize < RAM_DIR_MIN_FREE or not os.access(root, os.W_OK | os.X_OK):
            return None
        path = Path(root) / f"neuroplast-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return path if path.is_dir() and not path.is_symlink() else None


def results_subdir(folder: Path) -> str:
    """A results folder name (relative to the project ``folder``) of this process alone.

    The folder is a link to one in :func:`ram_dir` when there is one.  It is removed when the process
    exits; folders left by processes that were killed are removed by the next build in the same project
    (:func:`build_cached`) and, in the RAM folder, by the next process that makes one.
    """
    name = f"results_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    link = Path(folder) / name
    ram = ram_dir()
    if ram is not None:
        _remove_orphan_results(ram)
        target = ram / name
        target.mkdir()
        link.symlink_to(target, target_is_directory=True)
    atexit.register(_remove_results, link)
    return name


def _remove_results(path: Path) -> None:
    """Remove a results folder (and, for a link, the folder it points to)."""
    if path.is_symlink():
        shutil.rmtree(os.path.realpath(path), ignore_errors=True)
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _remove_orphan_results(folder: Path) -> None:
    for d in folder.glob("results_*_*"):
        try:
            pid = int(d.name.split("_")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            _remove_results(d)
        except (ValueError, PermissionError, IndexError):
            continue


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cache_info() -> dict[str, Any]:
    """Where the caches are and how big: ``{"root", "standalone": [(key, bytes, built)], "cython_bytes"}``."""
    root = cache_dir()
    sa = root / "standalone"
    entries = []
    if sa.is_dir():
        for d in sorted(p for p in sa.iterdir() if p.is_dir()):
            entries.append((d.name, _size(d), built(d)))
    cy = root / "cython"
    return {"root": root, "standalone": entries, "cython_bytes": _size(cy) if cy.exists() else 0}


def clear_cache() -> int:
    """Remove every compiled network (standalone projects and the Cython cache); returns bytes freed."""
    root = cache_dir()
    freed = 0
    for name in ("standalone", "cython"):
        p = root / name
        if p.exists():
            freed += _size(p)
            shutil.rmtree(p, ignore_errors=True)
    for old in root.glob("standalone_*"):  # folders of neuroplast ≤ 0.1 (one per process)
        freed += _size(old)
        shutil.rmtree(old, ignore_errors=True)
    return freed


def _damaged_module(path: Path) -> bool:
    """Whether a compiled extension module cannot be whole: empty, or (on Linux) not an ELF file or cut
    off before the end of its section header table (a linker killed while writing it)."""
    try:
        size = path.stat().st_size
        if size == 0:
            return True
        if not sys.platform.startswith("linux"):
            return False
        with path.open("rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    if len(head) < 64 or head[:4] != b"\x7fELF":
        return True
    if head[4] != 2:  # not ELFCLASS64: not checked further
        return False
    order = "<" if head[5] == 1 else ">"
    (shoff,) = struct.unpack_from(order + "Q", head, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", head, 0x3A)
    return shoff + shentsize * shnum > size


def repair_cython_cache(folder: Path | None = None) -> list[Path]:
    """Remove damaged compiled modules from the Cython runtime cache, with a one-line warning.

    Parameters
    ----------
    folder : Path, optional
        The Cython cache (default ``<cache>/cython``, where
        :func:`~neuroplast.network.devices.configure_brian2` points Brian2).

    Returns
    -------
    list of Path
        The files removed (Brian2 compiles them again when a network needs them).  A module whose lock
        another process holds (it is being compiled) is left alone.
    """
    folder = Path(folder) if folder is not None else cache_dir() / "cython"
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.glob("_cython_magic_*"):
        if path.suffix not in (".so", ".pyd", ".dylib") or not _damaged_module(path):
            continue
        lock = folder / (path.name.split(".", 1)[0] + ".lock")  # Brian2's lock of this module
        try:
            with open(lock, "a") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # being compiled right now
                try:
                    if _damaged_module(path):
                        path.unlink(missing_ok=True)
                        removed.append(path)
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError:
            continue
    if removed:
        warnings.warn(
            f"neuroplast: removed {len(removed)} damaged compiled module(s) from the Cython cache {folder} "
            "(a compile was interrupted); they are compiled again",
            RuntimeWarning,
            stacklevel=2,
        )
    return removed
