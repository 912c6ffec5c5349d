"""The trainer's path that steps on edge vectors holds its weights as :class:`EdgeWeights` (issue 26: no
N × N matrix per weights object), and they read as the dense weights of its edge vectors."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.model.connectivity import EdgeWeights
from neuroplast.training.trainer import Trainer
from tests.helpers import SINE

pytestmark = pytest.mark.brian2


def test_factorized_sparse_trainer_holds_edge_weights_and_makes_nothing_dense() -> None:
    """A sparse network on cpp_standalone's compiled factorized gradient: the weights before and after
    every update are edge vectors, no input or recurrent matrix is made along the way (not even by the
    launch, which takes the edge vectors in Brian2's order), the setup keeps no dense initial weights, and
    the dense matrices, read on demand, are the weights plus the logged update bit for bit."""
    data = tomllib.loads(SINE.read_text())
    data["network"].update(n_rec=60, p_rec=0.2)
    data["simulation"].update(device="cpp_standalone", n_steps=200)
    data["training"].update(path="factorized", iterations=2)
    tr = Trainer.from_config(parse_config(data))
    assert tr.edge_optimizer and tr.compiled_gradients
    assert isinstance(tr.weights, EdgeWeights) and tr.setup.weights is tr.weights
    records = [tr.run_iteration() for _ in range(2)]
    # the readout's small matrices are read dense (B = W_outᵀ, the launch's bias), never input or recurrent
    for w in (tr.weights, tr.setup.weights):
        assert isinstance(w, EdgeWeights) and not {"input", "recurrent"} & set(w._dense)
    before, after = records[1].weights_before, tr.state()["weights"]
    for key, attr in (("input", "w_in"), ("recurrent", "w_rec"), ("output", "w_out"), ("bias", "b_out")):
        assert np.array_equal(after[key], before[key] + records[1].updates[key]), key
        dense = getattr(tr.weights, attr)  # made now, on demand
        assert np.array_equal(dense, tr.connectivity.to_dense(key, after[key])), key
    assert not np.array_equal(before["recurrent"], after["recurrent"])  # the weights moved
