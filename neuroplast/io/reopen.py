"""Reopening an unfinished (killed or closed) run log: cut it back to its last complete iteration.

:func:`cut_back` is the file side of :meth:`RunWriter.append <neuroplast.io.RunWriter.append>`: it picks
``K``, the number of iterations to keep, sets the counters, shrinks every dataset to what iterations ``< K``
wrote, and returns everything a writer needs to continue (:class:`Reopened`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self, cast

import h5py
import numpy as np

from neuroplast.io.checks import check_flush_every
from neuroplast.io.interrupts import deferred_interrupts
from neuroplast.io.layout import RunSpec, TaskKind, open_for_writing
from neuroplast.io.lock import check_not_busy
from neuroplast.io.reports import Reports
from neuroplast.io.schema import (
    ATTR_FINISHED,
    ATTR_ITERATIONS_COMPLETE,
    ATTR_STOPPED,
    ATTR_TRIALS_COMPLETE,
    FORMAT_VERSION,
    ITERATION_DATASETS,
    TRIAL_COLUMNS,
    RunFileError,
    complete_iterations,
    complete_trials,
    gradient_names,
    per_trial_datasets,
)
from neuroplast.io.state import read_states

if TYPE_CHECKING:
    from neuroplast.io.reader import RunLog

__all__ = ["Continuation", "cut_back", "AppendMixin"]


@dataclass
class Continuation:
    """Where a writer starts: an empty new file (:meth:`empty`) or a file cut back by :func:`cut_back`.

    Attributes
    ----------
    spec : RunSpec
        Shape of the run.
    reports : Reports
        The stored reports (cut back), nothing buffered.
    extras : list of str
        Extra ``/trials`` columns in the file.
    estimators : dict of str to list of str
        ``projection -> stored gradient estimators``.
    n_trials, n_iterations : int
        Trials and iterations on disk.
    next_step : int
        First global step after the last trial on disk.
    resume_state : dict of str to numpy.ndarray or None
        Flat state of iteration ``K`` (``None`` for ``K = 0``, when none is stored, or for a new file).
    resumed : dict of str to int or None
        ``iterations`` (K), ``trials`` (kept), ``dropped_trials``, ``dropped_iterations``; ``None`` for a new
        file.
    """

    spec: RunSpec
    reports: Reports
    extras: list[str] = field(default_factory=list)
    estimators: dict[str, list[str]] = field(default_factory=dict)
    n_trials: int = 0
    n_iterations: int = 0
    next_step: int = 0
    resume_state: dict[str, np.ndarray] | None = None
    resumed: dict[str, int] | None = None

    @classmethod
    def empty(cls, spec: RunSpec) -> Continuation:
        """The start of a new file: nothing written, no trace, no estimator yet."""
        return cls(spec, Reports(spec.dt_ms), estimators={p: [] for p in spec.edges})


def _spec(f: h5py.File, run: RunLog) -> RunSpec:
    return RunSpec(
        dt_ms=run.dt_ms,
        task_kind=cast(TaskKind, run.task_kind),
        n_in=run.n_in,
        n_out=run.n_out,
        n_steps=run.n_steps,
        update_every_steps=int(run.update_every_steps),
        pops={pop: {k: np.asarray(d[()]) for k, d in g.items()} for pop, g in f["populations"].items()},
        population_sizes={pop: int(g.attrs["size"]) for pop, g in f["populations"].items()},
        edges={
            name: (np.asarray(g["source_ids"][()], np.uint64), np.asarray(g["target_ids"][()], np.uint64))
            for name, g in f["projections"].items()
        },
    )


def _kept_iterations(
    iteration: np.ndarray,
    n_iters: int,
    states: dict[int, dict[str, np.ndarray]],
    require_state: bool,
    trials_per_iteration: int | None,
) -> int | None:
    """Iterations to keep: the largest ``K <= n_iters`` whose trials are all there, in order.

    ``iteration`` is the ``/trials/iteration`` column of the complete trials; ``None`` if no ``K`` qualifies.
    """

    def ok(k: int) -> bool:
        n_keep = int(np.count_nonzero(iteration < k))
        if np.any(iteration[:n_keep] >= k) or (k > 0 and not np.all(np.diff(iteration[:n_keep]) >= 0)):
            return False
        if trials_per_iteration is not None and n_keep != k * int(trials_per_iteration):
            return False
        if k > 0 and n_keep and int(iteration[n_keep - 1]) != k - 1:
            return False
        return not require_state or k == 0 or k in states

    return next((k for k in range(n_iters, -1, -1) if ok(k)), None)


def _cut_spikes(f: h5py.File, end_step: int, dt_ms: float) -> None:
    """Drop every spike at or after ``end_step``."""
    for s in f["spikes"].values():
        ts, ids = s["timestamps"], s["node_ids"]
        n = min(ts.shape[0], ids.shape[0])
        steps = np.rint(np.asarray(ts[:n]) / dt_ms).astype(np.int64)
        m = int(np.searchsorted(steps, end_step, side="left"))
        ts.resize((m,))
        ids.resize((m,))


def cut_back(
    f: h5py.File, run: RunLog, *, require_state: bool, trials_per_iteration: int | None
) -> Continuation:
    """Cut an unfinished run log back to its last complete iteration ``K`` (see ``RunWriter.append``).

    The counters are set (and flushed) first, then every dataset is shrunk, so that a kill during the cuts
    leaves a file that reads (and resumes) the same.  The caller flushes at the end.

    Parameters
    ----------
    f : h5py.File
        The run log, open for writing.
    run : RunLog
        The same file, as validated by :func:`~neuroplast.io.open_run`.
    require_state : bool
        Keep only iterations with a valid resume slot (``K = 0`` needs none).
    trials_per_iteration : int, optional
        Trials every iteration has; ``K`` must have exactly ``K * trials_per_iteration`` trials.

    Returns
    -------
    Continuation
    """
    spec = _spec(f, run)
    gt, gproj = f["trials"], f["projections"]
    grads = gradient_names(f)
    per_trial = per_trial_datasets(f)
    iteration = np.asarray(gt["iteration"][: complete_trials(f, per_trial)])
    states = read_states(f)
    K = _kept_iterations(iteration, complete_iterations(f), states, require_state, trials_per_iteration)
    if K is None:  # pragma: no cover - k = 0 always qualifies
        raise RunFileError(run.path, "damaged run log: no consistent iteration to resume from")
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
    _cut_spikes(f, end_step, spec.dt_ms)
    reports = Reports.cut_back(f, end_step, spec.dt_ms)

    estimators: dict[str, list[str]] = {name: [] for name in spec.edges}
    for proj, est in grads:
        estimators[proj].append(est)
    return Continuation(
        spec=spec,
        reports=reports,
        extras=[c for c in gt if c not in TRIAL_COLUMNS],
        estimators=estimators,
        n_trials=n_keep,
        n_iterations=K,
        next_step=end_step,
        resume_state=states.get(K) if K > 0 else None,
        resumed={
            "iterations": K,
            "trials": n_keep,
            "dropped_trials": int(total - n_keep),
            "dropped_iterations": int(max(0, dropped_iters)),
        },
    )


class AppendMixin:
    """:meth:`append`, the alternate constructor of :class:`~neuroplast.io.RunWriter` for an existing file."""

    if TYPE_CHECKING:  # RunWriter's, shared with its __init__

        def _init_state(self, path: Path, f: h5py.File, start: Continuation, flush_every: int) -> None: ...

    @classmethod
    def append(
        cls,
        path: str | Path,
        *,
        flush_every: int = 16,
        require_state: bool = False,
        trials_per_iteration: int | None = None,
        extend: bool = False,
        config_toml: str | None = None,
    ) -> Self:
        """Reopen an unfinished (e.g. killed) run log, cut it back to its last complete iteration, continue.

        With ``extend`` a *finished* run log is reopened too, to train it further: ``finished`` is cleared
        and its final-weights row is cut off with the rest (row ``K`` of ``weights`` is then written again
        by the next iteration); :meth:`finish` sets both again.

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
        extend : bool, optional
            Also reopen a finished run log (see above).
        config_toml : str, optional
            Replaces the stored ``config`` attribute (e.g. with the new ``training.iterations`` of a run
            that is extended); written before anything is cut.

        Returns
        -------
        RunWriter
            Open writer.  ``resume_state`` is the flat state of iteration ``K`` (``None`` for ``K = 0`` or
            when no state is stored) and ``resumed`` is a dict with ``iterations`` (``K``), ``trials`` (kept),
            ``dropped_trials`` and ``dropped_iterations`` (rows cut off).

        Raises
        ------
        RunFileError
            If the file is missing, not a run log, finished (without ``extend``), diverged (attribute
            ``diverged``), open in another process (a live writer), or damaged beyond its last flush.
        """
        from neuroplast.io.reader import open_run

        check_not_busy(path)  # a live writer's file: say so (open_for_writing below is what enforces it)
        run = open_run(path)  # validates format, version, groups and required attributes
        if run.diverged is not None:
            raise RunFileError(run.path, f"run diverged ({run.diverged}); it cannot be continued")
        if run.finished and not extend:
            raise RunFileError(run.path, "run already finished; nothing to resume")
        n_flush = check_flush_every(flush_every)
        if config_toml is not None:
            try:
                tomllib.loads(config_toml)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"config_toml is not valid TOML: {exc}") from exc
        with deferred_interrupts():
            f = open_for_writing(run.path)
            try:
                if run.finished:
                    f.attrs[ATTR_FINISHED] = np.int8(0)
                    if ATTR_STOPPED in f.attrs:  # an extended run is no longer stopped where it was
                        del f.attrs[ATTR_STOPPED]
                if config_toml is not None:
                    f.attrs["config"] = config_toml
                if run.format_version < FORMAT_VERSION:  # the slots written from now on are this version's
                    f.attrs["format_version"] = np.int64(FORMAT_VERSION)
                f.flush()
                start = cut_back(
                    f, run, require_state=require_state, trials_per_iteration=trials_per_iteration
                )
                f.flush()
            except BaseException:
                f.close()
                raise
        # the object is made without __init__ (which creates a new file) and set up by the same
        # _init_state that __init__ uses
        self = cls.__new__(cls)
        self._init_state(run.path, f, start, n_flush)
        return self
