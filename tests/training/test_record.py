"""``Trainer.record`` and its helpers (no Brian2): the fast paths give what the plain NumPy expressions give,
and the record's resume state is the trainer's, read-only and uncopied."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from neuroplast.build import build
from neuroplast.model.connectivity import LOG_PROJECTIONS, Connectivity
from neuroplast.training.trainer import IterationLog, Trainer, _input_spikes
from tests.helpers import _synthetic_config


class _NoSimulator:
    device = "given"
    chunk = 0


def _trainer() -> Trainer:
    return Trainer(build(_synthetic_config("regression", 0.5)), simulator=_NoSimulator())


@pytest.mark.parametrize("shape", [(60, 6), (1, 1), (7, 3), (1000, 100)])
def test_input_spikes_are_np_nonzero(shape) -> None:
    x = (np.random.default_rng(0).random(shape) < 0.3).astype(float)
    x[0, 0] = 2.0  # a count, still a spike
    got, want = _input_spikes(x), np.nonzero(x)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == w.dtype


def test_to_edges_takes_what_fancy_indexing_takes() -> None:
    rng = np.random.default_rng(2)
    conn = Connectivity.from_masks(
        rng.random((9, 4)) < 0.6, rng.random((9, 9)) < 0.3, rng.random((2, 9)) < 0.8
    )
    for name in LOG_PROJECTIONS:
        src, tgt = conn.edges[name]
        dense = rng.normal(size=conn.shape(name))
        for d in (dense, np.asfortranarray(dense), dense.T.copy().T):  # any memory order
            got = conn.to_edges(name, d)
            want = d[tgt].copy() if name == "bias" else d[tgt, src]
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.float64 and not np.shares_memory(got, d)
    # another shape than the projection's: indexed as before (here out of bounds, as before)
    with pytest.raises(IndexError):
        conn.to_edges("recurrent", np.zeros((9, 3)))


def test_state_copies_unless_told_not_to() -> None:
    tr = _trainer()
    copied, kept = tr.state(), tr.state(copy=False)
    assert kept["weights"]["recurrent"] is tr.state(copy=False)["weights"]["recurrent"]  # one gather
    assert kept["feedback"] is tr.feedback
    assert not np.shares_memory(copied["weights"]["recurrent"], kept["weights"]["recurrent"])
    copied["weights"]["recurrent"][:] = 1.0
    assert not (tr.state()["weights"]["recurrent"] == 1.0).all()


def test_state_is_edge_vectors_that_give_the_weights_back_and_loads_version_1() -> None:
    """The resume state holds edge vectors (format version 2); a version-1 state (dense matrices) loads to
    the same trainer state bit for bit (bit identity: a gather and a scatter of the same float64s)."""
    tr = _trainer()
    conn = tr.connectivity
    state = tr.state()
    for key, attr in (("input", "w_in"), ("recurrent", "w_rec"), ("output", "w_out"), ("bias", "b_out")):
        assert state["weights"][key].shape == (conn.n_edges(key),)
        np.testing.assert_array_equal(conn.to_dense(key, state["weights"][key]), getattr(tr.weights, attr))
    w = tr.weights
    v1 = {
        "iteration": 3,
        "weights": {"w_in": w.w_in * 2, "w_rec": w.w_rec * 2, "w_out": w.w_out * 2, "b_out": w.b_out + 1},
        "feedback": tr.feedback,
        "optimizer": {},
    }
    tr.load_state(v1)
    assert tr.iteration == 3
    np.testing.assert_array_equal(tr.weights.w_rec, w.w_rec * 2)
    np.testing.assert_array_equal(tr.state()["weights"]["recurrent"], state["weights"]["recurrent"] * 2)
    again = _trainer()
    again.load_state(tr.state())
    for attr in ("w_in", "w_rec", "w_out", "b_out"):
        np.testing.assert_array_equal(getattr(again.weights, attr), getattr(tr.weights, attr))
    bad = tr.state()
    bad["weights"]["recurrent"] = bad["weights"]["recurrent"][:-1]
    with pytest.raises(ValueError, match="recurrent"):
        again.load_state(bad)


def test_record_state_is_the_trainers_read_only_and_the_loss_is_iterates() -> None:
    tr = _trainer()
    (trial,) = tr.task.trials(0, 1)
    T, N, n_out = trial.x.shape[0], tr.params.n_rec, tr.weights.n_out
    rng = np.random.default_rng(1)
    res = SimpleNamespace(
        y=rng.normal(size=(T, n_out)),
        spike_count=np.full(N, 3.0),
        spikes=(np.array([0, 5]), np.array([2, 1])),
        v=None,
        a=None,
        z=None,
        psi=None,
    )
    dense = {k: rng.normal(size=tr.connectivity.shape(k)) for k in ("input", "recurrent", "output", "bias")}
    zeros = {k: np.zeros_like(v) for k, v in dense.items()}
    log = IterationLog(0, [0.25], [dense], [res], [trial], tr.weights.copy(), tr.feedback, zeros)
    rec = tr.record(log)
    want = tr.flat_state()
    assert set(rec.state) == set(want)
    for k, a in rec.state.items():
        np.testing.assert_array_equal(a, want[k])
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[...] = 0
    assert rec.trials[0].loss == 0.25  # iterate's loss, not computed again
    steps, ids = rec.trials[0].spikes["input"]
    np.testing.assert_array_equal(steps, np.nonzero(trial.x)[0])
    np.testing.assert_array_equal(ids, np.nonzero(trial.x)[1])
    for k, g in rec.trials[0].grads.items():
        src, tgt = tr.connectivity.edges[k]
        want_g = dense[k][tgt] if k == "bias" else dense[k][tgt, src]
        np.testing.assert_array_equal(g[tr.rule_name], want_g)
