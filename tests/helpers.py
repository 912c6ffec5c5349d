"""What several test modules share: paths, seeded networks, CLI runners, error measures, HDF5 readers.

Import as ``from tests.helpers import ...`` (the repository root is on ``sys.path`` under
``python -m pytest``). Fixtures live in the conftest.py files, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroplast.model.params import ModelParams, Weights

# ------------------------------------------------------------------------------------------------ paths
ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SINE = MODELS / "sine.toml"
EVIDENCE = MODELS / "evidence.toml"

# ------------------------------------------------------------------------ seeded networks (tests/network)
N, N_IN, N_OUT, T_EQ = 40, 24, 2, 2000
T_GRAD = 600


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
