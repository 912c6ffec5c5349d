"""Shared, seeded fixtures. Brian2 networks are built once per test session and reused."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.model.params import ModelParams, Weights

N, N_IN, N_OUT, T_EQ = 40, 24, 2, 2000


def make_params(kind: str, n_rec: int = N, n_ref: int = 3, **kw) -> ModelParams:
    """LIF, ALIF or mixed parameters that make a small net fire at a few tens of Hz."""
    beta = {"lif": 0.0, "alif": 0.05, "mix": np.where(np.arange(n_rec) < n_rec // 2, 0.0, 0.05)}[kind]
    base = dict(
        n_rec=n_rec,
        tau_m=20.0,
        tau_a=np.linspace(100.0, 400.0, n_rec),
        beta=beta,
        v_th=0.3,
        n_ref=n_ref,
        tau_out=20.0,
        input_scale=1.0,
        readout_scale=1.0,
    )
    base.update(kw)
    return ModelParams.from_time_constants(**base)


def make_weights(
    seed: int = 0,
    n_rec: int = N,
    n_in: int = N_IN,
    n_out: int = N_OUT,
    p_rec: float = 0.6,
    rec_scale: float = 0.12,
) -> Weights:
    rng = np.random.default_rng(seed)
    mask_rec = rng.random((n_rec, n_rec)) < p_rec
    return Weights(
        rng.normal(0.05, 0.3, (n_rec, n_in)),
        rng.normal(0.0, rec_scale, (n_rec, n_rec)),
        rng.normal(0.0, 0.3, (n_out, n_rec)),
        rng.normal(0.0, 0.1, n_out),
        mask_rec=mask_rec,
    )


def make_input(seed: int = 1, T: int = T_EQ, n_in: int = N_IN, p: float = 0.03) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, n_in)) < p).astype(float)


@pytest.fixture(scope="session")
def eq_weights() -> Weights:
    return make_weights()


@pytest.fixture(scope="session", params=["runtime", "cpp_standalone"])
def eq_network(request, eq_weights, tmp_path_factory):
    """One forward-only network per device, compiled once and rerun with new parameters."""
    from neuroplast.network.builder import Brian2Network

    folder = tmp_path_factory.mktemp(f"eq_{request.param}")
    return Brian2Network(make_params("mix"), eq_weights, T_EQ, device=request.param, build_dir=folder)


T_GRAD = 600


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
