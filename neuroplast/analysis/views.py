"""Dense (post × pre) matrices of a run log's edge vectors, through the one owner of the edge layout.

A run log stores every weight, update and gradient as an edge vector (docs/hdf5.md); analyses that want the
matrices (spectra, per-neuron sums, heat maps) go through :class:`~neuroplast.model.connectivity.Connectivity`
read from the log's own edge lists, never through a copy of the convention::

    from neuroplast.analysis.views import to_dense, weight_matrices

    W = weight_matrices(run, "recurrent")   # (rows, N, N): W[i] the weights iteration i ran with
    G = to_dense(run, "recurrent", run.projection("recurrent").grad("eprop"))  # (n_trials, N, N)

Dense shapes: ``input`` (N, n_in), ``recurrent`` (N, N), ``output`` (n_out, N), ``feedback`` (N, n_out),
``bias`` (n_out,); zero where no edge is.
"""

from __future__ import annotations

import numpy as np

from neuroplast.io import RunLog
from neuroplast.io.schema import RunFileError
from neuroplast.model.connectivity import SYNAPTIC, Connectivity

__all__ = ["connectivity_of", "to_dense", "weight_matrices"]


def connectivity_of(run: RunLog, n_rec: int | None = None) -> Connectivity:
    """The network's connectivity as the log lists it (its edge order kept), without its config.

    ``n_rec``: the recurrent population's size (default: as the log's ``populations`` group says).

    Raises
    ------
    RunFileError
        A synaptic projection is missing, or its node ids do not fit the populations.
    """
    edges = {}
    for name in SYNAPTIC:
        p = run.projection(name)
        edges[name] = (p.source_ids.astype(np.int64), p.target_ids.astype(np.int64))
    n_rec = int(run.population_sizes.get("recurrent", 0)) if n_rec is None else n_rec
    try:
        return Connectivity.from_edges(edges, run.n_in, n_rec, run.n_out)
    except ValueError as exc:
        raise RunFileError(run.path, str(exc)) from None


def to_dense(run: RunLog, projection: str, vectors: np.ndarray) -> np.ndarray:
    """Edge vectors of ``projection`` (``(..., n_edges)``: one, or one per iteration or trial) → dense
    float64 matrices ``(..., post, pre)`` (``bias``: ``(..., n_out)``), zero where no edge is.

    Raises
    ------
    RunFileError
        No such projection in the log.
    ValueError
        The last axis of ``vectors`` is not the projection's edge count.
    """
    conn = connectivity_of(run)
    if projection not in conn.edges:
        raise RunFileError(run.path, f"has no projection {projection!r} (available: {', '.join(conn.edges)})")
    return conn.to_dense(projection, vectors)


def weight_matrices(run: RunLog, projection: str) -> np.ndarray:
    """Every stored row of ``projection``'s weights as dense matrices: ``(rows, post, pre)``, row ``i`` the
    weights iteration ``i`` ran with, the last row the final weights once the run finished."""
    return to_dense(run, projection, run.projection(projection).weights)
