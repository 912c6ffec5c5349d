"""Trials and iterations buffered between flushes, and how each flush writes them.

:class:`WriteBuffer` keeps what :class:`~neuroplast.io.RunWriter` was given since its last flush and appends
it in whole blocks.  :meth:`WriteBuffer.flush_trials` writes the per-trial payload (spikes, inputs, targets,
gradients, extra columns) before the mandatory ``/trials`` rows: a trial exists on disk once its row is there.
The flush order across the buffers (and the ``h5py`` flush) is :meth:`RunWriter.flush`'s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import h5py
import numpy as np

from neuroplast.io.layout import Growing, RunSpec, append_row_list, append_rows, growing
from neuroplast.io.schema import MODEL_UNITS, column_units

__all__ = ["TrialRow", "WriteBuffer"]


@dataclass
class TrialRow:
    """One checked trial, in the dtypes and padding it is stored with."""

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


class WriteBuffer:
    """Pending trials and iterations of one writer, with the datasets they go to.

    Parameters
    ----------
    spec : RunSpec
        Shape of the run.
    extras : list of str
        Extra ``/trials`` columns already in the file (new ones are added as trials bring them).
    estimators : dict of str to list of str
        ``projection -> gradient estimators`` already in the file.
    n_trials, n_iterations : int
        Trials and iterations already on disk.
    """

    def __init__(
        self,
        spec: RunSpec,
        *,
        extras: list[str],
        estimators: dict[str, list[str]],
        n_trials: int,
        n_iterations: int,
    ) -> None:
        self.spec = spec
        self.trials: list[TrialRow] = []
        self.iterations: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        self.in_trial: list[dict[str, np.ndarray]] = []
        self.final: dict[str, np.ndarray] | None = None
        self.extras = extras
        self.estimators = estimators
        self.n_trials_written = n_trials
        self.n_iterations_written = n_iterations
        self._dcache: dict[str, Growing] = {}
        self._blocks: dict[str, np.ndarray] = {}

    def add_trial(self, row: TrialRow) -> None:
        """Buffer a trial; its extra columns and estimators join the file's at the next flush."""
        self.trials.append(row)
        for k in row.extras:
            if k not in self.extras:
                self.extras.append(k)
        for proj, est in row.grads:
            if est not in self.estimators[proj]:
                self.estimators[proj].append(est)

    def add_iteration(
        self,
        weights_before: dict[str, np.ndarray],
        updates: dict[str, np.ndarray],
        in_trial: dict[str, np.ndarray] | None,
    ) -> None:
        """Buffer one update (``in_trial`` for runs that learn inside their trials, else ``None``)."""
        if in_trial is not None:
            self.in_trial.append(in_trial)
        self.iterations.append((weights_before, updates))

    def take(self) -> WriteBuffer:
        """Everything buffered, as a buffer of its own to flush (in another thread, possibly); this one
        starts empty.  Both share the open datasets and scratch blocks: only one of them flushes at a time."""
        job = copy.copy(self)
        job.extras = list(self.extras)
        job.estimators = {k: list(v) for k, v in self.estimators.items()}
        self.trials, self.iterations, self.in_trial, self.final = [], [], [], None
        return job

    def room(self, f: h5py.File, slack: int) -> int:
        """Bytes that flushing this buffer adds to ``f`` at most, besides metadata: the whole chunks it
        starts in every dataset it appends to (:meth:`Growing.new_bytes`), or for a dataset it creates, its
        rows and ``slack``.  Called while no flush runs (the open datasets' lengths are those on disk)."""
        total = 0

        def grow(path: str, rows: int, row_bytes: int) -> None:
            nonlocal total
            if rows == 0:
                return
            if path in self._dcache or path in f:
                total += self._ds(f, path).new_bytes(rows)
            else:  # created by this flush (a new extra column or estimator)
                total += rows * row_bytes + slack

        B, spec = len(self.trials), self.spec
        if B:
            for pop in spec.pops:
                n = sum(t.spikes[pop][0].size for t in self.trials if pop in t.spikes)
                grow(f"spikes/{pop}/timestamps", n, 8)
                grow(f"spikes/{pop}/node_ids", n, 8)
            grow("inputs/values", B, self.trials[0].x.nbytes)
            if spec.task_kind == "regression":
                grow("targets/values", B, self.trials[0].target.nbytes)
            else:
                grow("targets/labels", B, 8)
                grow("targets/mask", B, spec.n_steps)
            for proj, ests in self.estimators.items():
                for est in ests:
                    grow(f"projections/{proj}/grad/{est}", B, 8 * spec.edges[proj][0].size)
            for col in (*self.extras, "loss", "iteration", "n_steps", "start_step"):
                grow(f"trials/{col}", B, 8)
        n_it = len(self.iterations)
        for name, (src, _) in spec.edges.items():
            grow(f"projections/{name}/weights", n_it + (self.final is not None), 8 * src.size)
            grow(f"projections/{name}/updates", n_it, 8 * src.size)
            grow(f"projections/{name}/in_trial_weights", len(self.in_trial), 8 * src.size * spec.n_steps)
        return total

    def n_datasets(self) -> int:
        """Datasets that flushing this buffer appends to (each gets metadata)."""
        n = 0
        if self.trials:
            # the columns, extras, spikes (timestamps, ids), inputs, targets (labels, mask), gradients
            n += 4 + len(self.extras) + 2 * len(self.spec.pops) + 3
            n += sum(len(ests) for ests in self.estimators.values())
        if self.iterations or self.final is not None:
            n += (2 + bool(self.in_trial)) * len(self.spec.edges)
        return n

    def written(self, job: WriteBuffer) -> None:
        """Take over the counts of rows on disk from ``job`` (from :meth:`take`), once it is flushed."""
        self.n_trials_written = job.n_trials_written
        self.n_iterations_written = job.n_iterations_written

    def forget_datasets(self) -> None:
        """Drop the open datasets (the file is being closed)."""
        self._dcache.clear()

    def _ds(self, f: h5py.File, path: str) -> Growing:
        """Open dataset at ``path`` (kept open, with its length and row shape: h5py lookups and property calls
        cost more than small writes)."""
        d = self._dcache.get(path)
        if d is None:
            d = self._dcache[path] = Growing(f[path])
        return d

    def _scratch(self, key: str, n: int, dtype: type) -> np.ndarray:
        """A length-``n`` block to gather a flush's spikes in, kept between flushes (a fresh block of
        megabytes costs a page fault per page at every flush)."""
        a = self._blocks.get(key)
        if a is None or a.size < n:
            a = self._blocks[key] = np.empty(max(n, 2 * (a.size if a is not None else 0)), dtype=dtype)
        return a[:n]

    def _growing_ds(self, f: h5py.File, group: str, name: str, tail: tuple[int, ...]) -> Growing:
        """``group/name``, created (float64, NaN filled, grown to the trials written so far) if missing."""
        path = f"{group}/{name}"
        d = self._dcache.get(path)
        if d is None:
            if path not in f:
                d = growing(f[group], name, tail, np.float64, fill=np.nan)
                d.resize((self.n_trials_written,) + tail)
                d.attrs["units"] = column_units(name) if group == "trials" else MODEL_UNITS
            self._dcache[path] = d = Growing(f[path])
        return d

    def flush_iterations(self, f: h5py.File) -> None:
        """Append the buffered ``weights``/``updates`` (and ``in_trial_weights``) rows, then final weights."""
        edges = self.spec.edges
        if self.iterations:
            for name in edges:
                append_row_list(
                    self._ds(f, f"projections/{name}/weights"), [wb[name] for wb, _ in self.iterations]
                )
                append_row_list(
                    self._ds(f, f"projections/{name}/updates"), [up[name] for _, up in self.iterations]
                )
                if self.in_trial:
                    append_row_list(
                        self._ds(f, f"projections/{name}/in_trial_weights"),
                        [rows[name] for rows in self.in_trial],
                    )
            self.n_iterations_written += len(self.iterations)
            self.iterations.clear()
            self.in_trial.clear()
        if self.final is not None:
            for name in edges:
                append_rows(self._ds(f, f"projections/{name}/weights"), self.final[name][None, :])
            self.final = None

    def flush_trials(self, f: h5py.File) -> None:
        """Append the buffered trials: payload first, the mandatory ``/trials`` rows last."""
        trials = self.trials
        if not trials:
            return
        spec = self.spec
        B = len(trials)
        for pop in spec.pops:
            parts = [t.spikes[pop] for t in trials if pop in t.spikes]
            if parts:
                # timestamps = steps * dt of every trial, in one pass each into the block written (the same
                # float64 products as casting the concatenated steps and multiplying)
                n = sum(p[0].size for p in parts)
                ts = self._scratch(f"{pop}/timestamps", n, np.float64)
                k = 0
                for steps, _ in parts:
                    np.multiply(steps, spec.dt_ms, out=ts[k : k + steps.size])
                    k += steps.size
                append_rows(self._ds(f, f"spikes/{pop}/timestamps"), ts)
                ids = self._scratch(f"{pop}/node_ids", n, np.uint64)
                append_rows(
                    self._ds(f, f"spikes/{pop}/node_ids"), np.concatenate([p[1] for p in parts], out=ids)
                )
        append_row_list(self._ds(f, "inputs/values"), [t.x for t in trials])
        if spec.task_kind == "regression":
            append_row_list(self._ds(f, "targets/values"), [t.target for t in trials])
        else:
            append_rows(self._ds(f, "targets/labels"), np.array([t.target for t in trials], dtype=np.int64))
            append_row_list(self._ds(f, "targets/mask"), [t.mask for t in trials])
        for proj, ests in self.estimators.items():
            n_edges = spec.edges[proj][0].size
            missing = np.full(n_edges, np.nan)
            for est in ests:
                ds = self._growing_ds(f, f"projections/{proj}/grad", est, (n_edges,))
                append_row_list(ds, [t.grads.get((proj, est), missing) for t in trials])
        for col in self.extras:
            ds = self._growing_ds(f, "trials", col, ())
            append_rows(ds, np.array([t.extras.get(col, np.nan) for t in trials]))
        # mandatory trial rows last: a trial exists on disk once its row is there
        append_rows(self._ds(f, "trials/loss"), np.array([t.loss for t in trials], dtype=np.float64))
        append_rows(self._ds(f, "trials/iteration"), np.array([t.iteration for t in trials], dtype=np.int64))
        append_rows(self._ds(f, "trials/n_steps"), np.array([t.n_steps for t in trials], dtype=np.int64))
        append_rows(
            self._ds(f, "trials/start_step"), np.array([t.start_step for t in trials], dtype=np.int64)
        )
        self.n_trials_written += B
        trials.clear()
