"""``neuroplast analyze`` (neuroplast.analysis.analyze, counterfactual, analyze_plots) against brute force.

Per-trial analyses are checked on small LIF / ALIF networks (tests/helpers.py, make_problem) against the
literal per-synapse recursion (eligibility_steps), e-prop and BPTT; the run-level pass on synthetic run
logs (fixture ``runs`` and the ALIF runs below) against ``compare_run`` and numpy directly.  Runs of rules
with an eligibility of their own (superspike, ostl) against the identities that hold for them and against
the analysis with e-prop's eligibility in place of the rule's (equal on lif_syn, different elsewhere).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from neuroplast.analysis.analyze import (
    analyze_run,
    neuron_cosine,
    neuron_quality,
    parse_trials,
    rule_signal,
    time_resolved,
)
from neuroplast.analysis.analyze_plots import ANALYZE_FIGURES
from neuroplast.analysis.compare import compare_run
from neuroplast.analysis.counterfactual import (
    FeedbackMoments,
    bstar_solve,
    counterfactual_trial,
    feedback_cosines,
)
from neuroplast.cli import main
from neuroplast.errors import UsageError
from neuroplast.gradients.bptt import bptt_grads, ideal_learning_signal
from neuroplast.gradients.derived import ModelTrial, model_bptt, model_eprop_grads, model_ideal_signal
from neuroplast.gradients.eligibility import eligibility_steps
from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.io import RunFileError, open_run
from neuroplast.model.params import Weights
from neuroplast.model.signals import backward_filter
from tests.helpers import (
    PROBLEM_BETAS,
    copy_file,
    make_problem,
    max_rel_err,
    model_problem,
    write_synthetic_run,
)

#: Sums over a few hundred steps and synapses: rounding is ~1e-14 relative; real differences are ≥ 1e-3.
TOL = 1e-10
CASES = [(kind, loss) for kind in ("lif", "mixed") for loss in ("mse", "cross_entropy")]


@pytest.fixture(scope="module")
def alif_runs(tmp_path_factory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("alif")
    return {
        "reg": write_synthetic_run(d / "alif_reg.h5", n_alif=5),
        "cls": write_synthetic_run(d / "alif_cls.h5", kind="classification", n_alif=5),
    }


def _trial(kind: str, loss: str, seed: int = 0) -> TrialData:
    params, w, x, target, mask, lossf = make_problem(PROBLEM_BETAS[kind], loss_name=loss, n_ref=2, seed=seed)
    rng = np.random.default_rng(seed + 11)
    w = Weights(w.w_in, w.w_rec, w.w_out, w.b_out, rng.random(w.w_in.shape) < 0.8, w.mask_rec)
    return TrialData.make(params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)


def _brute_gaps(tr: TrialData, D: np.ndarray, G: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per step, literally: gap_t = D_t ⊙ e_t per synapse, its norm, its dot with G, and Σ_t gap_t."""
    out = {}
    masks = {"input": tr.weights.mask_in, "recurrent": tr.weights.mask_rec}
    for name, mask in masks.items():
        T = tr.psi.shape[0]
        sq, dot, tot = np.zeros(T), np.zeros(T), np.zeros(mask.shape)
        for t, e in eligibility_steps(tr.params, tr.traj, tr.pre[name]):
            gap = np.where(mask, D[t][:, None] * e, 0.0)
            sq[t], dot[t] = np.sum(gap**2), np.sum(gap * G[name])
            tot += gap
        out[name] = (sq, dot, tot)
    return out


@pytest.mark.parametrize("kind,loss", CASES)
def test_time_resolved_gap_adds_up_and_equals_brute_force(kind, loss) -> None:
    tr = _trial(kind, loss)
    B = np.random.default_rng(1).normal(0.0, 0.5, tr.weights.w_out.T.shape)  # any feedback matrix
    L_rule = rule_signal(tr, B)
    res = time_resolved(tr, L_rule)
    g, gh = bptt_grads(tr), eprop_grads(tr, feedback=B)
    D = ideal_learning_signal(tr)["total"] - L_rule
    brute = _brute_gaps(tr, D, {n: g[n] - gh[n] for n in ("input", "recurrent")})
    for name in ("input", "recurrent"):
        d = res[name]
        sq, dot, tot = brute[name]
        assert max_rel_err(d["g_star"], g[name]) < TOL and max_rel_err(d["g_rule"], gh[name]) < TOL
        assert max_rel_err(d["G"], g[name] - gh[name]) < TOL  # Σ_t gap_t = g* − ĝ
        assert max_rel_err(tot, d["G"]) < TOL
        assert max_rel_err(d["gap_norm"] ** 2, sq) < TOL and max_rel_err(d["gap_along"], dot) < TOL
        assert np.sum(d["gap_along"]) == pytest.approx(d["gap_total"] ** 2, rel=TOL)
        assert np.sum(d["exact_along"]) == pytest.approx(d["g_star_norm"], rel=TOL)
        gs = d["g_star"] / d["g_star_norm"]
        assert np.sum(d["rule_along"]) == pytest.approx(np.sum(gh[name] * gs), rel=1e-9, abs=1e-12)
    h = res["hidden"]
    assert np.sum(h["gap_along"]) == pytest.approx(h["gap_total"] ** 2, rel=TOL)
    assert h["gap_total"] ** 2 == pytest.approx(
        res["input"]["gap_total"] ** 2 + res["recurrent"]["gap_total"] ** 2
    )


def test_symmetric_rule_signal_is_the_kept_part_and_bptt_has_no_gap() -> None:
    tr = _trial("mixed", "mse")
    sig = ideal_learning_signal(tr)
    assert max_rel_err(rule_signal(tr, tr.weights.w_out.T), sig["eprop"]) < TOL
    res = time_resolved(tr, rule_signal(tr, None))
    assert res["hidden"]["gap_total"] <= TOL * res["hidden"]["g_star_norm"]


@pytest.mark.parametrize("kind", ["lif", "mixed"])
def test_neuron_quality_is_the_weighted_cosine(kind) -> None:
    tr = _trial(kind, "cross_entropy", seed=3)
    L_rule, L_star = rule_signal(tr, tr.weights.w_out.T), ideal_learning_signal(tr)["total"]
    w = time_resolved(tr, L_rule, L_star)["elig_sq"]
    q = neuron_quality(L_rule, L_star, w)
    cos = neuron_cosine(q["dot"], q["rule_sq"], q["star_sq"])
    for j in range(L_star.shape[1]):
        a, b, wj = L_rule[:, j], L_star[:, j], w[:, j]
        den = np.sqrt(np.sum(wj * a * a) * np.sum(wj * b * b))
        if den == 0:
            assert np.isnan(cos[j])
        else:
            assert cos[j] == pytest.approx(np.sum(wj * a * b) / den, rel=1e-12)
    assert np.any(np.isfinite(cos))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_bstar_is_the_least_squares_solution_and_moments_give_every_cosine(loss) -> None:
    trials = [_trial("mixed", loss, seed=s) for s in range(3)]
    N, n_out = trials[0].psi.shape[1], trials[0].err.shape[1]
    mom = FeedbackMoments(N, n_out)
    X, Y = [], []
    for tr in trials:
        g = bptt_grads(tr)
        L_star = ideal_learning_signal(tr)["total"]
        mom.add(tr, {n: g[n] for n in ("input", "recurrent")}, L_star)
        X.append(tr.params.readout_scale * backward_filter(tr.err, tr.params.kappa))
        Y.append(L_star - tr.reg[None, :])
    sol, *_ = np.linalg.lstsq(np.concatenate(X), np.concatenate(Y), rcond=1e-6)  # softmax: null direction
    B_star = bstar_solve(mom)
    assert max_rel_err(B_star, sol.T) < 1e-9  # normal equations vs a direct least-squares solve
    scale = [1 / np.sqrt(np.sum(y * y)) for y in Y]  # per-trial relative fit: rows scaled by 1/‖Y_trial‖
    sol_w, *_ = np.linalg.lstsq(
        np.concatenate([x * c for x, c in zip(X, scale, strict=True)]),
        np.concatenate([y * c for y, c in zip(Y, scale, strict=True)]),
        rcond=1e-6,
    )
    assert max_rel_err(bstar_solve(mom, per_trial_weights=True), sol_w.T) < 1e-9
    assert max_rel_err(bstar_solve(mom, per_trial_weights=True), B_star) > 1e-6
    rng = np.random.default_rng(0)
    for B in (B_star, rng.normal(size=(N, n_out)), trials[0].weights.w_out.T):
        cos = feedback_cosines(mom, B)["cosine"]
        for tr, c in zip(trials, cos, strict=True):
            g, gh = bptt_grads(tr), eprop_grads(tr, feedback=B)
            a = np.concatenate([gh["input"].ravel(), gh["recurrent"].ravel()])
            b = np.concatenate([g["input"].ravel(), g["recurrent"].ravel()])
            assert c == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-9)


def assert_k_hop_ends(rows: dict) -> None:
    """Counterfactual rows for k = 0, a k in between and k = T: k = 0 is the symmetric e-prop the rule row
    holds, k = T is BPTT, the middle one is a different gradient (the comparator can disagree)."""
    k0, kmid, kT = rows["k"]
    assert k0["hidden_dot"] == pytest.approx(rows["rule"]["hidden_dot"], rel=TOL)  # k = 0 is e-prop
    assert k0["hidden_sq"] == pytest.approx(rows["rule"]["hidden_sq"], rel=TOL)
    assert kT["hidden_dot"] == pytest.approx(kT["hidden_star_sq"], rel=TOL)  # k = T is BPTT
    assert kT["hidden_sq"] == pytest.approx(kT["hidden_star_sq"], rel=TOL)
    err_sq = kmid["hidden_sq"] - 2 * kmid["hidden_dot"] + kmid["hidden_star_sq"]  # ‖ĝ_k − g*‖²
    assert err_sq > 1e-8 * kmid["hidden_star_sq"]


@pytest.mark.parametrize("kind,loss", CASES)
def test_counterfactual_ends_reproduce_eprop_and_bptt(kind, loss) -> None:
    tr = _trial(kind, loss, seed=5)
    T = tr.psi.shape[0]
    g, ep = bptt_grads(tr), eprop_grads(tr, tr.weights.w_out.T)
    gs = {n: g[n] for n in ("input", "recurrent")}
    B = np.random.default_rng(2).normal(size=tr.weights.w_out.T.shape)
    assert_k_hop_ends(counterfactual_trial(tr, [0, 2, T], gs, {n: ep[n] for n in gs}, B))


@pytest.mark.parametrize("name", ["lif_syn", "adlif", "resonate"])
def test_per_trial_analyses_of_other_neuron_models(name) -> None:
    """The per-trial analyses take any model's trial (its derived factors): k = 0 is e-prop, k = T is
    BPTT, the gap adds up to g* − ĝ, and the per-neuron cosine is the weighted one."""
    model, values, params, w, x, target, mask, lossf = model_problem(name, n_ref=2, loss_name="cross_entropy")
    tr = ModelTrial.make(model, values, params, w, x, target, mask, lossf, c_reg=0.3, f_target=0.02)
    T = tr.n_steps
    g, _ = model_bptt(tr)
    ep = model_eprop_grads(tr)
    gs = {n: g[n] for n in ("input", "recurrent")}
    B = np.random.default_rng(2).normal(size=w.w_out.T.shape)
    assert_k_hop_ends(counterfactual_trial(tr, [0, 1, T], gs, {n: ep[n] for n in gs}, B))
    L_rule = rule_signal(tr, B)
    res = time_resolved(tr, L_rule)
    gh = model_eprop_grads(tr, B)
    for proj in ("input", "recurrent"):
        assert (
            max_rel_err(res[proj]["g_star"], g[proj]) < TOL
            and max_rel_err(res[proj]["g_rule"], gh[proj]) < TOL
        )
        assert np.sum(res[proj]["gap_along"]) == pytest.approx(res[proj]["gap_total"] ** 2, rel=TOL)
        assert np.sum(res[proj]["exact_along"]) == pytest.approx(res[proj]["g_star_norm"], rel=TOL)
    assert rule_signal(tr, None) == pytest.approx(model_ideal_signal(tr), rel=TOL)


def test_parse_trials() -> None:
    assert parse_trials(None, 5).tolist() == [0, 1, 2, 3, 4]
    assert parse_trials("1:3,4", 5).tolist() == [1, 2, 4]
    assert parse_trials("::2", 5).tolist() == [0, 2, 4]
    assert parse_trials("-2:", 5).tolist() == [3, 4]
    for bad in ("x", "7", "3:1", "1:2:3:4"):
        with pytest.raises(UsageError, match="--trials"):
            parse_trials(bad, 5)


@pytest.mark.parametrize("which", ["rec", "cls", "alif_reg", "alif_cls"])
def test_analyze_run_on_logs_matches_compare_and_numpy(which, runs, alif_runs, tmp_path) -> None:
    src = {
        "rec": runs["rec"],
        "cls": runs["cls"],
        "alif_reg": alif_runs["reg"],
        "alif_cls": alif_runs["cls"],
    }[which]
    path = copy_file(src, tmp_path / "run.h5")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    res = analyze_run(path, progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # read only
    run = open_run(path)
    assert res["trials"].tolist() == list(range(run.n_trials))
    h = res["time"]["hidden"]
    assert np.sum(h["gap_density"]) == pytest.approx(
        1.0, rel=1e-9
    )  # mean of per-trial densities that sum to 1
    assert sum(h["window_fraction"].values()) == pytest.approx(1.0, rel=1e-9)
    n_alif = 5 if which.startswith("alif") else 0
    assert res["neurons"]["adaptive"].sum() == n_alif and res["neurons"]["model"] == "alif"
    assert res["neurons"]["kind"].tolist() == ["LIF"] * (10 - n_alif) + ["ALIF"] * n_alif
    ct = res["neurons"]["cosine_trial_mean"]
    assert np.all(np.isnan(ct) | (np.abs(ct) <= 1 + 1e-12)) and np.any(np.isfinite(ct))
    cf = res["counterfactual"]
    assert cf["k_is_bptt"][-1] and np.allclose(cf["truncated"]["hidden"]["cosine"][-1], 1.0, atol=1e-10)
    assert np.allclose(cf["truncated"]["hidden"]["cosine"][0], cf["rule"]["hidden"]["cosine"], atol=1e-10)
    assert np.allclose(cf["random_cosine_moments"], cf["random"]["hidden"]["cosine"], atol=1e-9)
    # training alignment against compare's grad/bptt and the logged updates, by hand
    compare_run(path, progress=False)
    run = open_run(path)
    it_of = run.trials["iteration"]
    tr = res["training"]
    assert tr["iterations"].tolist() == list(range(run.n_iterations))
    lc = res["logged_check"]  # e-prop's eligibility is the rule's: the logged gradient reproduced
    assert lc["ok"] and lc["max"] < 1e-12 and lc["eprop_eligibility"] is None and not res["notes"]
    for name in ("input", "recurrent", "output", "bias"):
        p = run.projection(name)
        g = np.stack([p.grad("bptt")[it_of == it].mean(axis=0) for it in range(run.n_iterations)])
        u = p.updates
        cum_u, cum_g = np.cumsum(u, axis=0), np.cumsum(g, axis=0)
        want = [-(a @ b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(cum_u, cum_g, strict=True)]
        assert np.allclose(tr[name]["cumulative"], want, rtol=1e-9, atol=1e-12), name
    p = run.projection("recurrent")
    dense = np.zeros((run.population_sizes["recurrent"],) * 2)
    np.add.at(dense, (p.target_ids.astype(int), p.source_ids.astype(int)), p.updates.sum(axis=0))
    assert np.allclose(tr["spectrum"], np.linalg.svd(dense, compute_uv=False), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kind", [("lif_syn", "regression"), ("adlif", "classification")])
def test_analyze_runs_of_other_neuron_models_end_to_end(name, kind, tmp_path, capsys, figures) -> None:
    """``neuroplast analyze`` on a logged run of another neuron model: finite results, BPTT at k = T, the
    rule at k = 0 (symmetric e-prop), training alignment as compare's grad/bptt gives it, figures, JSON."""
    path = write_synthetic_run(tmp_path / f"{name}.h5", neuron=name, kind=kind)
    res = analyze_run(path, progress=False)
    run = open_run(path)
    assert res["trials"].tolist() == list(range(run.n_trials))
    n = res["neurons"]
    adaptive = name == "adlif"
    assert n["model"] == name and n["adaptive"].tolist() == [adaptive] * 10
    assert set(n["kind"].tolist()) == {"AdLIF" if adaptive else "LIF (syn. current)"}
    h = res["time"]["hidden"]
    assert np.sum(h["gap_density"]) == pytest.approx(1.0, rel=1e-9)
    assert all(np.all(np.isfinite(v)) for v in h.values() if isinstance(v, np.ndarray))
    assert np.all(np.isfinite(n["rate_hz"])) and np.any(np.isfinite(n["cosine_trial_mean"]))
    cf = res["counterfactual"]
    cos = cf["truncated"]["hidden"]["cosine"]
    assert np.all(np.isfinite(cos)) and np.allclose(cos[-1], 1.0, atol=1e-10)
    assert np.allclose(cos[0], cf["rule"]["hidden"]["cosine"], atol=1e-10)  # rule eprop: k = 0
    assert np.all(np.abs(cos[1] - cos[-1]) > 1e-9)  # one hop is neither
    assert np.all(np.isfinite(cf["B_star"])) and np.isfinite(cf["bstar_cosine_mean"])
    assert np.allclose(cf["random_cosine_moments"], cf["random"]["hidden"]["cosine"], atol=1e-9)
    compare_run(path, progress=False)  # g* of analyze = compare's grad/bptt of the model
    run = open_run(path)
    it_of = run.trials["iteration"]
    for proj in ("input", "recurrent"):
        p = run.projection(proj)
        g = np.stack([p.grad("bptt")[it_of == it].mean(axis=0) for it in range(run.n_iterations)])
        cum_u, cum_g = np.cumsum(p.updates, axis=0), np.cumsum(g, axis=0)
        want = [-(a @ b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(cum_u, cum_g, strict=True)]
        assert np.allclose(res["training"][proj]["cumulative"], want, rtol=1e-9, atol=1e-12), proj
    out = tmp_path / "figs"
    assert main(["analyze", str(path), "--out", str(out), "--quiet", "--k", "0,1,T"]) == 0
    text = capsys.readouterr().out
    assert (
        "k=T: 1" in text and ("AdLIF neurons (10)" if adaptive else "LIF (syn. current) neurons (10)") in text
    )
    assert sorted(figures) == sorted(ANALYZE_FIGURES)
    labels = [t.get_text() for ax in figures["neurons.png"].axes for t in ax.get_legend().get_texts()]
    assert labels and all(lab.startswith("AdLIF" if adaptive else "LIF (syn. current)") for lab in labels)
    data = json.loads((out / "analysis.json").read_text())
    assert data["neurons"]["model"] == name and len(data["neurons"]["kind"]) == 10


def test_analyze_refuses_in_trial_runs_in_one_line(runs, tmp_path, capsys) -> None:
    path = write_synthetic_run(tmp_path / "online.h5", update_every=10)  # a real in-trial log
    with pytest.raises(RunFileError, match="inside its trials"):
        analyze_run(path, progress=False)
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "update_every_steps = 10" in err[0]
    assert main(["compare", "--self-test", str(path)]) == 2


def _floats(res: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Every float array or number of an analyze result, by path; the logged check and the eligibility
    gap (which say which eligibility was used) left out."""
    out: dict[str, np.ndarray] = {}
    if isinstance(res, dict):
        for k, v in res.items():
            if k not in ("logged_check", "eligibility_gap", "notes"):
                out.update(_floats(v, f"{prefix}/{k}"))
    elif isinstance(res, (list, tuple)) and res and isinstance(res[0], dict):
        for i, v in enumerate(res):
            out.update(_floats(v, f"{prefix}[{i}]"))
    elif isinstance(res, (np.ndarray, float, np.floating)) and np.asarray(res).dtype.kind == "f":
        out[prefix] = np.asarray(res)
    return out


def _largest_difference(a: dict, b: dict) -> float:
    """Largest difference between two analyze results, relative to each array's largest magnitude (NaN
    where both are NaN)."""
    fa, fb = _floats(a), _floats(b)
    assert fa.keys() == fb.keys()
    worst = 0.0
    for key in fa:
        x, y = fa[key], fb[key]
        assert x.shape == y.shape, key
        assert np.array_equal(np.isnan(x), np.isnan(y)), key
        fin = np.isfinite(x)
        scale = float(np.max(np.abs(x[fin]))) if fin.any() else 0.0
        if scale > 0:
            worst = max(worst, float(np.max(np.abs(x[fin] - y[fin]))) / scale)
    return worst


def _with_eprops_eligibility(path, monkeypatch) -> dict:
    """The analysis of a run with e-prop's eligibility put in place of its rule's (what analyze measured
    before it knew the rule's): the comparator that must disagree where the two eligibilities do."""
    from neuroplast.analysis import analyze

    with monkeypatch.context() as m:
        m.setattr(analyze, "rule_eligibility", lambda cfg: analyze.Eligibility())
        return analyze_run(path, progress=False)


#: An analysis sums ≤ 60 steps × 10 neurons of the same terms in another order: ≈ 1e-15 relative.
SAME_ANALYSIS = 1e-12


def test_analyze_superspike_on_lif_syn_equals_eprop_on_the_same_trials(tmp_path, monkeypatch) -> None:
    """SuperSpike's trace on lif_syn (τ_m, τ_syn of the model) is e-prop's eligibility: the analysis of a
    superspike run equals that of the e-prop run of the same seed (the same trials: their weights agree bit
    for bit, the two gradients differing by rounding far below a weight's last digit), and that of its own
    trials with e-prop's eligibility; the logged gradient is reproduced by either eligibility."""
    ss = write_synthetic_run(tmp_path / "ss.h5", rule="superspike", neuron="lif_syn")
    ep = write_synthetic_run(tmp_path / "ep.h5", rule="eprop", neuron="lif_syn")
    for proj in ("input", "recurrent", "output"):
        assert np.array_equal(open_run(ss).projection(proj).weights, open_run(ep).projection(proj).weights)
    a, b = analyze_run(ss, progress=False), analyze_run(ep, progress=False)
    assert a["own_eligibility"] and not b["own_eligibility"] and a["reference"] == b["reference"] == "bptt"
    assert _largest_difference(a, b) < SAME_ANALYSIS
    assert _largest_difference(a, _with_eprops_eligibility(ss, monkeypatch)) < SAME_ANALYSIS
    assert a["eligibility_gap"]["mean"] < SAME_ANALYSIS and len(a["notes"]) == 1 and not b["notes"]
    lc = a["logged_check"]
    assert lc["ok"] and lc["max"] < SAME_ANALYSIS and lc["eprop_eligibility_min"] < SAME_ANALYSIS
    assert np.allclose(a["counterfactual"]["truncated"]["hidden"]["cosine"][-1], 1.0, atol=1e-10)


@pytest.mark.parametrize("neuron,n_alif", [("adlif", 0), ("alif", 5)])
def test_analyze_superspike_uses_its_trace_not_eprops_eligibility(
    neuron, n_alif, tmp_path, monkeypatch
) -> None:
    """Where the trace is not e-prop's eligibility (AdLIF's current, the ALIF threshold), the analysis of a
    superspike run differs from what e-prop's eligibility gives on the same trials, and only the trace
    reproduces the logged gradient (the check disagrees with e-prop's); k = 0 is still the rule, k = T is
    L* on the trace (not BPTT), and the gap adds up on it."""
    path = write_synthetic_run(tmp_path / "ss.h5", rule="superspike", neuron=neuron, n_alif=n_alif)
    res = analyze_run(path, progress=False)
    other = _with_eprops_eligibility(path, monkeypatch)
    assert _largest_difference(res, other) > 1e-3
    lc, lo = res["logged_check"], other["logged_check"]
    assert lc["ok"] and lc["max"] < SAME_ANALYSIS and lc["eprop_eligibility_min"] > 1e-3
    assert lo["ok"] is False and lo["max"] > 1e-3  # e-prop's eligibility does not give the logged gradient
    cf = res["counterfactual"]
    cos = cf["truncated"]["hidden"]["cosine"]
    assert np.allclose(cos[0], cf["rule"]["hidden"]["cosine"], atol=1e-10)  # k = 0: the rule itself
    assert np.all(cos[-1] < 1 - 1e-4)  # k = T: L* on the trace is not BPTT
    assert res["eligibility_gap"]["mean"] > 1e-3 and "no ideal signal" in res["notes"][0]
    h = res["time"]["hidden"]
    assert np.sum(h["gap_density"]) == pytest.approx(1.0, rel=1e-9)


def test_analyze_ostl_without_recurrence_is_bptt_through_the_reset(runs, tmp_path) -> None:
    """Without W_rec, ostl's gradient is BPTT with the reset differentiated, its analysis's reference: no
    gap, cosine 1 for the rule and every k; with W_rec, k = T is that reference and k = 0 the rule, its
    training alignment is against compare's grad/bptt_full, and e-prop's eligibility misses the logged
    gradient."""
    path = write_synthetic_run(tmp_path / "ostl0.h5", rule="ostl", rec_scale=0.0)
    res = analyze_run(path, progress=False)
    assert res["reference"] == "bptt_full" and "bptt_full" in res["notes"][0]
    h = res["time"]["hidden"]
    assert h["gap_over_exact"] < 1e-12
    cf = res["counterfactual"]
    assert np.allclose(cf["rule"]["hidden"]["cosine"], 1.0, atol=1e-12)
    assert np.allclose(cf["truncated"]["hidden"]["cosine"], 1.0, atol=1e-12)
    path = write_synthetic_run(tmp_path / "ostl.h5", rule="ostl", n_alif=5)
    res = analyze_run(path, progress=False)
    cf = res["counterfactual"]
    cos = cf["truncated"]["hidden"]["cosine"]
    assert np.allclose(cos[-1], 1.0, atol=1e-10) and np.allclose(cos[0], cf["rule"]["hidden"]["cosine"])
    assert np.all(cos[0] < 1 - 1e-4)
    assert res["eligibility_gap"]["mean"] < SAME_ANALYSIS  # streamed = adjoint: BPTT through the reset
    lc = res["logged_check"]
    assert lc["ok"] and lc["eprop_eligibility_min"] > 1e-3
    compare_run(path, keep_reset=True, progress=False)
    run = open_run(path)
    it_of = run.trials["iteration"]
    for proj in ("input", "recurrent"):
        p = run.projection(proj)
        g = np.stack([p.grad("bptt_full")[it_of == it].mean(axis=0) for it in range(run.n_iterations)])
        cum_u, cum_g = np.cumsum(p.updates, axis=0), np.cumsum(g, axis=0)
        want = [-(a @ b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(cum_u, cum_g, strict=True)]
        assert np.allclose(res["training"][proj]["cumulative"], want, rtol=1e-9, atol=1e-12), proj


@pytest.mark.parametrize(("rule", "reference"), [("bptt", "bptt"), ("bptt-full", "bptt_full")])
def test_analyze_bptt_runs_against_their_own_exact_gradient(rule, reference, tmp_path) -> None:
    """A BPTT run is its own reference — with the reset detached (``bptt``) or differentiated
    (``bptt-full``, analysed on the eligibility that keeps the reset): the logged gradient is reproduced,
    no gap; the other reference would not reproduce it (the check can disagree)."""
    path = write_synthetic_run(tmp_path / f"{rule}.h5", rule=rule, n_alif=5)
    res = analyze_run(path, progress=False)
    assert res["reference"] == reference
    assert res["logged_check"]["ok"] and res["logged_check"]["max"] < SAME_ANALYSIS
    assert res["time"]["hidden"]["gap_over_exact"] < 1e-12
    other = "bptt" if rule == "bptt-full" else "bptt-full"
    run = open_run(path)
    assert run.config_toml.count(f'rule = "{rule}"') == 1
    swapped = write_synthetic_run(tmp_path / f"{other}.h5", rule=other, n_alif=5)
    g_other = open_run(swapped).projection("recurrent").grad(other)[0]
    g_this = run.projection("recurrent").grad(rule)[0]
    assert max_rel_err(g_this, g_other) > 1e-3  # the two exact gradients of the same first trial differ


@pytest.mark.parametrize("rule", ["ostl", "superspike"])
def test_cli_analyze_runs_of_rules_with_an_eligibility_of_their_own(rule, tmp_path, capsys) -> None:
    """The summary names the eligibility and the reference, says in one line what changes, and that the
    logged gradient is reproduced; figures and JSON are written."""
    path = write_synthetic_run(tmp_path / f"{rule}.h5", rule=rule, neuron="adlif")
    out = tmp_path / "figs"
    assert main(["analyze", str(path), "--out", str(out), "--quiet", "--k", "0,1,T"]) == 0
    text = capsys.readouterr().out
    assert "eligibility: " + ("its own trace 'superspike'" if rule == "superspike" else "the model's") in text
    assert sum(line.startswith("   note: ") for line in text.splitlines()) == 1
    assert f"0. logged gradient {rule!r} (input, recurrent) reproduced" in text
    assert "with e-prop's eligibility instead" in text
    data = json.loads((out / "analysis.json").read_text())
    assert data["own_eligibility"] and data["logged_check"]["ok"]
    assert data["reference"] == ("bptt_full" if rule == "ostl" else "bptt")


def test_cli_analyze_writes_figures_and_json(runs, tmp_path, capsys) -> None:
    out = tmp_path / "figs"
    assert (
        main(["analyze", str(runs["cls"]), "--trials", "0:4", "--out", str(out), "--quiet", "--k", "0,1,T"])
        == 0
    )
    text = capsys.readouterr().out
    assert "4 trials analysed" in text and "k=T: 1" in text
    for name in ANALYZE_FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    data = json.loads((out / "analysis.json").read_text())
    assert data["counterfactual"]["ks"][-1] == 60 and len(data["trials"]) == 4
    assert main(["analyze", str(runs["cls"]), "--json", "--trials", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == [1]
    for bad in (["--trials", "zz"], ["--k", "a"], ["--k", "-1"]):
        assert main(["analyze", str(runs["cls"]), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[0] in err[0]


def test_compare_self_test_agrees_disagrees_and_writes_nothing(runs, tmp_path, capsys) -> None:
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["compare", "--self-test", str(path)]) == 0
    out = capsys.readouterr().out
    assert "self-test passed" in out and out.count(" ok") == 9
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    # a run whose logged W_rec is 0: e-prop equals BPTT there too, so "differs" must fail (exit 1)
    assert main(["compare", "--self-test", str(runs["norec"]), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    bad = [c for c in res["checks"] if not c["ok"]]
    assert bad and all(c["expect"] == "differ" for c in bad)
