"""Trials side by side (``Brian2Network(batch=B)``, docs/model.md §8) equal the same trials run one by one.

Each copy of the batched network evaluates exactly the floating-point operations of the one-copy network
for its trial, in the same order (its synapses keep copy 0's order, its inputs are summed in the same
order), so every result — spikes, states, readout, online gradients — is compared with ``np.array_equal``:
any tolerance would hide a leak between copies or a changed summation order.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import T_GRAD, batch_trials, make_input, make_params

pytestmark = pytest.mark.brian2

BATCH = 4  # copies; the tests give 3 trials, so one copy runs a silent padding trial


@pytest.fixture(scope="module")
def batched(grad_network, eq_weights):
    """A network of BATCH copies built like ``grad_network`` (same device, loss, options)."""
    from neuroplast.network.builder import Brian2Network

    net = grad_network
    return Brian2Network(
        make_params("mix"),
        eq_weights,
        T_GRAD,
        device=net.device,
        loss=net.loss.name,
        gradients=True,
        record=True,
        batch=BATCH,
    )


def _assert_same(a, b, where: str) -> None:
    for name in ("y", "v", "a", "z", "psi", "refractory", "L", "spike_count"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), f"{where}: {name} differs"
    for k in range(2):
        assert np.array_equal(a.spikes[k], b.spikes[k]), f"{where}: spikes differ"
    assert set(a.grads) == set(b.grads) and set(a.esum) == set(b.esum)
    for key in a.grads:
        assert np.array_equal(a.grads[key], b.grads[key]), f"{where}: {key} gradient differs"
    for key in a.esum:
        assert np.array_equal(a.esum[key], b.esum[key]), f"{where}: {key} Σe differs"


@pytest.fixture(scope="module")
def runs(batched, grad_network, eq_weights):
    """Every simulation of this module, batched ones first: on cpp_standalone each switch between the
    two networks regenerates a project (Brian2 has one per process)."""
    params = make_params("mix", n_ref=2)
    fb = np.random.default_rng(7).normal(0.0, 0.5, (eq_weights.n_rec, eq_weights.n_out))
    trials = batch_trials(grad_network.loss.name, eq_weights.n_out)
    other = list(trials)
    other[1] = (make_input(seed=99, T=T_GRAD), *trials[1][1:])
    single = batch_trials(grad_network.loss.name, eq_weights.n_out, n=1, seed=5)[0]
    out = {
        "side": batched.run_batch(eq_weights, trials, feedback=fb, params=params),
        "other": batched.run_batch(eq_weights, other, feedback=fb, params=params),
        "one": batched.run_trial(eq_weights, single[0], target=single[1], mask=single[2]),
    }
    out["alone"] = [
        grad_network.run_trial(eq_weights, x, target=target, mask=mask, feedback=fb, params=params)
        for x, target, mask in trials
    ]
    out["one_alone"] = grad_network.run_trial(eq_weights, single[0], target=single[1], mask=single[2])
    return out


def test_batch_equals_trials_one_by_one(runs, batched):
    assert len(runs["side"]) == len(runs["alone"]) == 3
    for k, (side, alone) in enumerate(zip(runs["side"], runs["alone"], strict=True)):
        assert alone.z.sum() > 0.01 * alone.z.size, "the test network must be active"
        _assert_same(side, alone, f"{batched.device}, trial {k}")


def test_batch_copies_are_independent(runs):
    """The comparison can disagree: another input in copy 1 changes copy 1's results and nothing else."""
    before, after = runs["side"], runs["other"]
    _assert_same(after[0], before[0], "copy 0")
    _assert_same(after[2], before[2], "copy 2")
    assert not np.array_equal(after[1].z, before[1].z)
    assert not np.array_equal(after[1].grads["recurrent"], before[1].grads["recurrent"])


def test_run_trial_on_a_batched_network(runs, batched):
    """One trial on a network of several copies: the other copies are padding, the result the same."""
    _assert_same(runs["one"], runs["one_alone"], batched.device)


def test_batch_refuses_too_many_trials(batched, grad_network, eq_weights):
    trials = batch_trials(grad_network.loss.name, eq_weights.n_out, n=BATCH + 1)
    with pytest.raises(ValueError, match="1 to 4 trials"):
        batched.run_batch(eq_weights, trials)


@pytest.mark.slow  # compiles two networks of its own (a minute or more)
def test_recording_only_psi(eq_weights):
    """``record=("psi",)`` (the factorized path of e-prop and BPTT): the same ψ as recording everything, z
    from the spike monitor (as always), and nothing else recorded (here with two copies)."""
    from neuroplast.network.builder import Brian2Network

    params = make_params("mix", n_ref=2)
    nets = {
        rec: Brian2Network(
            params,
            eq_weights,
            T_GRAD,
            device="runtime",
            record=rec,
            batch=2,
        )
        for rec in (True, ("psi",))
    }
    trials = [(make_input(seed=60 + k, T=T_GRAD), None, None) for k in range(2)]
    full, part = (nets[rec].run_batch(eq_weights, trials, params=params) for rec in (True, ("psi",)))
    for a, b in zip(full, part, strict=True):
        assert a.z.sum() > 0.01 * a.z.size
        for name in ("z", "psi", "y", "spike_count"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert b.v is None and b.a is None and b.refractory is None and b.L is None
    with pytest.raises(ValueError, match="cannot record w"):
        Brian2Network(params, eq_weights, T_GRAD, device="runtime", record=("w",))
