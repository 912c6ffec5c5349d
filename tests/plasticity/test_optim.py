"""plasticity/optim.py: SGD and Adam against their formulas written out, and ``apply_updates``."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.config import TrainingConfig
from neuroplast.model.connectivity import PROJECTIONS, Connectivity, EdgeWeights
from neuroplast.model.params import Weights
from neuroplast.plasticity.optim import SGD, Adam, apply_edge_updates, apply_updates
from neuroplast.plasticity.rules import Rule, get_rule

#: Adam written out below performs the same operations in the same order as the optimizer on each
#: element, so the two agree to rounding; 1e-14 relative allows for NumPy's vectorised power and sqrt.
RTOL = 1e-14


def _adam_formula(gs: list[float], lr: float, b1: float, b2: float, eps: float) -> list[float]:
    """Kingma & Ba (2015), Algorithm 1, one parameter: the update of every step t = 1, 2, …"""
    m = v = 0.0
    out = []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        out.append(-lr * m_hat / (np.sqrt(v_hat) + eps))
    return out


def test_adam_matches_kingma_and_ba_over_several_steps() -> None:
    rng = np.random.default_rng(4)
    g = rng.normal(0.0, 1.0, (6, 2, 3)) * np.array([1e-7, 1.0, 10.0])  # ε matters for the first column
    lr, b1, b2, eps = 2e-3, 0.8, 0.99, 1e-7
    opt = Adam(lr, b1, b2, eps)
    steps = np.array([opt.step({"input": g[t]})["input"] for t in range(6)])
    for idx in np.ndindex(2, 3):
        want = _adam_formula(list(g[(slice(None), *idx)]), lr, b1, b2, eps)
        np.testing.assert_allclose(steps[(slice(None), *idx)], want, rtol=RTOL, atol=0)
    assert opt.t == 6


def test_adam_resumes_from_its_state() -> None:
    g = {"input": np.array([[0.5, -2.0]]), "bias": np.array([1.0])}
    a, b = Adam(1e-3), Adam(1e-3)
    a.step(g)
    a.step(g)
    b.load_state(a.state())
    want, got = a.step(g), b.step(g)
    for k in g:
        np.testing.assert_array_equal(got[k], want[k])


def test_sgd_is_minus_the_learning_rate_times_the_gradient() -> None:
    g = {"input": np.array([[0.5, -2.0]]), "bias": np.array([3.0])}
    out = SGD(0.25).step(g)
    assert set(out) == set(g)
    for k, v in g.items():
        np.testing.assert_array_equal(out[k], -0.25 * v)


def test_apply_updates_masks_and_applies_every_projection() -> None:
    rng = np.random.default_rng(5)
    n_rec, n_in, n_out = 4, 3, 2
    w = Weights(
        rng.normal(size=(n_rec, n_in)),
        rng.normal(size=(n_rec, n_rec)),
        rng.normal(size=(n_out, n_rec)),
        rng.normal(size=n_out),
        rng.random((n_rec, n_in)) < 0.5,
        rng.random((n_rec, n_rec)) < 0.5,
        rng.random((n_out, n_rec)) < 0.5,
    )
    ups = {
        "input": rng.normal(size=(n_rec, n_in)),
        "recurrent": rng.normal(size=(n_rec, n_rec)),
        "output": rng.normal(size=(n_out, n_rec)),
        "bias": rng.normal(size=n_out),
    }
    fb = rng.normal(size=(n_rec, n_out))
    new, fb_new, applied = apply_updates(get_rule("eprop")(TrainingConfig()), w, fb, ups)
    masks = {"input": w.mask_in, "recurrent": w.mask_rec, "output": w.mask_out, "bias": np.ones(n_out, bool)}
    before = {"input": w.w_in, "recurrent": w.w_rec, "output": w.w_out, "bias": w.b_out}
    after = {"input": new.w_in, "recurrent": new.w_rec, "output": new.w_out, "bias": new.b_out}
    for k, u in ups.items():
        masked = np.where(masks[k], u, 0.0)
        np.testing.assert_array_equal(applied[k], masked)
        np.testing.assert_array_equal(after[k], before[k] + masked)  # the same one addition
        assert np.any(after[k] != before[k]), k  # the check can fail: every projection moved
    np.testing.assert_array_equal(fb_new, fb)  # symmetric e-prop's B state does not follow W_out here
    np.testing.assert_array_equal(new.mask_rec, w.mask_rec)


class _ScalesRecurrent(Rule):
    """A third party's rule that changes the recurrent updates (and so declares every projection dense)."""

    name = "test-scales-recurrent"

    def adjust_updates(self, updates, weights):
        return {**updates, "recurrent": 0.5 * updates["recurrent"] - 0.1 * weights.w_rec}

    def after_update(self, b, weights, updates):
        return b + updates["output"].T


@pytest.mark.parametrize("edge_weights", [False, True])
@pytest.mark.parametrize("rule", ["eprop", "eprop-adaptive", "scales-recurrent"])
def test_apply_edge_updates_is_apply_updates_bit_for_bit(rule: str, edge_weights: bool) -> None:
    """The edge-vector form gives the dense form's weights, B and applied updates bit for bit (the claim is
    bit identity: the same additions on the same float64s), for a rule that overrides nothing, a built-in
    that changes W_out's updates and B (declaring ``dense_updates = ("output",)``), and a rule that
    changes the recurrent ones (declaring nothing: every projection made dense for it), from dense weights
    and from :class:`EdgeWeights` (the rule reads their dense ``w_rec``, made when read)."""
    rng = np.random.default_rng(11)
    n_rec, n_in, n_out = 9, 5, 2
    w = Weights(
        rng.normal(size=(n_rec, n_in)),
        rng.normal(size=(n_rec, n_rec)),
        rng.normal(size=(n_out, n_rec)),
        rng.normal(size=n_out),
        rng.random((n_rec, n_in)) < 0.6,
        rng.random((n_rec, n_rec)) < 0.3,
        rng.random((n_out, n_rec)) < 0.8,
    )
    conn = Connectivity.of(w)
    training = TrainingConfig(weight_decay=0.01)
    r = _ScalesRecurrent(training) if rule == "scales-recurrent" else get_rule(rule)(training)
    edge_ups = {k: rng.normal(size=conn.n_edges(k)) for k in ("input", "recurrent", "output", "bias")}
    dense_ups = {k: conn.to_dense(k, u) for k, u in edge_ups.items()}
    fb = rng.normal(size=(n_rec, n_out))
    want, want_fb, want_applied = apply_updates(r, w, fb, dense_ups)
    given = conn.edge_weights(conn.weight_vectors(w)) if edge_weights else w  # dense or edge vectors
    got, got_fb, got_applied, got_edges = apply_edge_updates(
        r, given, fb, edge_ups, conn, conn.weight_vectors(w)
    )
    for attr in ("w_in", "w_rec", "w_out", "b_out", "mask_rec"):
        assert np.array_equal(getattr(got, attr), getattr(want, attr)), attr
    assert np.array_equal(got_fb, want_fb)
    for k, u in conn.edge_vectors(want_applied).items():
        assert np.array_equal(got_applied[k], u), k
    for k, v in conn.weight_vectors(want).items():
        assert np.array_equal(got_edges[k], v), k
    assert not np.array_equal(got.w_rec, w.w_rec)  # the comparison can fail: the weights moved
    changes = {"eprop": None, "eprop-adaptive": "output", "scales-recurrent": "recurrent"}[rule]
    for k in edge_ups:  # the rule's change is seen where it makes one
        assert np.array_equal(got_applied[k], edge_ups[k]) == (k != changes), k


def _sparse_weights(seed: int) -> Weights:
    rng = np.random.default_rng(seed)
    n_rec, n_in, n_out = 8, 4, 2
    masks = (rng.random((n_rec, n_in)) < 0.5, rng.random((n_rec, n_rec)) < 0.3, np.ones((n_out, n_rec), bool))
    return Weights(
        rng.normal(size=(n_rec, n_in)),
        rng.normal(size=(n_rec, n_rec)),
        rng.normal(size=(n_out, n_rec)),
        rng.normal(size=n_out),
        *masks,
    )


def test_edge_weights_read_as_the_dense_weights_made_only_when_read() -> None:
    """:class:`EdgeWeights` hold edge vectors and no dense matrix until one is read; what is read is the
    dense :class:`Weights` of the same vectors bit for bit (the claim is bit identity), read-only, made once;
    the masks are the connectivity's; :meth:`Connectivity.weight_vectors` gives back its own vectors."""
    w = _sparse_weights(5)
    conn = Connectivity.of(w)
    vectors = conn.weight_vectors(w)
    ew = conn.edge_weights(vectors)
    assert isinstance(ew, EdgeWeights) and isinstance(ew, Weights)
    assert (ew.n_in, ew.n_rec, ew.n_out) == (w.n_in, w.n_rec, w.n_out) and not ew._dense  # nothing dense
    assert Connectivity.of(ew) is conn
    got = conn.weight_vectors(ew)
    assert all(got[k] is vectors[k] for k in got) and not ew._dense
    for k, v in vectors.items():
        assert not v.flags.writeable, k  # the weights' own now
    for attr in ("w_in", "w_rec", "w_out", "b_out", "mask_in", "mask_rec", "mask_out"):
        a = getattr(ew, attr)
        assert np.array_equal(a, getattr(w, attr)) and a.dtype == getattr(w, attr).dtype, attr
        assert getattr(ew, attr) is a and not a.flags.writeable, attr  # made once, read-only
    assert ew.mask_rec is conn.masks["recurrent"]
    with pytest.raises(ValueError, match="recurrent"):
        conn.edge_weights({**vectors, "recurrent": np.zeros(conn.n_edges("recurrent") + 1)})
    with pytest.raises(ValueError, match="input"):
        conn.edge_weights({**vectors, "input": vectors["input"].astype(np.float32)})


def test_apply_edge_updates_chained_keep_edge_vectors_and_never_change_the_old_weights() -> None:
    """Two updates in a row on :class:`EdgeWeights` give the dense path's weights bit for bit (the claim is
    bit identity), without a dense matrix made where the rule reads none (``eprop-adaptive`` reads
    ``w_out``), and leave the weights before each update as they were."""
    w0 = _sparse_weights(3)
    conn = Connectivity.of(w0)
    rule = get_rule("eprop-adaptive")(TrainingConfig(weight_decay=0.01))
    rng = np.random.default_rng(4)
    fb = rng.normal(size=(w0.n_rec, w0.n_out))
    ups = [{k: rng.normal(size=conn.n_edges(k)) for k in PROJECTIONS} for _ in "ab"]
    e0 = conn.edge_weights(conn.weight_vectors(w0))
    kept = {k: v.copy() for k, v in e0.edges.items()}
    e1, fb1, _, edges1 = apply_edge_updates(rule, e0, fb, ups[0], conn, e0.edges)
    e2, fb2, _, edges2 = apply_edge_updates(rule, e1, fb1, ups[1], conn, edges1)
    d1, dfb1, _ = apply_updates(rule, w0, fb, {k: conn.to_dense(k, u) for k, u in ups[0].items()})
    d2, dfb2, _ = apply_updates(rule, d1, dfb1, {k: conn.to_dense(k, u) for k, u in ups[1].items()})
    assert isinstance(e2, EdgeWeights) and edges2 is e2.edges and "recurrent" not in e2._dense
    for k in kept:
        assert np.array_equal(e0.edges[k], kept[k]), k
    for attr in ("w_in", "w_rec", "w_out", "b_out"):
        assert np.array_equal(getattr(e2, attr), getattr(d2, attr)), attr
    assert np.array_equal(fb2, dfb2)


def test_weights_owning_is_the_constructor_bit_for_bit_without_copies() -> None:
    rng = np.random.default_rng(6)
    n_rec, n_in, n_out = 5, 3, 2
    masks = Weights(
        np.zeros((n_rec, n_in)),
        np.zeros((n_rec, n_rec)),
        np.zeros((n_out, n_rec)),
        np.zeros(n_out),
        rng.random((n_rec, n_in)) < 0.5,
        rng.random((n_rec, n_rec)) < 0.5,
        rng.random((n_out, n_rec)) < 0.5,
    )
    arrays = [
        rng.normal(size=(n_rec, n_in)),
        rng.normal(size=(n_rec, n_rec)),
        rng.normal(size=(n_out, n_rec)),
    ]
    arrays[1][0, 0] = -0.0  # off every mask (no autapses): the constructor writes +0.0 there
    b = rng.normal(size=n_out)
    want = Weights(*[a.copy() for a in arrays], b.copy(), masks.mask_in, masks.mask_rec, masks.mask_out)
    got = Weights.owning(*arrays, b, masks)
    for name in ("w_in", "w_rec", "w_out", "b_out", "mask_in", "mask_rec", "mask_out"):
        assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), name
    assert got.w_rec is arrays[1] and got.mask_rec is masks.mask_rec  # the arrays themselves, no copies
    assert not np.signbit(got.w_rec[0, 0]) and not np.signbit(want.w_rec[0, 0])
