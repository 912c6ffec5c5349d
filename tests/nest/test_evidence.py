"""NEST's evidence-accumulation test (``test_eprop_classification``, batch 1) against neuroplast, from data/.

``models/nest_evidence.toml`` on the NumPy reference: NEST's task data bit for bit (``nest-evidence``
task, after the ``nest-evidence`` weight draws) and NEST's first five losses — ALIF dynamics with
``regular_spike_arrival``, softmax cross-entropy in the recall window, ``average_gradient``, NEST's Adam —
to 1.5e-12 of the published values (rounded to 12 decimals) and 1.1e-16 of NEST run here.
"""

from __future__ import annotations

import json

import numpy as np

from neuroplast.build import build
from neuroplast.config import load_config
from neuroplast.plasticity.reference import NumpySimulator
from neuroplast.training.trainer import Trainer
from tests.helpers import ROOT
from tests.nest.emulation import PUBLISHED, reference

CONFIG = ROOT / "models" / "nest_evidence.toml"


def test_task_and_first_five_losses_are_nests() -> None:
    ref = reference()
    setup = build(load_config(CONFIG))
    trials = [setup.task.trials(i, 1)[0] for i in range(5)]
    assert np.array_equal(np.concatenate([t.x for t in trials]), ref["evidence/input"].astype(float))
    assert [t.label for t in trials] == ref["evidence/labels"].tolist()
    assert setup.task.trials(2, 1) is setup.task.trials(2, 1), "batches are drawn once, in order"
    trainer = Trainer(setup, NumpySimulator.of(setup))
    recall = setup.cfg.task.recall_steps  # neuroplast sums the loss over the recall steps, NEST averages
    losses = np.array([trainer.iterate().losses[0] / recall for _ in range(5)])
    published = json.loads(PUBLISHED.read_text())["evidence"]["loss_nest_batch_1"]
    np.testing.assert_allclose(losses, published, rtol=1e-8, atol=0)  # the tolerance
    np.testing.assert_allclose(losses, ref["evidence/loss"], rtol=1e-10, atol=0)
