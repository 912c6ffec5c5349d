"""Shared, seeded fixtures. Brian2 networks are built once per test session and reused by every folder.

They are built through the compiled-network cache (``$NEUROPLAST_CACHE``, neuroplast/network/cache.py):
the test workers (pytest-xdist, one per CPU) and later sessions share one build of each network, the
cache's lock serializing a build that two workers need at once.  The helpers they use (``make_params``
...) are in tests/helpers.py.
"""

from __future__ import annotations

import os

import pytest

from neuroplast.model.params import Weights
from tests.helpers import T_EQ, T_GRAD, make_params, make_weights


@pytest.fixture(scope="session")
def eq_weights() -> Weights:
    return make_weights()


@pytest.fixture(scope="session", params=["runtime", "cpp_standalone"])
def eq_network(request, eq_weights):
    """One forward-only network per device, compiled once and rerun with new parameters."""
    from neuroplast.network.builder import Brian2Network

    return Brian2Network(make_params("mix"), eq_weights, T_EQ, device=request.param)


@pytest.fixture(
    scope="session",
    params=[
        ("runtime", "mse"),
        ("runtime", "cross_entropy"),
        ("cpp_standalone", "mse"),
        ("cpp_standalone", "cross_entropy"),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def grad_network(request, eq_weights):
    """A gradient-accumulating network per (device, loss), built once per session.

    Brian2 has one standalone project per process, so tests using this fixture are
    grouped by its parameter (pytest orders session-scoped parameters that way).
    """
    from neuroplast.network.builder import Brian2Network

    device, loss = request.param
    return Brian2Network(
        make_params("mix"),
        eq_weights,
        T_GRAD,
        device=device,
        loss=loss,
        gradients=True,
        record=True,
    )


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per CPU this process may use (logical CPUs; at most 8: each worker holds a
    Python with Brian2 and NumPy, ≈ 0.5 GB)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))
