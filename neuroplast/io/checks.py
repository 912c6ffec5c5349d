"""Argument checks of :class:`~neuroplast.io.RunWriter`: every value is validated and normalized here.

Each function raises ``ValueError`` (``TypeError`` for a non-text config) with the message the writer gives,
and returns the arrays in the dtype and padding they are stored with.  Nothing here touches a file.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from typing import Any

import numpy as np

from neuroplast.io.layout import RunSpec, TaskKind
from neuroplast.io.schema import BIAS_PROJECTION, TRIAL_COLUMNS, check_name

__all__ = [
    "as_ids",
    "as_vector",
    "check_flush_every",
    "run_spec",
    "check_x",
    "check_start",
    "check_target",
    "check_spikes",
    "check_extras",
    "check_grads",
    "check_weight_dict",
    "check_in_trial",
    "check_state",
    "check_trace",
]

SpikeDict = Mapping[str, tuple[Any, Any]]
Edges = dict[str, tuple[np.ndarray, np.ndarray]]


def as_ids(a: Any, what: str) -> np.ndarray:
    """1-D non-negative integer ids as uint64 (``what`` names them in errors)."""
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind  # "i"/"u": numpy's integer types (np.issubdtype(dtype, np.integer))
    if arr.size and kind not in "iu":
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{what} must hold integers")
    if arr.size and kind != "u" and arr.min() < 0:  # unsigned ids are never negative
        raise ValueError(f"{what} must be non-negative")
    return arr.astype(np.uint64)


def as_vector(a: Any, n: int, what: str) -> np.ndarray:
    """``a`` as a float64 vector of shape ``(n,)``."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {arr.shape}")
    return arr


def check_flush_every(flush_every: Any) -> int:
    """``flush_every`` of :meth:`RunWriter.append` as a positive int."""
    n = int(flush_every)
    if n < 1:
        raise ValueError(f"flush_every must be a positive integer, got {flush_every!r}")
    return n


def run_spec(
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
    flush_every: int,
    update_every_steps: int,
) -> RunSpec:
    """Check the arguments of the :class:`~neuroplast.io.RunWriter` constructor; return the run's shape."""
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
    n_in, n_out = int(n_in), int(n_out)
    pops, sizes = _check_populations(populations, n_in, n_out)
    return RunSpec(
        dt_ms=dt_ms,
        task_kind=task_kind,
        n_in=n_in,
        n_out=n_out,
        n_steps=int(n_steps),
        update_every_steps=int(update_every_steps),
        pops=pops,
        population_sizes=sizes,
        edges=_check_edges(projections_edges, n_out),
    )


def _default_size(pop: str, n_in: int, n_out: int) -> int | None:
    return {"input": n_in, "readout": n_out}.get(pop)


def _check_populations(
    populations: Mapping[str, Mapping[str, Any]], n_in: int, n_out: int
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """Per-neuron parameters broadcast to the population size, and the sizes."""
    out: dict[str, dict[str, np.ndarray]] = {}
    sizes: dict[str, int] = {}
    for pop, params in populations.items():
        check_name("population", pop)
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        lengths = {a.shape[0] for a in arrays.values() if a.ndim == 1}
        if any(a.ndim > 1 for a in arrays.values()):
            raise ValueError(f"population {pop!r}: parameters must be 1-D per-neuron arrays or scalars")
        if len(lengths) > 1:
            raise ValueError(f"population {pop!r}: parameter arrays have different lengths {sorted(lengths)}")
        if lengths:
            n = lengths.pop()
        elif (n := _default_size(pop, n_in, n_out)) is None:
            if arrays:
                raise ValueError(f"population {pop!r}: all parameters are scalars, size unknown")
            raise ValueError(f"population {pop!r} has no parameters: cannot infer its size")
        for k in arrays:
            check_name("parameter", k)
            arrays[k] = np.broadcast_to(arrays[k], (n,)).copy()
        expected = _default_size(pop, n_in, n_out)
        if expected is not None and n != expected:
            raise ValueError(f"population {pop!r} has {n} neurons but n_in/n_out says {expected}")
        out[pop] = arrays
        sizes[pop] = n
    return out, sizes


def _edge_ids(a: Any, what: str) -> np.ndarray:
    """:func:`as_ids`, but an integer array of non-negative ids is kept as it is, not copied to uint64: the
    file's datasets are uint64 whatever it is (``create_dataset(..., dtype=np.uint64)``), and a writer holds
    the edge lists for its whole life (16 bytes per synapse as uint64 copies of a network's int32 lists)."""
    arr = np.asarray(a)
    if arr.ndim == 1 and arr.dtype.kind in "iu" and (arr.dtype.kind == "u" or not arr.size or arr.min() >= 0):
        return arr
    return as_ids(arr, what)


def _check_edges(projections_edges: Mapping[str, tuple[Any, Any] | None], n_out: int) -> Edges:
    out = {}
    for name, st in projections_edges.items():
        check_name("projection", name)
        if st is None:
            if name != BIAS_PROJECTION:
                raise ValueError(f"projection {name!r}: edges missing (only 'bias' may be None)")
            ids = np.arange(n_out, dtype=np.uint64)
            out[name] = (ids, ids.copy())
            continue
        src = _edge_ids(st[0], f"projection {name!r} source_ids")
        tgt = _edge_ids(st[1], f"projection {name!r} target_ids")
        if src.shape != tgt.shape:
            raise ValueError(f"projection {name!r}: {src.size} source ids but {tgt.size} target ids")
        out[name] = (src, tgt)
    return out


# ---------------------------------------------------------------------------- add_trial
_X_COUNTS = "x must hold spike counts (integers in [0, 255]) to be stored as uint8"


def check_x(x: Any, n_in: int, n_steps: int) -> tuple[np.ndarray, int]:
    """Input spikes of a trial: ``(x zero padded to (n_steps, n_in) uint8, T)``."""
    xa = np.asarray(x)
    if xa.ndim != 2 or xa.shape[1] != n_in or not 1 <= xa.shape[0] <= n_steps:
        raise ValueError(f"x must have shape (T, {n_in}) with 1 <= T <= {n_steps}, got {xa.shape}")
    T = int(xa.shape[0])
    if xa.dtype == np.uint8:  # every byte is a count in [0, 255]
        xu = xa.copy()  # the writer keeps it
    elif xa.dtype.kind in "iuf":
        # one cast and one comparison instead of elementwise tests: the cast is a uint8 (an integer in
        # [0, 255]) whatever the value, so it equals the value iff that is an integer in [0, 255] (a NaN or
        # out-of-range float casts to some unspecified byte: never equal, warning silenced)
        with np.errstate(invalid="ignore"):
            xu = xa.astype(np.uint8)  # a copy: the writer keeps it
        if not np.array_equal(xu, xa):
            raise ValueError(_X_COUNTS)
    else:
        if xa.dtype != np.bool_ and (np.any(xa < 0) or np.any(xa > 255) or np.any(np.mod(xa, 1) != 0)):
            raise ValueError(_X_COUNTS)
        xu = xa.astype(np.uint8)
    if T == n_steps:
        return xu, T
    xpad = np.zeros((n_steps, n_in), dtype=np.uint8)
    xpad[:T] = xu
    return xpad, T


def check_start(start_step: int | None, next_step: int) -> int:
    """Global start step of a trial (default ``next_step``); trials must not go back in time."""
    start = next_step if start_step is None else int(start_step)
    if start < next_step:
        raise ValueError(
            f"start_step {start} is before the end of the previous trial ({next_step}); "
            "trials must follow each other in time"
        )
    return start


def check_target(
    task_kind: str, target: Any, mask: Any, T: int, n_steps: int, n_out: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(target as stored, mask as stored)``: NaN-padded values and ``None``, or a label and a uint8 mask."""
    if task_kind == "regression":
        ya = np.asarray(target, dtype=np.float64)
        if ya.shape != (T, n_out):
            raise ValueError(f"regression target must have shape ({T}, {n_out}), got {ya.shape}")
        tval = np.full((n_steps, n_out), np.nan)
        tval[:T] = ya
        if mask is not None:
            raise ValueError("mask is only stored for classification tasks")
        return tval, None
    label = np.asarray(target)
    if label.ndim != 0 or int(label) != label or not 0 <= int(label) < n_out:
        raise ValueError(f"classification target must be an integer label in [0, {n_out}), got {target!r}")
    m = np.ones(T, dtype=bool) if mask is None else np.asarray(mask)
    if m.shape != (T,):
        raise ValueError(f"mask must have shape ({T},), got {m.shape}")
    mpad = np.zeros(n_steps, dtype=np.uint8)
    mpad[:T] = m.astype(bool)
    return np.asarray(int(label), dtype=np.int64), mpad


def check_spikes(
    spikes: SpikeDict | None, population_sizes: Mapping[str, int], start: int, T: int, local: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``pop -> (global steps int64, node ids uint64)`` of a trial, sorted by time, then node id."""
    sp: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for pop, pair in (spikes or {}).items():
        if pop not in population_sizes:
            raise ValueError(f"spikes for unknown population {pop!r} (known: {sorted(population_sizes)})")
        steps = np.asarray(pair[0])
        ids = as_ids(pair[1], f"spikes[{pop!r}] node ids")
        if steps.ndim != 1 or steps.shape != ids.shape:
            raise ValueError(f"spikes[{pop!r}]: steps and node ids must be 1-D of equal length")
        if steps.size and steps.dtype.kind not in "iu" and not np.all(np.mod(steps, 1) == 0):
            raise ValueError(f"spikes[{pop!r}]: steps must be integers (time-step indices)")
        steps = steps.astype(np.int64)  # a copy: the writer keeps it
        lo = 0 if local else start  # where the trial starts in the steps' own frame (local or global)
        if steps.size and (steps.min() < lo or steps.max() >= lo + T):
            raise ValueError(f"spikes[{pop!r}]: steps outside the trial [{start}, {start + T})")
        size = population_sizes[pop]
        if ids.size and (id_max := int(ids.max())) >= size:
            raise ValueError(f"spikes[{pop!r}]: node id {id_max} >= population size {size}")
        # as simulators and np.nonzero give them: a stable sort is the identity
        in_order = _time_sorted(steps, ids, lo, T, size)
        if local:
            steps += start
        if in_order:
            sp[pop] = (steps, ids)
        else:
            order = np.lexsort((ids, steps))
            sp[pop] = (steps[order], ids[order])
    return sp


def _time_sorted(steps: np.ndarray, ids: np.ndarray, start: int = 0, T: int = 0, size: int = 0) -> bool:
    """Whether spikes are sorted by step, then node id (ties allowed).

    With the bounds ``start <= steps < start + T`` and ``0 <= ids < size`` already checked, the pair order is
    that of one integer key ``(step − start) · size + id`` (fewer passes than comparing steps and ids).
    """
    if steps.size < 2:
        return True
    if 0 < T and 0 < size and T * size < 2**62:
        if start:
            key = steps - start
            key *= size
        else:
            key = steps * size
        key += ids.view(np.int64)  # ids < size < 2**62
        return bool((key[1:] >= key[:-1]).all())
    s0, s1 = steps[:-1], steps[1:]
    return bool(np.all((s1 > s0) | ((s1 == s0) & (ids[1:] >= ids[:-1]))))


def check_extras(extras: Mapping[str, float] | None) -> dict[str, float]:
    """Extra per-trial columns as floats; their names must not clash with the mandatory columns."""
    ex: dict[str, float] = {}
    for k, v in (extras or {}).items():
        check_name("trial column", k)
        if k in TRIAL_COLUMNS:
            raise ValueError(f"extra column {k!r} clashes with a mandatory trial column")
        ex[k] = float(v)
    return ex


def check_grads(
    grads: Mapping[str, Mapping[str, Any]] | None, edges: Edges
) -> dict[tuple[str, str], np.ndarray]:
    """``(projection, estimator) -> (n_edges,) float64`` gradients of a trial."""
    gr: dict[tuple[str, str], np.ndarray] = {}
    for proj, per_est in (grads or {}).items():
        if proj not in edges:
            raise ValueError(f"gradient for unknown projection {proj!r} (known: {sorted(edges)})")
        for est, g in per_est.items():
            check_name("estimator", est)
            gr[(proj, est)] = as_vector(g, edges[proj][0].size, f"grads[{proj!r}][{est!r}]")
    return gr


# ---------------------------------------------------------------------------- add_iteration / finish
def check_weight_dict(
    d: Mapping[str, Any], edges: Edges, what: str, *, fill_zero: bool
) -> dict[str, np.ndarray]:
    """``projection -> (n_edges,)`` for every projection (missing ones are zeros with ``fill_zero``)."""
    unknown = [k for k in d if k not in edges]
    if unknown:
        raise ValueError(f"{what}: unknown projections {sorted(set(unknown))}")
    out = {}
    for name, (src, _) in edges.items():
        if name not in d:
            if not fill_zero:
                raise ValueError(f"{what}: projection {name!r} missing")
            out[name] = np.zeros(src.size)
        else:
            out[name] = as_vector(d[name], src.size, f"{what}[{name!r}]")
    return out


def check_in_trial(d: Mapping[str, Any], edges: Edges, n_updates: int) -> dict[str, np.ndarray]:
    """``projection -> (n_updates, n_edges)`` in-trial weights, for exactly the run's projections."""
    if set(d) != set(edges):
        raise ValueError(f"in_trial: needs exactly the projections {sorted(edges)}, got {sorted(d)}")
    out = {}
    for name, (src, _) in edges.items():
        a = np.asarray(d[name], dtype=np.float64)
        want = (n_updates, src.size)
        if a.shape != want:
            raise ValueError(f"in_trial[{name!r}]: shape {a.shape}, expected {want}")
        out[name] = a
    return out


def check_state(state: Mapping[str, Any], *, copy: bool = True) -> dict[str, np.ndarray]:
    """A flat resume state ``"a/b" -> numeric array`` (copied unless ``copy`` is false); every path part must
    be a valid name."""
    out = {}
    for name, v in state.items():
        for part in str(name).split("/"):
            check_name("state entry", part)  # remembers the names it accepted
        a = np.array(v, copy=True) if copy else np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"state entry {name!r} must be numeric, got dtype {a.dtype}")
        out[str(name)] = a
    return out


# ---------------------------------------------------------------------------- add_trace
def check_trace(
    pop: str, var: str, data: Any, node_ids: Any, population_sizes: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(data as (T, n_elements) float32, node ids uint64)`` of one :meth:`RunWriter.add_trace` call."""
    check_name("population", pop)
    check_name("variable", var)
    arr = np.asarray(data, dtype=np.float32)
    ids = as_ids(node_ids, "node_ids")
    if arr.ndim != 2 or arr.shape[1] != ids.size or arr.shape[0] < 1:
        raise ValueError(f"data must have shape (T, {ids.size}) with T >= 1, got {arr.shape}")
    if np.unique(ids).size != ids.size:
        raise ValueError("node_ids must be unique (one element per node)")
    if pop in population_sizes and ids.size and int(ids.max()) >= population_sizes[pop]:
        raise ValueError(f"node id {int(ids.max())} >= size of population {pop!r}")
    return arr, ids
