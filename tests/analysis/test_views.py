"""Dense (post × pre) matrices of a run log's edge vectors (neuroplast/analysis/views.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroplast.analysis.views import connectivity_of, to_dense, weight_matrices
from neuroplast.io import RunFileError, open_run
from tests.helpers import SYNTH_N_REC, write_synthetic_run


def test_weight_matrices_put_every_edge_at_target_source(tmp_path: Path) -> None:
    run = open_run(write_synthetic_run(tmp_path / "run.h5", n_iter=2))
    for name in ("input", "recurrent", "output"):
        p = run.projection(name)
        dense = weight_matrices(run, name)
        assert dense.shape[0] == p.weights.shape[0]
        want = np.zeros_like(dense)
        for e, (s, t) in enumerate(zip(p.source_ids, p.target_ids, strict=True)):  # edge by edge
            want[:, int(t), int(s)] = p.weights[:, e]
        np.testing.assert_array_equal(dense, want)  # values copied, not computed: bit for bit
    assert weight_matrices(run, "recurrent").shape[1:] == (SYNTH_N_REC, SYNTH_N_REC)
    assert weight_matrices(run, "bias").shape[1:] == (run.n_out,)


def test_gradients_per_trial_and_feedback(tmp_path: Path) -> None:
    run = open_run(write_synthetic_run(tmp_path / "run.h5", n_iter=2))
    g = run.projection("recurrent").grad("eprop")
    dense = to_dense(run, "recurrent", g)
    assert dense.shape == (run.n_trials, SYNTH_N_REC, SYNTH_N_REC)
    conn = connectivity_of(run)
    np.testing.assert_array_equal(dense[1], conn.to_dense("recurrent", g[1]))  # one row = the stack's row
    assert not dense[:, ~conn.masks["recurrent"]].any()  # zero where no synapse is
    fb = run.projection("feedback")
    b = to_dense(run, "feedback", fb.weights[0])
    assert b.shape == (SYNTH_N_REC, run.n_out)
    w_out = to_dense(run, "output", run.projection("output").weights[0])
    np.testing.assert_array_equal(b, w_out.T)  # the synthetic run's feedback is W_out^T


def test_bad_projection_or_length(tmp_path: Path) -> None:
    run = open_run(write_synthetic_run(tmp_path / "run.h5", n_iter=1))
    with pytest.raises(RunFileError, match="no projection 'nope'"):
        to_dense(run, "nope", np.zeros(3))
    n = run.projection("recurrent").n_edges
    with pytest.raises(ValueError, match=f"'recurrent': {n} edges"):
        to_dense(run, "recurrent", np.zeros((2, n + 1)))
