"""The one owner of the edge layout: masks ↔ edge lists, dense matrices ↔ the run log's edge vectors.

Dense matrices are (post × pre), as :class:`~neuroplast.model.params.Weights` holds them.  A projection's
edges are the pairs (source i, target j) of its mask, sorted by (source, target); an edge vector lists one
value per edge in that order.  Besides the three synaptic projections the run log has two
*pseudo-projections*:

* ``feedback`` — the learning-signal weights B (N × n_out, post = recurrent neuron j, pre = readout unit k):
  one edge per readout synapse, in the output projection's edge order, with source k and target j;
* ``bias`` — the readout bias b, one edge (k, k) per readout unit.

Nothing else in neuroplast spells this layout out: the Brian2 builder, the trainer, the run log's writer
and reader, and the analyses all go through :class:`Connectivity`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from neuroplast.model.params import WEIGHT_ATTRS, Weights

__all__ = [
    "PROJECTIONS",
    "SYNAPTIC",
    "LOG_PROJECTIONS",
    "HIDDEN",
    "EDGE_ID",
    "edges_of",
    "Connectivity",
    "EdgeWeights",
]

#: Trainable parameter groups (gradients, optimizer updates), in log order.
PROJECTIONS = ("input", "recurrent", "output", "bias")
#: Projections made of synapses (a mask each).
SYNAPTIC = ("input", "recurrent", "output")
#: Projections onto the recurrent neurons (eligibility traces, learning signal).
HIDDEN = ("input", "recurrent")
#: Every projection of the run log, in the order its ``/projections`` group lists them.
LOG_PROJECTIONS = ("input", "recurrent", "output", "feedback", "bias")

Edges = tuple[np.ndarray, np.ndarray]

#: The integer type of node ids in edge lists: 4 bytes per id (a population of 2**31 neurons would need an
#: N × N mask of 2**62 bytes first).
EDGE_ID = np.int32


def edges_of(mask: np.ndarray) -> Edges:
    """Edge list (source_ids, target_ids) of a (post × pre) mask, sorted by (source, target),
    :data:`EDGE_ID` (int32)."""
    tgt, src = np.nonzero(mask)  # rows = post, cols = pre
    order = np.lexsort((tgt, src))
    return src[order].astype(EDGE_ID), tgt[order].astype(EDGE_ID)


@dataclass(frozen=True)
class Connectivity:
    """Sizes, masks and edge lists of one network.

    Attributes
    ----------
    n_in, n_rec, n_out : int
        Population sizes.
    masks : dict of str to ndarray of bool
        ``input`` (N, n_in), ``recurrent`` (N, N), ``output`` (n_out, N), post × pre.
    edges : dict of str to (ndarray, ndarray)
        ``(source_ids, target_ids)`` (:data:`EDGE_ID`, int32) of every projection of
        :data:`LOG_PROJECTIONS`: sorted by (source, target) for a network built here, in the file's order
        for a run log read back.
    """

    n_in: int
    n_rec: int
    n_out: int
    masks: Mapping[str, np.ndarray]
    edges: Mapping[str, Edges]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_masks(cls, mask_in: np.ndarray, mask_rec: np.ndarray, mask_out: np.ndarray) -> Connectivity:
        """Connectivity of dense (post × pre) masks, edges sorted by (source, target)."""
        masks = {
            "input": np.array(mask_in, dtype=bool),
            "recurrent": np.array(mask_rec, dtype=bool),
            "output": np.array(mask_out, dtype=bool),
        }
        return cls._make(masks, {name: edges_of(m) for name, m in masks.items()})

    @classmethod
    def _make(cls, masks: dict[str, np.ndarray], edges: dict[str, Edges]) -> Connectivity:
        n_rec, n_in = masks["input"].shape
        n_out = masks["output"].shape[0]
        edges = dict(edges)
        src, tgt = edges["output"]
        edges["feedback"] = (tgt, src)  # readout k → recurrent j, in the output projection's order
        edges["bias"] = (np.arange(n_out, dtype=EDGE_ID), np.arange(n_out, dtype=EDGE_ID))
        for m in masks.values():
            m.setflags(write=False)
        return cls(int(n_in), int(n_rec), int(n_out), masks, {k: edges[k] for k in LOG_PROJECTIONS})

    @classmethod
    def of(cls, weights: Weights) -> Connectivity:
        """Connectivity of a :class:`Weights` (its masks); an :class:`EdgeWeights`' own connectivity."""
        if isinstance(weights, EdgeWeights):
            return weights.connectivity
        return cls.from_masks(weights.mask_in, weights.mask_rec, weights.mask_out)

    @classmethod
    def from_edges(cls, edges: Mapping[str, Edges], n_in: int, n_rec: int, n_out: int) -> Connectivity:
        """Connectivity from the edge lists of a run log, keeping their order.

        ``input``, ``recurrent`` and ``output`` are read; ``feedback`` and ``bias`` follow from them.

        Raises
        ------
        ValueError
            If a node id lies outside its population, or an edge is listed twice.
        """
        shapes = {"input": (n_rec, n_in), "recurrent": (n_rec, n_rec), "output": (n_out, n_rec)}
        masks, kept = {}, {}
        for name, (n_post, n_pre) in shapes.items():
            src, tgt = (np.asarray(a).astype(np.int64) for a in edges[name])  # checked before narrowing
            if src.size and (src.min() < 0 or tgt.min() < 0 or src.max() >= n_pre or tgt.max() >= n_post):
                raise ValueError(f"projection {name!r} has node ids outside the populations")
            m = np.zeros((n_post, n_pre), dtype=bool)
            m[tgt, src] = True
            if int(m.sum()) != src.size:
                raise ValueError(f"projection {name!r} lists an edge more than once")
            masks[name], kept[name] = m, (src.astype(EDGE_ID), tgt.astype(EDGE_ID))
        return cls._make(masks, kept)

    # ------------------------------------------------------------------ shapes
    def shape(self, name: str) -> tuple[int, ...]:
        """Dense shape of a projection (``bias``: (n_out,); ``feedback``: (N, n_out))."""
        return {
            "input": (self.n_rec, self.n_in),
            "recurrent": (self.n_rec, self.n_rec),
            "output": (self.n_out, self.n_rec),
            "feedback": (self.n_rec, self.n_out),
            "bias": (self.n_out,),
        }[name]

    def n_edges(self, name: str) -> int:
        """Number of edges of a projection."""
        return int(self.edges[name][0].size)

    # ------------------------------------------------------------------ dense ↔ edges
    @cached_property
    def _flat_cache(self) -> dict[str, np.ndarray]:
        return {}

    def _flat_edges(self, name: str) -> np.ndarray:
        """The flat (row-major) index ``target * n_pre + source`` of every edge of the matrix projection
        ``name`` in its dense matrix of :meth:`shape`, made when first asked for (8 bytes per edge);
        ``dense.ravel().take(flat)`` is ``dense[target, source]``, a few times faster (the trainer turns
        every trial's gradients into edge vectors)."""
        flat = self._flat_cache.get(name)
        if flat is None:
            flat = self._flat_cache[name] = self._flat(name)
        return flat

    def _flat(self, name: str) -> np.ndarray:
        src, tgt = self.edges[name]
        return np.asarray(tgt, dtype=np.intp) * self.shape(name)[1] + np.asarray(src, np.intp)

    def to_edges(self, name: str, dense: np.ndarray) -> np.ndarray:
        """Dense matrix (post × pre; ``bias`` a vector) → float64 edge vector of ``name``."""
        src, tgt = self.edges[name]
        dense = np.asarray(dense, dtype=np.float64)
        if name == "bias":
            return dense[tgt].copy()
        if dense.shape == self.shape(name):
            return dense.ravel().take(self._flat_edges(name))
        return dense[tgt, src]

    def from_mask_order(self, name: str, values: np.ndarray) -> np.ndarray:
        """Edge vector of the matrix projection ``name`` from the values of its mask's entries in row-major
        order (``dense[mask]``, the order of ``np.nonzero``): ``to_edges(name, dense)`` bit for bit, without
        the dense matrix (an initializer that draws a matrix row block by row block keeps only the values
        on the mask)."""
        n = self.n_edges(name)
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"projection {name!r}: {n} edges, given {values.shape}")
        out = np.empty(n)
        out[np.argsort(self._flat(name), kind="stable")] = values  # each edge's row-major rank (not kept)
        return out

    def put(self, name: str, dense: np.ndarray, vector: np.ndarray) -> None:
        """Write the edge vector of ``name`` onto its entries of ``dense`` (post × pre; ``bias`` a vector),
        in place: ``dense[target, source] = vector``, the rest of ``dense`` untouched."""
        if name == "bias":
            dense[self.edges[name][1]] = vector
        else:
            np.put(dense, self._flat_edges(name), vector)  # row-major flat indices, in place in any layout

    def to_dense(self, name: str, vector: np.ndarray) -> np.ndarray:
        """Edge vector of ``name`` → dense float64 matrix, zero where no edge is.

        ``vector`` may have leading axes (``(..., n_edges)``, e.g. one row per iteration or trial); the
        result then has them too: ``(..., *shape(name))``.
        """
        src, tgt = self.edges[name]
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape[-1:] != (src.size,):
            raise ValueError(
                f"projection {name!r}: {src.size} edges, given a last axis of {vector.shape[-1:] or 'none'}"
            )
        out = np.zeros(vector.shape[:-1] + self.shape(name))
        if name == "bias":
            out[..., tgt] = vector
        else:
            out[..., tgt, src] = vector
        return out

    def edge_vectors(self, dense: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`to_edges` of every entry of ``{projection: dense}``."""
        return {name: self.to_edges(name, m) for name, m in dense.items()}

    def weight_vectors(self, weights: Weights, feedback: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Edge vectors of the weights (and, if given, of the feedback B (N, n_out)), log order.

        Those of an :class:`EdgeWeights` of this connectivity are its own (read-only) vectors, not copies.
        """
        if isinstance(weights, EdgeWeights) and weights.connectivity is self:
            vectors = {k: weights.edges[k] for k in ("input", "recurrent", "output")}
            if feedback is not None:
                vectors["feedback"] = self.to_edges("feedback", feedback)
            vectors["bias"] = weights.edges["bias"]
            return vectors
        dense = {"input": weights.w_in, "recurrent": weights.w_rec, "output": weights.w_out}
        if feedback is not None:
            dense["feedback"] = feedback
        dense["bias"] = weights.b_out
        return self.edge_vectors(dense)

    def weights(self, vectors: Mapping[str, np.ndarray]) -> Weights:
        """Dense :class:`Weights` (with this connectivity's masks) from edge vectors."""
        return Weights(
            self.to_dense("input", vectors["input"]),
            self.to_dense("recurrent", vectors["recurrent"]),
            self.to_dense("output", vectors["output"]),
            self.to_dense("bias", vectors["bias"]),
            self.masks["input"],
            self.masks["recurrent"],
            self.masks["output"],
        )

    def edge_weights(self, vectors: Mapping[str, np.ndarray]) -> EdgeWeights:
        """:class:`EdgeWeights` of this connectivity from edge vectors (``input``, ``recurrent``, ``output``,
        ``bias``): :meth:`weights` without a dense matrix until one is read."""
        return EdgeWeights(self, vectors)

    def feedback(self, vector: np.ndarray) -> np.ndarray:
        """The feedback matrix B (N, n_out) from its edge vector."""
        return self.to_dense("feedback", vector)


def _dense(key: str) -> property:
    def get(self: EdgeWeights) -> np.ndarray:
        return self.dense(key)

    name = WEIGHT_ATTRS[key]
    return property(get, doc=f"The dense ``{name}`` (:meth:`EdgeWeights.dense`), made when first read.")


def _mask(key: str) -> property:
    def get(self: EdgeWeights) -> np.ndarray:
        return self.connectivity.masks[key]

    return property(get, doc=f"The connectivity's (read-only) ``{key}`` mask.")


class EdgeWeights(Weights):
    """:class:`Weights` held as edge vectors of a :class:`Connectivity`: no N × N matrix until one is read.

    Every attribute of :class:`Weights` reads as there — ``w_in``, ``w_rec``, ``w_out``, ``b_out`` are
    made, on first reading, by :meth:`Connectivity.weights`' own ``to_dense`` (zero off the connectivity,
    the edges' values on it: bit for bit the dense :class:`Weights` of the same vectors) and kept, read-only,
    as long as these weights are; the masks are the connectivity's (read-only).  The trainer's path that
    steps on edge vectors (``Trainer.edge_optimizer``) holds its weights so: 8 bytes per synapse instead of
    a float64 N × N matrix (80 bytes per recurrent synapse at p = 0.1) for every weights object alive —
    a consumer that needs the dense matrix (a rule's ``dense_updates`` of the recurrent projection, the
    NumPy reference, a user's ``trainer.weights.w_rec``) makes it by reading it.

    Parameters
    ----------
    connectivity : Connectivity
        The edge layout.
    vectors : mapping of str to ndarray
        Float64 edge vectors ``input``, ``recurrent``, ``output`` and ``bias`` (``connectivity``'s order;
        weights in the model's units).  They become these weights' own, read-only: the caller gives them up.

    Raises
    ------
    ValueError
        If a vector is not float64 or its length is not the projection's number of edges.
    """

    def __init__(self, connectivity: Connectivity, vectors: Mapping[str, np.ndarray]) -> None:
        self.connectivity = connectivity
        self.edges: dict[str, np.ndarray] = {}
        for key in WEIGHT_ATTRS:
            v, n = vectors[key], connectivity.n_edges(key)
            if not isinstance(v, np.ndarray) or v.dtype != np.float64 or v.shape != (n,):
                got = f"{getattr(v, 'dtype', type(v))} {np.shape(v)}"
                raise ValueError(f"{key}: {got}, expected float64 ({n},)")
            v.setflags(write=False)
            self.edges[key] = v
        self._dense: dict[str, np.ndarray] = {}

    def dense(self, key: str) -> np.ndarray:
        """The dense (post × pre; ``bias`` a vector) read-only weights of projection ``key``, made once."""
        out = self._dense.get(key)
        if out is None:
            out = self._dense[key] = self.connectivity.to_dense(key, self.edges[key])
            out.setflags(write=False)
        return out

    w_in = _dense("input")
    w_rec = _dense("recurrent")
    w_out = _dense("output")
    b_out = _dense("bias")
    mask_in = _mask("input")
    mask_rec = _mask("recurrent")
    mask_out = _mask("output")

    @property
    def n_in(self) -> int:
        return self.connectivity.n_in

    @property
    def n_rec(self) -> int:
        return self.connectivity.n_rec

    @property
    def n_out(self) -> int:
        return self.connectivity.n_out
