"""Weights as edge vectors (:class:`EdgeWeights`) and the initializer that draws them without an N × N
matrix: bit for bit the dense weights of the same draws (issue 26, memory per synapse)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import neuroplast.model.initializers as init
from neuroplast.model.connectivity import Connectivity, EdgeWeights
from neuroplast.model.params import Weights


def _whole_matrix_gaussian(n, n_in: int, seed: int) -> Weights:
    """The ``gaussian`` initializer as it was written before (one draw of each whole matrix, dense)."""
    rng = np.random.default_rng([seed, 0])
    mask_in = rng.random((n.n_rec, n_in)) < n.p_in
    mask_rec = (rng.random((n.n_rec, n.n_rec)) < n.p_rec) & ~np.eye(n.n_rec, dtype=bool)
    w_in = rng.normal(0.0, n.w_in_scale / np.sqrt(max(1.0, n_in * n.p_in)), (n.n_rec, n_in))
    w_rec = rng.normal(0.0, n.w_rec_scale / np.sqrt(max(1.0, n.n_rec * n.p_rec)), (n.n_rec, n.n_rec))
    w_out = rng.normal(0.0, n.w_out_scale / np.sqrt(n.n_rec), (n.n_out, n.n_rec))
    return Weights(w_in, w_rec, w_out, np.zeros(n.n_out), mask_in, mask_rec)


@pytest.mark.parametrize("block", [2**22, 7, 50])
@pytest.mark.parametrize(
    ("n_rec", "p_rec", "p_in"), [(40, 0.1, 1.0), (31, 0.5, 0.3), (25, 1.0, 1.0), (1, 1.0, 1.0)]
)
def test_gaussian_in_row_blocks_is_the_whole_matrix_draw(monkeypatch, block, n_rec, p_rec, p_in) -> None:
    """Drawn a block of rows at a time, keeping only the values on the mask, the initial weights are those
    of one draw of each whole matrix bit for bit (the claim is bit identity: the generator's stream does
    not depend on how it is cut), whatever the block size."""
    monkeypatch.setattr(init, "_BLOCK_VALUES", block)
    net = SimpleNamespace(
        n_rec=n_rec, p_rec=p_rec, p_in=p_in, w_in_scale=0.05, w_rec_scale=0.02, w_out_scale=0.1, n_out=2
    )
    got, want = init.gaussian(net, 6, 3).weights, _whole_matrix_gaussian(net, 6, 3)
    assert isinstance(got, EdgeWeights) and not got._dense  # nothing dense until read
    for attr in ("w_in", "w_rec", "w_out", "b_out", "mask_in", "mask_rec", "mask_out"):
        a, b = getattr(got, attr), getattr(want, attr)
        assert a.dtype == b.dtype and np.array_equal(a, b), attr


def test_from_mask_order_is_to_edges() -> None:
    """The edge vector of a matrix's values on the mask in row-major order is :meth:`to_edges` of the
    matrix, bit for bit."""
    rng = np.random.default_rng(8)
    masks = (rng.random((9, 4)) < 0.6, rng.random((9, 9)) < 0.3, rng.random((2, 9)) < 0.8)
    conn = Connectivity.from_masks(*masks)
    for name, mask in zip(("input", "recurrent", "output"), masks, strict=True):
        dense = rng.normal(size=mask.shape)
        m = conn.masks[name]
        assert np.array_equal(conn.from_mask_order(name, dense[m]), conn.to_edges(name, dense)), name
    with pytest.raises(ValueError, match="recurrent"):
        conn.from_mask_order("recurrent", np.zeros(3))
