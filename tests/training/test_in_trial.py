"""Training with in-trial learning (``training.update_every_steps``) without the command line: the
shipped online model learns, and the trainer's in-trial Adam equals the NumPy reference.

``neuroplast run`` with in-trial learning end to end is tests/e2e/test_in_trial_run.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroplast.config import load_config
from neuroplast.io import open_run
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.signals import reg_signal
from neuroplast.plasticity.in_trial import in_trial_learning
from tests.helpers import IN_TRIAL_EVERY as EVERY
from tests.helpers import IN_TRIAL_TOML as CONFIG
from tests.helpers import MODELS, norm_rel_err

pytestmark = [pytest.mark.brian2, pytest.mark.e2e]


def test_sine_online_learns(tmp_path: Path) -> None:
    """models/sine_online.toml (in-trial SGD every 100 steps, 40 trials) lowers the loss by > 50 %."""
    from neuroplast.training.runner import run_training

    path = MODELS / "sine_online.toml"
    cfg = load_config(path)
    assert cfg.training.update_every_steps == 100
    run = open_run(run_training(cfg, tmp_path / "sine_online.h5", progress=False))
    loss = run.trials["loss"]
    assert loss.size == cfg.training.iterations
    assert loss[-5:].mean() < 0.5 * loss[:5].mean(), loss
    assert run.projection("recurrent").in_trial_weights.shape[:2] == (cfg.training.iterations, 9)


def test_trainer_in_trial_adam_equals_numpy() -> None:
    """Two in-trial Adam iterations of the trainer (moments handed to Brian2 and back) = the reference."""
    import copy
    import tomllib

    from neuroplast.config import parse_config
    from neuroplast.plasticity.optim import apply_updates, trainable
    from neuroplast.training.trainer import Trainer

    data = tomllib.loads(CONFIG)
    data["training"].update(optimizer="adam", learning_rate=1e-4, rule="eprop-adaptive", weight_decay=0.01)
    cfg = parse_config(data)
    tr = Trainer.from_config(cfg)
    assert tr.net.adam
    f_target = cfg.training.reg_rate_hz * 1e-3
    for _ in range(2):
        opt, w0, fb0 = copy.deepcopy(tr.optimizer), tr.weights.copy(), np.array(tr.feedback)
        log = tr.run_iteration()
        trial = log.trials[0].trial
        ref = in_trial_learning(
            tr.params,
            w0,
            trial.x,
            trial.target,
            trial.mask,
            "mse",
            tr.rule,
            fb0,
            every=EVERY,
            optimizer=opt,
        )
        z = log.trials[0].states.get("z")
        assert np.array_equal(z, ref.traj.z) if z is not None else True
        R = reg_signal(ref.traj.z, cfg.training.reg_coeff, f_target)
        end = dict(ref.grads)
        for key in ("input", "recurrent"):
            end[key] = end[key] + R[:, None] * ref.esum[key]
        w_ref, _, _ = apply_updates(
            tr.rule, ref.weights[-1], ref.feedback_state, opt.step(trainable(end, True))
        )
        assert opt.t == tr.optimizer.t
        for attr in ("w_in", "w_rec", "w_out", "b_out"):
            assert norm_rel_err(getattr(tr.weights, attr), getattr(w_ref, attr)) < 1e-9, attr
            assert not np.array_equal(getattr(tr.weights, attr), getattr(w0, attr)), attr
        for key in PROJECTIONS:
            assert norm_rel_err(tr.optimizer.m[key], opt.m[key]) < 1e-9, key
    assert tr.optimizer.t == 2 * ((300 - 1) // EVERY + 1)
