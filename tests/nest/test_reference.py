"""neuroplast reproduces NEST 3.10's e-prop sine-wave example from data/ (NEST not needed).

``models/nest_sine.toml`` trained on the NumPy reference (:class:`NumpySimulator`; the Brian2 path equals
it, tests/network/) against NEST's published losses (data/nest_published.json, from NEST's own test) and
against scripts/make_nest_reference.py's recording of NEST (data/nest_reference.h5): task data, initial
weights, and the weights after each of the first 8 updates.  The weights need the validation-only
emulation of NEST's late update (tests/nest/emulation.py); without it they differ on exactly the
synapses it names, by exactly its term.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroplast.build import build
from neuroplast.config import load_config
from neuroplast.plasticity.reference import NumpySimulator
from neuroplast.training.trainer import Trainer
from tests.helpers import ROOT
from tests.nest.emulation import PUBLISHED, LateUpdateSimulator, late_inputs, reference

CONFIG = ROOT / "models" / "nest_sine.toml"
UPDATES = 8  # NEST's weights after updates 1 … 8 are in data/
#: Relative tolerance of the NEST comparison: the issue's target; measured 1.3e-13 (weights), 2e-16
#: (losses) — rounding of the same IEEE operations in a different order.
RTOL = 1e-10
PROJECTIONS = (("input", "w_in"), ("recurrent", "w_rec"), ("output", "w_out"))


def _train(simulator_cls, n: int) -> dict:
    """Train models/nest_sine.toml n iterations on a NumPy simulator; losses, weights after each update."""
    setup = build(load_config(CONFIG))
    sim = simulator_cls.of(setup)
    trainer = Trainer(setup, sim)
    losses, weights = [], []
    for _ in range(n):
        losses.append(trainer.iterate().losses[0])
        weights.append(trainer.weights.copy())
    return {"setup": setup, "losses": np.array(losses), "weights": weights, "sim": sim}


@pytest.fixture(scope="module")
def plain() -> dict:
    return _train(NumpySimulator, UPDATES)


@pytest.fixture(scope="module")
def emulated() -> dict:
    return _train(LateUpdateSimulator, UPDATES)


@pytest.fixture(scope="module")
def ref() -> dict:
    return reference()


def _max_rel(ours: np.ndarray, nest: np.ndarray, exists: np.ndarray) -> float:
    """Max relative difference over the synapses that exist and that NEST's recording holds (not NaN)."""
    keep = exists & np.isfinite(nest)
    return float(np.max(np.abs(ours[keep] - nest[keep]) / np.abs(nest[keep])))


def test_published_first_five_losses(plain) -> None:
    published = json.loads(PUBLISHED.read_text())["sine"]["loss_nest"]
    np.testing.assert_allclose(plain["losses"][:5], published, rtol=RTOL, atol=0)


def test_task_and_initial_weights_are_nests(plain, ref) -> None:
    """Bit for bit: the frozen input, the target, W_in, W_rec, W_out and B NEST's example made."""
    setup = plain["setup"]
    trial = setup.task.trials(0, 1)[0]
    assert np.array_equal(trial.x, ref["sine/input"].astype(float))
    assert np.array_equal(trial.target[:, 0], ref["sine/target"])
    w = setup.weights
    for name, attr in PROJECTIONS:
        assert np.array_equal(getattr(w, attr), ref[f"sine/initial/{name}"]), name
    assert np.array_equal(setup.feedback, ref["sine/initial/feedback"])
    assert not np.any(w.b_out)


def test_losses_of_the_recorded_iterations(plain, ref) -> None:
    np.testing.assert_allclose(plain["losses"], ref["sine/loss"][:UPDATES], rtol=RTOL, atol=0)


@pytest.mark.parametrize("k", range(UPDATES))
def test_weights_after_each_update_with_nests_late_update(emulated, ref, k: int) -> None:
    w = emulated["weights"][k]
    for name, attr in PROJECTIONS:
        nest = ref[f"sine/updates/{name}"][k]
        mask = {"input": w.mask_in, "recurrent": w.mask_rec, "output": w.mask_out}[name]
        assert np.isfinite(nest[mask]).mean() > 0.8, "the recording holds most synapses"
        assert _max_rel(getattr(w, attr), nest, mask) < RTOL, (name, k + 1)
    assert not np.any(w.b_out), "no readout bias"


def test_without_the_emulation_update_one_misses_exactly_that_term(plain, emulated, ref) -> None:
    """The first update differs from NEST on the late input columns only, by η L_T ē_T (the divergence)."""
    w = plain["weights"][0]
    nest = ref["sine/updates/input"][0]
    late = late_inputs(plain["setup"].task.trials(0, 1)[0].x)
    assert 0 < late.sum() < late.size
    assert _max_rel(w.w_in[:, ~late], nest[:, ~late], np.ones_like(nest[:, ~late], bool)) < RTOL
    eta = plain["setup"].cfg.training.learning_rate
    term = eta * emulated["sim"].terms[0][:, late]
    diff = nest[:, late] - w.w_in[:, late]  # NEST's update lacks −η·term: NEST = ours + η·term
    assert np.max(np.abs(term)) > 1e3 * RTOL * np.max(np.abs(nest[:, late])), "the term is not negligible"
    np.testing.assert_allclose(diff, term, rtol=1e-6, atol=1e-16)
