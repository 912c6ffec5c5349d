"""Neuron models other than alif (``network.neuron``, docs/model.md §10) train, log and compare end to end.

A run of ``lif_syn`` or ``adlif`` trains on the NumPy reference (``simulation.device = "numpy"``, named: since
Brian2 runs these models ``auto`` picks cpp_standalone, a compile per case; Brian2 trains the same runs as the
reference in test_a_neuron_model_trains_the_same_run_on_brian2_and_numpy below), logs
its online e-prop gradient, and ``compare`` replays every trial through the model's equations and computes
exact BPTT from its derived backward step.  The checks, each able to fail:

* the replay is the run (replayed loss == logged loss);
* the logged e-prop gradient is the part of BPTT that e-prop keeps (Σ_t L^kept_t e_t, ≤ 1e-12 relative)
  — the identity of the factorization, with the online κ-filter moved onto the signal;
* kept part + recurrent part == BPTT (≤ 1e-10): the ideal-signal identity Σ_t L*_t e_t = dE/dW;
* and e-prop is *not* BPTT (cosine < 0.999) where the recurrent part is not zero, as theory predicts.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import numpy as np
import pytest

from neuroplast.analysis.compare import KEPT_PART, RECURRENT_PART, REFERENCE, compare_run
from neuroplast.config import parse_config
from neuroplast.io import open_run
from neuroplast.training.runner import run_training
from tests.helpers import EVIDENCE, SINE

#: e-prop vs the kept part of BPTT: the same sums in another order (Σ_t L_t ē_t vs Σ_t (filtered L)_t e_t),
#: each of ≤ 150 products ≈ 1e-16 relative; measured ≤ 2e-15.
KEPT_RTOL = 1e-12
#: kept + recurrent part vs BPTT: the eligibility forward vs the adjoint backward, ≤ 150 steps of
#: Jacobian products; measured ≤ 1e-14.
IDENTITY_RTOL = 1e-10


def _config(base: Path, neuron: str, **network) -> dict:
    data = copy.deepcopy(tomllib.loads(base.read_text(encoding="utf-8")))
    data["simulation"].update(n_steps=150, device="numpy")
    data["network"].update(neuron=neuron, n_rec=16, n_alif=0, n_ref=2, **network)
    data["network"].pop("beta", None)
    data["training"].update(iterations=3, batch_size=2, rule="eprop")
    if data["task"]["name"] == "evidence":
        data["task"].update(n_in=16, n_cues=1, cue_ms=40.0, gap_ms=20.0, recall_ms=40.0)
    else:
        data["task"].update(n_in=16, periods_ms=[150.0, 75.0])
    return data


CASES = {
    "lif_syn-mse": (SINE, "lif_syn", {"tau_syn_ms": 5.0}),
    "adlif-mse-sparse": (SINE, "adlif", {"p_rec": 0.5, "p_in": 0.7, "w_in_scale": 1.5, "w_rec_scale": 0.6}),
    "lif_syn-ce": (EVIDENCE, "lif_syn", {"surrogate": "fast_sigmoid", "tau_syn_ms": 3.0}),
    "adlif-ce": (EVIDENCE, "adlif", {"surrogate": "exponential", "adapt_a": 1.0, "w_in_scale": 20.0}),
}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


@pytest.mark.parametrize("case", list(CASES))
def test_a_neuron_model_trains_logs_and_compares_with_bptt(tmp_path: Path, case: str) -> None:
    base, neuron, network = CASES[case]
    cfg = parse_config(_config(base, neuron, **network))
    out = run_training(cfg, tmp_path / "run.h5", progress=False)
    assert tomllib.loads(open_run(out).config_toml)["network"]["neuron"] == neuron
    report = compare_run(out, progress=False, keep_reset=True)
    assert report["loss_check"]["max_rel_diff"] <= 1e-12  # the same operations: replay == run
    assert report["replayed"] == list(range(cfg.training.iterations * cfg.training.batch_size))
    run = open_run(out)
    for proj in ("input", "recurrent"):
        g = {
            k: np.asarray(run.projection(proj).grad(k))
            for k in ("eprop", REFERENCE, KEPT_PART, RECURRENT_PART)
        }
        assert np.all(np.isfinite(g[REFERENCE])) and np.any(g[REFERENCE] != 0)
        assert _rel(g["eprop"], g[KEPT_PART]) <= KEPT_RTOL
        assert _rel(g[KEPT_PART] + g[RECURRENT_PART], g[REFERENCE]) <= IDENTITY_RTOL
        assert np.any(g[RECURRENT_PART] != 0)
    cosine = report["projections"]["recurrent"]["eprop"]["cosine"]["mean"]
    assert cosine < 0.999, cosine  # e-prop drops the recurrent part: it differs from BPTT
    assert report["projections"]["output"]["eprop"]["rel_error"]["mean"] <= 1e-12  # the readout is exact


#: A training run on a Brian2 device vs the same run on the NumPy reference: per-operation rounding of the
#: input sums (another order, docs: tests/network/test_model_networks.py) carried through 3 Adam steps.
TRAIN_RTOL = 1e-11


@pytest.mark.brian2
@pytest.mark.parametrize(
    ("case", "device", "batch", "rule"),
    [
        ("lif_syn-mse", "cpp_standalone", 1, "eprop"),
        ("adlif-ce", "runtime", 2, "eprop"),
        ("adlif-mse-sparse", "cpp_standalone", 1, "superspike"),
    ],
)
def test_a_neuron_model_trains_the_same_run_on_brian2_and_numpy(
    case: str, device: str, batch: int, rule: str
) -> None:
    """One trial per launch (cpp_standalone: the chunked engine is alif's), a batch side by side, and a rule
    with its own eligibility trace (superspike, generated next to the model's code)."""
    from neuroplast.plasticity.reference import NumpySimulator
    from neuroplast.training.trainer import Trainer
    from tests.helpers import record_arrays
    from tests.training.test_numpy_device import _compare

    base, neuron, network = CASES[case]
    data = _config(base, neuron, **network)
    data["simulation"]["device"] = device
    data["training"]["batch_size"] = batch
    data["training"]["rule"] = rule
    brian2 = Trainer.from_config(parse_config(data))
    data["simulation"]["device"] = "numpy"
    numpy = Trainer.from_config(parse_config(data))
    assert isinstance(numpy.net, NumpySimulator) and not isinstance(brian2.net, NumpySimulator)
    assert brian2.device == device and brian2.chunk == 0
    reason = "eligibility trace" if rule == "superspike" else "neuron model"
    assert reason in brian2.chunk_reason if batch == 1 else getattr(brian2.net, "batch", 1) == batch
    n = brian2.cfg.training.iterations
    a = {
        f"{r.iteration}{k}": v
        for r in [brian2.run_iteration() for _ in range(n)]
        for k, v in record_arrays(r).items()
    }
    b = {
        f"{r.iteration}{k}": v
        for r in [numpy.run_iteration() for _ in range(n)]
        for k, v in record_arrays(r).items()
    }
    assert a.keys() <= b.keys()
    exact, worst = _compare(a, {k: b[k] for k in a})
    assert not exact, exact  # spikes, counts and shapes: identical
    assert worst < TRAIN_RTOL, worst


@pytest.mark.parametrize(("case", "same"), [("lif_syn-mse", True), ("adlif-mse-sparse", False)])
def test_superspike_trains_eprops_run_where_its_trace_is_eprops(case: str, same: bool) -> None:
    """On lif_syn SuperSpike's trace is e-prop's derived eligibility: the two rules train the same run (every
    trial's gradient, the losses and the weights to rounding, 4 Adam steps); on adlif the gradients differ
    from the first trial on — so the check can fail.  (Gradients, not only losses: Adam's steps are blind to
    a gradient scaled per synapse, which is nearly what SuperSpike's trace is on adlif.)"""
    from neuroplast.training.trainer import Trainer

    base, neuron, network = CASES[case]
    grads, losses, weights = {}, {}, {}
    for rule in ("eprop", "superspike"):
        data = _config(base, neuron, **network)
        data["simulation"]["device"] = "numpy"
        data["training"].update(rule=rule, iterations=4)
        trainer = Trainer.from_config(parse_config(data))
        assert (trainer.rule.trace is None) == (rule == "eprop")
        logs = [trainer.iterate() for _ in range(4)]
        grads[rule] = [g[k] for log in logs for g in log.trial_grads for k in ("input", "recurrent")]
        losses[rule] = np.array([log.losses for log in logs])
        weights[rule] = trainer.weights
    worst = max(_rel(b, a) for a, b in zip(grads["eprop"], grads["superspike"], strict=True))
    if same:
        assert worst <= TRAIN_RTOL and _rel(losses["superspike"], losses["eprop"]) <= TRAIN_RTOL
        for k in ("w_in", "w_rec", "w_out"):
            assert _rel(getattr(weights["superspike"], k), getattr(weights["eprop"], k)) <= TRAIN_RTOL, k
    else:
        assert _rel(grads["superspike"][0], grads["eprop"][0]) > 1e-2


@pytest.mark.parametrize("case", ["alif-mse", "adlif-ce"])
def test_ostl_trains_and_equals_bptt_with_the_reset_while_w_rec_is_zero(tmp_path: Path, case: str) -> None:
    """Rule ``ostl`` (the eligibility with the reset differentiated) through run, log and compare.

    W_rec starts at 0 (``w_rec_scale = 0``): the first iteration's trials have no recurrence, where OSTL is
    gradient-equivalent to BPTT with the reset kept — the logged gradient equals compare's ``bptt_full``
    (≤ KEPT_RTOL, two summation orders) and not the reset-detached ``bptt``; once W_rec has learned, the
    paths through other neurons are missing and it differs (> 1e-3)."""
    base, neuron, network = {
        "alif-mse": (SINE, "alif", {}),
        "adlif-ce": CASES["adlif-ce"],
    }[case]
    data = _config(base, neuron, **{**network, "w_rec_scale": 0.0})
    data["simulation"]["device"] = "numpy"
    data["training"]["rule"] = "ostl"
    cfg = parse_config(data)
    out = run_training(cfg, tmp_path / "run.h5", progress=False)
    compare_run(out, progress=False, keep_reset=True)
    run = open_run(out)
    first = np.flatnonzero(run.trials["iteration"] == 0)
    later = np.flatnonzero(run.trials["iteration"] > 0)
    for proj in ("input", "recurrent"):
        g = np.asarray(run.projection(proj).grad("ostl"))
        full = np.asarray(run.projection(proj).grad("bptt_full"))
        detached = np.asarray(run.projection(proj).grad(REFERENCE))
        assert _rel(g[first], full[first]) <= KEPT_RTOL, proj
        assert _rel(g[first], detached[first]) > 1e-3, proj  # the reset's credit is in it
        assert _rel(g[later], full[later]) > 1e-3, proj  # W_rec ≠ 0: the recurrent paths are missing
