"""Adding gradients to a closed run log (e.g. exact BPTT computed after training), all or nothing.

:func:`add_gradients` first checks every array of the call, then writes each one under a hidden name
(``grad/.partial-<estimator>``, ignored by every reader), flushes, and only then renames them into place
(an existing gradient is first renamed to ``grad/.replaced-<estimator>`` and deleted once all are in place).
Before anything is written, the disk space for all of it is reserved
(:func:`~neuroplast.io.failure.make_room`, as for every flush of the writer): a full disk refuses the call,
with nothing written.
On an error every step is undone, so a call adds all its gradients or none.  A process killed while writing
leaves only hidden datasets, which readers ignore and the next call removes; killed while renaming, every
visible gradient is complete (a projection whose gradient was being replaced may have none until a rerun).
:func:`rename_gradient` renames stored gradients.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np

from neuroplast.io import failure
from neuroplast.io.layout import open_for_writing
from neuroplast.io.lock import check_not_busy
from neuroplast.io.reader import RunLog, open_run
from neuroplast.io.schema import (
    MODEL_UNITS,
    PARTIAL_PREFIX,
    REPLACED_PREFIX,
    RunFileError,
    check_name,
    chunk_rows,
)

__all__ = ["add_gradients", "rename_gradient"]


def add_gradients(
    path: str | os.PathLike[str],
    estimator: str,
    gradients: Mapping[str, Any],
    *,
    overwrite: bool = False,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Add the per-trial gradients of one estimator for one or more projections, all or nothing.

    Parameters
    ----------
    path : str or path-like
        A run log no writer has open.
    estimator : str
        Estimator name, stored at ``/projections/<projection>/grad/<estimator>``.
    gradients : mapping of str to array_like
        ``projection -> (n_trials, n_edges)`` gradient of every trial (NaN where not computed).
    overwrite : bool, optional
        Replace existing datasets of that name (else an existing one is an error and nothing is written).
    attrs : mapping of str to Any, optional
        Attributes given to every dataset written (e.g. ``written_by``).

    Raises
    ------
    RunFileError
        If a projection is missing, the estimator exists and ``overwrite`` is false, or the file cannot be
        opened or written (e.g. a writer still has it open).  Nothing is added then.
    ValueError
        If no gradient is given or an array has the wrong shape.
    """
    check_name("estimator", estimator)
    check_not_busy(path)  # a live writer's log (open_for_writing below enforces it)
    run = open_run(path)
    arrays = _checked(run, gradients)
    f = open_for_writing(run.path)
    try:
        groups = {proj: f["projections"][proj].require_group("grad") for proj in arrays}
        clash = [proj for proj, g in groups.items() if estimator in g]
        if clash and not overwrite:
            raise RunFileError(
                run.path,
                f"projection {clash[0]!r} already has gradient {estimator!r} "
                "(pass overwrite=True to replace it)",
            )
        failure.make_room(f.id.get_vfd_handle(), run.path, _room(arrays))
        _stage(f, groups, estimator, arrays, dict(attrs or {}))
        _commit(f, groups, estimator)
    except OSError as exc:
        raise RunFileError(
            run.path, f"cannot write gradient {estimator!r}: {failure.failure_reason(exc)}; nothing was added"
        ) from exc
    finally:
        f.close()


def rename_gradient(
    path: str | os.PathLike[str], old: str, new: str, projections: Iterable[str], *, overwrite: bool = False
) -> None:
    """Rename the stored gradient ``old`` to ``new`` in every projection given.

    Parameters
    ----------
    path : str or path-like
        A run log no writer has open.
    old, new : str
        Estimator names.
    projections : iterable of str
        Projections whose gradient is renamed; each must have ``old``.
    overwrite : bool, optional
        Replace an existing ``new`` (else that is an error and nothing is renamed).

    Raises
    ------
    RunFileError
        If a projection or its ``old`` gradient is missing, ``new`` exists and ``overwrite`` is false, or
        the file cannot be opened for writing.
    """
    check_name("estimator", new)
    check_not_busy(path)  # a live writer's log (open_for_writing below enforces it)
    run = open_run(path)
    projections = list(projections)
    for proj in projections:
        have = run.projection(proj).estimators
        if old not in have:
            raise RunFileError(run.path, f"projection {proj!r} has no gradient estimator {old!r}")
        if new in have and not overwrite:
            raise RunFileError(
                run.path,
                f"projection {proj!r} already has gradient {new!r} (pass overwrite=True to replace it)",
            )
    f = open_for_writing(run.path)
    try:
        for proj in projections:
            g = f["projections"][proj]["grad"]
            if new in g:
                del g[new]
            g.move(old, new)
        f.flush()
    finally:
        f.close()


def _checked(run: RunLog, gradients: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every array as float64 of shape ``(n_trials, n_edges)`` (checked before anything is written)."""
    if not gradients:
        raise ValueError("gradients: no projection given")
    out = {}
    for proj, a in gradients.items():
        n_edges = run.projection(proj).n_edges  # RunFileError if missing
        arr = np.asarray(a, dtype=np.float64)
        if arr.shape != (run.n_trials, n_edges):
            raise ValueError(
                f"gradient of {proj!r} must have shape ({run.n_trials}, {n_edges}), got {arr.shape}"
            )
        out[proj] = arr
    return out


def _room(arrays: Mapping[str, np.ndarray]) -> int:
    """Bytes that writing ``arrays`` (one new dataset each) may add to the file: their data, the last chunk
    each may start but not fill, and each dataset's metadata — the writer's bounds (io/failure.py)."""
    return sum(a.nbytes + failure.SLACK + failure.METADATA for a in arrays.values())


def _write_one(group: h5py.Group, name: str, arr: np.ndarray, attrs: Mapping[str, Any]) -> None:
    """One gradient dataset (growable along trials, like those the writer makes) with its attributes."""
    n_edges = arr.shape[1]
    ds = group.create_dataset(
        name,
        data=arr,
        maxshape=(None, n_edges if n_edges else None),
        chunks=(chunk_rows(8 * max(1, n_edges)), max(1, n_edges)),
        fillvalue=np.nan,
    )
    ds.attrs["units"] = MODEL_UNITS  # as the gradients the writer makes (``attrs`` may say otherwise)
    for k, v in attrs.items():
        ds.attrs[k] = v


def _stage(
    f: h5py.File,
    groups: Mapping[str, h5py.Group],
    estimator: str,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> None:
    """Write every array under its hidden name and flush; on an error delete what was written."""
    tmp = PARTIAL_PREFIX + estimator
    touched: list[h5py.Group] = []
    try:
        for proj, g in groups.items():
            for stale in (tmp, REPLACED_PREFIX + estimator):  # left by a killed earlier call
                if stale in g:
                    del g[stale]
            touched.append(g)
            _write_one(g, tmp, arrays[proj], attrs)
        f.flush()
    except BaseException:
        with contextlib.suppress(Exception):  # never mask the original error
            for g in touched:
                if tmp in g:
                    del g[tmp]
            f.flush()
        raise


def _commit(f: h5py.File, groups: Mapping[str, h5py.Group], estimator: str) -> None:
    """Rename every staged dataset into place (old ones aside first); on an error undo every rename."""
    tmp, old = PARTIAL_PREFIX + estimator, REPLACED_PREFIX + estimator
    moves: list[tuple[h5py.Group, str, str]] = []
    try:
        for g in groups.values():
            if estimator in g:
                g.move(estimator, old)
                moves.append((g, estimator, old))
            g.move(tmp, estimator)
            moves.append((g, tmp, estimator))
    except BaseException:
        with contextlib.suppress(Exception):  # never mask the original error
            for g, src, dst in reversed(moves):
                g.move(dst, src)
            for g in groups.values():
                if tmp in g:
                    del g[tmp]
            f.flush()
        raise
    for g, _, dst in moves:
        if dst == old:
            del g[old]
    f.flush()
