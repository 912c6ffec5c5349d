"""NEST's Adam (``adam-nest``): NEST's documented formula, its ε form, its per-parameter step counter."""

from __future__ import annotations

import numpy as np

from neuroplast.plasticity.optim import OPTIMIZERS, Adam, NestAdam


def _nest_formula(gs: list[float], lr=5e-3, b1=0.9, b2=0.999, eps=1e-8) -> list[float]:
    """weight_optimizer.h: m, v moments; Δ = −η √(1 − β₂ⁿ)/(1 − β₁ⁿ) m/(√v + ε), n = this parameter's step."""
    m = v = 0.0
    out, n = [], 0
    for g in gs:
        if g == 0.0:  # no presynaptic spike: no update
            out.append(0.0)
            continue
        n += 1
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        out.append(-lr * np.sqrt(1 - b2**n) / (1 - b1**n) * m / (np.sqrt(v) + eps))
    return out


def test_matches_nests_formula_with_a_counter_per_parameter() -> None:
    rng = np.random.default_rng(3)
    g = rng.normal(0, 1e-6, (6, 3))  # small gradients: the ε form matters
    g[[1, 4], 0] = 0.0  # parameter 0 is silent in iterations 2 and 5
    opt = NestAdam(5e-3)
    steps = np.array([opt.step({"input": g[i][None]})["input"][0] for i in range(6)])
    for j in range(3):
        np.testing.assert_allclose(steps[:, j], _nest_formula(list(g[:, j])), rtol=1e-13, atol=0)
    assert steps[1, 0] == 0.0 and opt.n["input"][0].tolist() == [4.0, 6.0, 6.0]


def test_differs_from_adam_by_its_epsilon_form() -> None:
    g = {"input": np.array([[1e-8, -3e-8]])}
    nest, adam = NestAdam(1e-3, eps=1e-8).step(g)["input"], Adam(1e-3, eps=1e-8).step(g)["input"]
    assert not np.allclose(nest, adam, rtol=1e-3)
    big = {"input": np.array([[1.0, -3.0]])}
    np.testing.assert_allclose(NestAdam(1e-3).step(big)["input"], Adam(1e-3).step(big)["input"], rtol=1e-6)


def test_registered_and_resumable() -> None:
    assert OPTIMIZERS.get("adam-nest") is NestAdam
    a, b = NestAdam(1e-3), NestAdam(1e-3)
    g = {"input": np.array([[1.0, 0.0]])}
    a.step(g)
    b.load_state(a.state())
    np.testing.assert_array_equal(a.step(g)["input"], b.step(g)["input"])
