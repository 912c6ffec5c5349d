"""Streaming writer of the ``neuroplast-run`` HDF5 run log.

:class:`RunWriter` buffers trials in memory and appends them in whole chunks to resizable, chunked,
uncompressed datasets.  After every flush the file on disk is consistent: every trial counted in
``/trials`` (and in the root attribute ``n_trials_complete``) has its spikes, inputs, targets and gradients
written, because the trial rows are written *last*.  ``h5py.File.flush`` is called at the end of every flush,
so a writer killed with ``SIGKILL`` leaves a file from which :func:`neuroplast.io.open_run` reads every
flushed trial.  See ``docs/hdf5.md`` for the layout.

:meth:`RunWriter.append` reopens such a file (killed or closed, not finished; or finished, to extend it),
cuts every dataset back to the last complete iteration and continues writing; with the resumable state that
:meth:`RunWriter.add_iteration` stores under ``/resume`` a training run continues bit for bit
(``neuroplast run --resume``).

This module holds :class:`RunWriter` and the flush order; the jobs it delegates live next to it: argument
checks in :mod:`~neuroplast.io.checks`, the file layout in :mod:`~neuroplast.io.layout`, buffered trials and
iterations in :mod:`~neuroplast.io.buffer`, SONATA reports in :mod:`~neuroplast.io.reports`, resume slots in
:mod:`~neuroplast.io.state` and reopening a killed log in :mod:`~neuroplast.io.reopen`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from neuroplast.io.buffer import TrialRow, WriteBuffer
from neuroplast.io.checks import (
    SpikeDict,
    check_extras,
    check_grads,
    check_in_trial,
    check_spikes,
    check_start,
    check_state,
    check_target,
    check_weight_dict,
    check_x,
    run_spec,
)
from neuroplast.io.failure import METADATA, SLACK, make_room, quiet_dealloc, seal, writing_error
from neuroplast.io.interrupts import uninterrupted
from neuroplast.io.layout import TaskKind, create_run_file
from neuroplast.io.reopen import AppendMixin, Continuation
from neuroplast.io.reports import TraceMixin
from neuroplast.io.schema import (
    ATTR_DIVERGED,
    ATTR_FINISHED,
    ATTR_ITERATIONS_COMPLETE,
    ATTR_STOPPED,
    ATTR_TRIALS_COMPLETE,
    RunFileError,
)

# tests/test_resume.py (MID_FLUSH_CHILD) kills a run in the middle of a flush by replacing this module's
# ``_write_slot`` (so RunWriter.flush calls it through this module) and looks these names up here.
from neuroplast.io.schema import ATTR_STATE_ITERATION as ATTR_STATE_ITERATION
from neuroplast.io.schema import RESUME_GROUP as RESUME_GROUP
from neuroplast.io.schema import RESUME_SLOTS as RESUME_SLOTS
from neuroplast.io.state import SlotCache, read_states, state_digest
from neuroplast.io.state import write_slot as _write_slot

__all__ = ["RunWriter", "read_states", "state_digest"]


@dataclass(frozen=True)
class _FlushJob:
    """What one flush writes: the buffered rows, the resume states newer than the file's (``newest`` the
    latest of them, ``on_disk`` the iteration count of the state the file's counters vouch for now), and
    whether the run is finished."""

    buffer: WriteBuffer
    states: dict[int, dict[str, np.ndarray]]
    newest: int | None
    on_disk: int
    finished: bool


def _slot_holding(f: h5py.File, iteration: int) -> int | None:
    """Which resume slot (0, 1) holds the state of ``iteration`` (by its attribute), or None."""
    root = f.get(RESUME_GROUP)
    for k, name in enumerate(RESUME_SLOTS):
        g = root.get(name) if root is not None else None
        if g is not None and int(g.attrs.get(ATTR_STATE_ITERATION, -1)) == iteration:
            return k
    return None


class RunWriter(AppendMixin, TraceMixin):
    """Write one training run to a new ``neuroplast-run`` HDF5 file.

    Use as a context manager; the file is flushed and closed on exit (also when the block raises, in which
    case every complete buffered trial is still written).  While it is open the writer holds an exclusive
    lock on the file (:mod:`neuroplast.io.lock`): no other process can replace, reopen or read it.  Ctrl-C
    (SIGINT) is held back while a method writes to the file (:mod:`neuroplast.io.interrupts`) and raised
    as ``KeyboardInterrupt`` right after, so that the file and the writer always agree.

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
        If the file exists and ``force`` is false, another process has it open (a live writer; it is never
        deleted), or it cannot be created.
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
        path = Path(path)
        f = create_run_file(
            path, spec, force=force, config_toml=config_toml, seed=int(seed), brian2_version=brian2_version
        )
        self._init_state(path, f, Continuation.empty(spec), int(flush_every))

    def _init_state(self, path: Path, f: h5py.File, start: Continuation, flush_every: int) -> None:
        """Set every attribute, for a new file (``__init__``) and for a cut-back one (:meth:`append`)."""
        spec = start.spec
        self.path = path
        self._f: h5py.File | None = f
        self._finished = False
        self._stopped: str | None = None
        self._spec = spec
        self.dt_ms = spec.dt_ms
        self.task_kind: TaskKind = spec.task_kind
        self.n_in, self.n_out, self.n_steps = spec.n_in, spec.n_out, spec.n_steps
        self.update_every_steps = spec.update_every_steps
        self.population_sizes = spec.population_sizes
        self.flush_every = flush_every
        self._edges = spec.edges
        self._reports = start.reports
        self._buffer = WriteBuffer(
            spec,
            extras=start.extras,
            estimators=start.estimators,
            n_trials=start.n_trials,
            n_iterations=start.n_iterations,
        )
        self._n_trials_added = start.n_trials
        self._n_iters_added = start.n_iterations
        self._next_step = start.next_step
        #: States given to add_iteration and not yet written (at most the last two), by iteration count.
        self._states: dict[int, dict[str, np.ndarray]] = {}
        #: Iteration count of the newest state on disk (the file's last complete iteration).
        self._state_on_disk = start.n_iterations
        #: Flush at every ``flush_iterations``-th :meth:`add_iteration` (counted from opening); 1 = each.
        self.flush_iterations = 1
        self._iters_at_open = start.n_iterations
        self._slot_cache: SlotCache = {}
        #: The last input array given to add_trial; once it came again: (a copy of it, its check_x result).
        self._x_last: Any = None
        self._x_seen: tuple[np.ndarray, np.ndarray, int] | None = None
        self.resume_state = start.resume_state
        self.resumed = start.resumed
        #: Write the flushes that :meth:`add_trial`/:meth:`add_iteration` schedule in a writer thread while
        #: the caller goes on (``neuroplast run`` sets it; default ``False``: in the calling thread).  The
        #: file stays consistent either way; a kill while such a flush is being written leaves the file of
        #: the flush before it.  :meth:`flush`, :meth:`finish`, :meth:`mark_diverged` and :meth:`close` wait
        #: for it; an error in the writer thread is raised (as :class:`RunFileError`) by the next of those
        #: or the next scheduled flush.
        self.background = False
        self._pending: threading.Thread | None = None
        self._pending_error: BaseException | None = None
        self._failed: BaseException | None = None

    # ------------------------------------------------------------------ public API
    @property
    def n_in_trial_updates(self) -> int:
        """In-trial updates per trial, (n_steps − 1) // update_every_steps (0 without in-trial learning)."""
        return self._spec.n_in_trial_updates

    @property
    def n_trials(self) -> int:
        """Number of trials added so far (written or buffered)."""
        return self._n_trials_added

    @property
    def n_trials_flushed(self) -> int:
        """Number of trials already on disk (the file's ``n_trials_complete``)."""
        return self._buffer.n_trials_written

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

    @uninterrupted
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
        xpad, T = self._check_x(x)
        start = check_start(start_step, self._next_step)
        tval, mpad = check_target(self.task_kind, target, mask, T, self.n_steps, self.n_out)
        sp = check_spikes(spikes, self.population_sizes, start, T, local_spike_steps)
        ex = check_extras(extras)
        gr = check_grads(grads, self._edges)
        self._buffer.add_trial(TrialRow(start, T, int(iteration), float(loss), xpad, tval, mpad, sp, ex, gr))
        self._next_step = start + T
        self._n_trials_added += 1
        if len(self._buffer.trials) >= self.flush_every:
            self._scheduled_flush()
        return self._n_trials_added - 1

    def _check_x(self, x: Any) -> tuple[np.ndarray, int]:
        """:func:`~neuroplast.io.checks.check_x` of ``x``; the same array given again, and still equal to the
        copy kept when it came the second time (tasks with frozen input spikes give one array to every
        trial), shares that check's stored copy: one comparison instead of a cast and a comparison."""
        seen = self._x_seen
        if (
            seen is not None
            and x is self._x_last
            and x.dtype == seen[0].dtype
            and np.array_equal(x, seen[0])  # shapes too; a NaN is never equal: checked (and refused) again
        ):
            return seen[1], seen[2]
        xpad, T = check_x(x, self.n_in, self.n_steps)
        if type(x) is np.ndarray and x is self._x_last:
            self._x_seen = (x.copy(), xpad, T)
        else:
            self._x_last, self._x_seen = x, None
        return xpad, T

    @uninterrupted
    def add_iteration(
        self,
        weights_before: Mapping[str, Any],
        updates: Mapping[str, Any],
        *,
        state: Mapping[str, Any] | None = None,
        in_trial: Mapping[str, Any] | None = None,
        copy_state: bool = True,
    ) -> int:
        """Record one weight update; flush at every :attr:`flush_iterations`-th (by default every one).

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
        copy_state : bool, optional
            Copy the ``state`` arrays (default): the writer keeps the newest two until a flush.  ``False``
            keeps them as given, for a caller that never changes them afterwards (the trainer's
            :meth:`~neuroplast.training.trainer.Trainer.record`, whose states are read-only views of arrays
            that training replaces): the states of a flush window that are never written cost nothing.

        Returns
        -------
        int
            Index of the iteration (row of ``weights``/``updates``).
        """
        self._require_running()
        wb = check_weight_dict(weights_before, self._edges, "weights_before", fill_zero=False)
        up = check_weight_dict(updates, self._edges, "updates", fill_zero=True)
        flat = check_state(state, copy=copy_state) if state is not None else None
        rows: dict[str, np.ndarray] | None = None
        if self.update_every_steps:
            if in_trial is None:
                raise ValueError("in_trial: this run learns inside trials; the in-trial weights are required")
            rows = check_in_trial(in_trial, self._edges, self.n_in_trial_updates)
        elif in_trial is not None:
            raise ValueError("in_trial: this run log was created without update_every_steps")
        self._buffer.add_iteration(wb, up, rows)
        self._n_iters_added += 1
        if flat is not None:
            n = self._n_iters_added
            self._states = {k: v for k, v in self._states.items() if k == n - 1}
            self._states[n] = flat
        if (self._n_iters_added - self._iters_at_open) % max(1, int(self.flush_iterations)) == 0:
            self._scheduled_flush()
        return self._n_iters_added - 1

    @uninterrupted
    def finish(self, final_weights: Mapping[str, Any], stopped: str | None = None) -> None:
        """Store the weights after the last update, mark the run finished and flush.

        Parameters
        ----------
        final_weights : mapping of str to array_like
            ``projection -> (n_edges,)`` weights after the last update (row ``n_iterations`` of ``weights``).
        stopped : str, optional
            Why the run ends before its configured iterations (its stopping criterion was met): stored as the
            root attribute ``stopped`` together with ``finished``.
        """
        self._require_running()
        self._buffer.final = check_weight_dict(final_weights, self._edges, "final_weights", fill_zero=False)
        self._stopped = None if stopped is None else " ".join(str(stopped).split())
        self._finished = True
        self.flush()

    @uninterrupted
    def mark_diverged(self, message: str) -> None:
        """Flush what is complete and mark the run as diverged (root attribute ``diverged`` = ``message``).

        The run stays unfinished; ``neuroplast run --resume`` refuses it (it would diverge again).

        Parameters
        ----------
        message : str
            One line: what was not finite, where, at which iteration
            (:class:`~neuroplast.errors.DivergedError`'s message).  Newlines are folded.
        """
        self._require_running()
        self.flush()
        f = self._require_open()
        f.attrs[ATTR_DIVERGED] = " ".join(str(message).split())
        f.flush()

    # ------------------------------------------------------------------ flushing
    @uninterrupted
    def flush(self) -> None:
        """Write everything buffered, in an order that keeps the file consistent, then ``h5py`` flush.

        Order: traces, iterations (weights then updates), per-trial payload (spikes, inputs, targets,
        gradients, extra columns), the mandatory trial columns, the resume state (if given to
        :meth:`add_iteration`), and finally the ``n_trials_complete`` / ``n_iterations_complete`` attributes,
        each step in an h5py flush of its own (so that no order of HDF5's own writes within a flush puts a
        counter on disk before what it counts).

        The resume state of the newest iteration N goes to slot N % 2 and that of N − 1 to the other, as if
        every iteration had been flushed.  The state of the file's last complete iteration p stays valid
        until the attributes say N: when p's state is in slot N % 2, N is first written to the other slot,
        then (after the attributes) to its own; N − 1 is written last — before the attributes when its slot
        holds no valid state (the first flush of a run), so that a log killed right after it has the slots
        an uninterrupted one has.

        A flush still running in the background (:attr:`background`) is waited for first; this one is
        written before it returns.  A flush that fails leaves the file as the flush before it left it (its
        counters), and the writer writes nothing more (later flushes raise :class:`RunFileError`).  A flush
        that does not fit on the disk is refused before it writes anything, and an I/O error in the middle
        of one leaves the file as a kill at that moment would (:mod:`neuroplast.io.failure`); both raise
        one :class:`RunFileError` that says where the log ends.
        """
        job = self._take()
        try:
            self._write(job)
        except BaseException as exc:
            self._failed = exc
            if isinstance(exc, (OSError, RuntimeError)):
                raise writing_error(self.path, exc, self._buffer.n_iterations_written) from exc
            raise

    def _scheduled_flush(self) -> None:
        """The flush that :meth:`add_trial`/:meth:`add_iteration` schedule: in the calling thread, or with
        :attr:`background` handed to a writer thread (the previous one waited for first)."""
        if not self.background:
            self.flush()
            return
        job = self._take()
        thread = threading.Thread(target=self._write_in_background, args=(job,), name="neuroplast-log-flush")
        self._pending = thread
        thread.start()

    def _write_in_background(self, job: _FlushJob) -> None:
        try:
            self._write(job)
        except BaseException as exc:  # handed to the caller's thread at the next wait
            self._pending_error = exc

    def _wait(self) -> None:
        """Wait for a background flush; re-raise its error (the file then holds the flush before it)."""
        thread = self._pending
        if thread is not None:
            thread.join()
            self._pending = None
            exc, self._pending_error = self._pending_error, None
            if exc is not None:
                self._failed = exc
        if self._failed is not None:
            failed = self._failed
            if isinstance(failed, RunFileError):
                raise failed
            raise writing_error(self.path, failed, self._buffer.n_iterations_written) from failed

    def _take(self) -> _FlushJob:
        """Wait for a background flush, write the buffered traces, and take everything else buffered (with
        the resume states it writes) as one flush job; the buffers start empty."""
        self._wait()
        f = self._require_open()
        new = {k: v for k, v in self._states.items() if k > self._state_on_disk}
        # the disk space for all of it reserved, or nothing is written (a disk that filled up since the
        # last flush): HDF5 never meets a full disk in the middle of its writes
        states = sum(a.nbytes for state in new.values() for a in state.values())
        n_arrays = sum(len(state) for state in new.values())
        try:
            with quiet_dealloc():
                n_meta = self._buffer.n_datasets() + self._reports.n_datasets() + n_arrays
                reports = self._reports.nbytes() + SLACK * self._reports.n_datasets()
                nbytes = self._buffer.room(f, SLACK) + reports + states + n_meta * METADATA
                make_room(f.id.get_vfd_handle(), self.path, nbytes)
                self._reports.flush(f)
        except (OSError, RuntimeError) as exc:
            seal(f)  # nothing more reaches the file, and closing it cannot crash
            self._failed = exc
            raise writing_error(self.path, exc, self._buffer.n_iterations_written) from exc
        n = max(new, default=None)
        job = _FlushJob(self._buffer.take(), new, n, self._state_on_disk, self._finished)
        if n is not None:
            self._state_on_disk = n
            self._states = {k: v for k, v in self._states.items() if k > n}
        return job

    def _write(self, job: _FlushJob) -> None:
        """Write one flush job (in the caller's or the writer thread; nothing else touches the file then).
        An error seals the file (:func:`~neuroplast.io.failure.seal`): it keeps what is on disk, as after a
        kill."""
        f = self._require_open()
        with quiet_dealloc():
            try:
                self._write_job(f, job)
            except BaseException:
                seal(f)
                raise

    def _write_job(self, f: h5py.File, job: _FlushJob) -> None:
        buf = job.buffer
        buf.flush_iterations(f)
        buf.flush_trials(f)
        new, n = job.states, job.newest
        later = []
        if n is not None:
            p = job.on_disk
            held = _slot_holding(f, p) if p > 0 else None  # the slot the counters' state is in
            if held == n % 2:
                _write_slot(f, new[n], n, self._slot_cache, slot=(n + 1) % 2)
                later.append((n, None))
            else:
                _write_slot(f, new[n], n, self._slot_cache)
            if n - 1 in new:
                if held is None and not later:  # its slot holds no state anyone relies on: write it now
                    _write_slot(f, new[n - 1], n - 1, self._slot_cache)
                else:
                    later.append((n - 1, None))
        # HDF5 writes its cached metadata in no particular order within one flush (a kill during it can
        # leave any part on disk): everything above reaches the disk first, then the counters that vouch
        # for it, and only then are the slots that held the previous state overwritten.
        f.flush()
        f.attrs[ATTR_TRIALS_COMPLETE] = np.int64(buf.n_trials_written)
        f.attrs[ATTR_ITERATIONS_COMPLETE] = np.int64(buf.n_iterations_written)
        if job.finished:
            if self._stopped is not None:
                f.attrs[ATTR_STOPPED] = self._stopped
            f.attrs[ATTR_FINISHED] = np.int8(1)
        if later:
            f.flush()
        for k, _ in later:  # the state of N is valid on disk in the other slot
            _write_slot(f, new[k], k, self._slot_cache)
        f.flush()
        self._buffer.written(buf)

    # ------------------------------------------------------------------ closing
    @uninterrupted
    def close(self) -> None:
        """Flush what is buffered and close the file (idempotent).  After a background flush failed (and that
        was raised) nothing more is written: the file keeps the flush before it."""
        f = self._f
        if f is None:
            return
        try:
            if self._failed is None or self._pending is not None:  # else: that failure was reported
                self.flush()
        finally:
            if self._pending is not None:  # flush() was interrupted while it waited
                self._pending.join()
                self._pending = None
            self._f = None
            self._buffer.forget_datasets()
            self._slot_cache.clear()
            if self._failed is None:
                f.close()
            else:  # sealed, or nothing written since the refused flush: HDF5's own errors add nothing
                with quiet_dealloc(), contextlib.suppress(Exception):
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
