"""Reader of the ``neuroplast-run`` HDF5 run log.

:func:`open_run` validates the file and returns a :class:`RunLog` with typed access.  The HDF5 file is
opened only for the duration of each access, so a :class:`RunLog` holds no file handle.  Every problem with
the file (missing, not HDF5, truncated, not a run log, newer format, missing projection ...) raises
:class:`~neuroplast.io.schema.RunFileError` with a one-line message naming the file.

A file whose writer was killed is read up to its last flush: the number of trials is the smallest of the
``n_trials_complete`` attribute and the lengths of the per-trial datasets
(:func:`~neuroplast.io.schema.complete_trials`), and every per-trial array is cut to that length.  Link names
starting with ``.`` (gradients being written by :func:`~neuroplast.io.add_gradients`) are ignored.

The reader never writes; gradients computed after a run are added with :func:`neuroplast.io.add_gradients`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuroplast.io.schema import (
    ATTR_DIVERGED,
    ATTR_FINISHED,
    ATTR_STOPPED,
    FORMAT_NAME,
    FORMAT_VERSION,
    TRIAL_COLUMNS,
    RunFileError,
    column_units,
    complete_iterations,
    complete_trials,
    is_hidden,
    report_root,
    report_var,
)
from neuroplast.io.validate import validate_file, validate_layout

__all__ = ["open_run", "RunLog", "ProjectionLog", "TrialReplay", "Trace"]

_REQUIRED_GROUPS = ("populations", "spikes", "trials", "inputs", "targets", "projections")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


#: HDF5's message when another process holds the file (``flock`` refused: errno 11, EAGAIN).
_LOCKED = re.compile(r"unable to lock file|\block(ed|ing)?\b.*(errno = 11|temporarily unavailable)", re.I)
#: HDF5's message when the file is shorter than its superblock says.
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def _open_error(path: Path, exc: OSError) -> RunFileError:
    """The one-line error for a file HDF5 cannot open: held by another process, cut short, or damaged."""
    msg = _one_line(exc)
    if _LOCKED.search(msg):
        return RunFileError(path, f"cannot open: it is open in another process (still being written?): {msg}")
    m = _TRUNCATED.search(msg)
    if m:
        return RunFileError(
            path,
            f"truncated or damaged file: it has {int(m.group(1))} bytes but its HDF5 superblock says "
            f"{int(m.group(2))} (copy cut short?)",
        )
    return RunFileError(path, f"damaged file, cannot open as HDF5: {msg}")


#: What :meth:`RunLog.summary` says for each :meth:`RunLog.status`.
_STATUS = {
    "finished": "finished (final weights written)",
    "killed": "not finished: killed or interrupted (or still being written); `neuroplast run --resume` "
    "continues it",
    "diverged": "diverged: training stopped on a non-finite loss, gradient or weight (the iterations before "
    "it are kept)",
}
#: ``written_by`` of the gradients that ``neuroplast compare`` stores.
_COMPARE = "neuroplast compare"


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values (NaN if none: a column that appeared later has NaN rows before)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _estimators(g: h5py.Group) -> list[str]:
    """Gradient estimators stored in projection group ``g``, sorted (hidden names left out)."""
    return sorted(e for e in g["grad"].keys() if not is_hidden(e)) if "grad" in g else []


def _attr(value: Any) -> Any:
    """Convert an HDF5 attribute value to a plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class TrialReplay:
    """Everything needed to re-run trial ``index`` outside the training loop.

    Attributes
    ----------
    index : int
        Trial index ``k``.
    iteration : int
        Training iteration the trial belongs to.
    start_step : int
        Global step of the trial's first step.
    n_steps : int
        Number of steps ``T`` of the trial.
    x : numpy.ndarray, shape (T, n_in), float64
        Input spikes (counts per step).
    target : numpy.ndarray or int
        Regression: target values, shape (T, n_out), float64.  Classification: the class label.
    mask : numpy.ndarray of bool, shape (T,), or None
        Classification: steps that enter the loss; ``None`` for regression.
    weights_before : dict of str to numpy.ndarray or None
        ``projection -> (n_edges,)`` weights the trial ran with (row ``iteration`` of ``weights``), in
        edge order; ``None`` if that row was never written (writer killed before the iteration ended).
    loss : float
        Loss recorded for the trial.
    update_every_steps : int
        k > 0 if the trial learned inside itself (0 otherwise).
    in_trial_weights : dict of str to numpy.ndarray or None
        With k > 0: ``projection -> ((T − 1) // k, n_edges)`` the weights in force from step k, 2k, … of
        the trial on (``weights_before`` holds for steps 0 … k − 1).
    """

    index: int
    iteration: int
    start_step: int
    n_steps: int
    x: np.ndarray
    target: np.ndarray | int
    mask: np.ndarray | None
    weights_before: dict[str, np.ndarray] | None
    loss: float
    update_every_steps: int = 0
    in_trial_weights: dict[str, np.ndarray] | None = None

    def weights_at(self, step: int) -> dict[str, np.ndarray] | None:
        """Weights in force at 0-based step ``step`` of the trial (edge order), or ``None`` if not logged."""
        if not 0 <= step < self.n_steps:
            raise IndexError(f"step {step} outside the trial's {self.n_steps} steps")
        m = step // self.update_every_steps if self.update_every_steps else 0
        if m == 0 or self.weights_before is None:
            return self.weights_before
        if self.in_trial_weights is None:
            return None
        return {k: v[m - 1] for k, v in self.in_trial_weights.items()}


@dataclass(frozen=True)
class Trace:
    """Per-step trace of one variable (a SONATA report).

    Attributes
    ----------
    pop, var : str
        Population and variable.
    times_ms : numpy.ndarray, shape (T,)
        Time of every row, ms.
    node_ids : numpy.ndarray of uint64, shape (n_elements,)
        Node id of every column.
    data : numpy.ndarray of float32, shape (T, n_elements)
        Values.
    units : str
        Units of ``data``.
    """

    pop: str
    var: str
    times_ms: np.ndarray
    node_ids: np.ndarray
    data: np.ndarray
    units: str


class ProjectionLog:
    """Weights, updates and gradients of one projection.

    Attributes
    ----------
    name : str
        Projection name.
    source_ids, target_ids : numpy.ndarray of uint64, shape (n_edges,)
        Edge end points, in edge order.
    weights : numpy.ndarray, shape (n_iterations + 1, n_edges) or (n_iterations, n_edges)
        Weights before every update, plus the final weights once the run finished.
    updates : numpy.ndarray, shape (n_iterations, n_edges)
        Change applied at every update (with in-trial learning: the trial-end update, applied to the last
        in-trial weights).
    in_trial_weights : numpy.ndarray, shape (n_iterations, n_in_trial_updates, n_edges), or None
        Runs that learn inside trials: the weights in force from step k, 2k, … of each iteration's trial.
    estimators : list of str
        Names of the stored gradient estimators (``eprop``, ``bptt`` ...).
    """

    def __init__(self, run: RunLog, name: str, g: h5py.Group) -> None:
        self._run = run
        self.name = name
        self.source_ids = np.asarray(g["source_ids"][()], dtype=np.uint64)
        self.target_ids = np.asarray(g["target_ids"][()], dtype=np.uint64)
        n_it = run.n_iterations
        self.updates = np.asarray(g["updates"][:n_it])
        # the final row only once the run finished: a row past the counters of an unfinished log is a flush
        # that a kill cut short (its weights reach the disk before the counters)
        self.weights = np.asarray(g["weights"][: n_it + int(bool(run.finished))])
        self.in_trial_weights = np.asarray(g["in_trial_weights"][:n_it]) if "in_trial_weights" in g else None
        self.estimators = _estimators(g)

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return int(self.source_ids.size)

    def grad(self, estimator: str) -> np.ndarray:
        """Per-trial gradient of the loss with respect to every weight.

        Parameters
        ----------
        estimator : str
            Estimator name, one of :attr:`estimators`.

        Returns
        -------
        numpy.ndarray, shape (n_trials, n_edges), float64
            NaN where the estimator was not computed for a trial.

        Raises
        ------
        RunFileError
            If the estimator is not stored for this projection.
        """
        self._check_estimator(estimator)
        with self._run._open() as f:
            return np.asarray(f["projections"][self.name]["grad"][estimator][: self._run.n_trials])

    def grad_attrs(self, estimator: str) -> dict[str, Any]:
        """Attributes of a stored gradient (e.g. ``written_by``), as plain Python values.

        Parameters
        ----------
        estimator : str
            Estimator name, one of :attr:`estimators`.

        Returns
        -------
        dict of str to Any
            Empty if the dataset has no attributes.

        Raises
        ------
        RunFileError
            If the estimator is not stored for this projection.
        """
        self._check_estimator(estimator)
        with self._run._open() as f:
            return {k: _attr(v) for k, v in f["projections"][self.name]["grad"][estimator].attrs.items()}

    def _check_estimator(self, estimator: str) -> None:
        if estimator not in self.estimators:
            raise RunFileError(
                self._run.path,
                f"projection {self.name!r} has no gradient estimator {estimator!r} "
                f"(available: {', '.join(self.estimators) or 'none'})",
            )

    def __repr__(self) -> str:
        return (
            f"ProjectionLog({self.name!r}, n_edges={self.n_edges}, weights={self.weights.shape}, "
            f"estimators={self.estimators})"
        )


class RunLog:
    """Typed, read-only view of a run log.  Create it with :func:`open_run`.

    Attributes
    ----------
    path : Path
        The file.
    attrs : dict
        Root attributes as plain Python values.
    config_toml : str
        Full resolved configuration (TOML text).
    dt_ms : float
        Time step, ms.
    seed : int
        Random seed.
    format_version : int
        Layout version of the file.
    task_kind : str
        ``"regression"`` or ``"classification"``.
    n_in, n_out, n_steps : int
        Input channels, readout units, maximum steps per trial.
    n_trials : int
        Number of complete trials on disk.
    n_iterations : int
        Number of weight updates on disk.
    finished : bool
        Whether :meth:`RunWriter.finish` was called (final weights present).
    diverged : str or None
        See the property.
    trials : dict of str to numpy.ndarray
        Per-trial columns (``start_step``, ``n_steps``, ``iteration``, ``loss`` and extras), each
        ``(n_trials,)``; :meth:`trials_frame` gives them as a table.
    trial_units : dict of str to str
        Units of every per-trial column (``"steps"``, ``"Hz"``, ``"1"`` for dimensionless ...).
    populations : dict of str to dict of str to numpy.ndarray
        Per-neuron parameters of every population.
    population_sizes : dict of str to int
        Number of neurons per population.
    projection_names : list of str
        Stored projections.
    traces : list of (str, str)
        ``(pop, var)`` pairs with a stored report.
    """

    def __init__(self, path: Path, *, strict: bool = False) -> None:
        self.path = path
        self._n_edges: dict[str, int] = {}
        with self._open() as f:
            self._load(f, strict)

    # ------------------------------------------------------------------ file access
    @contextmanager
    def _open(self) -> Iterator[h5py.File]:
        try:
            f = h5py.File(self.path, "r")
        except FileNotFoundError as exc:
            raise RunFileError(self.path, "no such file") from exc
        except OSError as exc:
            raise _open_error(self.path, exc) from exc
        try:
            yield f
        except RunFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
            raise RunFileError(self.path, f"damaged run log: {_one_line(exc)}") from exc
        finally:
            f.close()

    def _load(self, f: h5py.File, strict: bool) -> None:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        fmt = attrs.get("format")
        if fmt is None:
            raise RunFileError(self.path, "not a neuroplast run log (no 'format' attribute)")
        if fmt != FORMAT_NAME:
            raise RunFileError(
                self.path, f"not a neuroplast run log (format={fmt!r}, expected {FORMAT_NAME!r})"
            )
        version = attrs.get("format_version")
        if not isinstance(version, int):
            raise RunFileError(self.path, f"missing or invalid 'format_version' attribute ({version!r})")
        if version > FORMAT_VERSION:
            raise RunFileError(
                self.path,
                f"format_version {version} is newer than this neuroplast supports ({FORMAT_VERSION}); "
                "upgrade neuroplast",
            )
        for grp in _REQUIRED_GROUPS:
            if grp not in f:
                raise RunFileError(self.path, f"damaged run log: group /{grp} is missing")
        for key in ("dt_ms", "config", "task_kind", "n_in", "n_out", "n_steps"):
            if key not in attrs:
                raise RunFileError(self.path, f"damaged run log: root attribute {key!r} is missing")
        self.attrs: dict[str, Any] = attrs
        self.format_version = version
        self.config_toml: str = str(attrs["config"])
        self.dt_ms = float(attrs["dt_ms"])
        self.seed = int(attrs.get("seed", -1))
        self.task_kind = str(attrs["task_kind"])
        self.n_in, self.n_out, self.n_steps = int(attrs["n_in"]), int(attrs["n_out"]), int(attrs["n_steps"])
        self.finished = bool(attrs.get(ATTR_FINISHED, 0))
        self.update_every_steps = int(attrs.get("update_every_steps", 0))

        validate_layout(f, self.path, attrs, strict=strict)
        gt = f["trials"]
        missing = [c for c in TRIAL_COLUMNS if c not in gt]
        if missing:
            raise RunFileError(self.path, f"damaged run log: /trials lacks {', '.join(missing)}")
        self.n_trials = complete_trials(f)
        self.trials: dict[str, np.ndarray] = {k: np.asarray(d[: self.n_trials]) for k, d in gt.items()}
        self.trial_units: dict[str, str] = {
            k: str(_attr(d.attrs["units"])) if "units" in d.attrs else column_units(k) for k, d in gt.items()
        }

        self.projection_names = sorted(f["projections"].keys())
        self.n_iterations = complete_iterations(f)
        validate_file(f, self.path, attrs, self.n_trials, self.n_iterations, strict=strict)

        self.populations: dict[str, dict[str, np.ndarray]] = {}
        self.population_sizes: dict[str, int] = {}
        for pop, g in f["populations"].items():
            self.populations[pop] = {k: np.asarray(d[()]) for k, d in g.items()}
            self.population_sizes[pop] = int(g.attrs.get("size", 0))
        self.traces: list[tuple[str, str]] = sorted(
            (pop, var) for name in f.keys() if (var := report_var(name)) is not None for pop in f[name].keys()
        )

    # ------------------------------------------------------------------ accessors
    @property
    def diverged(self) -> str | None:
        """The one-line reason the run stopped with a non-finite loss, gradient or weight, else ``None``.

        The root attribute ``diverged``, e.g. ``"diverged at iteration 2: the loss of trial 1 of the batch is
        inf"``; present only in a run that diverged (its iterations before that one are all kept).
        """
        value = self.attrs.get(ATTR_DIVERGED)
        return None if value is None else str(value)

    @property
    def stopped(self) -> str | None:
        """Why a finished run has fewer iterations than its config's ``training.iterations``, else ``None``.

        The root attribute ``stopped``, e.g. ``"stopped after iteration 212: error 0.066 < 0.07 over the
        trials of the last 10 iterations (training.stop_error)"``.
        """
        value = self.attrs.get(ATTR_STOPPED)
        return None if value is None else str(value)

    @property
    def spike_populations(self) -> list[str]:
        """Populations with a spike group."""
        with self._open() as f:
            return sorted(f["spikes"].keys())

    def projection(self, name: str) -> ProjectionLog:
        """Weights, updates and gradients of projection ``name``.

        Raises
        ------
        RunFileError
            If the projection is not in the file.
        """
        if name not in self.projection_names:
            raise RunFileError(
                self.path,
                f"has no projection {name!r} (available: {', '.join(self.projection_names) or 'none'})",
            )
        with self._open() as f:
            return ProjectionLog(self, name, f["projections"][name])

    def _end_step(self) -> int:
        if self.n_trials == 0:
            return 0
        return int(self.trials["start_step"][-1] + self.trials["n_steps"][-1])

    def spikes(
        self, pop: str, trial: int | None = None, *, relative: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Spikes of a population, sorted by time.

        Parameters
        ----------
        pop : str
            Population name.
        trial : int, optional
            Only the spikes of this trial (timestamps stay global unless ``relative``).
        relative : bool
            With ``trial``: times from the trial's start (its first step is 0 ms).

        Returns
        -------
        timestamps : numpy.ndarray of float64
            Spike times, ms (``step * dt_ms``, on the run's continuous time axis; from the trial's start
            with ``relative``).
        node_ids : numpy.ndarray of uint64
            Node ids.
        """
        if relative and trial is None:
            raise ValueError("spikes: relative=True needs a trial")
        ts, ids = self._spikes(pop)
        steps = np.rint(ts / self.dt_ms).astype(np.int64)
        if trial is None:
            lo, hi = 0, self._end_step()  # drop spikes of trials a killed writer never listed
        else:
            k = self._trial_index(trial)
            lo = int(self.trials["start_step"][k])
            hi = lo + int(self.trials["n_steps"][k])
        a, b = np.searchsorted(steps, [lo, hi], side="left")
        return (ts[a:b] - lo * self.dt_ms if relative else ts[a:b]), ids[a:b]

    def spikes_by_trial(self, pop: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every trial's spikes of ``pop``, times from the trial's start (read once).

        Returns
        -------
        list of (numpy.ndarray of float64, numpy.ndarray of uint64)
            Per trial ``k``: spike times in ms from the trial's first step (``(step − start_step[k]) ·
            dt_ms``, in ``[0, n_steps[k] · dt_ms)``) and node ids, sorted by time.
        """
        ts, ids = self._spikes(pop)
        steps = np.rint(ts / self.dt_ms).astype(np.int64)
        lo = np.asarray(self.trials["start_step"], dtype=np.int64)
        a = np.searchsorted(steps, lo, side="left")
        b = np.searchsorted(steps, lo + np.asarray(self.trials["n_steps"], dtype=np.int64), side="left")
        return [(ts[i:j] - s * self.dt_ms, ids[i:j]) for i, j, s in zip(a, b, lo, strict=True)]

    def _spikes(self, pop: str) -> tuple[np.ndarray, np.ndarray]:
        """All stored spikes of ``pop``: timestamps (ms) and node ids."""
        with self._open() as f:
            if pop not in f["spikes"]:
                raise RunFileError(
                    self.path,
                    f"has no spikes for population {pop!r} "
                    f"(available: {', '.join(sorted(f['spikes'].keys()))})",
                )
            g = f["spikes"][pop]
            ts = np.asarray(g["timestamps"][()], dtype=np.float64)
            ids = np.asarray(g["node_ids"][()], dtype=np.uint64)
        n = min(ts.size, ids.size)
        return ts[:n], ids[:n]

    def _trial_index(self, k: int) -> int:
        k = int(k)
        if k < 0:
            k += self.n_trials
        if not 0 <= k < self.n_trials:
            raise IndexError(f"trial {k} out of range: {self.path} has {self.n_trials} trials")
        return k

    def replay(self, k: int) -> TrialReplay:
        """Inputs, targets and weights of trial ``k``, to re-run it.

        Parameters
        ----------
        k : int
            Trial index (negative counts from the end).

        Returns
        -------
        TrialReplay
        """
        k = self._trial_index(k)
        T = int(self.trials["n_steps"][k])
        it = int(self.trials["iteration"][k])
        with self._open() as f:
            x = np.asarray(f["inputs/values"][k, :T], dtype=np.float64)
            mask: np.ndarray | None = None
            target: np.ndarray | int
            if self.task_kind == "regression":
                target = np.asarray(f["targets/values"][k, :T], dtype=np.float64)
            else:
                target = int(f["targets/labels"][k])
                mask = np.asarray(f["targets/mask"][k, :T]).astype(bool)
            wb: dict[str, np.ndarray] | None = {}
            for name in self.projection_names:
                w = f["projections"][name]["weights"]
                if not 0 <= it < min(w.shape[0], self.n_iterations + 1):
                    wb = None
                    break
                wb[name] = np.asarray(w[it])
            inw: dict[str, np.ndarray] | None = None
            if self.update_every_steps and it < self.n_iterations:
                inw = {
                    n: np.asarray(f["projections"][n]["in_trial_weights"][it]) for n in self.projection_names
                }
        return TrialReplay(
            k,
            it,
            int(self.trials["start_step"][k]),
            T,
            x,
            target,
            mask,
            wb,
            float(self.trials["loss"][k]),
            self.update_every_steps,
            inw,
        )

    def trace(self, pop: str, var: str) -> Trace:
        """Per-step trace of ``var`` in ``pop`` (stored with :meth:`RunWriter.add_trace`)."""
        if (pop, var) not in self.traces:
            avail = ", ".join(f"{p}/{v}" for p, v in self.traces) or "none"
            raise RunFileError(self.path, f"has no trace {pop}/{var} (available: {avail})")
        with self._open() as f:
            g = f[report_root(var)][pop]
            start, stop, dt = (float(v) for v in g["mapping/time"][()])
            n = int(round((stop - start) / dt))
            data = np.asarray(g["data"][:n])
            times = start + dt * np.arange(data.shape[0])
            return Trace(
                pop,
                var,
                times,
                np.asarray(g["mapping/node_ids"][()]),
                data,
                str(_attr(g["data"].attrs.get("units", ""))),
            )

    # ------------------------------------------------------------------ analysis views
    def iteration_losses(self) -> tuple[np.ndarray, np.ndarray]:
        """The loss per iteration, as ``neuroplast run``'s progress lines show it.

        Returns
        -------
        iterations : numpy.ndarray of int64
            The iterations that have trials on disk, ascending.
        loss : numpy.ndarray of float64
            Mean loss of each one's trials (dimensionless).
        """
        it = np.asarray(self.trials["iteration"], dtype=np.int64)
        iterations, inverse = np.unique(it, return_inverse=True)
        sums = np.bincount(inverse, weights=np.asarray(self.trials["loss"], dtype=np.float64))
        return iterations, sums / np.bincount(inverse)

    def iteration_loss(self, i: int) -> float:
        """Mean loss of the trials of the ``i``-th iteration with trials (negative counts from the last)."""
        iterations, loss = self.iteration_losses()
        if not -iterations.size <= i < iterations.size:
            raise IndexError(
                f"iteration {i} out of range: {self.path} has trials of {iterations.size} iterations"
            )
        return float(loss[i])

    def trials_frame(self) -> Any:
        """The per-trial table as a :class:`pandas.DataFrame`: one row per trial (index ``trial``), the
        ``/trials`` columns plus ``start_ms`` and ``duration_ms``, units in ``frame.attrs["units"]``.
        Needs pandas (``pip install 'neuroplast[analysis]'``); see docs/hdf5.md."""
        from neuroplast.io.frames import trials_frame

        return trials_frame(self)

    def to_xarray(self) -> Any:
        """Losses, weights, updates and gradients as an :class:`xarray.Dataset` with named dimensions
        (``iteration``, ``trial``, ``edge_<projection>``) and units as attributes.  Needs xarray
        (``pip install 'neuroplast[analysis]'``); see docs/hdf5.md."""
        from neuroplast.io.frames import to_xarray

        return to_xarray(self)

    # ------------------------------------------------------------------ summary
    @property
    def rule(self) -> str:
        """The plasticity rule of the stored config (``training.rule``), ``"?"`` if it names none."""
        training = tomllib.loads(self.config_toml).get("training", {})
        return str(training.get("rule", "?")) if isinstance(training, dict) else "?"

    def status(self) -> str:
        """``"finished"``, ``"diverged"`` or ``"killed"`` (the writer stopped without finishing: killed,
        interrupted, or still running)."""
        if self.diverged:
            return "diverged"
        return "finished" if self.finished else "killed"

    def gradients(self) -> dict[str, dict[str, str]]:
        """``projection -> estimator -> who wrote it`` (``"training"`` or the ``written_by`` attribute,
        e.g. ``"neuroplast compare"``), for every stored gradient."""
        out: dict[str, dict[str, str]] = {}
        with self._open() as f:
            for name in self.projection_names:
                g = f["projections"][name]
                self._n_edges[name] = int(g["source_ids"].shape[0])
                out[name] = {
                    e: str(_attr(g["grad"][e].attrs.get("written_by", "training"))) for e in _estimators(g)
                }
        return out

    def loss_table(self, rows: int = 10) -> list[dict[str, Any]]:
        """The loss curve in ``rows`` groups of consecutive iterations (deciles by default).

        Returns
        -------
        list of dict
            One per group: ``first``, ``last`` (iteration range, inclusive), ``trials``, ``loss`` (mean
            loss; a sum over the trial's steps, dimensionless) and, for classification, ``accuracy`` (mean
            fraction of correct trials).
        """
        it = np.asarray(self.trials["iteration"], dtype=np.int64)
        loss = np.asarray(self.trials["loss"], dtype=np.float64)
        acc = self.trials.get("accuracy")
        out = []
        for group in np.array_split(np.unique(it), min(rows, np.unique(it).size)):
            sel = (it >= group[0]) & (it <= group[-1])
            row: dict[str, Any] = {
                "first": int(group[0]),
                "last": int(group[-1]),
                "trials": int(sel.sum()),
                "loss": float(np.mean(loss[sel])),
            }
            if acc is not None:
                row["accuracy"] = _nanmean(np.asarray(acc)[sel])
            out.append(row)
        return out

    def summary(self) -> str:
        """Human-readable summary: sizes, status, rule, the loss (and accuracy) curve per decile of the
        iterations, in-trial learning, traces, stored gradients and whether ``neuroplast compare`` ran."""
        size = os.path.getsize(self.path)
        lines = [
            f"{self.path} ({size / 1e6:.3f} MB, {FORMAT_NAME} v{self.format_version}, "
            f"neuroplast {self.attrs.get('neuroplast_version', '?')}, "
            f"brian2 {self.attrs.get('brian2_version', '?')})",
            f"task: {self.task_kind}, rule: {self.rule}, dt = {self.dt_ms:g} ms, seed = {self.seed}, "
            f"n_in = {self.n_in}, n_out = {self.n_out}, n_steps = {self.n_steps}",
            "populations: " + ", ".join(f"{p} ({n})" for p, n in self.population_sizes.items()),
            "status: " + _STATUS[self.status()] + (f"; {self.stopped}" if self.stopped else ""),
            f"trials: {self.n_trials}, iterations: {self.n_iterations}",
        ]
        lines += self._curve_lines()
        lines.append(
            f"learning inside trials: an update every {self.update_every_steps} steps "
            f"({(self.n_steps - 1) // self.update_every_steps} per trial + one at its end)"
            if self.update_every_steps
            else "learning inside trials: no (one update per iteration)"
        )
        lines.append("traces: " + (", ".join(f"{p}/{v}" for p, v in self.traces) or "none"))
        lines += self._gradient_lines()
        return "\n".join(lines)

    def _curve_lines(self) -> list[str]:
        if self.n_trials == 0:
            return ["loss: no complete trials"]
        loss = np.asarray(self.trials["loss"], dtype=np.float64)
        table = self.loss_table()
        per_it = self.loss_table(rows=np.unique(self.trials["iteration"]).size)  # one row per iteration
        means = np.array([r["loss"] for r in per_it])
        best = int(np.nanargmin(means)) if np.isfinite(means).any() else 0
        lines = [
            f"loss (sum over a trial's steps, mean over an iteration's trials): first {means[0]:.6g}, "
            f"last {means[-1]:.6g}, min {means[best]:.6g} (iteration {per_it[best]['first']}); "
            f"single trials {np.nanmin(loss):.6g} to {np.nanmax(loss):.6g}"
        ]
        acc = self.trials.get("accuracy")
        if acc is not None:
            k = max(1, acc.size // 5)
            lines.append(
                f"accuracy: {_nanmean(acc[:k]):.2f} (first 20 % of trials) -> {_nanmean(acc[-k:]):.2f} "
                "(last 20 %)"
            )
        heads = ["iterations", "trials", "mean loss"] + (["mean accuracy"] if "accuracy" in table[0] else [])
        rows = [heads] + [
            [f"{r['first']}-{r['last']}" if r["last"] > r["first"] else str(r["first"]), str(r["trials"])]
            + [f"{r['loss']:.5g}"]
            + ([f"{r['accuracy']:.3f}"] if "accuracy" in r else [])
            for r in table
        ]
        widths = [max(len(row[c]) for row in rows) for c in range(len(heads))]
        lines.append(f"loss curve ({len(table)} groups of iterations):")
        lines += ["  " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
        return lines

    def _gradient_lines(self) -> list[str]:
        grads = self.gradients()
        lines = []
        for name in self.projection_names:
            by_training = [e for e, by in grads[name].items() if by == "training"]
            added = [f"{e} ({by})" for e, by in grads[name].items() if by != "training"]
            lines.append(
                f"projection {name}: {self._n_edges[name]} edges, grad: "
                + (", ".join(by_training + added) or "none")
            )
        logged = sorted({e for g in grads.values() for e, by in g.items() if by == "training"})
        compared = any(by == _COMPARE for g in grads.values() for by in g.values())
        lines.append("estimators logged in training: " + (", ".join(logged) or "none"))
        if compared:
            lines.append("neuroplast compare: has run (exact BPTT and its parts stored)")
        elif self.update_every_steps:
            lines.append("neuroplast compare: not applicable (the weights change inside each trial)")
        else:
            lines.append(f"neuroplast compare: not run yet (`neuroplast compare {self.path}`)")
        return lines

    def __repr__(self) -> str:
        return f"RunLog({str(self.path)!r}, trials={self.n_trials}, iterations={self.n_iterations})"


def open_run(path: str | os.PathLike[str], *, strict: bool = False) -> RunLog:
    """Open and validate a ``neuroplast-run`` HDF5 run log.

    Parameters
    ----------
    path : str or path-like
        The file.
    strict : bool
        Also check what every log of ``neuroplast run`` satisfies (:mod:`neuroplast.io.validate`: the
        model's projections and recurrent spikes are there, spikes in order, weights that follow from their
        updates); reads the weights and spikes once.  Every command of the ``neuroplast`` tool opens its
        run log so.

    Returns
    -------
    RunLog

    Raises
    ------
    RunFileError
        If the file is missing, is a folder, is not HDF5, is truncated or damaged, is not a neuroplast run
        log, or has a newer ``format_version``.  The message is one line and names the file.
    """
    p = Path(path)
    if not p.exists():
        raise RunFileError(p, "no such file")
    if p.is_dir():
        raise RunFileError(p, "is a directory, not a run-log file")
    if p.stat().st_size == 0:
        raise RunFileError(p, "empty file (0 bytes), not a run log")
    try:
        ok = h5py.is_hdf5(p)
    except OSError as exc:
        raise RunFileError(p, f"cannot read: {_one_line(exc)}") from exc
    if not ok:
        raise RunFileError(p, "not an HDF5 file")
    return RunLog(p, strict=strict)
