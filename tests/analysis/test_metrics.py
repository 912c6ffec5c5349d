"""neuroplast.analysis.metrics: known values, batched rows, NaN for rows that were not computed."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.analysis.metrics import (
    all_metrics,
    cosine_similarity,
    norm_ratio,
    relative_error,
    sign_agreement,
)


def test_metrics_known_values() -> None:
    g = np.array([1.0, -2.0, 0.0, 2.0])
    assert cosine_similarity(g, g) == pytest.approx(1.0)
    assert cosine_similarity(-g, g) == pytest.approx(-1.0)
    assert relative_error(g, g) == 0.0
    assert relative_error(2 * g, g) == pytest.approx(1.0)
    assert norm_ratio(0.5 * g, g) == pytest.approx(0.5)
    est = np.array([3.0, 1.0, -5.0, 0.1])  # entry 2 has g = 0: no sign, not counted
    assert sign_agreement(est, g) == pytest.approx(2 / 3)
    orth = np.array([2.0, 1.0, 7.0, 0.0])
    assert cosine_similarity(orth, g) == pytest.approx(0.0, abs=1e-15)


def test_metrics_batched_and_nan() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(5, 3, 4))
    e = g + 0.1 * rng.normal(size=g.shape)
    e[2] = np.nan  # "not computed"
    g[4] = 0.0  # zero exact gradient
    m = all_metrics(e, g, batch_axes=1)
    for key, v in m.items():
        assert v.shape == (5,), key
        assert np.isnan(v[2]) and np.isnan(v[4]), key
        for k in (0, 1, 3):
            assert v[k] == pytest.approx(float(all_metrics(e[k], g[k])[key]), rel=1e-12), (
                key
            )  # row = whole-array metric of that row
    assert np.all(m["cosine"][[0, 1, 3]] > 0.9)
    assert cosine_similarity(e, g, batch_axes=2).shape == (5, 3)
    with pytest.raises(ValueError, match="shape"):
        cosine_similarity(np.ones(3), np.ones(4))
    sign = sign_agreement(np.array([1.0, -1.0]), np.array([1e-20, 1.0]))
    assert sign == 0.0  # the 1e-20 entry is below rtol · max|g| and is ignored
