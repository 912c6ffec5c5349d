"""In-trial learning in Brian2 (``update_every``) equals the NumPy reference of docs/model.md §6.

Both devices; LIF / ALIF mixes; MSE and cross-entropy; the three built-in feedback rules; SGD and Adam
(moments inside the simulation, started from a state 3 steps into training).  The
trajectories must have identical spikes, and the weights of every segment, the feedback B and the
gradient left for the trial-end update must agree to ≤ 1e-10 relative (the per-step sums are the
same; only the order of the synaptic-input sums differs, a few ulp).
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.config import TrainingConfig
from neuroplast.model.dynamics import simulate
from neuroplast.plasticity.in_trial import in_trial_learning
from neuroplast.plasticity.rules import get_rule
from tests.helpers import make_input, make_params, norm_rel_err

pytestmark = pytest.mark.brian2

RTOL = 1e-10
T, EVERY, LR, DECAY = 600, 100, 2e-3, 0.01

LR_ADAM = 1e-3
# (device, loss, rule, optimizer): the rule's and optimizer's code is compiled in: each case is one build.
CASES = [
    ("runtime", "mse", "eprop", "sgd"),
    ("runtime", "mse", "eprop-random", "sgd"),
    ("runtime", "mse", "eprop-adaptive", "sgd"),
    ("runtime", "cross_entropy", "eprop", "sgd"),
    ("runtime", "mse", "eprop-adaptive", "adam"),
    ("cpp_standalone", "mse", "eprop-adaptive", "sgd"),
    ("cpp_standalone", "cross_entropy", "eprop", "sgd"),
    ("cpp_standalone", "mse", "eprop", "adam"),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(c))
def case(request, eq_weights):
    """A network with in-trial updates every 100 steps, built once per case."""
    from neuroplast.network.builder import Brian2Network

    device, loss, rule_name, opt = request.param
    rule = get_rule(rule_name)(TrainingConfig(weight_decay=DECAY))
    net = Brian2Network(
        make_params("mix"),
        eq_weights,
        T,
        device=device,
        loss=loss,
        gradients=True,
        record=True,
        update_every=EVERY,
        rule_code=rule.brian2_update,
        in_trial_optimizer=opt,
    )
    return net, rule, opt


def _adam_state(net, weights):
    """An Adam optimizer 3 steps into training (random moments), and the same state for Brian2."""
    from neuroplast.plasticity.optim import Adam

    opt = Adam.from_config(TrainingConfig(learning_rate=LR_ADAM))
    rng = np.random.default_rng(9)
    shapes = {"input": weights.w_in.shape, "recurrent": weights.w_rec.shape, "output": weights.w_out.shape}
    masks = {"input": weights.mask_in, "recurrent": weights.mask_rec, "output": weights.mask_out}
    opt.t = 3
    opt.m = {k: np.where(masks[k], rng.normal(0, 1.0, sh), 0.0) for k, sh in shapes.items()}
    opt.v = {k: np.where(masks[k], rng.random(sh) * 10.0, 0.0) for k, sh in shapes.items()}
    opt.m["bias"], opt.v["bias"] = rng.normal(0, 1.0, weights.n_out), rng.random(weights.n_out) * 10.0
    vec = {
        mom: {
            k: (a if k == "bias" else a[net.edges[k][1], net.edges[k][0]]).copy()
            for k, a in getattr(opt, mom).items()
        }
        for mom in ("m", "v")
    }
    return opt, {"t": 3, "b1": opt.b1, "b2": opt.b2, "eps": opt.eps, **vec}


def _task(loss: str, n_out: int):
    mask = np.ones(T)
    if loss == "mse":
        t = np.arange(T)[:, None]
        return np.sin(2 * np.pi * t / np.array([200.0, 333.0])[:n_out]), mask
    target = np.zeros((T, n_out))
    target[:, 1] = 1.0
    mask[: T // 2] = 0.0
    return target, mask


@pytest.mark.parametrize("kind", ["lif", "mix"])
def test_in_trial_equals_numpy(case, eq_weights, kind):
    net, rule, opt = case
    loss = net.loss.name
    params = make_params(kind, n_ref=2)
    x = make_input(seed=31, T=T)
    target, mask = _task(loss, eq_weights.n_out)
    fb0 = rule.init_feedback(eq_weights, np.random.default_rng(5))
    B0 = rule.feedback(eq_weights, fb0)
    optimizer, adam = _adam_state(net, eq_weights) if opt == "adam" else (None, None)
    lr = LR_ADAM if opt == "adam" else LR
    res = net.run_trial(
        eq_weights,
        x,
        target=target,
        mask=mask,
        feedback=B0,
        params=params,
        learning_rate=lr,
        weight_decay=DECAY,
        adam=adam,
    )
    ref = in_trial_learning(
        params,
        eq_weights,
        x,
        target,
        mask,
        loss,
        rule,
        fb0,
        learning_rate=LR,
        every=EVERY,
        optimizer=optimizer,
    )
    if opt == "adam":  # the moments after the trial, and the step count
        assert optimizer.t == 3 + 5
        for mom, got in res.adam.items():
            for key, dense in getattr(optimizer, mom).items():
                want = dense if key == "bias" else dense[net.edges[key][1], net.edges[key][0]]
                assert norm_rel_err(got[key], want) < RTOL, (mom, key)
    # identical spikes, and in-trial learning changed them
    assert np.array_equal(res.z, ref.traj.z)
    fixed = simulate(params, eq_weights, x)
    assert not np.array_equal(res.z, fixed.z[0]), "the in-trial updates must change the trajectory"
    assert res.z.sum() > 200
    # weights and B of every segment (edge order), and the changes themselves
    assert ref.starts.tolist() == [0, 100, 200, 300, 400, 500]
    src_in, tgt_in = net.edges["input"]
    src_rec, tgt_rec = net.edges["recurrent"]
    src_out, tgt_out = net.edges["output"]
    want = [
        {
            "input": W.w_in[tgt_in, src_in],
            "recurrent": W.w_rec[tgt_rec, src_rec],
            "output": W.w_out[tgt_out, src_out],
            "feedback": ref.feedback[m][src_out, tgt_out],
            "bias": W.b_out,
        }
        for m, W in enumerate(ref.weights)
    ]
    for m, seg in enumerate(want):
        for key, w in seg.items():
            got = res.in_trial[key]
            assert got.shape[0] == len(want), key
            assert norm_rel_err(got[m], w) < RTOL, (m, key)
            if m == 0:
                continue
            change = w - want[m - 1][key]
            if key == "feedback" and rule.name == "eprop-random":
                assert np.array_equal(got[m], got[m - 1])  # fixed random feedback
                continue
            if not mask[ref.starts[m - 1] : ref.starts[m]].any():  # no error in the window: no step
                assert np.array_equal(got[m], got[m - 1]) and not np.any(change), (m, key)
                continue
            # the updates themselves agree (not only weight + small update)
            assert np.linalg.norm(change) > 0, (m, key)
            assert norm_rel_err(got[m] - got[m - 1], change) < 1e-8, (m, key)
    for key in ("input", "recurrent", "output", "bias"):
        assert norm_rel_err(res.grads[key], ref.grads[key]) < RTOL, key
    for key in ("input", "recurrent"):
        assert norm_rel_err(res.esum[key], ref.esum[key]) < RTOL, key
