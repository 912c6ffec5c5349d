"""Analysis views of a run log: the per-trial table as a pandas DataFrame, the whole log as an xarray Dataset.

pandas and xarray are optional (the ``analysis`` extra: ``pip install 'neuroplast[analysis]'``); they are
imported only here and only when a view is asked for, so that reading a log still needs nothing but h5py
and numpy.  Units come from the datasets' ``units`` attributes (:func:`~neuroplast.io.schema.column_units`
for logs written before they were there).  The dense (post × pre) matrices of edge vectors belong to the
one owner of the edge layout: :func:`neuroplast.analysis.views.to_dense`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from neuroplast.io.schema import MODEL_UNITS, TRIAL_COLUMNS

if TYPE_CHECKING:
    from neuroplast.io.reader import RunLog

__all__ = ["optional_module", "trials_frame", "to_xarray"]


def optional_module(name: str, what: str) -> Any:
    """Import the optional package ``name`` that ``what`` needs, or raise a one-line error saying how to
    install it.

    Raises
    ------
    ModuleNotFoundError
        ``"RunLog.trials_frame needs pandas, which is not installed: pip install 'neuroplast[analysis]'"``.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{what} needs {name}, which is not installed: pip install 'neuroplast[analysis]'", name=name
        ) from None


def _columns(run: RunLog) -> list[str]:
    """The per-trial columns: the mandatory ones, then the extras by name."""
    return [c for c in TRIAL_COLUMNS if c in run.trials] + sorted(set(run.trials) - set(TRIAL_COLUMNS))


def trials_frame(run: RunLog) -> Any:
    """One row per trial (index ``trial``), one column per ``/trials`` dataset plus ``start_ms`` and
    ``duration_ms``; ``frame.attrs["units"]`` maps every column to its units.  See docs/hdf5.md."""
    pd = optional_module("pandas", "RunLog.trials_frame")
    cols = _columns(run)
    data: dict[str, np.ndarray] = {c: np.asarray(run.trials[c]) for c in cols}
    data["start_ms"] = np.asarray(run.trials["start_step"], dtype=np.float64) * run.dt_ms
    data["duration_ms"] = np.asarray(run.trials["n_steps"], dtype=np.float64) * run.dt_ms
    frame = pd.DataFrame(data, index=pd.RangeIndex(run.n_trials, name="trial"))
    frame.attrs["units"] = {**{c: run.trial_units[c] for c in cols}, "start_ms": "ms", "duration_ms": "ms"}
    frame.attrs["path"] = str(run.path)
    return frame


def _var(dims: tuple[str, ...], data: np.ndarray, units: str, description: str) -> tuple:
    return dims, data, {"units": units, "description": description}


def to_xarray(run: RunLog) -> Any:
    """The log's numbers with named dimensions (``iteration``, ``trial``, ``edge_<projection>``) and units
    as attributes: an :class:`xarray.Dataset`.  See docs/hdf5.md for its variables."""
    xr = optional_module("xarray", "RunLog.to_xarray")
    n_it = run.n_iterations
    it_of = np.asarray(run.trials["iteration"], dtype=np.int64)
    loss = np.asarray(run.trials["loss"], dtype=np.float64)
    data: dict[str, tuple] = {}
    for c in _columns(run):
        if c != "iteration":
            data[c] = _var(("trial",), np.asarray(run.trials[c]), run.trial_units[c], f"/trials/{c}")
    counts = np.bincount(it_of, minlength=n_it)[:n_it]
    sums = np.bincount(it_of, weights=loss, minlength=n_it)[:n_it]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_loss = sums / counts  # NaN for an iteration without trials on disk
    data["iteration_loss"] = _var(
        ("iteration",), mean_loss, MODEL_UNITS, "mean loss of the iteration's trials"
    )
    coords: dict[str, tuple] = {
        "iteration": ("iteration", np.arange(n_it)),
        "trial": ("trial", np.arange(run.n_trials)),
        "trial_iteration": ("trial", it_of),
    }
    for name in run.projection_names:
        p = run.projection(name)
        dim = f"edge_{name}"
        coords[f"source_{name}"] = (dim, p.source_ids)
        coords[f"target_{name}"] = (dim, p.target_ids)
        data[f"weights_{name}"] = _var(
            ("iteration", dim), p.weights[:n_it], MODEL_UNITS, f"{name}: the weights iteration i ran with"
        )
        data[f"updates_{name}"] = _var(
            ("iteration", dim), p.updates[:n_it], MODEL_UNITS, f"{name}: the update applied after iteration i"
        )
        if run.finished and p.weights.shape[0] > n_it:
            data[f"final_weights_{name}"] = _var(
                (dim,), p.weights[n_it], MODEL_UNITS, f"{name}: final weights"
            )
        for est in p.estimators:
            data[f"grad_{est}_{name}"] = _var(
                ("trial", dim), p.grad(est), MODEL_UNITS, f"{name}: dL/dw of every trial, estimator {est}"
            )
    attrs = {"path": str(run.path), "dt_ms": run.dt_ms, "rule": run.rule, "task_kind": run.task_kind}
    return xr.Dataset(data, coords=coords, attrs=attrs)
