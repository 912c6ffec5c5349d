"""Trials of a batch side by side (one launch per batch) give one trial per launch's records, bit for bit.

Each config trains twice — ``simulation.chunk_iterations = 1`` (one trial per launch) and the default (the
batch's trials side by side in one network) — and every array of every :class:`IterationRecord` must be the
same bytes: each copy of the batched network computes exactly what the one-copy network computes.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.training.trainer import Trainer
from tests.helpers import assert_same_records

pytestmark = pytest.mark.brian2

# ALIF neurons, cross-entropy with recall windows, random feedback, Adam, the factorized gradient path
EVIDENCE = """\
[simulation]
n_steps = 250
seed = 5
device = "cpp_standalone"

[network]
n_rec = 20
n_alif = 10
n_out = 2
beta = 0.17
v_th = 0.6
n_ref = 5
w_in_scale = 1.0
w_rec_scale = 1.0
w_out_scale = 1.0

[task]
name = "evidence"
n_in = 16
n_cues = 1
cue_ms = 50.0
gap_ms = 20.0
recall_ms = 60.0

[training]
rule = "eprop-random"
loss = "cross_entropy"
optimizer = "adam"
learning_rate = 0.01
iterations = 3
batch_size = 3
reg_coeff = 30.0
path = "factorized"
"""

# LIF regression on the online path (eligibility traces in every copy), SGD, runtime
SINE = """\
[simulation]
n_steps = 150
seed = 6
device = "runtime"

[network]
n_rec = 16
n_ref = 2
w_in_scale = 0.05
w_rec_scale = 0.02
w_out_scale = 0.1

[task]
name = "sine"
n_in = 12
periods_ms = [100.0, 50.0]

[training]
rule = "eprop"
optimizer = "sgd"
learning_rate = 0.01
iterations = 3
batch_size = 2
reg_coeff = 10.0
path = "online"
"""


def _train(text: str, chunk: int) -> tuple[Trainer, list]:
    data = tomllib.loads(text)
    data["simulation"]["chunk_iterations"] = chunk
    tr = Trainer.from_config(parse_config(data))
    return tr, [tr.run_iteration() for _ in range(tr.cfg.training.iterations)]


@pytest.mark.parametrize("text", [EVIDENCE, SINE], ids=["evidence-factorized-cpp", "sine-online-runtime"])
def test_batch_side_by_side_equals_one_trial_per_launch(text: str) -> None:
    one, want = _train(text, 1)
    side, got = _train(text, 0)
    assert one.batch == 1 and side.batch == side.cfg.training.batch_size > 1
    assert "side by side" in side.chunk_reason
    assert_same_records(want, got)
    # not vacuous: the weights moved and the network spiked; the evidence task's trials differ within a batch
    # (the sine task repeats one input), and so do their gradients
    assert not np.array_equal(want[0].weights_before["recurrent"], want[-1].weights_before["recurrent"])
    first = want[0].trials
    assert all(t.spikes["recurrent"][0].size for t in first)
    if text is EVIDENCE:
        g = [t.grads["recurrent"][one.rule_name] for t in first]
        assert not np.array_equal(g[0], g[1])
