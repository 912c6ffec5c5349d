"""neuroplast.gradients.truncated against brute force: the literal per-synapse recursion
(eligibility_steps / eligibility_grads), e-prop and BPTT, on small LIF and ALIF networks, MSE and
cross-entropy (tests/helpers.py, make_problem)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.gradients.bptt import _backward, bptt_grads
from neuroplast.gradients.eligibility import eligibility_steps
from neuroplast.gradients.eprop import eligibility_grads, eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.gradients.truncated import (
    eligibility_contract,
    eligibility_row_norms,
    factorized_many,
    truncated_learning_signals,
)
from neuroplast.model.params import Weights
from neuroplast.model.signals import backward_filter
from tests.helpers import PROBLEM_BETAS, make_problem, max_rel_err, norm_rel_err

#: Sums of a few hundred terms of rounding error each; far below any real difference (≥ 1e-3 here).
TOL = 1e-10

CASES = [(kind, loss) for kind in ("lif", "alif", "mixed") for loss in ("mse", "cross_entropy")]


def _trial(kind: str, loss: str, seed: int = 0) -> TrialData:
    params, w, x, target, mask, lossf = make_problem(PROBLEM_BETAS[kind], loss_name=loss, n_ref=2, seed=seed)
    rng = np.random.default_rng(seed + 7)
    w = Weights(w.w_in, w.w_rec, w.w_out, w.b_out, rng.random(w.w_in.shape) < 0.8, w.mask_rec)
    return TrialData.make(params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)


def _masks(tr: TrialData) -> dict[str, np.ndarray]:
    return {"input": tr.weights.mask_in, "recurrent": tr.weights.mask_rec}


@pytest.mark.parametrize("kind,loss", CASES)
def test_truncation_ends_are_eprop_and_bptt(kind, loss) -> None:
    tr = _trial(kind, loss)
    T = tr.x.shape[0]
    sig = truncated_learning_signals(tr, [0, 1, T - 1], shortcut=False)  # the level recursion itself
    ep, g = eprop_grads(tr, tr.weights.w_out.T), bptt_grads(tr)
    for name, mask in _masks(tr).items():
        got = factorized_many(tr.params, tr.psi, tr.pre[name], np.stack([sig[0], sig[1], sig[T - 1]]), mask)
        assert max_rel_err(got[0], ep[name]) < TOL, name  # k = 0 is symmetric e-prop
        assert max_rel_err(got[2], g[name]) < TOL, name  # k = T − 1 hops is BPTT
        assert norm_rel_err(got[1], g[name]) > 1e-3 and norm_rel_err(got[1], ep[name]) > 1e-3, name
    short = truncated_learning_signals(tr, [T])
    assert max_rel_err(short[T], sig[T - 1]) < TOL


@pytest.mark.parametrize("kind", ["lif", "alif"])
def test_one_hop_is_backprop_through_a_recurrence_free_network(kind) -> None:
    """L^(1)_t = direct_t + c_in W_recᵀ dv^(0)_{t+1}, dv^(0) the adjoint of the network without W_rec."""
    tr = _trial(kind, "mse", seed=2)
    p, w = tr.params, tr.weights
    direct = p.readout_scale * backward_filter(tr.err, p.kappa) @ w.w_out + tr.reg[None, :]
    w0 = Weights(w.w_in, np.zeros_like(w.w_rec), w.w_out, w.b_out)
    dv0, _ = _backward(p, w0, tr.psi, direct, True)
    nxt = np.zeros_like(dv0)
    nxt[:-1] = dv0[1:]
    want = direct + p.input_scale * nxt @ w.w_rec
    got = truncated_learning_signals(tr, [1])[1]
    assert max_rel_err(got, want) < TOL


@pytest.mark.parametrize("kind,loss", CASES[:4])
def test_factorized_many_equals_the_literal_recursion(kind, loss) -> None:
    tr = _trial(kind, loss, seed=1)
    rng = np.random.default_rng(3)
    L = rng.normal(size=(3,) + tr.psi.shape)
    for name, mask in _masks(tr).items():
        got = factorized_many(tr.params, tr.psi, tr.pre[name], L, mask)
        for i in range(3):
            want = np.where(
                mask, eligibility_grads(tr.params, tr.traj, tr.pre[name], L[i], filtered=False), 0.0
            )
            assert max_rel_err(got[i], want) < TOL, (name, i)


@pytest.mark.parametrize("kind", ["lif", "alif", "mixed"])
def test_contractions_and_row_norms_equal_per_synapse_sums(kind) -> None:
    tr = _trial(kind, "mse", seed=4)
    rng = np.random.default_rng(5)
    for name, mask in _masks(tr).items():
        G = np.where(mask, rng.normal(size=mask.shape), 0.0)
        u = eligibility_contract(tr.params, tr.psi, tr.pre[name], G)
        s = eligibility_row_norms(tr.params, tr.psi, tr.pre[name], mask)
        u_bf, s_bf = np.zeros_like(u), np.zeros_like(s)
        for t, e in eligibility_steps(tr.params, tr.traj, tr.pre[name]):
            u_bf[t] = np.sum(G * e, axis=1)
            s_bf[t] = np.sum(mask * e * e, axis=1)
        assert max_rel_err(u, u_bf) < TOL and max_rel_err(s, s_bf) < TOL, name
        assert np.any(s_bf > 0)


def test_negative_hops_are_refused() -> None:
    with pytest.raises(ValueError, match="hop counts"):
        truncated_learning_signals(_trial("lif", "mse"), [-1])
