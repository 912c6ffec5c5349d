"""Validation only: NEST 3.10's *current* e-prop models on the workloads of scripts/nest_current.py.

The models themselves are the package's (:mod:`neuroplast.plasticity.nest_current`, the semantics of the
``nest-current`` device, docs/validation.md): this module only regenerates what NEST was given — the
network, input and target of NEST's example ``eprop_supervised_regression_sine-waves.py``, of its test
``test_eprop_regression`` and of the legacy evidence-accumulation task ported to the current models
(``evidence``) — written independently of the package's ``nest-current-sine`` initializer and task (so
that tests/nest/test_current.py can check those too), and runs them through
:func:`neuroplast.plasticity.nest_current.simulate`.  scripts/nest_current.py runs them all in NEST and
writes data/nest_current.json.

Two switches of :class:`Settings` are not NEST's and turn a feature off to measure its effect:
``adam_catch_up = False`` (one Adam step per optimizer call), ``apply_per_sequence = True`` (the summed
gradient applied once per sequence, at its end, as neuroplast's batch e-prop does).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neuroplast.plasticity import nest_current
from neuroplast.plasticity.nest_current import NestSettings

ROOT = Path(__file__).resolve().parents[2]
#: scripts/nest_current.py's output: NEST's losses per workload, parameters and digests.
DATA = ROOT / "data" / "nest_current.json"

__all__ = ["Settings", "Workload", "settings_for", "workload", "simulate", "digest", "DATA"]


#: The models' parameters (NEST's names; the example's values by default).
Settings = NestSettings


@dataclass
class Workload:
    """What NEST is given: weights (post × pre, float64 from the example's float32) and the input.

    Attributes
    ----------
    w_in : ndarray, shape (N, n_in)
    w_rec : ndarray, shape (N, N)
        Zero diagonal (no autapses: those synapses do not exist).
    w_out : ndarray, shape (n_out, N)
    b : ndarray, shape (N, n_out)
        Feedback weights (``eprop_learning_signal_connection``).
    spike_times : list of ndarray
        The spike generators' spike times of each input (ms, float32 values as NEST got them).
    target : ndarray, shape (steps_sequence,)
        The target of one sequence (the same in every sequence), unless ``target_steps`` is given.
    target_steps : ndarray, shape (n_iter · steps_sequence, n_out), optional
        The target of every step of the task (readout k's rate generator).
    window_steps : ndarray, shape (n_iter · steps_sequence,), optional
        The learning-window signal of every step (1 where the error counts; default all 1).
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    b: np.ndarray
    spike_times: list
    target: np.ndarray
    target_steps: np.ndarray | None = None
    window_steps: np.ndarray | None = None


def settings_for(name: str, n_iter: int | None = None) -> Settings:
    """The :class:`Settings` of a workload of scripts/nest_current.py (``sine``, ``test_adam``, …)."""
    base = Settings()
    test = dict(n_iter=5, steps_sequence=100, c_reg=300.0 / 100.0, width=0.03, optimize_each_step=True)
    table = {
        "sine": {},
        "test_adam": dict(test, optimizer="adam"),
        "test_adapt": dict(test, neuron="eprop_iaf_adapt", adapt_beta=0.0174, adapt_tau=2000.0),
        "test_adam_spike": dict(test, optimizer="adam", optimize_each_step=False),
        "test_exponential": dict(test, optimizer="adam", surrogate="exponential"),
        "test_fast_sigmoid": dict(test, optimizer="adam", surrogate="fast_sigmoid_derivative"),
        "test_arctan": dict(test, optimizer="adam", surrogate="arctan_derivative"),
        "adam_spike": dict(optimizer="adam"),
        "cutoff": dict(cutoff=10),
        "clip": dict(w_min=-0.005, w_max=0.005),
        "evidence": dict(
            n_iter=3,
            steps_sequence=2250,
            n_adaptive=50,
            tau_m=20.0,
            tau_m_out=20.0,
            v_th=0.6,
            t_ref=5.0,
            c_reg=300.0 / 2250.0,
            kappa=0.95,
            kappa_reg=0.95,
            height=0.5,
            width=0.6,
            optimizer="adam",
            eta=5e-3,
            epsilon=1e-8,
            adapt_beta=1.7 * (1.0 - np.exp(-1.0 / 2000.0)) / (1.0 - np.exp(-1.0 / 20.0)),
            adapt_tau=2000.0,
        ),
    }
    s = replace(base, **table[name])
    return s if n_iter is None or name.startswith("test_") else replace(s, n_iter=n_iter)


def workload_for(name: str, s: Settings) -> Workload:
    """The workload of ``name`` (:func:`evidence_workload` or :func:`workload`)."""
    return evidence_workload(s) if name == "evidence" else workload(name, s)


def workload(name: str, s: Settings) -> Workload:
    """Regenerate the example's draws (``np.random.seed(1)``, the example's order and dtypes).

    ``name`` selects the example's changes (``test_adapt`` scales the weights as NEST's test does;
    ``clip`` clips them to [Wmin, Wmax]).  The global NumPy generator is restored afterwards.
    """
    state = np.random.get_state()
    try:
        np.random.seed(1)
        n_in = n_rec = 100
        n_out = 1
        scale = 1.0 - s.kappa
        f32 = np.float32
        w_in = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=f32)
        w_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=f32)
        np.fill_diagonal(w_rec, 0.0)
        w_out = np.array(np.random.randn(n_rec, n_out).T / np.sqrt(n_rec), dtype=f32) * scale
        b = np.array(np.random.randn(n_rec, n_out) / np.sqrt(n_rec), dtype=f32)
        if s.neuron == "eprop_iaf" or name == "test_adapt":
            w_in *= scale
            w_rec *= scale
            b *= scale
        if name == "clip":
            w_in, w_rec, w_out = (np.clip(w, s.w_min, s.w_max) for w in (w_in, w_rec, w_out))
        seq = s.steps_sequence
        bools = (np.random.rand(seq, n_in) < 0.05).swapaxes(0, 1)
        starts = np.arange(0.0, float(s.n_iter * seq), 1.0)[::seq] + 1.0
        times = []
        for row in bools:
            t = np.arange(0.0, float(seq), 1.0)[row]
            times.append(np.hstack([t + start for start in starts]).astype(np.float32))
        amplitudes = np.random.uniform(low=0.5, high=2.0, size=4)
        phases = np.random.uniform(low=0.0, high=2.0 * np.pi, size=4)
        sines = [
            a * np.sin(np.linspace(p, p + 2.0 * np.pi * (seq // period), seq))
            for a, p, period in zip(amplitudes, phases, [1000, 500, 333, 200], strict=True)
        ]
        target = sum(sines)
        target -= target[0]
        target /= max(np.abs(target).max(), 1e-6)
    finally:
        np.random.set_state(state)
    f64 = np.float64
    return Workload(w_in.astype(f64), w_rec.astype(f64), w_out.astype(f64), b.astype(f64), times, target)


#: The evidence-accumulation workload: the legacy example's task and network on the current models.
EVIDENCE = {
    "n_in": 40,
    "n_reg": 50,
    "n_ad": 50,
    "n_out": 2,
    "n_cues": 7,
    "prob_group": 0.3,
    "spike_prob": 0.04,
    "steps": {"cue": 100, "spacing": 50, "bg_noise": 1050, "recall": 150},
}


def _evidence_sequence(rng_choice, rng_rand, steps_sequence: int) -> tuple[np.ndarray, int]:
    """One sequence of the legacy example's ``generate_evidence_accumulation_input_output`` (batch 1)."""
    e = EVIDENCE
    n_in, st = e["n_in"], e["steps"]
    n_pop = n_in // 4
    prob_choices = np.array([e["prob_group"], 1 - e["prob_group"]], dtype=np.float32)
    idx = rng_choice([0, 1], 1)
    probs = np.zeros((1, 2), dtype=np.float32)
    probs[:, 0] = prob_choices[idx]
    probs[:, 1] = prob_choices[1 - idx]
    cues = rng_choice([0, 1], e["n_cues"], p=probs[0])
    p = np.zeros((steps_sequence, n_in))
    for c_idx, cue in enumerate(cues):
        start = c_idx * (st["cue"] + st["spacing"]) + st["spacing"]
        p[start : start + st["cue"], cue * n_pop : (cue + 1) * n_pop] = e["spike_prob"]
    p[-st["recall"] :, 2 * n_pop : 3 * n_pop] = e["spike_prob"]
    p[:, 3 * n_pop :] = e["spike_prob"] / 4.0
    bools = p > rng_rand(p.size).reshape(p.shape)
    bools[0, :] = False
    return bools, int(np.sum(cues) > int(e["n_cues"] / 2))


def evidence_workload(s: Settings) -> Workload:
    """The ``evidence`` workload (``np.random.seed(1)``): weights as the legacy example draws them.

    W_in = randn(n_in, N)ᵀ/√n_in, W_rec = randn(N, N)ᵀ/√N (diagonal 0), W_out = Glorot U(−l, l) of shape
    (N, n_out), transposed, times 1 − e^(−dt/τ_out) (the legacy readout's input factor, which the current
    readout lacks), B = randn(N, n_out), all float32; then per sequence the legacy example's cue draws
    (batch 1), input spikes at generator time k · T + step + 1 ms, the one-hot label as target and the
    learning window over the 150 recall steps.
    """
    e = EVIDENCE
    state = np.random.get_state()
    try:
        np.random.seed(1)
        n_in, n_rec, n_out = e["n_in"], e["n_reg"] + e["n_ad"], e["n_out"]
        f32 = np.float32
        w_in = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=f32)
        w_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=f32)
        np.fill_diagonal(w_rec, 0.0)
        limit = np.sqrt(3.0 * (1.0 / max(1.0, (n_rec + n_out) / 2.0)))
        glorot = np.random.uniform(low=-limit, high=limit, size=(n_rec, n_out))
        w_out = np.array(glorot.T, dtype=f32) * f32(1.0 - np.exp(-1.0 / s.tau_m_out))
        b = np.array(np.random.randn(n_rec, n_out), dtype=f32)
        seq = s.steps_sequence
        bools, labels = [], []
        for _ in range(s.n_iter):
            x, y = _evidence_sequence(np.random.choice, np.random.rand, seq)
            bools.append(x)
            labels.append(y)
    finally:
        np.random.set_state(state)
    x = np.concatenate(bools)  # (n_iter · T, n_in)
    timeline = np.arange(0.0, float(s.n_iter * seq), 1.0) + 1.0
    times = [timeline[x[:, i]].astype(np.float32) for i in range(n_in)]
    recall = e["steps"]["recall"]
    target = np.zeros((s.n_iter * seq, n_out))
    window = np.zeros(s.n_iter * seq)
    for k, label in enumerate(labels):
        target[(k + 1) * seq - recall : (k + 1) * seq, label] = 1.0
        window[(k + 1) * seq - recall : (k + 1) * seq] = 1.0
    f64 = np.float64
    return Workload(
        w_in.astype(f64),
        w_rec.astype(f64),
        w_out.astype(f64),
        b.astype(f64),
        times,
        target[:seq, 0].copy(),
        target_steps=target,
        window_steps=window,
    )


def digest(a: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of an array as contiguous float64 (as scripts/nest_current.py)."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes()).hexdigest()[:16]


def digests(w: Workload, s: Settings) -> dict[str, str]:
    """The digests scripts/nest_current.py stores for what NEST was given."""
    first = np.concatenate([t[t < s.steps_sequence + 1] for t in w.spike_times])
    return {
        "input": digest(w.w_in),
        "recurrent": digest(w.w_rec),
        "output": digest(w.w_out),
        "feedback": digest(w.b),
        "spike_times_first_sequence": digest(np.sort(first)),
        "target": digest(w.target),
    }


def reference() -> dict:
    """data/nest_current.json."""
    return json.loads(DATA.read_text())


def simulate(s: Settings, w: Workload) -> dict:
    """Run the workload as NEST does (:func:`neuroplast.plasticity.nest_current.simulate`).

    Returns
    -------
    dict
        ``loss`` (n_iter,): ½ Σ_t (y_t − y*_t)² per sequence over readout steps 2 … (NEST's recording);
        ``w_in``, ``w_rec``, ``w_out`` (post × pre) after the run; ``n_rec_spikes``, ``spikes``, ``err``.
    """
    target = np.tile(w.target, s.n_iter)[:, None] if w.target_steps is None else w.target_steps
    return nest_current.simulate(s, w.w_in, w.w_rec, w.w_out, w.b, w.spike_times, target, w.window_steps)


#: (workload, switch in words, change of the Settings): the differences listed in docs/validation.md
FEATURES = [
    ("sine", "ISI trace cutoff 100 ms → none", dict(cutoff=10**9)),
    ("sine", "ISI trace cutoff 100 ms → 10 ms", dict(cutoff=10)),
    ("sine", "gradient descent per spike → per step (optimize_each_step)", dict(optimize_each_step=True)),
    ("sine", "updates per spike → summed, once per sequence", dict(apply_per_sequence=True)),
    ("sine", "firing-rate regularization c_reg 0.3 → 0", dict(c_reg=0.0)),
    ("adam_spike", "Adam per spike → per step (optimize_each_step)", dict(optimize_each_step=True)),
    ("adam_spike", "Adam catch-up → one step per call", dict(adam_catch_up=False)),
    ("adam_spike", "Adam per spike → summed, once per sequence", dict(apply_per_sequence=True)),
]


def features(n_iter: int) -> list[dict]:
    """Each switch of ``FEATURES`` on ``n_iter`` sequences: relative change of the losses.

    Returns one dict per switch: ``workload``, ``switch``, ``final`` (relative change of the last loss),
    ``mean`` (mean over sequences of (loss − NEST's) / NEST's), ``max`` (max |relative change|).
    """
    base: dict[str, np.ndarray] = {}
    rows = []
    for name, words, change in FEATURES:
        s = settings_for(name, n_iter)
        w = workload(name, s)
        if name not in base:
            base[name] = simulate(s, w)["loss"]
        loss = simulate(replace(s, **change), w)["loss"]
        rel = (loss - base[name]) / base[name]
        rows.append(
            {
                "workload": name,
                "switch": words,
                "final": float(rel[-1]),
                "mean": float(rel.mean()),
                "max": float(np.abs(rel).max()),
            }
        )
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(
        description="Measure the effect of each feature switch (docs/validation.md)."
    )
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()
    print("| workload | switch | last loss | mean over sequences | max |")
    print("|---|---|---|---|---|")
    for row in features(args.iterations):
        cells = f"{row['final']:+.2e} | {row['mean']:+.2e} | {row['max']:.2e}"
        print(f"| {row['workload']} | {row['switch']} | {cells} |")
