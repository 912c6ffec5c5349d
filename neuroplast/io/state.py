"""Resume-state slots ``/resume/slot0`` and ``/resume/slot1`` of a run log (``neuroplast run --resume``).

The state after iteration ``i`` (1-based count of iterations done) overwrites slot ``i % 2`` in place:
its ``iteration`` attribute is -1 while the arrays are written, then ``i`` together with a sha256 digest over
the arrays, so that a slot a killed writer left half overwritten fails its digest and is ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import h5py
import numpy as np
from h5py import h5s

from neuroplast.io.schema import ATTR_STATE_DIGEST, ATTR_STATE_ITERATION, RESUME_GROUP, RESUME_SLOTS

__all__ = ["SlotCache", "state_digest", "read_states", "write_slot"]


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


def _datasets(g: h5py.Group) -> dict[str, h5py.Dataset]:
    """Every dataset below ``g``, by path relative to ``g``."""
    out: dict[str, h5py.Dataset] = {}
    g.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


#: A resume slot kept open by a writer: its group and ``name -> (dataset, shape, dtype)`` of its arrays
#: (h5py's lookups and properties cost more than the small writes of a slot).
SlotCache = dict[str, tuple[h5py.Group, dict[str, tuple[h5py.Dataset, tuple[int, ...], np.dtype]]]]


def write_slot(
    f: h5py.File,
    state: dict[str, np.ndarray],
    iteration: int,
    cache: SlotCache | None = None,
    slot: int | None = None,
) -> None:
    """Overwrite resume slot ``iteration % 2`` (or ``slot``) with ``state`` (arrays, iteration, digest).

    Parameters
    ----------
    f : h5py.File
        The run log, open for writing.
    state : dict of str to numpy.ndarray
        Flat state (checked by :func:`neuroplast.io.checks.check_state`).
    iteration : int
        Iterations done when the state was taken.
    cache : dict, optional
        ``slot name -> (group, {dataset name -> (open dataset, shape, dtype)})``, filled on first use; saves
        the lookups of the slot's group and datasets (only for a writer that alone changes the file).
    slot : int, optional
        0 or 1: write there instead (a flush of several iterations keeps the last complete state intact
        while it writes the new one, see :meth:`RunWriter.flush <neuroplast.io.RunWriter.flush>`).
    """
    slot = RESUME_SLOTS[iteration % 2 if slot is None else slot]
    cache = {} if cache is None else cache
    held = cache.get(slot)
    if held is None:
        g = f.require_group(RESUME_GROUP).require_group(slot)
        held = cache[slot] = (g, {n: (ds, ds.shape, ds.dtype) for n, ds in _datasets(g).items()})
    g, have = held
    g.attrs[ATTR_STATE_ITERATION] = np.int64(-1)  # invalid while being overwritten
    for name in [n for n in have if n not in state]:
        del g[name]
        del have[name]
    for name, a in state.items():
        known = have.get(name)
        if known is not None and known[1] == a.shape and known[2] == a.dtype:
            known[0].id.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(a))  # ds[()] = a, in place
            continue
        if known is not None or name in g:
            del g[name]
        ds = g.create_dataset(name, data=a)
        have[name] = (ds, ds.shape, ds.dtype)
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
