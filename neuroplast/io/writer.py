"""Streaming writer of the ``neuroplast-run`` HDF5 run log.

:class:`RunWriter` buffers trials in memory and appends them in whole chunks to resizable, chunked,
uncompressed datasets.  After every flush the file on disk is consistent: every trial counted in
``/trials`` (and in the root attribute ``n_trials_complete``) has its spikes, inputs, targets and gradients
written, because the trial rows are written *last*.  ``h5py.File.flush`` is called at the end of every flush,
so a writer killed with ``SIGKILL`` leaves a file from which :func:`neuroplast.io.open_run` reads every
flushed trial.  See ``docs/hdf5.md`` for the layout.

:meth:`RunWriter.append` reopens such a file (killed or closed, not finished), cuts every dataset back to the
last complete iteration and continues writing; with the resumable state that :meth:`RunWriter.add_iteration`
stores under ``/resume`` a training run continues bit for bit (``neuroplast run --resume``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import h5py
import numpy as np

from neuroplast.io.schema import (
    ATTR_FINISHED,
    ATTR_ITERATIONS_COMPLETE,
    ATTR_STATE_DIGEST,
    ATTR_STATE_ITERATION,
    ATTR_TRIALS_COMPLETE,
    BIAS_PROJECTION,
    FORMAT_NAME,
    FORMAT_VERSION,
    ITERATION_DATASETS,
    LIBVER,
    RESUME_GROUP,
    RESUME_SLOTS,
    SONATA_REPORT,
    TRIAL_COLUMNS,
    TRIAL_DTYPES,
    RunFileError,
    check_name,
    chunk_rows,
    complete_iterations,
    complete_trials,
    gradient_names,
    per_trial_datasets,
    report_root,
    report_var,
    sorting_dtype,
)

__all__ = ["RunWriter", "read_states", "state_digest"]

TaskKind = Literal["regression", "classification"]
SpikeDict = Mapping[str, tuple[Any, Any]]


def _neuroplast_version() -> str:
    from neuroplast import __version__

    return str(__version__)


def _brian2_version() -> str:
    # metadata only: brian2 is never imported by the io package
    try:
        return metadata.version("brian2")
    except metadata.PackageNotFoundError:
        return "not installed"


def _growing(
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


def _append(ds: h5py.Dataset, block: np.ndarray) -> None:
    """Append ``block`` (rows along axis 0) to the growing dataset ``ds``."""
    n0 = ds.shape[0]
    n = block.shape[0]
    if n == 0:
        return
    ds.resize((n0 + n,) + ds.shape[1:])
    ds[n0 : n0 + n] = block


def state_digest(state: Mapping[str, np.ndarray]) -> str:
    """sha256 (hex) over the names, dtypes, shapes and bytes of a flat state, in sorted name order.

    Parameters
    ----------
    state : mapping of str to numpy.ndarray
        ``"a/b" -> array`` (0-d arrays for scalars).

    Returns
    -------
    str
        Hex digest; stored with every resume slot so that a slot half overwritten by a killed writer is
        recognized and ignored.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        a = np.ascontiguousarray(state[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _flat_state(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, v in state.items():
        for part in str(name).split("/"):
            check_name("state entry", part)
        a = np.array(v, copy=True)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"state entry {name!r} must be numeric, got dtype {a.dtype}")
        out[str(name)] = a
    return out


def _datasets(g: h5py.Group) -> dict[str, h5py.Dataset]:
    """Every dataset below ``g``, by path relative to ``g``."""
    out: dict[str, h5py.Dataset] = {}
    g.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


def _write_slot(
    f: h5py.File,
    state: dict[str, np.ndarray],
    iteration: int,
    cache: dict[str, dict[str, h5py.Dataset]] | None = None,
) -> None:
    """Overwrite resume slot ``iteration % 2`` with ``state`` (arrays first, then iteration and digest).

    ``cache`` (slot name -> {dataset name -> open dataset}) saves the lookups of the slot's datasets.
    """
    slot = RESUME_SLOTS[iteration % 2]
    g = f.require_group(RESUME_GROUP).require_group(slot)
    g.attrs[ATTR_STATE_ITERATION] = np.int64(-1)  # invalid while being overwritten
    cache = {} if cache is None else cache
    have = cache.get(slot)
    if have is None:
        have = cache[slot] = _datasets(g)
    for name in [n for n in have if n not in state]:
        del g[name]
        del have[name]
    for name, a in state.items():
        ds = have.get(name)
        if ds is not None and ds.shape == a.shape and ds.dtype == a.dtype:
            ds[()] = a
        else:
            if ds is not None or name in g:
                del g[name]
            have[name] = g.create_dataset(name, data=a)
    g.attrs[ATTR_STATE_DIGEST] = state_digest(state)
    g.attrs[ATTR_STATE_ITERATION] = np.int64(iteration)


def read_states(f: h5py.File) -> dict[int, dict[str, np.ndarray]]:
    """Valid resume slots of an open run log.

    Parameters
    ----------
    f : h5py.File
        The run log.

    Returns
    -------
    dict of int to dict of str to numpy.ndarray
        ``iterations done -> flat state`` for every slot whose digest matches its arrays (a slot that a killed
        writer left half overwritten is left out).
    """
    out: dict[int, dict[str, np.ndarray]] = {}
    root = f.get(RESUME_GROUP)
    if not isinstance(root, h5py.Group):
        return out
    for slot in RESUME_SLOTS:
        g = root.get(slot)
        if not isinstance(g, h5py.Group):
            continue
        try:
            it = int(g.attrs.get(ATTR_STATE_ITERATION, -1))
            digest = g.attrs.get(ATTR_STATE_DIGEST)
            digest = digest.decode() if isinstance(digest, bytes) else digest
            state = {name: np.asarray(ds[()]) for name, ds in _datasets(g).items()}
        except (OSError, KeyError, ValueError, TypeError):
            continue
        if it >= 0 and digest == state_digest(state):
            out[it] = state
    return out


def _as_ids(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{what} must hold integers")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{what} must be non-negative")
    return arr.astype(np.uint64)


def _as_vector(a: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {arr.shape}")
    return arr


@dataclass
class _Trial:
    start_step: int
    n_steps: int
    iteration: int
    loss: float
    x: np.ndarray  # (n_steps_max, n_in) uint8, zero padded
    target: np.ndarray  # regression: (n_steps_max, n_out) float64 NaN padded; classification: int64 scalar
    mask: np.ndarray | None  # classification: (n_steps_max,) uint8
    spikes: dict[str, tuple[np.ndarray, np.ndarray]]  # pop -> (global steps int64, node ids uint64)
    extras: dict[str, float]
    grads: dict[tuple[str, str], np.ndarray]


@dataclass
class _Trace:
    pop: str
    var: str
    node_ids: np.ndarray
    units: str
    start_step: int
    next_step: int
    rows_written: int = 0
    buffer: list[np.ndarray] = field(default_factory=list)


class RunWriter:
    """Write one training run to a new ``neuroplast-run`` HDF5 file.

    Use as a context manager; the file is flushed and closed on exit (also when the block raises, in which
    case every complete buffered trial is still written).

    Parameters
    ----------
    path : str or Path
        File to create.  Its folder must exist.
    config_toml : str
        The full resolved configuration as TOML text; stored verbatim in the root attribute ``config``.
    dt_ms : float
        Simulation time step, ms.  Spike at global step ``s`` gets timestamp ``s * dt_ms`` ms.
    seed : int
        Random seed of the run.
    populations : mapping of str to mapping of str to array_like
        ``pop -> {parameter: values}``: per-neuron model parameters actually used (``alpha``, ``rho``,
        ``v_th``, ...), each 1-D of the population size (scalars are broadcast).  A population with no
        parameters may be given as ``{}`` if it is ``input`` (size ``n_in``) or ``readout`` (size ``n_out``).
    projections_edges : mapping of str to (array_like, array_like) or None
        ``projection -> (source_ids, target_ids)`` in edge order, node ids of the source/target
        populations.  The readout bias is the pseudo-projection ``"bias"``; pass ``None`` for it to get
        ``source_ids = target_ids = arange(n_out)``.
    n_in, n_out : int
        Number of input channels and of readout units.
    task_kind : {"regression", "classification"}
        Regression targets are ``(n_steps, n_out)`` values; classification targets are one label per trial
        plus a ``(n_steps,)`` mask of the steps that enter the loss.
    n_steps : int
        Maximum number of steps of a trial (dataset width; shorter trials are padded, see
        :meth:`add_trial`).
    force : bool, optional
        Overwrite an existing file (it is removed first).  Without it an existing file is an error.
    flush_every : int, optional
        Flush after this many buffered trials.  The writer also flushes at every :meth:`add_iteration`,
        at :meth:`finish` and on close.
    brian2_version : str, optional
        Stored in the ``brian2_version`` attribute; by default read from the installed distribution's
        metadata (brian2 is not imported).
    update_every_steps : int, optional
        k > 0: the run learns inside its trials (docs/model.md §6).  Every iteration then also stores the
        weights in force from step k, 2k, … < ``n_steps`` on (``/projections/<name>/in_trial_weights``,
        shape (n_iterations, (n_steps − 1) // k, n_edges)), so that a replay is exact.

    Raises
    ------
    RunFileError
        If the file exists and ``force`` is false, or it cannot be created.
    ValueError
        On inconsistent arguments.

    Examples
    --------
    >>> with RunWriter("run.h5", config_toml=toml, dt_ms=1.0, seed=0, populations=pops,
    ...                projections_edges=edges, n_in=2, n_out=1, task_kind="regression",
    ...                n_steps=100) as w:                                     # doctest: +SKIP
    ...     k = w.add_trial(0, x, y, loss=0.3, spikes={"recurrent": (steps, ids)})
    ...     w.add_iteration(weights_before, updates)
    ...     w.finish(final_weights)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        config_toml: str,
        dt_ms: float,
        seed: int,
        populations: Mapping[str, Mapping[str, Any]],
        projections_edges: Mapping[str, tuple[Any, Any] | None],
        n_in: int,
        n_out: int,
        task_kind: TaskKind,
        n_steps: int,
        force: bool = False,
        flush_every: int = 16,
        brian2_version: str | None = None,
        update_every_steps: int = 0,
    ) -> None:
        self.path = Path(path)
        self._f: h5py.File | None = None
        self._finished = False
        if task_kind not in ("regression", "classification"):
            raise ValueError(f"task_kind must be 'regression' or 'classification', got {task_kind!r}")
        for nm, v in (("n_in", n_in), ("n_out", n_out), ("n_steps", n_steps), ("flush_every", flush_every)):
            if int(v) != v or int(v) < 1:
                raise ValueError(f"{nm} must be a positive integer, got {v!r}")
        dt_ms = float(dt_ms)
        if not (math.isfinite(dt_ms) and dt_ms > 0):
            raise ValueError(f"dt_ms must be a positive finite number of ms, got {dt_ms!r}")
        if not isinstance(config_toml, str):
            raise TypeError("config_toml must be TOML text (str)")
        try:
            tomllib.loads(config_toml)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config_toml is not valid TOML: {exc}") from exc
        if int(seed) != seed:
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if int(update_every_steps) != update_every_steps or update_every_steps < 0:
            raise ValueError(f"update_every_steps must be an integer >= 0, got {update_every_steps!r}")

        self.dt_ms = dt_ms
        self.task_kind: TaskKind = task_kind
        self.n_in, self.n_out, self.n_steps = int(n_in), int(n_out), int(n_steps)
        self.flush_every = int(flush_every)
        self.update_every_steps = int(update_every_steps)
        self._pops = self._check_populations(populations)
        self.population_sizes = {
            p: len(next(iter(d.values()))) if d else self._default_size(p) for p, d in self._pops.items()
        }
        self._edges = self._check_edges(projections_edges)

        # buffered state
        self._trials: list[_Trial] = []
        self._iters: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        self._in_trial: list[dict[str, np.ndarray]] = []
        self._final: dict[str, np.ndarray] | None = None
        self._traces: dict[tuple[str, str], _Trace] = {}
        self._trace_first_var: dict[str, str] = {}
        self._extras: list[str] = []
        self._estimators: dict[str, list[str]] = {p: [] for p in self._edges}
        self._n_trials_written = 0
        self._n_trials_added = 0
        self._n_iters_added = 0
        self._n_iters_written = 0
        self._next_step = 0
        self._state: tuple[int, dict[str, np.ndarray]] | None = None
        self._dcache: dict[str, h5py.Dataset] = {}
        self._slot_cache: dict[str, dict[str, h5py.Dataset]] = {}
        self.resume_state: dict[str, np.ndarray] | None = None
        self.resumed: dict[str, int] | None = None

        self._create(force, config_toml, int(seed), brian2_version)

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _default_size_for(pop: str, n_in: int, n_out: int) -> int | None:
        return {"input": n_in, "readout": n_out}.get(pop)

    def _default_size(self, pop: str) -> int:
        n = self._default_size_for(pop, self.n_in, self.n_out)
        if n is None:
            raise ValueError(f"population {pop!r} has no parameters: cannot infer its size")
        return n

    def _check_populations(
        self, populations: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        for pop, params in populations.items():
            check_name("population", pop)
            arrays = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
            sizes = {a.shape[0] for a in arrays.values() if a.ndim == 1}
            if any(a.ndim > 1 for a in arrays.values()):
                raise ValueError(f"population {pop!r}: parameters must be 1-D per-neuron arrays or scalars")
            if len(sizes) > 1:
                raise ValueError(
                    f"population {pop!r}: parameter arrays have different lengths {sorted(sizes)}"
                )
            if sizes:
                n = sizes.pop()
            elif (n := self._default_size_for(pop, self.n_in, self.n_out)) is None:
                if arrays:
                    raise ValueError(f"population {pop!r}: all parameters are scalars, size unknown")
                raise ValueError(f"population {pop!r} has no parameters: cannot infer its size")
            for k in arrays:
                check_name("parameter", k)
                arrays[k] = np.broadcast_to(arrays[k], (n,)).copy()
            expected = self._default_size_for(pop, self.n_in, self.n_out)
            if expected is not None and n != expected:
                raise ValueError(f"population {pop!r} has {n} neurons but n_in/n_out says {expected}")
            out[pop] = arrays
        return out

    def _check_edges(
        self, projections_edges: Mapping[str, tuple[Any, Any] | None]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for name, st in projections_edges.items():
            check_name("projection", name)
            if st is None:
                if name != BIAS_PROJECTION:
                    raise ValueError(f"projection {name!r}: edges missing (only 'bias' may be None)")
                ids = np.arange(self.n_out, dtype=np.uint64)
                out[name] = (ids, ids.copy())
                continue
            src = _as_ids(st[0], f"projection {name!r} source_ids")
            tgt = _as_ids(st[1], f"projection {name!r} target_ids")
            if src.shape != tgt.shape:
                raise ValueError(f"projection {name!r}: {src.size} source ids but {tgt.size} target ids")
            out[name] = (src, tgt)
        return out

    def _create(self, force: bool, config_toml: str, seed: int, brian2_version: str | None) -> None:
        p = self.path
        if p.is_dir():
            raise RunFileError(p, "is a directory, not a run-log file")
        if not p.parent.is_dir():
            raise RunFileError(p, f"folder {p.parent} does not exist")
        if p.exists() or p.is_symlink():
            if not force:
                raise RunFileError(p, "already exists; refusing to overwrite (pass force=True to replace it)")
            p.unlink()
        try:
            f = h5py.File(p, "w-", libver=LIBVER)
        except OSError as exc:
            raise RunFileError(p, f"cannot create: {exc}") from exc
        self._f = f
        try:
            self._layout(f, config_toml, seed, brian2_version)
            f.flush()
        except BaseException:
            f.close()
            self._f = None
            raise

    def _layout(self, f: h5py.File, config_toml: str, seed: int, brian2_version: str | None) -> None:
        a = f.attrs
        a["format"] = FORMAT_NAME
        a["format_version"] = np.int64(FORMAT_VERSION)
        a["neuroplast_version"] = _neuroplast_version()
        a["brian2_version"] = brian2_version if brian2_version is not None else _brian2_version()
        a["dt_ms"] = np.float64(self.dt_ms)
        a["seed"] = np.int64(seed)
        a["config"] = config_toml
        a["task_kind"] = self.task_kind
        a["n_in"] = np.int64(self.n_in)
        a["n_out"] = np.int64(self.n_out)
        a["n_steps"] = np.int64(self.n_steps)
        a["update_every_steps"] = np.int64(self.update_every_steps)
        a[ATTR_TRIALS_COMPLETE] = np.int64(0)
        a[ATTR_ITERATIONS_COMPLETE] = np.int64(0)
        a[ATTR_FINISHED] = np.int8(0)

        gp = f.create_group("populations")
        gs = f.create_group("spikes")
        for pop, params in self._pops.items():
            g = gp.create_group(pop)
            g.attrs["size"] = np.int64(self.population_sizes[pop])
            for k, v in params.items():
                g.create_dataset(k, data=v, dtype=np.float64)
            s = gs.create_group(pop)
            s.attrs.create("sorting", np.uint8(2), dtype=sorting_dtype())
            ts = _growing(s, "timestamps", (), np.float64, cap=8192)
            ts.attrs["units"] = "ms"
            _growing(s, "node_ids", (), np.uint64, cap=8192)

        gt = f.create_group("trials")
        for col in TRIAL_COLUMNS:
            _growing(gt, col, (), TRIAL_DTYPES[col])
        gt["loss"].attrs["units"] = "1"
        gt["start_step"].attrs["units"] = "steps"
        gt["n_steps"].attrs["units"] = "steps"

        gi = f.create_group("inputs")
        gi.attrs["n_in"] = np.int64(self.n_in)
        _growing(gi, "values", (self.n_steps, self.n_in), np.uint8).attrs["units"] = "spikes"

        gtar = f.create_group("targets")
        gtar.attrs["kind"] = self.task_kind
        if self.task_kind == "regression":
            _growing(gtar, "values", (self.n_steps, self.n_out), np.float64, fill=np.nan)
        else:
            _growing(gtar, "labels", (), np.int64, fill=-1)
            _growing(gtar, "mask", (self.n_steps,), np.uint8)

        gproj = f.create_group("projections")
        for name, (src, tgt) in self._edges.items():
            g = gproj.create_group(name)
            g.attrs["n_edges"] = np.int64(src.size)
            if name == BIAS_PROJECTION:
                g.attrs["note"] = (
                    "readout bias; not a SONATA edge population (source_ids = target_ids = unit)"
                )
            g.create_dataset("source_ids", data=src, dtype=np.uint64)
            g.create_dataset("target_ids", data=tgt, dtype=np.uint64)
            _growing(g, "weights", (src.size,), np.float64, fill=np.nan)
            _growing(g, "updates", (src.size,), np.float64, fill=np.nan)
            if self.n_in_trial_updates:
                _growing(g, "in_trial_weights", (self.n_in_trial_updates, src.size), np.float64, fill=np.nan)
            g.create_group("grad")

    # ------------------------------------------------------------------ appending
    @classmethod
    def append(
        cls,
        path: str | Path,
        *,
        flush_every: int = 16,
        require_state: bool = False,
        trials_per_iteration: int | None = None,
    ) -> RunWriter:
        """Reopen an unfinished (e.g. killed) run log, cut it back to its last complete iteration, continue.

        The file is opened read/write.  ``K``, the number of iterations kept, is the largest count such that
        the ``n_iterations_complete`` attribute and the ``weights``/``updates`` rows cover it, every trial
        of iterations ``< K`` is on disk (exactly ``K * trials_per_iteration`` of them when that is given)
        and, with ``require_state``, a valid resume slot for ``K`` exists (``K = 0`` needs none).  Then,
        in an order that keeps the file readable if this is killed too, the counters are set to ``K`` and
        the kept trials, and every dataset is shrunk: trial rows, inputs, targets and gradients of later
        trials, ``weights``/``updates`` rows ``>= K``, spikes at or after the end of the last kept trial and
        trace rows past it.  Writing then goes on as with a new writer.

        Parameters
        ----------
        path : str or Path
            An existing ``neuroplast-run`` file that is not finished.
        flush_every : int, optional
            As for the constructor.
        require_state : bool, optional
            Keep only iterations for which a resume state (see :meth:`add_iteration`) is stored.
        trials_per_iteration : int, optional
            Trials every iteration has (the batch size); used to check that no trial is missing.

        Returns
        -------
        RunWriter
            Open writer.  ``resume_state`` is the flat state of iteration ``K`` (``None`` for ``K = 0`` or
            when no state is stored) and ``resumed`` is a dict with ``iterations`` (``K``), ``trials`` (kept),
            ``dropped_trials`` and ``dropped_iterations`` (rows cut off).

        Raises
        ------
        RunFileError
            If the file is missing, not a run log, finished, locked, or damaged beyond its last flush.
        """
        from neuroplast.io.reader import open_run

        run = open_run(path)  # validates format, version, groups and required attributes
        p = run.path
        if run.finished:
            raise RunFileError(p, "run already finished; nothing to resume")
        self = cls.__new__(cls)
        self.path = p
        self._f = None
        self._finished = False
        self.flush_every = int(flush_every)
        if self.flush_every < 1:
            raise ValueError(f"flush_every must be a positive integer, got {flush_every!r}")
        self.dt_ms = run.dt_ms
        self.task_kind = run.task_kind  # type: ignore[assignment]
        self.n_in, self.n_out, self.n_steps = run.n_in, run.n_out, run.n_steps
        self._trials, self._iters, self._final = [], [], None
        self._in_trial = []
        self.update_every_steps = int(run.update_every_steps)
        self._traces, self._trace_first_var = {}, {}
        self._state = None
        self._dcache, self._slot_cache = {}, {}
        try:
            f = h5py.File(p, "r+", libver=LIBVER)
        except OSError as exc:
            msg = " ".join(str(exc).split())
            what = (
                "file is locked (still being written?)"
                if "lock" in msg.lower()
                else "cannot open for writing"
            )
            raise RunFileError(p, f"{what}: {msg}") from exc
        self._f = f
        try:
            self._reopen(f, require_state, trials_per_iteration)
            f.flush()
        except BaseException:
            f.close()
            self._f = None
            raise
        return self

    def _reopen(self, f: h5py.File, require_state: bool, trials_per_iteration: int | None) -> None:
        p = self.path
        self._pops = {
            pop: {k: np.asarray(d[()]) for k, d in g.items()} for pop, g in f["populations"].items()
        }
        self.population_sizes = {pop: int(g.attrs["size"]) for pop, g in f["populations"].items()}
        self._edges = {
            name: (np.asarray(g["source_ids"][()], np.uint64), np.asarray(g["target_ids"][()], np.uint64))
            for name, g in f["projections"].items()
        }
        gt, gproj = f["trials"], f["projections"]
        grads = gradient_names(f)
        per_trial = per_trial_datasets(f)
        iteration = np.asarray(gt["iteration"][: complete_trials(f, per_trial)])
        n_iters = complete_iterations(f)
        states = read_states(f)

        def ok(k: int) -> bool:
            n_keep = int(np.count_nonzero(iteration < k))
            if np.any(iteration[:n_keep] >= k) or (k > 0 and not np.all(np.diff(iteration[:n_keep]) >= 0)):
                return False
            if trials_per_iteration is not None and n_keep != k * int(trials_per_iteration):
                return False
            if k > 0 and n_keep and int(iteration[n_keep - 1]) != k - 1:
                return False
            return not require_state or k == 0 or k in states

        K = next((k for k in range(n_iters, -1, -1) if ok(k)), None)
        if K is None:  # pragma: no cover - k = 0 always qualifies
            raise RunFileError(p, "damaged run log: no consistent iteration to resume from")
        n_keep = int(np.count_nonzero(iteration < K))
        starts = np.asarray(gt["start_step"][:n_keep])
        lengths = np.asarray(gt["n_steps"][:n_keep])
        end_step = int(starts[-1] + lengths[-1]) if n_keep else 0

        # counters first: a kill during the cuts below leaves a file that reads (and resumes) the same
        f.attrs[ATTR_TRIALS_COMPLETE] = np.int64(n_keep)
        f.attrs[ATTR_ITERATIONS_COMPLETE] = np.int64(K)
        f.flush()
        total = gt["start_step"].shape[0]
        dropped_iters = max(g["updates"].shape[0] for g in gproj.values()) - K
        for d in per_trial:
            d.resize((n_keep,) + d.shape[1:])
        for g in gproj.values():
            for k in ITERATION_DATASETS:
                if k in g:
                    g[k].resize((K,) + g[k].shape[1:])
        for s in f["spikes"].values():
            ts, ids = s["timestamps"], s["node_ids"]
            n = min(ts.shape[0], ids.shape[0])
            steps = np.rint(np.asarray(ts[:n]) / self.dt_ms).astype(np.int64)
            m = int(np.searchsorted(steps, end_step, side="left"))
            ts.resize((m,))
            ids.resize((m,))
        for root in [k for k in f.keys() if report_var(k) is not None]:
            var = str(report_var(root))
            for pop, g in f[root].items():
                t0, _, dt = (float(v) for v in g["mapping/time"][()])
                start = int(round(t0 / self.dt_ms))
                rows = max(0, min(g["data"].shape[0], end_step - start))
                g["data"].resize((rows,) + g["data"].shape[1:])
                g["mapping/time"][1] = (start + rows) * self.dt_ms
                tr = _Trace(
                    pop,
                    var,
                    np.asarray(g["mapping/node_ids"][()], np.uint64),
                    str(g["data"].attrs.get("units", "1")),
                    start,
                    start + rows,
                    rows,
                )
                self._traces[(pop, var)] = tr
        rep = f.get(SONATA_REPORT)
        if isinstance(rep, h5py.Group):
            for pop, g in rep.items():
                var = g.attrs.get("variable")
                if var is not None:
                    self._trace_first_var[pop] = var.decode() if isinstance(var, bytes) else str(var)
        for pop, var in self._traces:
            self._trace_first_var.setdefault(pop, var)

        self._extras = [c for c in gt if c not in TRIAL_COLUMNS]
        self._estimators = {name: [] for name in self._edges}
        for proj, est in grads:
            self._estimators[proj].append(est)
        self._n_trials_written = self._n_trials_added = n_keep
        self._n_iters_written = self._n_iters_added = K
        self._next_step = end_step
        self.resume_state = states.get(K) if K > 0 else None
        self.resumed = {
            "iterations": K,
            "trials": n_keep,
            "dropped_trials": int(total - n_keep),
            "dropped_iterations": int(max(0, dropped_iters)),
        }

    # ------------------------------------------------------------------ public API
    @property
    def n_in_trial_updates(self) -> int:
        """In-trial updates per trial, (n_steps − 1) // update_every_steps (0 without in-trial learning)."""
        return (self.n_steps - 1) // self.update_every_steps if self.update_every_steps else 0

    @property
    def n_trials(self) -> int:
        """Number of trials added so far (written or buffered)."""
        return self._n_trials_added

    @property
    def n_trials_flushed(self) -> int:
        """Number of trials already on disk (the file's ``n_trials_complete``)."""
        return self._n_trials_written

    @property
    def n_iterations(self) -> int:
        """Number of iterations (weight updates) added so far."""
        return self._n_iters_added

    @property
    def next_step(self) -> int:
        """First global step after the last trial added; the default ``start_step`` of the next trial."""
        return self._next_step

    def _require_open(self) -> h5py.File:
        if self._f is None:
            raise RunFileError(self.path, "writer is closed")
        return self._f

    def _require_running(self) -> None:
        self._require_open()
        if self._finished:
            raise RunFileError(self.path, "run already finished; no more trials or iterations can be added")

    def add_trial(
        self,
        iteration: int,
        x: Any,
        target: Any,
        *,
        loss: float,
        mask: Any = None,
        spikes: SpikeDict | None = None,
        extras: Mapping[str, float] | None = None,
        grads: Mapping[str, Mapping[str, Any]] | None = None,
        start_step: int | None = None,
        local_spike_steps: bool = True,
    ) -> int:
        """Buffer one trial (flushed to disk every ``flush_every`` trials).

        Parameters
        ----------
        iteration : int
            Index of the training iteration (weight update) this trial belongs to; the trial was run with
            the weights ``weights[iteration]`` stored by :meth:`add_iteration`.
        x : array_like, shape (T, n_in)
            Input spikes of the trial, ``T <= n_steps``; non-negative integers (spike counts per step)
            stored as uint8.  Trials shorter than ``n_steps`` are zero padded on disk.
        target : array_like
            Regression: target values, shape (T, n_out) (padding on disk is NaN).  Classification: the
            integer class label in ``[0, n_out)``.
        loss : float
            Loss of the trial (dimensionless).
        mask : array_like of bool, shape (T,), optional
            Classification only: steps that enter the loss; default all steps.
        spikes : mapping of str to (array_like, array_like), optional
            ``pop -> (steps, node_ids)``.  Steps are time-step indices, local to the trial (``0 <= s < T``)
            unless ``local_spike_steps=False``, in which case they are global.
        extras : mapping of str to float, optional
            Extra per-trial scalar columns (``accuracy``, ``rate`` ...), stored in ``/trials/<name>``.
            Columns missing from some trials are NaN there.
        grads : mapping of str to mapping of str to array_like, optional
            ``projection -> {estimator: gradient}``, each gradient of shape ``(n_edges,)`` (loss units per
            weight unit).  Missing (trial, estimator) entries are NaN on disk.
        start_step : int, optional
            Global step at which the trial starts; default :attr:`next_step`.  Trials must not overlap or
            go back in time (spikes are written sorted by time).
        local_spike_steps : bool, optional
            Whether ``spikes`` steps are local to the trial (default) or global.

        Returns
        -------
        int
            Index ``k`` of the trial (0-based, over the whole run).

        Raises
        ------
        ValueError
            On shapes or values inconsistent with the run.
        RunFileError
            If the writer is closed or finished.
        """
        self._require_running()
        xa = np.asarray(x)
        if xa.ndim != 2 or xa.shape[1] != self.n_in or not 1 <= xa.shape[0] <= self.n_steps:
            raise ValueError(
                f"x must have shape (T, {self.n_in}) with 1 <= T <= {self.n_steps}, got {xa.shape}"
            )
        T = int(xa.shape[0])
        if xa.dtype != np.bool_ and xa.size:
            if np.any(xa < 0) or np.any(xa > 255) or np.any(np.mod(xa, 1) != 0):
                raise ValueError("x must hold spike counts (integers in [0, 255]) to be stored as uint8")
        xpad = np.zeros((self.n_steps, self.n_in), dtype=np.uint8)
        xpad[:T] = xa.astype(np.uint8)

        start = self._next_step if start_step is None else int(start_step)
        if start < self._next_step:
            raise ValueError(
                f"start_step {start} is before the end of the previous trial ({self._next_step}); "
                "trials must follow each other in time"
            )

        mpad: np.ndarray | None = None
        if self.task_kind == "regression":
            ya = np.asarray(target, dtype=np.float64)
            if ya.shape != (T, self.n_out):
                raise ValueError(f"regression target must have shape ({T}, {self.n_out}), got {ya.shape}")
            tval = np.full((self.n_steps, self.n_out), np.nan)
            tval[:T] = ya
            if mask is not None:
                raise ValueError("mask is only stored for classification tasks")
        else:
            label = np.asarray(target)
            if label.ndim != 0 or int(label) != label or not 0 <= int(label) < self.n_out:
                raise ValueError(
                    f"classification target must be an integer label in [0, {self.n_out}), got {target!r}"
                )
            tval = np.asarray(int(label), dtype=np.int64)
            m = np.ones(T, dtype=bool) if mask is None else np.asarray(mask)
            if m.shape != (T,):
                raise ValueError(f"mask must have shape ({T},), got {m.shape}")
            mpad = np.zeros(self.n_steps, dtype=np.uint8)
            mpad[:T] = m.astype(bool)

        sp: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for pop, pair in (spikes or {}).items():
            if pop not in self._pops:
                raise ValueError(f"spikes for unknown population {pop!r} (known: {sorted(self._pops)})")
            steps = np.asarray(pair[0])
            ids = _as_ids(pair[1], f"spikes[{pop!r}] node ids")
            if steps.ndim != 1 or steps.shape != ids.shape:
                raise ValueError(f"spikes[{pop!r}]: steps and node ids must be 1-D of equal length")
            if steps.size and not np.all(np.mod(steps, 1) == 0):
                raise ValueError(f"spikes[{pop!r}]: steps must be integers (time-step indices)")
            steps = steps.astype(np.int64)
            if local_spike_steps:
                steps = steps + start
            if steps.size and (steps.min() < start or steps.max() >= start + T):
                raise ValueError(f"spikes[{pop!r}]: steps outside the trial [{start}, {start + T})")
            if ids.size and int(ids.max()) >= self.population_sizes[pop]:
                raise ValueError(
                    f"spikes[{pop!r}]: node id {int(ids.max())} >= population size "
                    f"{self.population_sizes[pop]}"
                )
            order = np.lexsort((ids, steps))
            sp[pop] = (steps[order], ids[order])

        ex: dict[str, float] = {}
        for k, v in (extras or {}).items():
            check_name("trial column", k)
            if k in TRIAL_COLUMNS:
                raise ValueError(f"extra column {k!r} clashes with a mandatory trial column")
            ex[k] = float(v)

        gr: dict[tuple[str, str], np.ndarray] = {}
        for proj, per_est in (grads or {}).items():
            if proj not in self._edges:
                raise ValueError(f"gradient for unknown projection {proj!r} (known: {sorted(self._edges)})")
            for est, g in per_est.items():
                check_name("estimator", est)
                gr[(proj, est)] = _as_vector(g, self._edges[proj][0].size, f"grads[{proj!r}][{est!r}]")

        self._trials.append(_Trial(start, T, int(iteration), float(loss), xpad, tval, mpad, sp, ex, gr))
        for k in ex:
            if k not in self._extras:
                self._extras.append(k)
        for proj, est in gr:
            if est not in self._estimators[proj]:
                self._estimators[proj].append(est)
        self._next_step = start + T
        self._n_trials_added += 1
        if len(self._trials) >= self.flush_every:
            self.flush()
        return self._n_trials_added - 1

    def _check_weight_dict(
        self, d: Mapping[str, Any], what: str, *, fill_zero: bool
    ) -> dict[str, np.ndarray]:
        unknown = set(d) - set(self._edges)
        if unknown:
            raise ValueError(f"{what}: unknown projections {sorted(unknown)}")
        out = {}
        for name, (src, _) in self._edges.items():
            if name not in d:
                if not fill_zero:
                    raise ValueError(f"{what}: projection {name!r} missing")
                out[name] = np.zeros(src.size)
            else:
                out[name] = _as_vector(d[name], src.size, f"{what}[{name!r}]")
        return out

    def _check_in_trial(self, d: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if set(d) != set(self._edges):
            raise ValueError(
                f"in_trial: needs exactly the projections {sorted(self._edges)}, got {sorted(d)}"
            )
        out = {}
        for name, (src, _) in self._edges.items():
            a = np.asarray(d[name], dtype=np.float64)
            want = (self.n_in_trial_updates, src.size)
            if a.shape != want:
                raise ValueError(f"in_trial[{name!r}]: shape {a.shape}, expected {want}")
            out[name] = a
        return out

    def add_iteration(
        self,
        weights_before: Mapping[str, Any],
        updates: Mapping[str, Any],
        *,
        state: Mapping[str, Any] | None = None,
        in_trial: Mapping[str, Any] | None = None,
    ) -> int:
        """Record one weight update and flush.

        Parameters
        ----------
        weights_before : mapping of str to array_like
            ``projection -> (n_edges,)`` weights before the update (the weights the trials of this iteration
            ran with), for every projection.
        updates : mapping of str to array_like
            ``projection -> (n_edges,)`` the change actually applied (``w_after - w_before``).  A projection
            left out had no update (zeros are stored).
        state : mapping of str to array_like, optional
            Resumable training state *after* this update (``"group/name" -> array``, numeric, 0-d for
            scalars), e.g. dense weights, feedback and optimizer moments.  Written to the resume slot
            ``/resume/slot<(i + 1) % 2>`` with its iteration count and sha256 digest, in the same flush and
            before the ``n_iterations_complete`` attribute, so that :meth:`append` finds a complete state
            for the last complete iteration.
        in_trial : mapping of str to array_like, optional
            Required when the writer has ``update_every_steps``: ``projection -> (n_in_trial_updates,
            n_edges)`` the weights in force from step k, 2k, … of this iteration's trial on.  With in-trial
            learning ``updates`` is the trial-end update, applied to the last of these rows.

        Returns
        -------
        int
            Index of the iteration (row of ``weights``/``updates``).
        """
        self._require_running()
        wb = self._check_weight_dict(weights_before, "weights_before", fill_zero=False)
        up = self._check_weight_dict(updates, "updates", fill_zero=True)
        flat = _flat_state(state) if state is not None else None
        if self.update_every_steps:
            if in_trial is None:
                raise ValueError("in_trial: this run learns inside trials; the in-trial weights are required")
            rows = self._check_in_trial(in_trial)
            self._in_trial.append(rows)
        elif in_trial is not None:
            raise ValueError("in_trial: this run log was created without update_every_steps")
        self._iters.append((wb, up))
        self._n_iters_added += 1
        if flat is not None:
            self._state = (self._n_iters_added, flat)
        self.flush()
        return self._n_iters_added - 1

    def finish(self, final_weights: Mapping[str, Any]) -> None:
        """Store the weights after the last update, mark the run finished and flush.

        Parameters
        ----------
        final_weights : mapping of str to array_like
            ``projection -> (n_edges,)`` weights after the last update (row ``n_iterations`` of ``weights``).
        """
        self._require_running()
        self._final = self._check_weight_dict(final_weights, "final_weights", fill_zero=False)
        self._finished = True
        self.flush()

    def add_trace(
        self,
        pop: str,
        var: str,
        data: Any,
        node_ids: Any,
        *,
        start_step: int | None = None,
        units: str = "1",
    ) -> None:
        """Buffer per-step traces of one variable as a SONATA report.

        Successive calls for the same ``(pop, var)`` must be contiguous in time; together they form one
        report with ``mapping/time = [start, stop, dt]`` in ms.

        Parameters
        ----------
        pop : str
            Population name.
        var : str
            Variable name (``v``, ``a``, ``z`` ...).  The first variable traced for ``pop`` is readable
            by libsonata at ``/report/<pop>``; every variable is at ``/report_<var>/<pop>``.
        data : array_like, shape (T, n_elements)
            Values at ``T`` consecutive steps, stored as float32.
        node_ids : array_like, shape (n_elements,)
            Node id of each column (unique: one element per node).
        start_step : int, optional
            Global step of the first row; default: right after the previous call for ``(pop, var)``, or 0.
        units : str, optional
            Units of the values (the ``units`` attribute of ``data``), default ``"1"`` (dimensionless).
        """
        self._require_open()
        check_name("population", pop)
        check_name("variable", var)
        arr = np.asarray(data, dtype=np.float32)
        ids = _as_ids(node_ids, "node_ids")
        if arr.ndim != 2 or arr.shape[1] != ids.size or arr.shape[0] < 1:
            raise ValueError(f"data must have shape (T, {ids.size}) with T >= 1, got {arr.shape}")
        if np.unique(ids).size != ids.size:
            raise ValueError("node_ids must be unique (one element per node)")
        if pop in self.population_sizes and ids.size and int(ids.max()) >= self.population_sizes[pop]:
            raise ValueError(f"node id {int(ids.max())} >= size of population {pop!r}")
        key = (pop, var)
        tr = self._traces.get(key)
        if tr is None:
            s0 = 0 if start_step is None else int(start_step)
            if s0 < 0:
                raise ValueError("start_step must be >= 0")
            tr = _Trace(pop, var, ids, str(units), s0, s0)
            self._traces[key] = tr
            self._trace_first_var.setdefault(pop, var)
        else:
            if not np.array_equal(ids, tr.node_ids):
                raise ValueError(f"trace {pop}/{var}: node_ids differ from the first call")
            if start_step is not None and int(start_step) != tr.next_step:
                raise ValueError(
                    f"trace {pop}/{var}: start_step {start_step} is not contiguous (expected {tr.next_step})"
                )
            if str(units) != tr.units:
                raise ValueError(f"trace {pop}/{var}: units {units!r} differ from {tr.units!r}")
        tr.buffer.append(arr)
        tr.next_step += arr.shape[0]

    # ------------------------------------------------------------------ flushing
    def flush(self) -> None:
        """Write everything buffered, in an order that keeps the file consistent, then ``h5py`` flush.

        Order: traces, iterations (weights then updates), per-trial payload (spikes, inputs, targets,
        gradients, extra columns), the mandatory trial columns, the resume state (if given to
        :meth:`add_iteration`), and finally the ``n_trials_complete`` / ``n_iterations_complete`` attributes.
        """
        f = self._require_open()
        self._flush_traces(f)
        self._flush_iterations(f)
        self._flush_trials(f)
        if self._state is not None:
            _write_slot(f, self._state[1], self._state[0], self._slot_cache)
            self._state = None
        f.attrs[ATTR_TRIALS_COMPLETE] = np.int64(self._n_trials_written)
        f.attrs[ATTR_ITERATIONS_COMPLETE] = np.int64(self._n_iters_written)
        if self._finished:
            f.attrs[ATTR_FINISHED] = np.int8(1)
        f.flush()

    def _flush_traces(self, f: h5py.File) -> None:
        for (pop, var), tr in self._traces.items():
            if not tr.buffer:
                continue
            root = report_root(var)
            gpath = f"{root}/{pop}"
            if gpath not in f:
                g = f.require_group(root).create_group(pop)
                g.attrs["variable"] = var
                n = tr.node_ids.size
                d = _growing(g, "data", (n,), np.float32)
                d.attrs["units"] = tr.units
                m = g.create_group("mapping")
                m.create_dataset("node_ids", data=tr.node_ids, dtype=np.uint64)
                m.create_dataset("index_pointers", data=np.arange(n + 1, dtype=np.uint64))
                m["index_pointer"] = m["index_pointers"]  # hard link, for bmtk
                m.create_dataset("element_ids", data=np.zeros(n, dtype=np.uint32))
                m.create_dataset("element_pos", data=np.full(n, 0.5, dtype=np.float32))
                t = m.create_dataset("time", data=np.array([tr.start_step * self.dt_ms] * 2 + [self.dt_ms]))
                t.attrs["units"] = "ms"
                if self._trace_first_var.get(pop) == var and f"{SONATA_REPORT}/{pop}" not in f:
                    f.require_group(SONATA_REPORT)[pop] = g  # hard link: the libsonata-readable copy
            g = f[gpath]
            block = np.concatenate(tr.buffer, axis=0)
            _append(g["data"], block)
            tr.rows_written += block.shape[0]
            tr.buffer.clear()
            g["mapping/time"][1] = (tr.start_step + tr.rows_written) * self.dt_ms

    def _ds(self, path: str) -> h5py.Dataset:
        """Open dataset at ``path`` (kept open: h5py lookups cost more than small writes)."""
        d = self._dcache.get(path)
        if d is None:
            d = self._dcache[path] = self._require_open()[path]
        return d

    def _growing_ds(self, group: str, name: str, tail: tuple[int, ...]) -> h5py.Dataset:
        """``group/name``, created (float64, NaN filled, grown to the trials written so far) if missing."""
        path = f"{group}/{name}"
        d = self._dcache.get(path)
        if d is None:
            f = self._require_open()
            if path not in f:
                d = _growing(f[group], name, tail, np.float64, fill=np.nan)
                d.resize((self._n_trials_written,) + tail)
            self._dcache[path] = d = f[path]
        return d

    def _flush_iterations(self, f: h5py.File) -> None:
        if self._iters:
            for name in self._edges:
                _append(
                    self._ds(f"projections/{name}/weights"), np.stack([wb[name] for wb, _ in self._iters])
                )
                _append(
                    self._ds(f"projections/{name}/updates"), np.stack([up[name] for _, up in self._iters])
                )
                if self._in_trial:
                    _append(
                        self._ds(f"projections/{name}/in_trial_weights"),
                        np.stack([rows[name] for rows in self._in_trial]),
                    )
            self._n_iters_written += len(self._iters)
            self._iters.clear()
            self._in_trial.clear()
        if self._final is not None:
            for name in self._edges:
                _append(self._ds(f"projections/{name}/weights"), self._final[name][None, :])
            self._final = None

    def _flush_trials(self, f: h5py.File) -> None:
        trials = self._trials
        if not trials:
            return
        B = len(trials)
        for pop in self._pops:
            parts = [t.spikes[pop] for t in trials if pop in t.spikes]
            if parts:
                steps = np.concatenate([p[0] for p in parts])
                ids = np.concatenate([p[1] for p in parts])
                _append(self._ds(f"spikes/{pop}/timestamps"), steps.astype(np.float64) * self.dt_ms)
                _append(self._ds(f"spikes/{pop}/node_ids"), ids)
        _append(self._ds("inputs/values"), np.stack([t.x for t in trials]))
        if self.task_kind == "regression":
            _append(self._ds("targets/values"), np.stack([t.target for t in trials]))
        else:
            _append(self._ds("targets/labels"), np.array([t.target for t in trials], dtype=np.int64))
            _append(self._ds("targets/mask"), np.stack([t.mask for t in trials]))
        for proj, ests in self._estimators.items():
            n_edges = self._edges[proj][0].size
            for est in ests:
                ds = self._growing_ds(f"projections/{proj}/grad", est, (n_edges,))
                block = np.full((B, n_edges), np.nan)
                for i, t in enumerate(trials):
                    if (proj, est) in t.grads:
                        block[i] = t.grads[(proj, est)]
                _append(ds, block)
        for col in self._extras:
            ds = self._growing_ds("trials", col, ())
            _append(ds, np.array([t.extras.get(col, np.nan) for t in trials]))
        # mandatory trial rows last: a trial exists on disk once its row is there
        _append(self._ds("trials/loss"), np.array([t.loss for t in trials], dtype=np.float64))
        _append(self._ds("trials/iteration"), np.array([t.iteration for t in trials], dtype=np.int64))
        _append(self._ds("trials/n_steps"), np.array([t.n_steps for t in trials], dtype=np.int64))
        _append(self._ds("trials/start_step"), np.array([t.start_step for t in trials], dtype=np.int64))
        self._n_trials_written += B
        trials.clear()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Flush what is buffered and close the file (idempotent)."""
        f = self._f
        if f is None:
            return
        try:
            self.flush()
        finally:
            self._f = None
            self._dcache.clear()
            self._slot_cache.clear()
            f.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # the block failed: keep what is complete, never mask the original exception
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._f is None else ("finished" if self._finished else "open")
        return (
            f"RunWriter({str(self.path)!r}, {state}, trials={self._n_trials_added}, "
            f"iterations={self._n_iters_added})"
        )
