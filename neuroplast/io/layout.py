"""Creating (and opening for writing) a ``neuroplast-run`` file: root attributes, groups, empty datasets.

:func:`create_run_file` makes a new file with every group and every growing dataset of the layout
(``docs/hdf5.md``), empty and chunked; :func:`growing`, :func:`append_rows` and :func:`append_row_list` are
the primitives the writer grows those datasets with.  :func:`open_for_writing` opens an existing file
read/write.  Both return a :class:`LockedFile`: the file with the writer's exclusive lock
(:mod:`neuroplast.io.lock`) held until it is closed.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from h5py import h5s

from neuroplast.io import failure
from neuroplast.io.failure import failure_reason, quiet_dealloc, release_room, seal
from neuroplast.io.interrupts import deferred_interrupts
from neuroplast.io.lock import WriteLock
from neuroplast.io.paths import check_log_path, creating_path, remove_unstarted
from neuroplast.io.schema import (
    ATTR_FINISHED,
    ATTR_ITERATIONS_COMPLETE,
    ATTR_TRIALS_COMPLETE,
    BIAS_PROJECTION,
    FORMAT_NAME,
    FORMAT_VERSION,
    LIBVER,
    MODEL_UNITS,
    TRIAL_COLUMNS,
    TRIAL_DTYPES,
    RunFileError,
    chunk_rows,
    column_units,
    parameter_units,
    sorting_dtype,
)

__all__ = [
    "RunSpec",
    "TaskKind",
    "LockedFile",
    "growing",
    "Growing",
    "append_rows",
    "append_row_list",
    "create_run_file",
    "open_for_writing",
]

TaskKind = Literal["regression", "classification"]


@dataclass(frozen=True)
class RunSpec:
    """The fixed shape of a run log: what its layout is made of.

    Attributes
    ----------
    dt_ms : float
        Time step, ms.
    task_kind : {"regression", "classification"}
        Task kind (decides the ``/targets`` datasets).
    n_in, n_out, n_steps : int
        Input channels, readout units, maximum steps per trial.
    update_every_steps : int
        k > 0 for runs that learn inside their trials, else 0.
    pops : dict of str to dict of str to numpy.ndarray
        ``pop -> {parameter: (size,) float64}``.
    population_sizes : dict of str to int
        Neurons per population.
    edges : dict of str to (numpy.ndarray, numpy.ndarray)
        ``projection -> (source_ids, target_ids)``, non-negative integers (uint64 in the file; the given
        integer arrays themselves, not copies), in edge order.
    """

    dt_ms: float
    task_kind: TaskKind
    n_in: int
    n_out: int
    n_steps: int
    update_every_steps: int
    pops: dict[str, dict[str, np.ndarray]]
    population_sizes: dict[str, int]
    edges: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def n_in_trial_updates(self) -> int:
        """In-trial updates per trial, (n_steps − 1) // update_every_steps (0 without in-trial learning)."""
        return (self.n_steps - 1) // self.update_every_steps if self.update_every_steps else 0


class LockedFile(h5py.File):
    """An ``h5py.File`` opened with HDF5's file locking off, holding a :class:`~neuroplast.io.lock.WriteLock`
    on the same file until :meth:`close` (the lock is the writer's; HDF5's own would collide with it)."""

    _write_lock: WriteLock | None = None

    @classmethod
    def open(cls, lock: WriteLock, mode: str) -> LockedFile:
        """Open ``lock.path`` in ``mode`` with the file-format bounds of every file written; keep ``lock``."""
        f = cls(lock.path, mode, libver=LIBVER, locking=False)
        f._write_lock = lock
        return f

    def close(self) -> None:
        """Close the file, give back the disk space reserved for it and not used
        (:func:`~neuroplast.io.failure.release_room`), then release the lock."""
        try:
            super().close()
        finally:
            lock, self._write_lock = self._write_lock, None
            if lock is not None:
                release_room(lock.path)
                lock.release()


def _neuroplast_version() -> str:
    from neuroplast._version import __version__

    return str(__version__)


def _brian2_version() -> str:
    # metadata only: brian2 is never imported by the io package
    try:
        return metadata.version("brian2")
    except metadata.PackageNotFoundError:
        return "not installed"


def growing(
    group: h5py.Group,
    name: str,
    tail: tuple[int, ...],
    dtype: Any,
    *,
    fill: Any = None,
    cap: int | None = None,
) -> h5py.Dataset:
    """Create an empty dataset that grows along axis 0 (chunked, uncompressed).

    Chunks hold at most ``cap`` rows (default 1024 for 1-D datasets, 64 for row datasets) and about
    :data:`~neuroplast.io.schema.CHUNK_BYTES`, so that small runs give small files and wide rows get
    one row per chunk.

    Parameters
    ----------
    group : h5py.Group
        Where to create it.
    name : str
        Dataset name.
    tail : tuple of int
        Shape of one row (``()`` for a 1-D dataset).
    dtype : numpy dtype-like
        Element type.
    fill : scalar, optional
        Fill value (HDF5 default: 0).
    cap : int, optional
        Most rows per chunk.

    Returns
    -------
    h5py.Dataset
        Shape ``(0,) + tail``.
    """
    if cap is None:
        cap = 64 if tail else 1024
    itemsize = np.dtype(dtype).itemsize
    row_bytes = itemsize * int(np.prod(tail, dtype=np.int64)) if tail else itemsize
    chunk_tail = tuple(max(1, int(n)) for n in tail)
    # a fixed dimension cannot be smaller than its chunk, so zero-length tails stay unlimited
    maxshape = (None,) + tuple(int(n) if n > 0 else None for n in tail)
    kwargs: dict[str, Any] = {}
    if fill is not None:
        kwargs["fillvalue"] = fill
    return group.create_dataset(
        name,
        shape=(0,) + tuple(int(n) for n in tail),
        maxshape=maxshape,
        chunks=(chunk_rows(row_bytes, cap=cap),) + chunk_tail,
        dtype=dtype,
        **kwargs,
    )


class Growing:
    """A growing dataset with what appending to it needs looked up once: its length, row shape, dtype, and
    whether rows can be written as whole chunks.

    h5py's ``shape``/``chunks``/``dtype`` properties and ``__setitem__`` cost more than the small writes of a
    flush; a writer keeps one of these per dataset while its file is open (no one else resizes the dataset
    then) and appends through the low-level dataset id.  The bytes on disk are those of ``ds[n0:n] = block``.
    """

    __slots__ = ("ds", "id", "name", "n", "tail", "dtype", "direct", "chunk_rows", "chunk_bytes")

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds = ds
        self.id = ds.id
        self.name = ds.name
        shape = ds.shape
        self.n = int(shape[0])
        self.tail: tuple[int, ...] = tuple(shape[1:])
        self.dtype = ds.dtype
        # every chunk one whole row, no filter: a row is written as its chunk
        chunks = ds.chunks
        self.direct = chunks == (1,) + self.tail and not self.id.get_create_plist().get_nfilters()
        self.chunk_rows = int(chunks[0])
        self.chunk_bytes = int(np.prod(chunks, dtype=np.int64)) * self.dtype.itemsize

    def new_bytes(self, rows: int) -> int:
        """Bytes of the chunks that appending ``rows`` rows allocates (HDF5 allocates whole chunks)."""
        c = self.chunk_rows
        started = -(-(self.n + rows) // c) - -(-self.n // c)  # chunks up to the new end, less those before
        return started * self.chunk_bytes

    def _grow(self, n: int) -> int:
        n0 = self.n
        self.id.set_extent((n0 + n,) + self.tail)
        self.n = n0 + n
        return n0

    def append(self, block: np.ndarray) -> None:
        """:func:`append_rows`."""
        n = block.shape[0]
        if n == 0:
            return
        if tuple(block.shape[1:]) != self.tail:
            raise ValueError(f"{self.name}: a block of shape {block.shape}, expected (n,) + {self.tail}")
        block = np.ascontiguousarray(block)  # HDF5 converts it to the dataset's type, as ds[...] = block
        n0 = self._grow(n)
        fspace = self.id.get_space()
        fspace.select_hyperslab((n0,) + (0,) * len(self.tail), block.shape)
        self.id.write(h5s.create_simple(block.shape), fspace, block)

    def append_list(self, rows: list[np.ndarray]) -> None:
        """:func:`append_row_list`."""
        if not rows:
            return
        if not self.direct:
            self.append(np.stack(rows))
            return
        tail, dtype = self.tail, self.dtype
        arrays = [np.ascontiguousarray(r, dtype=dtype) for r in rows]
        for a in arrays:
            if a.shape != tail:
                raise ValueError(f"{self.name}: a row of shape {a.shape}, expected {tail}")
        n0 = self._grow(len(arrays))
        zeros = (0,) * len(tail)
        write = self.id.write_direct_chunk
        for k, a in enumerate(arrays):
            write((n0 + k,) + zeros, a)


def append_rows(ds: h5py.Dataset | Growing, block: np.ndarray) -> None:
    """Append ``block`` (rows along axis 0) to the growing dataset ``ds`` (or a :class:`Growing` of it)."""
    (ds if isinstance(ds, Growing) else Growing(ds)).append(block)


def append_row_list(ds: h5py.Dataset | Growing, rows: list[np.ndarray]) -> None:
    """Append ``rows`` (each of ``ds``'s row shape) to the growing dataset ``ds`` (or a :class:`Growing`).

    Where every chunk of ``ds`` is one whole row and no filter applies (the wide datasets: inputs, weights,
    updates, gradients), each row is written as its chunk (``write_direct_chunk``): no stacked copy of the
    block and no pass through HDF5's chunk cache, the same bytes on disk.  Otherwise the rows are stacked
    and written by :func:`append_rows`.
    """
    (ds if isinstance(ds, Growing) else Growing(ds)).append_list(rows)


def create_run_file(
    path: Path, spec: RunSpec, *, force: bool, config_toml: str, seed: int, brian2_version: str | None
) -> h5py.File:
    """Create ``path`` with the complete, empty layout of ``spec``, flushed; return it open.

    Parameters
    ----------
    path : Path
        File to create; its folder must exist.
    spec : RunSpec
        Shape of the run.
    force : bool
        Remove an existing file first (else it is an error).
    config_toml : str
        Root attribute ``config``.
    seed : int
        Root attribute ``seed``.
    brian2_version : str or None
        Root attribute ``brian2_version`` (``None``: from the installed distribution's metadata).

    Returns
    -------
    h5py.File
        Open read/write.

    Raises
    ------
    RunFileError
        If ``path`` is a folder or anything but a regular file (a device, FIFO, socket or dangling
        symbolic link is never removed: :func:`~neuroplast.io.paths.check_log_path`), its folder is
        missing, it exists and ``force`` is false, another process has it open (a live writer: it is never
        deleted), or it cannot be created (a full disk included: nothing is left behind).

    Notes
    -----
    The layout is written under a hidden name next to ``path``
    (:func:`~neuroplast.io.paths.creating_path`, locked) and linked to ``path`` once it is complete and
    flushed: a process killed while creating a log leaves no half-made ``path``, and the next creation of
    ``path`` removes what it left (:func:`~neuroplast.io.paths.remove_unstarted`, with a one-line warning).
    """
    check_log_path(path)  # a folder, device, FIFO, socket or dangling link is never replaced, force or not
    if not path.parent.is_dir():
        raise RunFileError(path, f"folder {path.parent} does not exist")
    with deferred_interrupts():
        if path.exists() or path.is_symlink():
            if not force:
                raise RunFileError(
                    path, "already exists; refusing to overwrite (pass force=True to replace it)"
                )
            old = WriteLock.acquire(path) if path.exists() else None  # refused while a writer holds it
            try:
                path.unlink()
            finally:
                if old is not None:
                    old.release()
        remove_unstarted(path)
        tmp = creating_path(path)
        lock = WriteLock.create(tmp)
        try:
            f = LockedFile.open(lock, "w")
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # the empty file this call created (still ours: locked)
            lock.release()
            raise RunFileError(path, f"cannot create: {failure_reason(exc)}; nothing was written") from exc
    try:
        with quiet_dealloc():
            try:
                # the room for the layout reserved, or nothing more is written (HDF5 never meets a full
                # disk in the middle of its writes)
                failure.make_room(f.id.get_vfd_handle(), tmp, layout_bytes(spec))
                _root_attrs(f, spec, config_toml, seed, brian2_version)
                _populations(f, spec)
                _trials(f, spec)
                _projections(f, spec)
                f.flush()
            except BaseException:
                seal(f)  # a full disk: HDF5 writes nothing more, and closing cannot crash
                raise
        _link_into_place(tmp, path, lock)
    except BaseException as exc:
        with quiet_dealloc(), contextlib.suppress(Exception):
            f.close()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):
            raise RunFileError(path, f"cannot create: {failure_reason(exc)}; nothing was written") from exc
        raise
    return f


def layout_bytes(spec: RunSpec) -> int:
    """Bytes a new file's layout can take besides :data:`~neuroplast.io.failure.MARGIN`: the arrays it holds
    (edge ids, per-neuron parameters) and the metadata of each of its datasets."""
    edges = sum(16 * src.size for src, _ in spec.edges.values())
    params = sum(a.nbytes for p in spec.pops.values() for a in p.values())
    n_datasets = 8 + 3 * len(spec.pops) + 5 * len(spec.edges) + sum(len(p) for p in spec.pops.values())
    return edges + params + 4096 * n_datasets


def _link_into_place(tmp: Path, path: Path, lock: WriteLock) -> None:
    """Give the complete, flushed new log at ``tmp`` its name ``path`` (never over a file that appeared
    there meanwhile), and move the lock's name with it."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise RunFileError(path, "already exists (created by another process meanwhile?)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # no hard links on this file system: a rename (it would replace a file that appeared meanwhile)
        if os.path.lexists(path):
            raise RunFileError(path, "already exists (created by another process meanwhile?)") from None
        os.rename(tmp, path)
    else:
        tmp.unlink()
    lock.path = path


def open_for_writing(path: Path) -> LockedFile:
    """Open an existing run log read/write (with the file-format bounds of every file written), locked.

    Raises
    ------
    RunFileError
        If another process has it open (a live writer), or it cannot be opened.
    """
    lock = WriteLock.acquire(path)
    try:
        return LockedFile.open(lock, "r+")
    except OSError as exc:
        lock.release()
        msg = " ".join(str(exc).split())
        what = "file is locked (still being written?)" if "lock" in msg.lower() else "cannot open for writing"
        raise RunFileError(path, f"{what}: {msg}") from exc


def _root_attrs(f: h5py.File, spec: RunSpec, config_toml: str, seed: int, brian2_version: str | None) -> None:
    a = f.attrs
    a["format"] = FORMAT_NAME
    a["format_version"] = np.int64(FORMAT_VERSION)
    a["neuroplast_version"] = _neuroplast_version()
    a["brian2_version"] = brian2_version if brian2_version is not None else _brian2_version()
    a["dt_ms"] = np.float64(spec.dt_ms)
    a["seed"] = np.int64(seed)
    a["config"] = config_toml
    a["task_kind"] = spec.task_kind
    a["n_in"] = np.int64(spec.n_in)
    a["n_out"] = np.int64(spec.n_out)
    a["n_steps"] = np.int64(spec.n_steps)
    a["update_every_steps"] = np.int64(spec.update_every_steps)
    a[ATTR_TRIALS_COMPLETE] = np.int64(0)
    a[ATTR_ITERATIONS_COMPLETE] = np.int64(0)
    a[ATTR_FINISHED] = np.int8(0)


def _populations(f: h5py.File, spec: RunSpec) -> None:
    """``/populations/<pop>`` (parameters) and ``/spikes/<pop>`` (empty SONATA spikes)."""
    gp = f.create_group("populations")
    gs = f.create_group("spikes")
    for pop, params in spec.pops.items():
        g = gp.create_group(pop)
        g.attrs["size"] = np.int64(spec.population_sizes[pop])
        for k, v in params.items():
            g.create_dataset(k, data=v, dtype=np.float64).attrs["units"] = parameter_units(k)
        s = gs.create_group(pop)
        s.attrs.create("sorting", np.uint8(2), dtype=sorting_dtype())
        ts = growing(s, "timestamps", (), np.float64, cap=8192)
        ts.attrs["units"] = "ms"
        growing(s, "node_ids", (), np.uint64, cap=8192)


def _trials(f: h5py.File, spec: RunSpec) -> None:
    """``/trials`` columns, ``/inputs`` and ``/targets``, all empty."""
    gt = f.create_group("trials")
    for col in TRIAL_COLUMNS:
        growing(gt, col, (), TRIAL_DTYPES[col]).attrs["units"] = column_units(col)

    gi = f.create_group("inputs")
    gi.attrs["n_in"] = np.int64(spec.n_in)
    growing(gi, "values", (spec.n_steps, spec.n_in), np.uint8).attrs["units"] = "spikes"

    gtar = f.create_group("targets")
    gtar.attrs["kind"] = spec.task_kind
    if spec.task_kind == "regression":
        values = growing(gtar, "values", (spec.n_steps, spec.n_out), np.float64, fill=np.nan)
        values.attrs["units"] = MODEL_UNITS
    else:
        growing(gtar, "labels", (), np.int64, fill=-1)
        growing(gtar, "mask", (spec.n_steps,), np.uint8).attrs["units"] = "1"


def _projections(f: h5py.File, spec: RunSpec) -> None:
    """``/projections/<name>``: edges, empty weights/updates (and in-trial weights), empty ``grad``."""
    gproj = f.create_group("projections")
    n_upd = spec.n_in_trial_updates
    for name, (src, tgt) in spec.edges.items():
        g = gproj.create_group(name)
        g.attrs["n_edges"] = np.int64(src.size)
        if name == BIAS_PROJECTION:
            g.attrs["note"] = "readout bias; not a SONATA edge population (source_ids = target_ids = unit)"
        g.create_dataset("source_ids", data=src, dtype=np.uint64)
        g.create_dataset("target_ids", data=tgt, dtype=np.uint64)
        growing(g, "weights", (src.size,), np.float64, fill=np.nan).attrs["units"] = MODEL_UNITS
        growing(g, "updates", (src.size,), np.float64, fill=np.nan).attrs["units"] = MODEL_UNITS
        if n_upd:
            itw = growing(g, "in_trial_weights", (n_upd, src.size), np.float64, fill=np.nan)
            itw.attrs["units"] = MODEL_UNITS
        g.create_group("grad")
