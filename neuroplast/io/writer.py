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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from neuroplast.io.checks import (
    SpikeDict,
    check_extras,
    check_flush_every,
    check_grads,
    check_in_trial,
    check_spikes,
    check_start,
    check_state,
    check_target,
    check_trace,
    check_weight_dict,
    check_x,
    run_spec,
)
from neuroplast.io.layout import TaskKind, append_rows, create_run_file, growing, open_for_writing
from neuroplast.io.schema import (
    ATTR_FINISHED,
    ATTR_ITERATIONS_COMPLETE,
    ATTR_TRIALS_COMPLETE,
    ITERATION_DATASETS,
    SONATA_REPORT,
    TRIAL_COLUMNS,
    RunFileError,
    complete_iterations,
    complete_trials,
    gradient_names,
    per_trial_datasets,
    report_root,
    report_var,
)

# tests/test_resume.py (MID_FLUSH_CHILD) kills a run in the middle of a flush by replacing this module's
# ``_write_slot`` (so RunWriter.flush calls it through this module) and looks these names up here.
from neuroplast.io.schema import ATTR_STATE_ITERATION as ATTR_STATE_ITERATION
from neuroplast.io.schema import RESUME_GROUP as RESUME_GROUP
from neuroplast.io.schema import RESUME_SLOTS as RESUME_SLOTS
from neuroplast.io.state import read_states, state_digest
from neuroplast.io.state import write_slot as _write_slot

__all__ = ["RunWriter", "read_states", "state_digest"]


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
        spec = run_spec(
            config_toml=config_toml,
            dt_ms=dt_ms,
            seed=seed,
            populations=populations,
            projections_edges=projections_edges,
            n_in=n_in,
            n_out=n_out,
            task_kind=task_kind,
            n_steps=n_steps,
            flush_every=flush_every,
            update_every_steps=update_every_steps,
        )
        self.path = Path(path)
        self._f: h5py.File | None = None
        self._finished = False
        self.dt_ms = spec.dt_ms
        self.task_kind: TaskKind = spec.task_kind
        self.n_in, self.n_out, self.n_steps = spec.n_in, spec.n_out, spec.n_steps
        self.flush_every = int(flush_every)
        self.update_every_steps = spec.update_every_steps
        self._pops = spec.pops
        self.population_sizes = spec.population_sizes
        self._edges = spec.edges
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

        self._f = create_run_file(
            self.path,
            spec,
            force=force,
            config_toml=config_toml,
            seed=int(seed),
            brian2_version=brian2_version,
        )

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
        self.flush_every = check_flush_every(flush_every)
        self.dt_ms = run.dt_ms
        self.task_kind = run.task_kind  # type: ignore[assignment]
        self.n_in, self.n_out, self.n_steps = run.n_in, run.n_out, run.n_steps
        self._trials, self._iters, self._final = [], [], None
        self._in_trial = []
        self.update_every_steps = int(run.update_every_steps)
        self._traces, self._trace_first_var = {}, {}
        self._state = None
        self._dcache, self._slot_cache = {}, {}
        f = open_for_writing(p)
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
        xpad, T = check_x(x, self.n_in, self.n_steps)
        start = check_start(start_step, self._next_step)
        tval, mpad = check_target(self.task_kind, target, mask, T, self.n_steps, self.n_out)
        sp = check_spikes(spikes, self.population_sizes, start, T, local_spike_steps)
        ex = check_extras(extras)
        gr = check_grads(grads, self._edges)
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
        wb = check_weight_dict(weights_before, self._edges, "weights_before", fill_zero=False)
        up = check_weight_dict(updates, self._edges, "updates", fill_zero=True)
        flat = check_state(state) if state is not None else None
        if self.update_every_steps:
            if in_trial is None:
                raise ValueError("in_trial: this run learns inside trials; the in-trial weights are required")
            rows = check_in_trial(in_trial, self._edges, self.n_in_trial_updates)
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
        self._final = check_weight_dict(final_weights, self._edges, "final_weights", fill_zero=False)
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
        arr, ids = check_trace(pop, var, data, node_ids, self.population_sizes)
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
                d = growing(g, "data", (n,), np.float32)
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
            append_rows(g["data"], block)
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
                d = growing(f[group], name, tail, np.float64, fill=np.nan)
                d.resize((self._n_trials_written,) + tail)
            self._dcache[path] = d = f[path]
        return d

    def _flush_iterations(self, f: h5py.File) -> None:
        if self._iters:
            for name in self._edges:
                append_rows(
                    self._ds(f"projections/{name}/weights"), np.stack([wb[name] for wb, _ in self._iters])
                )
                append_rows(
                    self._ds(f"projections/{name}/updates"), np.stack([up[name] for _, up in self._iters])
                )
                if self._in_trial:
                    append_rows(
                        self._ds(f"projections/{name}/in_trial_weights"),
                        np.stack([rows[name] for rows in self._in_trial]),
                    )
            self._n_iters_written += len(self._iters)
            self._iters.clear()
            self._in_trial.clear()
        if self._final is not None:
            for name in self._edges:
                append_rows(self._ds(f"projections/{name}/weights"), self._final[name][None, :])
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
                append_rows(self._ds(f"spikes/{pop}/timestamps"), steps.astype(np.float64) * self.dt_ms)
                append_rows(self._ds(f"spikes/{pop}/node_ids"), ids)
        append_rows(self._ds("inputs/values"), np.stack([t.x for t in trials]))
        if self.task_kind == "regression":
            append_rows(self._ds("targets/values"), np.stack([t.target for t in trials]))
        else:
            append_rows(self._ds("targets/labels"), np.array([t.target for t in trials], dtype=np.int64))
            append_rows(self._ds("targets/mask"), np.stack([t.mask for t in trials]))
        for proj, ests in self._estimators.items():
            n_edges = self._edges[proj][0].size
            for est in ests:
                ds = self._growing_ds(f"projections/{proj}/grad", est, (n_edges,))
                block = np.full((B, n_edges), np.nan)
                for i, t in enumerate(trials):
                    if (proj, est) in t.grads:
                        block[i] = t.grads[(proj, est)]
                append_rows(ds, block)
        for col in self._extras:
            ds = self._growing_ds("trials", col, ())
            append_rows(ds, np.array([t.extras.get(col, np.nan) for t in trials]))
        # mandatory trial rows last: a trial exists on disk once its row is there
        append_rows(self._ds("trials/loss"), np.array([t.loss for t in trials], dtype=np.float64))
        append_rows(self._ds("trials/iteration"), np.array([t.iteration for t in trials], dtype=np.int64))
        append_rows(self._ds("trials/n_steps"), np.array([t.n_steps for t in trials], dtype=np.int64))
        append_rows(self._ds("trials/start_step"), np.array([t.start_step for t in trials], dtype=np.int64))
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
