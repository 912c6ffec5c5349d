"""NEST's Adam (``adam-nest``): NEST's documented formula and its ε form."""

from __future__ import annotations

import numpy as np

from neuroplast.plasticity.optim import OPTIMIZERS, Adam, NestAdam, averaged


def _nest_formula(gs: list[float], lr=5e-3, b1=0.9, b2=0.999, eps=1e-8) -> list[float]:
    """weight_optimizer.h: Δ = −η √(1 − β₂ⁿ)/(1 − β₁ⁿ) · m_n/(√v_n + ε), one parameter, written out."""
    m = v = 0.0
    out = []
    for n, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        out.append(-lr * np.sqrt(1 - b2**n) / (1 - b1**n) * m / (np.sqrt(v) + eps))
    return out


def test_matches_nests_formula() -> None:
    rng = np.random.default_rng(3)
    g = rng.normal(0, 1e-6, (6, 3))  # small gradients: the ε form matters
    g[[1, 4], 0] = 0.0  # a zero gradient still steps (NEST catches up on missed updates)
    opt = NestAdam(5e-3)
    steps = np.array([opt.step({"input": g[i][None]})["input"][0] for i in range(6)])
    for j in range(3):
        np.testing.assert_allclose(steps[:, j], _nest_formula(list(g[:, j])), rtol=1e-13, atol=0)
    assert steps[1, 0] != 0.0


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


def test_averaged_divides_by_the_counted_steps() -> None:
    mask = np.zeros(10)
    mask[-4:] = 1.0
    out = averaged({"input": np.full((2, 3), 8.0)}, mask)
    np.testing.assert_array_equal(out["input"], np.full((2, 3), 2.0))
