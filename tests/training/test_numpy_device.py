"""``simulation.device = "numpy"``: the NumPy reference trains the same run as the Brian2 network.

The spikes are the same (the dynamics are the same operations in the same order, docs/model.md); the
gradients are NumPy's factorized e-prop, which sums the same terms in another order than the online
accumulators of the Brian2 network, so every float agrees to rounding, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.plasticity.reference import NumpySimulator
from neuroplast.training.trainer import Trainer
from tests.helpers import IN_TRIAL_EVERY, IN_TRIAL_TOML, norm_rel_err, record_arrays
from tests.training.test_chunked import SINE, _cfg

#: Relative agreement of the two trainings' floats: per-operation rounding (≈ 1e-16) of sums over ≤ 200 steps,
#: carried through 5 Adam steps (measured ≤ 1e-14 on this config); 1e-11 leaves room, far below any
#: difference of substance (a changed gradient term moves these numbers by > 1e-4).
RTOL = 1e-11
#: In-trial learning (3 iterations of IN_TRIAL_TOML, 5 in-trial updates each): the same rounding of sums added
#: in another order, carried through every in-trial and trial-end step: measured ≤ 2e-13 (SGD) and ≤ 1e-14
#: (Adam, eprop-adaptive); RTOL leaves room.
IN_TRIAL_RTOL = RTOL


def _compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[list[str], float]:
    """The keys whose integers or shapes differ, and the largest relative difference of the floats."""
    exact, worst = [], 0.0
    for key in a:
        x, y = a[key], b[key]
        if x.shape != y.shape or (x.dtype.kind != "f" and not np.array_equal(x, y)):
            exact.append(key)
        elif x.dtype.kind == "f" and x.size:
            scale = max(float(np.max(np.abs(y))), 1e-300)
            worst = max(worst, float(np.max(np.abs(x - y))) / scale)
    return exact, worst


def _both_trainings(brian2_cfg, numpy_cfg) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every number of the training records of the same run on a Brian2 device and on the numpy device,
    by ``iteration + path``; the NumPy reference's extra keys are its recorded states only."""
    brian2, numpy = Trainer.from_config(brian2_cfg), Trainer.from_config(numpy_cfg)
    assert isinstance(numpy.net, NumpySimulator) and not isinstance(brian2.net, NumpySimulator)
    n = brian2.cfg.training.iterations
    want = [brian2.run_iteration() for _ in range(n)]
    got = [numpy.run_iteration() for _ in range(n)]
    a = {f"{r.iteration}{k}": v for r in want for k, v in record_arrays(r).items()}
    b = {f"{r.iteration}{k}": v for r in got for k, v in record_arrays(r).items()}
    # the NumPy reference also hands over every trial's recurrent states (the Brian2 network records none)
    assert a.keys() <= b.keys() and all(".states/" in k for k in b.keys() - a.keys())
    return a, b


@pytest.mark.brian2
def test_the_numpy_device_trains_the_run_of_the_brian2_network() -> None:
    a, b = _both_trainings(_cfg(SINE, 0), _cfg(SINE, 0).replace("simulation", device="numpy"))
    exact, worst = _compare(a, b)
    assert not exact, exact  # spikes, counts and shapes: identical
    assert worst < RTOL, worst
    # the comparison can disagree: a learning rate 0.1 % larger moves the run far beyond RTOL
    tr = _cfg(SINE, 0).training
    other = Trainer.from_config(
        _cfg(SINE, 0)
        .replace("simulation", device="numpy")
        .replace("training", learning_rate=tr.learning_rate * 1.001)
    )
    c = {
        f"{r.iteration}{k}": v
        for r in [other.run_iteration() for _ in range(other.cfg.training.iterations)]
        for k, v in record_arrays(r).items()
    }
    exact, worst = _compare(a, c)
    assert exact or worst > 1e-6, worst


# ------------------------------------------------------------------ in-trial learning (docs/model.md §6)
def _in_trial_cfg(device: str, optimizer: str = "sgd", iterations: int = 3):
    """IN_TRIAL_TOML (in-trial SGD every IN_TRIAL_EVERY steps) on ``device``; ``adam``: in-trial Adam with
    adaptive feedback and weight decay (moments handed to the simulator and back, the rule's hooks)."""
    import tomllib

    from neuroplast.config import parse_config

    data = tomllib.loads(IN_TRIAL_TOML)
    data["simulation"]["device"] = device
    data["training"]["iterations"] = iterations
    if optimizer == "adam":
        data["training"].update(
            optimizer="adam", learning_rate=1e-4, rule="eprop-adaptive", weight_decay=0.01
        )
    return parse_config(data)


def test_a_numpy_in_trial_run_logs_the_oracles_weights(tmp_path) -> None:
    """``neuroplast run`` of an in-trial config on the numpy device: every logged trial's in-trial weights and
    B are those of the NumPy oracle (``in_trial_learning``) run from the trial's logged weights, bit for bit
    (the same function of the same numbers), and the trial-end update continues from its last row."""
    from neuroplast.build import build
    from neuroplast.io import open_run
    from neuroplast.model.signals import reg_signal
    from neuroplast.plasticity.in_trial import in_trial_learning
    from neuroplast.plasticity.optim import SGD, apply_updates, trainable
    from neuroplast.training.runner import run_training

    cfg = _in_trial_cfg("numpy")
    run = open_run(run_training(cfg, tmp_path / "in_trial.h5", progress=False))
    assert run.finished and run.n_iterations == 3 and run.update_every_steps == IN_TRIAL_EVERY
    setup, tr = build(cfg), cfg.training
    conn = setup.connectivity
    for k in range(run.n_trials):
        rp = run.replay(k)
        w0, b0 = conn.weights(rp.weights_before), conn.feedback(rp.weights_before["feedback"])
        mask = np.ones(rp.n_steps)
        ref = in_trial_learning(
            setup.params, w0, rp.x, rp.target, mask, setup.loss, setup.rule, b0,
            every=IN_TRIAL_EVERY, learning_rate=tr.learning_rate,
        )  # fmt: skip
        assert len(ref.weights) == 1 + (cfg.simulation.n_steps - 1) // IN_TRIAL_EVERY
        want = [conn.weight_vectors(w, b) for w, b in zip(ref.weights[1:], ref.feedback[1:], strict=True)]
        for name, rows in rp.in_trial_weights.items():
            assert np.array_equal(rows, np.stack([w[name] for w in want])), (k, name)
            assert not np.array_equal(rows[-1], rp.weights_before[name]) or name == "feedback", (k, name)
        assert np.array_equal(rp.loss, setup.loss.value(ref.traj.y, rp.target, mask))  # same function, same y
        # the trial-end update: what the last segment left plus the rate regularization, one SGD step
        R = reg_signal(ref.traj.z, tr.reg_coeff, setup.f_target)
        g = dict(ref.grads)
        for key in ("input", "recurrent"):
            g[key] = g[key] + R[:, None] * ref.esum[key]
        w_end, _, _ = apply_updates(
            setup.rule, ref.weights[-1], ref.feedback_state, SGD(tr.learning_rate).step(trainable(g, True))
        )
        after = conn.weight_vectors(w_end)
        for name in after:
            logged = run.projection(name).weights[rp.iteration + 1]
            # R is c (f − f*)/T here and c (count/T − f*)/T in the trainer: ≤ a few ulp of the update
            assert norm_rel_err(logged - want[-1][name], after[name] - want[-1][name]) < 1e-12, (k, name)


def test_the_numpy_in_trial_adam_equals_the_oracle() -> None:
    """Two in-trial Adam iterations on the numpy device (moments handed to the simulator as edge vectors
    and back) equal the oracle with the trainer's optimizer state copied before each: the same operations
    on the same numbers, so bit for bit (masked entries are 0 on both sides)."""
    import copy

    from neuroplast.plasticity.in_trial import in_trial_learning
    from neuroplast.plasticity.optim import apply_updates, trainable

    tr = Trainer.from_config(_in_trial_cfg("numpy", "adam"))
    assert isinstance(tr.net, NumpySimulator) and tr.net.adam and tr.capabilities.in_trial
    for _ in range(2):
        opt, w0, fb0 = copy.deepcopy(tr.optimizer), tr.weights.copy(), np.array(tr.feedback)
        log = tr.iterate()
        (trial,) = log.trials
        ref = in_trial_learning(
            tr.params, w0, trial.x, trial.target, trial.mask, tr.loss, tr.rule, fb0,
            every=IN_TRIAL_EVERY, optimizer=opt,
        )  # fmt: skip
        assert np.array_equal(log.results[0].z, ref.traj.z)
        for m, (w, b) in enumerate(zip(ref.weights[1:], ref.feedback[1:], strict=True)):
            for name, v in tr.weight_vectors(w, b).items():
                assert np.array_equal(log.in_trial[name][m], v), (m, name)
        end = dict(ref.grads)
        r = tr.cfg.training.reg_coeff * (log.results[0].spike_count / tr.T - tr.f_target) / tr.T
        for key in ("input", "recurrent"):
            end[key] = end[key] + r[:, None] * ref.esum[key]
        w_ref, b_ref, _ = apply_updates(
            tr.rule, ref.weights[-1], ref.feedback_state, opt.step(trainable(end, True))
        )
        assert opt.t == tr.optimizer.t
        for attr in ("w_in", "w_rec", "w_out", "b_out"):
            assert np.array_equal(getattr(tr.weights, attr), getattr(w_ref, attr)), attr
            assert not np.array_equal(getattr(tr.weights, attr), getattr(w0, attr)), attr
        assert np.array_equal(tr.feedback, b_ref)
        for key in ("input", "recurrent", "output", "bias"):
            assert np.array_equal(tr.optimizer.m[key], opt.m[key]) and np.array_equal(
                tr.optimizer.v[key], opt.v[key]
            )
    assert tr.optimizer.t == 2 * ((tr.T - 1) // IN_TRIAL_EVERY + 1)


@pytest.mark.brian2
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_numpy_device_learns_inside_trials_as_the_brian2_network(optimizer: str) -> None:
    """In-trial learning trained on the numpy device = on Brian2's runtime device: the same spikes and trial
    counts; every float (in-trial weights, B, updates, gradients, losses, Adam state) to RTOL: the
    network's synaptic sums and per-step accumulators add the same terms in another order (as in
    tests/network/test_in_trial.py's equality of one trial), carried through 3 iterations."""
    a, b = _both_trainings(_in_trial_cfg("runtime", optimizer), _in_trial_cfg("numpy", optimizer))
    assert any("in_trial" in k for k in a)
    exact, worst = _compare(a, b)
    assert not exact, exact
    assert worst < IN_TRIAL_RTOL, worst


def test_train_recurrent_false_keeps_w_rec(tmp_path) -> None:
    """``training.train_recurrent = false``: W_rec keeps its initial weights at every iteration (0 with
    ``w_rec_scale = 0``: the synthetic logs' network without recurrence) while W_in and W_out learn; with
    the key at its default the same run changes W_rec at every iteration."""
    from neuroplast.io import open_run
    from neuroplast.training.runner import run_training
    from tests.helpers import _synthetic_config

    for scale in (0.0, 0.2):
        cfg = _synthetic_config(rec_scale=scale).replace("training", train_recurrent=False)
        frozen = open_run(run_training(cfg, tmp_path / f"frozen{scale}.h5", progress=False))
        assert "train_recurrent = false" in frozen.config_toml
        rec = frozen.projection("recurrent")
        assert rec.n_edges > 0 and np.all(rec.updates == 0.0)
        assert np.all(rec.weights == rec.weights[0]) and np.any(rec.weights[0] != 0.0) == (scale > 0)
        for name in ("input", "output"):
            assert np.all(np.any(frozen.projection(name).updates != 0.0, axis=1)), name
    learns = open_run(run_training(_synthetic_config(rec_scale=0.2), tmp_path / "learns.h5", progress=False))
    assert "train_recurrent" not in learns.config_toml
    assert np.all(np.any(learns.projection("recurrent").updates != 0.0, axis=1))


def test_a_log_stopped_mid_iteration_resumes_to_the_uninterrupted_run(tmp_path) -> None:
    """``write_synthetic_run(partial_iteration=True)``: the runner stopped after the trials of iteration 3
    were logged and before its update.  ``--resume`` drops those trials and continues from the resume
    state of iteration 3: the log then equals the run that was never stopped, bit for bit."""
    from neuroplast.io import open_run
    from neuroplast.training.runner import run_training
    from tests.helpers import _synthetic_config, assert_same_datasets, write_synthetic_run

    stopped = write_synthetic_run(tmp_path / "stopped.h5", n_iter=3, partial_iteration=True)
    run = open_run(stopped)
    assert not run.finished and run.n_iterations == 3 and run.n_trials == 8
    straight = write_synthetic_run(tmp_path / "straight.h5", n_iter=4)
    resumed: dict = {}
    run_training(
        _synthetic_config(iterations=4), None, resume=stopped, progress=False, on_resume=resumed.update
    )
    assert resumed["iterations"] == 3 and resumed["dropped_trials"] == 2
    assert_same_datasets(stopped, straight)
