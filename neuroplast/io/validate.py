"""One validation of a run log, run by :func:`~neuroplast.io.open_run` before anything uses the file.

Every problem is a :class:`~neuroplast.io.schema.RunFileError` with one line naming the file and what is
wrong: a missing or mistyped dataset, a dataset of the wrong shape, a stored config that does not parse,
trial bookkeeping that does not add up, spikes out of order, or weights that do not follow from their
updates (``weights[i] + updates[i] == weights[i + 1]`` holds to rounding in every log the writer makes;
a block of zeroed or overwritten bytes breaks it).  HDF5 stores no checksums of raw data, so damage to
data with no such invariant (input spike counts, logged gradients) cannot be seen; damage to the file's
metadata (object headers, chunk indexes) can, and is reported the same way.

Two levels.  The format checks (always, cheap: names, types and shapes, the config's TOML) hold for every
file :class:`~neuroplast.io.RunWriter` makes.  ``strict`` adds what a log written by ``neuroplast run``
also satisfies: the projections input, recurrent, output and bias and the recurrent spikes are there, ids
and spike times are in range and order, and the weights follow from their updates.  The strict checks
read the per-iteration datasets and the spikes once, in blocks (:data:`BLOCK_ROWS`); the per-trial
inputs, targets and gradients are checked by shape and type only.  Every command of the ``neuroplast``
tool runs the strict checks on the run log it is given.  Nothing is ever written.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import numpy as np

from neuroplast.io.schema import SORTING, TRIAL_COLUMNS, RunFileError, is_hidden

__all__ = ["validate_layout", "validate_file", "REQUIRED_PROJECTIONS", "BLOCK_ROWS"]

#: Projections every run log has (the readout bias is a pseudo-projection).
REQUIRED_PROJECTIONS = ("input", "recurrent", "output", "bias")
#: Rows (iterations) or elements (spikes) read at a time.
BLOCK_ROWS = 1 << 16
#: Relative tolerance of ``weights[i] + updates[i] == weights[i + 1]``: the writer stores
#: ``updates = after − before`` in float64, so the sum is within a few ulp of ``after``.
WEIGHT_RTOL = 8 * float(np.finfo(np.float64).eps)


def _fail(path: Path, what: str) -> RunFileError:
    return RunFileError(path, f"damaged run log: {what}")


def _dataset(path: Path, g: h5py.Group, name: str, kind: str, ndim: int) -> h5py.Dataset:
    """``g[name]``, checked to be a dataset of ``ndim`` dimensions and dtype kind ``kind`` ("i", "u", "f"
    or "iu" ...)."""
    full = f"{g.name.rstrip('/')}/{name}"
    if name not in g:
        raise _fail(path, f"dataset {full} is missing")
    d = g[name]
    if not isinstance(d, h5py.Dataset):
        raise _fail(path, f"{full} is not a dataset")
    if d.dtype.kind not in kind:
        raise _fail(path, f"dataset {full} has dtype {d.dtype} (expected {_kind_name(kind)})")
    if d.ndim != ndim:
        raise _fail(path, f"dataset {full} has shape {d.shape} (expected {ndim} dimensions)")
    if d.chunks is not None:
        d.id.get_num_chunks()  # walks the chunk index: a damaged one raises here, not in a later command
    return d


def _kind_name(kind: str) -> str:
    names = {"i": "signed integer", "u": "unsigned integer", "f": "floating point", "b": "boolean"}
    return " or ".join(names[k] for k in kind)


def check_config(path: Path, text: str) -> None:
    """The stored config parses as TOML (its keys are checked by the analyses, which rebuild the run)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        what = f"stored config (root attribute 'config') is not valid TOML: {exc}"
        raise RunFileError(path, what) from None


def check_trials(path: Path, f: h5py.File, n_trials: int, n_steps: int) -> None:
    """Columns of ``/trials``: types, and steps that add up (trials follow each other, iterations grow)."""
    gt = f["trials"]
    cols = {c: _dataset(path, gt, c, "f" if c == "loss" else "iu", 1) for c in TRIAL_COLUMNS}
    for name in gt:
        if name not in cols:
            _dataset(path, gt, name, "fiub", 1)
    start = np.asarray(cols["start_step"][:n_trials], dtype=np.int64)
    steps = np.asarray(cols["n_steps"][:n_trials], dtype=np.int64)
    it = np.asarray(cols["iteration"][:n_trials], dtype=np.int64)
    if n_trials == 0:
        return
    if steps.min() < 1 or steps.max() > n_steps:
        raise _fail(path, f"/trials/n_steps outside 1 … {n_steps}")
    if start[0] < 0 or np.any(start[1:] < start[:-1] + steps[:-1]):
        raise _fail(path, "/trials/start_step: trials overlap or are out of order")
    if it[0] < 0 or np.any(np.diff(it) < 0):
        raise _fail(path, "/trials/iteration is not non-decreasing from 0")


def check_trial_data(path: Path, f: h5py.File, task_kind: str, n_in: int, n_out: int, n_steps: int) -> None:
    """``inputs/values`` and ``targets``: present, typed, shaped ``(trials, n_steps, …)``."""
    x = _dataset(path, f["inputs"], "values", "iuf", 3)
    if x.shape[1:] != (n_steps, n_in):
        raise _fail(path, f"dataset /inputs/values has shape {x.shape} (expected (*, {n_steps}, {n_in}))")
    tg = f["targets"]
    if task_kind == "regression":
        y = _dataset(path, tg, "values", "f", 3)
        if y.shape[1:] != (n_steps, n_out):
            what = f"dataset /targets/values has shape {y.shape} (expected (*, {n_steps}, {n_out}))"
            raise _fail(path, what)
    elif task_kind == "classification":
        _dataset(path, tg, "labels", "iu", 1)
        m = _dataset(path, tg, "mask", "iub", 2)
        if m.shape[1] != n_steps:
            raise _fail(path, f"dataset /targets/mask has shape {m.shape} (expected (*, {n_steps}))")
    else:
        what = f"root attribute 'task_kind' is {task_kind!r} (expected regression or classification)"
        raise RunFileError(path, what)


def check_spikes(
    path: Path, f: h5py.File, sizes: dict[str, int], *, strict: bool, complete_ms: float | None = None
) -> None:
    """Every spike group has ``timestamps`` and ``node_ids``; ``strict``: the recurrent population's group
    is there, and every id is inside its population and times are in order (reads every spike once).

    ``complete_ms``: for a log whose writer did not finish, the end of its last complete trial (ms); the
    spikes from the first one at or after it on may be half written (a kill mid-flush) and are not checked,
    nor is the order (a half-written tail can hold zeros).
    """
    if strict and "recurrent" not in f["spikes"]:
        raise _fail(path, "group /spikes/recurrent is missing")
    for pop, g in f["spikes"].items():
        if not isinstance(g, h5py.Group):
            raise _fail(path, f"/spikes/{pop} is not a group")
        ts = _dataset(path, g, "timestamps", "f", 1)
        ids = _dataset(path, g, "node_ids", "iu", 1)
        if not strict:
            continue
        n, size = min(ts.shape[0], ids.shape[0]), sizes.get(pop)
        by_time = int(np.asarray(g.attrs.get("sorting", -1)).reshape(-1)[0]) == SORTING["by_time"]
        last = -np.inf
        for a in range(0, n, BLOCK_ROWS):
            t = np.asarray(ts[a : a + BLOCK_ROWS], dtype=np.float64)
            i = np.asarray(ids[a : a + BLOCK_ROWS])
            if complete_ms is not None and np.any(t >= complete_ms):
                cut = int(np.argmax(t >= complete_ms))
                t, i = t[:cut], i[:cut]
            if not np.all(np.isfinite(t)) or (t.size and t.min() < 0):
                raise _fail(path, f"/spikes/{pop}/timestamps has negative or non-finite times")
            if by_time and complete_ms is None and t.size and (t[0] < last or np.any(np.diff(t) < 0)):
                raise _fail(path, f"/spikes/{pop}/timestamps is not sorted by time")
            if size is not None and i.size and (i.min() < 0 or i.max() >= size):
                raise _fail(path, f"/spikes/{pop}/node_ids outside the population's {size} neurons")
            last = float(t[-1]) if t.size else last
            if t.size < BLOCK_ROWS and a + BLOCK_ROWS < n:
                break  # reached the end of the complete trials


def check_projection(
    path: Path, g: h5py.Group, n_iterations: int, finished: bool, every: int, n_steps: int, *, strict: bool
) -> None:
    """One projection: edge ids, ``weights``/``updates`` (and in-trial weights) of matching shapes, stored
    gradients; ``strict``: every weight row follows from the previous one and its update."""
    src = _dataset(path, g, "source_ids", "iu", 1)
    tgt = _dataset(path, g, "target_ids", "iu", 1)
    if src.shape != tgt.shape:
        raise _fail(path, f"{g.name}: source_ids and target_ids differ in length")
    n_edges = src.shape[0]
    w = _dataset(path, g, "weights", "f", 2)
    u = _dataset(path, g, "updates", "f", 2)
    for d in (w, u):
        if d.shape[1] != n_edges:
            raise _fail(path, f"dataset {d.name} has shape {d.shape} (expected (*, {n_edges}))")
    if w.shape[0] < n_iterations + int(finished):
        raise _fail(path, f"dataset {w.name} has {w.shape[0]} rows for {n_iterations} iterations")
    inw = None
    if every:
        inw = _dataset(path, g, "in_trial_weights", "f", 3)
        if inw.shape[1:] != ((n_steps - 1) // every, n_edges):
            raise _fail(path, f"dataset {inw.name} has shape {inw.shape}")
    if "grad" in g:
        for est, d in g["grad"].items():
            if not is_hidden(est):
                d = _dataset(path, g["grad"], est, "f", 2)
                if d.shape[1] != n_edges:
                    raise _fail(path, f"dataset {d.name} has shape {d.shape} (expected (*, {n_edges}))")
    # pairs (i, i + 1) whose both rows are complete: a writer that did not finish may have begun row
    # n_iterations (resized, killed before writing it)
    n_pairs = min(n_iterations - int(not finished), w.shape[0] - 1) if strict else 0
    for a in range(0, n_pairs, BLOCK_ROWS):
        b = min(a + BLOCK_ROWS, n_pairs)
        before = np.asarray(w[a:b])
        if inw is not None and inw.shape[1]:
            before = np.asarray(inw[a:b, -1])
        after, step = np.asarray(w[a + 1 : b + 1]), np.asarray(u[a:b])
        err = np.abs(before + step - after)
        tol = WEIGHT_RTOL * (np.abs(before) + np.abs(after) + np.abs(step)) + 1e-300
        bad = ~(err <= tol) & ~(np.isnan(after) & np.isnan(before + step))
        if np.any(bad):
            row = a + int(np.nonzero(bad.any(axis=1))[0][0])
            raise _fail(
                path,
                f"{g.name}: weights after iteration {row + 1} do not equal the weights before it plus its "
                "update (overwritten or zeroed bytes?)",
            )


def validate_layout(f: h5py.File, path: Path, attrs: dict, *, strict: bool = False) -> None:
    """The checks that need no trial count: the stored config, inputs and targets, required projections.

    Raises
    ------
    RunFileError
        On the first problem, with one line naming the file and what is wrong.
    """
    check_config(path, str(attrs["config"]))
    n_steps = int(attrs["n_steps"])
    check_trial_data(path, f, str(attrs["task_kind"]), int(attrs["n_in"]), int(attrs["n_out"]), n_steps)
    missing = [p for p in REQUIRED_PROJECTIONS if p not in f["projections"]] if strict else []
    if missing:
        raise _fail(path, f"projection group(s) {', '.join(missing)} missing from /projections")
    for name, g in f["projections"].items():
        if not isinstance(g, h5py.Group):
            raise _fail(path, f"/projections/{name} is not a group")
        for key in ("weights", "updates"):
            if key not in g:
                raise _fail(path, f"dataset /projections/{name}/{key} is missing")


def validate_file(
    f: h5py.File, path: Path, attrs: dict, n_trials: int, n_iterations: int, *, strict: bool = False
) -> None:
    """Every check on the open file ``f``: :func:`validate_layout` (run first by the reader, before it
    counts trials), then trials, spikes and every projection's datasets and weight rows.

    Raises
    ------
    RunFileError
        On the first problem, with one line naming the file and what is wrong.
    """
    n_steps, every = int(attrs["n_steps"]), int(attrs.get("update_every_steps", 0) or 0)
    check_trials(path, f, n_trials, n_steps)
    sizes = {p: int(g.attrs["size"]) for p, g in f["populations"].items() if "size" in g.attrs}
    complete_ms = None
    if not bool(attrs.get("finished", 0)):
        gt = f["trials"]
        end = int(gt["start_step"][n_trials - 1] + gt["n_steps"][n_trials - 1]) if n_trials else 0
        complete_ms = end * float(attrs["dt_ms"])
    check_spikes(path, f, sizes, strict=strict, complete_ms=complete_ms)
    finished = bool(attrs.get("finished", 0))
    for g in f["projections"].values():
        check_projection(path, g, n_iterations, finished, every, n_steps, strict=strict)
