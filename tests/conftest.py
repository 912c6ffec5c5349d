"""Shared, seeded fixtures. Brian2 networks are built once per test session and reused by every folder.

The helpers they use (``make_params`` ...) are in tests/helpers.py.
"""

from __future__ import annotations

import pytest

from neuroplast.model.params import Weights
from tests.helpers import T_EQ, T_GRAD, make_params, make_weights


@pytest.fixture(scope="session")
def eq_weights() -> Weights:
    return make_weights()


@pytest.fixture(scope="session", params=["runtime", "cpp_standalone"])
def eq_network(request, eq_weights, tmp_path_factory):
    """One forward-only network per device, compiled once and rerun with new parameters."""
    from neuroplast.network.builder import Brian2Network

    folder = tmp_path_factory.mktemp(f"eq_{request.param}")
    return Brian2Network(make_params("mix"), eq_weights, T_EQ, device=request.param, build_dir=folder)


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
def grad_network(request, eq_weights, tmp_path_factory):
    """A gradient-accumulating network per (device, loss), built once per session.

    Brian2 has one standalone project per process, so tests using this fixture are
    grouped by its parameter (pytest orders session-scoped parameters that way).
    """
    from neuroplast.network.builder import Brian2Network

    device, loss = request.param
    folder = tmp_path_factory.mktemp(f"grad_{device}_{loss}")
    return Brian2Network(
        make_params("mix"),
        eq_weights,
        T_GRAD,
        device=device,
        loss=loss,
        gradients=True,
        record=True,
        build_dir=folder,
    )
