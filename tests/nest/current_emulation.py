"""Validation only: an exact NumPy emulation of NEST 3.10's *current* e-prop models.

The models are ``eprop_iaf`` / ``eprop_iaf_adapt`` (recurrent), ``eprop_readout`` (mean-squared error)
and ``eprop_synapse`` with the ``weight_optimizer`` (``gradient_descent`` or ``adam``), as NEST 3.10
computes them (models/eprop_iaf*.cpp, eprop_readout.cpp, eprop_synapse.h, weight_optimizer.cpp and
nestkernel/eprop_archiving_node*.h), on the network, input and target of NEST's example
``eprop_supervised_regression_sine-waves.py`` and of its test ``test_eprop_regression``
and on the legacy evidence-accumulation task ported to the current models (``evidence``;
scripts/nest_current.py runs them all in NEST and writes data/nest_current.json).  Written from the
equations and the semantics of that code; docs/validation.md ("NEST's current models") lists how they
differ from neuroplast's e-prop (docs/model.md).

Time: step t (dt = 1 ms) is NEST's update of the interval (t, t + 1] ms; a spike emitted in step t has
time stamp t + 1 and reaches its targets (delay 1 ms) in step t + 1, so "stamp s" = "arrives in step s".
The readout's error of step t reaches the recurrent neurons' history entry t − 1 (readout and feedback
delays; NEST delivers these secondary events before the spikes of the same step).

What a synapse does (event-driven, NEST's ``compute_gradient``): when presynaptic spike n (stamp s_n)
passes, it integrates the history of its postsynaptic neuron over the previous inter-spike interval,
steps h = s_{n−1} − 1 … min(s_{n−1} − 1 + c, s_n − 1) − 1 (c: ``eprop_isi_trace_cutoff`` in steps):

    z̄ ← α z̄ + z_h,  e = ψ_h z̄  (adaptive: e = ψ_h (z̄ − β ε), ε ← ρ ε + e),
    ē ← κ ē + e,  ē_reg ← κ_reg ē_reg + (1 − κ_reg) e,  g_h = L_h ē + r_h ē_reg

(readout synapses: g_h = err_h z̄ with the readout's α), with r_h = c_reg (f^ema_h − f_target dt) and
f^ema ← κ_reg f^ema + (1 − κ_reg) z / dt; after the cutoff the traces only decay (by a power at the next
spike).  ``optimize_each_step = True`` calls the optimizer at every step h of the interval with index
h + 1 (the time step); ``False`` calls it once, at the spike, with Σ_h g_h and index s_n − 1.  The
optimizer steps when ``1 + index // batch_size`` exceeds its own step counter: gradient descent
w ← w − η g once, Adam once per *counted* step since its last call (the first with the gradient, the
others with zero gradient: NEST's catch-up), then clips to [Wmin, Wmax].  A spike is transmitted with the
weight after that update.  The first spike of a synapse only starts its first interval.

The emulation integrates every synapse's interval step by step in time order ("dense": history step h is
processed at the start of step h + 2, when its learning signal has arrived and before that step's spikes
are delivered); the operations per synapse and their order are NEST's, so the losses agree to rounding.
The flush events of the example (``flush_event_send_interval``) only split an interval into pieces
(memory) and are not emulated.  ``eprop_isi_trace_cutoff`` must be at least 2 steps (NEST's buffering
of the previous spike differs below that).

Switches that NEST does not have (:class:`Settings`) turn features off to measure their effect:
``adam_catch_up = False`` (one Adam step per optimizer call), ``apply_per_sequence = True`` (the summed
gradient applied once per sequence, at its end, as neuroplast's batch e-prop does).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: scripts/nest_current.py's output: NEST's losses per workload, parameters and digests.
DATA = ROOT / "data" / "nest_current.json"

__all__ = ["Settings", "Workload", "settings_for", "workload", "simulate", "digest", "DATA"]


@dataclass(frozen=True)
class Settings:
    """Parameters of one workload (NEST's names; the example's values by default).

    Attributes
    ----------
    n_iter, steps_sequence : int
        Number of sequences and steps (ms) per sequence.
    neuron : str
        ``"eprop_iaf"`` or ``"eprop_iaf_adapt"``.
    tau_m, tau_m_out : float
        Membrane time constants of the recurrent neurons and the readout (ms).
    v_th : float
        Threshold (mV, relative to E_L = 0).
    t_ref : float
        Refractory period (ms).
    c_reg : float
        Coefficient of the firing-rate regularization (300 / sequence duration in ms).
    f_target : float
        Target rate (Hz).
    kappa, kappa_reg : float
        Filters of the eligibility trace and of the rate for the regularization.
    surrogate : str
        ``surrogate_gradient_function``: ``"piecewise_linear"`` (height · max(0, 1 − |v − v_th| / width)),
        ``"exponential"`` (height · exp(−|v − v_th| / width)), ``"fast_sigmoid_derivative"``
        (height · (1 + |v − v_th| / width)⁻²) or ``"arctan_derivative"``
        (height / (1 + ((v − v_th) / width)²); NEST's docs print a further 1/π that its code does not have).
    height, width : float
        Height (1) and width (mV) of the surrogate.
    cutoff : int
        ``eprop_isi_trace_cutoff`` of recurrent and readout neurons (steps = ms).
    optimizer : str
        ``"gradient_descent"`` or ``"adam"``.
    eta, beta_1, beta_2, epsilon : float
        Learning rate and Adam's constants.
    batch_size : int
        The optimizer's batch size (in optimizer indices: steps or spikes).
    optimize_each_step : bool
        Optimizer called at every step of an interval (True) or once per spike (False).
    w_min, w_max : float
        Clipping bounds of every weight (pA).
    adapt_beta, adapt_tau : float
        Adaptation of ``eprop_iaf_adapt`` (mV per spike; ms).
    n_adaptive : int
        −1: every recurrent neuron is ``neuron``; k ≥ 0: the last k are ``eprop_iaf_adapt``, the others
        ``eprop_iaf`` (whose equations are the adaptive ones with adapt_beta = 0, bit for bit).
    adam_catch_up : bool
        Not a NEST switch: False gives one Adam step per optimizer call instead of NEST's catch-up.
    apply_per_sequence : bool
        Not a NEST switch: True sums each synapse's gradient over a sequence and applies it at its end.
    """

    n_iter: int = 20
    steps_sequence: int = 1000
    neuron: str = "eprop_iaf"
    tau_m: float = 30.0
    tau_m_out: float = 30.0
    v_th: float = 0.03
    t_ref: float = 0.0
    c_reg: float = 300.0 / 1000.0
    f_target: float = 10.0
    kappa: float = 0.97
    kappa_reg: float = 0.97
    surrogate: str = "piecewise_linear"
    height: float = 10.0
    width: float = 1.0 / 33.3
    cutoff: int = 100
    optimizer: str = "gradient_descent"
    eta: float = 1e-4 * (1.0 - 0.97) ** 2
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    batch_size: int = 1
    optimize_each_step: bool = False
    w_min: float = -100.0
    w_max: float = 100.0
    adapt_beta: float = 0.0
    adapt_tau: float = 10.0
    n_adaptive: int = -1
    adam_catch_up: bool = True
    apply_per_sequence: bool = False


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


class _Optimizer:
    """NEST's ``WeightOptimizer`` for every synapse of a projection (rows: presynaptic neurons).

    All synapses of one presynaptic neuron are called together, so the step counter is per row.
    """

    def __init__(self, s: Settings, shape: tuple[int, int]):
        self.s = s
        self.cum = np.zeros(shape)
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.b1 = np.ones(shape[0])
        self.b2 = np.ones(shape[0])
        self.step = np.ones(shape[0], dtype=np.int64)

    def __call__(self, rows: np.ndarray, index: np.ndarray, grad: np.ndarray, w: np.ndarray) -> None:
        """``optimized_weight`` for ``rows`` with indices ``index`` (rows,) and gradients (rows, targets)."""
        s = self.s
        self.cum[rows] += grad
        current = 1 + index // s.batch_size
        due = self.step[rows] < current
        if not due.any():
            return
        rows, current = rows[due], current[due]
        cum = self.cum[rows] / s.batch_size
        wr = w[rows]
        if s.optimizer == "gradient_descent":
            wr = wr - s.eta * cum
        else:
            n = current - self.step[rows] if s.adam_catch_up else np.ones(len(rows), dtype=np.int64)
            order = np.argsort(-n, kind="stable")  # most steps first: step k updates a leading slice
            rows, current, n, cum, wr = rows[order], current[order], n[order], cum[order], wr[order]
            m, v, b1, b2 = self.m[rows], self.v[rows], self.b1[rows], self.b2[rows]
            counts = np.searchsorted(-n, -np.arange(int(n.max())), side="left")  # rows with n > k
            b_1, b_2, eps, eta = s.beta_1, s.beta_2, s.epsilon, s.eta
            for k, c in enumerate(counts):
                b1[:c] *= b_1
                b2[:c] *= b_2
                alpha = eta * np.sqrt(1.0 - b2[:c]) / (1.0 - b1[:c])
                mk, vk, gk = m[:c], v[:c], cum[:c]
                mk[...] = b_1 * mk + (1.0 - b_1) * gk
                vk[...] = b_2 * vk + (1.0 - b_2) * gk * gk
                wr[:c] -= alpha[:, None] * mk / (np.sqrt(vk) + eps)
                if k == 0:
                    cum[...] = 0.0
            self.m[rows], self.v[rows], self.b1[rows], self.b2[rows] = m, v, b1, b2
        w[rows] = np.clip(wr, s.w_min, s.w_max)
        self.cum[rows] = 0.0
        self.step[rows] = current


class _Projection:
    """The eprop_synapses from one population to another: weights (pre × post) and per-synapse state."""

    def __init__(
        self, s: Settings, w: np.ndarray, alpha: float, readout: bool, mask: np.ndarray | None = None
    ):
        self.s = s
        self.w = w.T.copy()  # rows: presynaptic neurons
        self.mask = None if mask is None else mask.T.astype(float)
        self.alpha = alpha
        self.readout = readout
        shape = self.w.shape
        self.z_bar = np.zeros(shape)
        self.e_bar = np.zeros(shape)
        self.e_bar_reg = np.zeros(shape)
        self.eps = np.zeros(shape)
        self.grad = np.zeros(shape)
        self.last = np.zeros(shape[0], dtype=np.int64)  # stamp of the last spike, 0: none yet
        self.decay = np.zeros(shape[0], dtype=np.int64)
        self.opt = _Optimizer(s, shape)

    def integrate(self, h: int, z: np.ndarray, post: dict) -> None:
        """History step h of every synapse whose interval (up to the cutoff) covers it."""
        s = self.s
        active = self.last > 0
        inside = active & (h < self.last - 1 + s.cutoff)
        self.decay[active & ~inside] += 1
        rows = np.flatnonzero(inside)
        if rows.size == 0:
            return
        z_bar = self.alpha * self.z_bar[rows] + z[rows, None]
        self.z_bar[rows] = z_bar
        if self.readout:
            inc = post["err"][h][None, :] * z_bar
        else:
            psi = post["psi"][h][None, :]
            if post["adaptive"]:
                e = psi * (z_bar - post["beta"][None, :] * self.eps[rows])
                self.eps[rows] = post["rho"] * self.eps[rows] + e
            else:
                e = psi * z_bar
            e_bar = s.kappa * self.e_bar[rows] + e
            e_bar_reg = s.kappa_reg * self.e_bar_reg[rows] + (1.0 - s.kappa_reg) * e
            self.e_bar[rows], self.e_bar_reg[rows] = e_bar, e_bar_reg
            inc = post["L"][h][None, :] * e_bar + post["reg"][h][None, :] * e_bar_reg
        if self.mask is not None:
            inc = inc * self.mask[rows]
        if s.optimize_each_step and not s.apply_per_sequence:
            self.opt(rows, np.full(rows.size, h + 1, dtype=np.int64), inc, self.w)
        else:
            self.grad[rows] += inc

    def spikes(self, t: int, pre: np.ndarray) -> np.ndarray:
        """Presynaptic spikes of stamp t (indices ``pre``): finish their intervals; the weights they carry."""
        s = self.s
        done = pre[self.last[pre] > 0]
        if done.size:
            d = done[self.decay[done] > 0]
            if d.size:
                k = self.decay[d].astype(float)[:, None]
                self.z_bar[d] *= np.power(self.alpha, k)
                self.e_bar[d] *= np.power(s.kappa, k)
                self.e_bar_reg[d] *= np.power(s.kappa_reg, k)
                if self._adaptive and not self.readout:
                    self.eps[d] *= np.power(self._rho, k)
                self.decay[d] = 0
            if not s.optimize_each_step and not s.apply_per_sequence:
                self.opt(done, np.full(done.size, t - 1, dtype=np.int64), self.grad[done], self.w)
                self.grad[done] = 0.0
        self.last[pre] = t
        return self.w[pre].sum(axis=0)

    def end_of_sequence(self, index: int) -> None:
        """``apply_per_sequence``: every synapse's summed gradient, applied now (index: sequence number)."""
        rows = np.arange(self.w.shape[0])
        self.opt(rows, np.full(rows.size, index, dtype=np.int64), self.grad, self.w)
        self.grad[:] = 0.0

    _rho = 1.0
    _adaptive = False


def _surrogate(v: np.ndarray, v_th: np.ndarray | float, r: np.ndarray, s: Settings) -> np.ndarray:
    """ψ of NEST's four surrogate functions (0 while refractory), in NEST's operation order."""
    if s.surrogate == "piecewise_linear":
        psi = s.height * np.maximum(0.0, 1.0 - np.abs(v - v_th) / s.width)
    elif s.surrogate == "exponential":
        psi = s.height * np.exp(-np.abs(v - v_th) / s.width)
    elif s.surrogate == "fast_sigmoid_derivative":
        psi = s.height * np.power(1.0 + np.abs(v - v_th) / s.width, -2.0)
    elif s.surrogate == "arctan_derivative":
        psi = s.height / (1.0 + np.power((v - v_th) / s.width, 2.0))
    else:
        raise ValueError(f"unknown surrogate {s.surrogate!r}")
    return np.where(r > 0, 0.0, psi)


def simulate(s: Settings, w: Workload) -> dict:
    """Run the workload as NEST does; the per-sequence losses and the final weights.

    Returns
    -------
    dict
        ``loss`` (n_iter,): ½ Σ_t (y_t − y*_t)² per sequence over readout steps 2 … (NEST's recording);
        ``w_in``, ``w_rec``, ``w_out`` (post × pre) after the run; ``n_rec_spikes``.
    """
    seq = s.steps_sequence
    n_rec, n_in = w.w_in.shape
    n_out = w.w_out.shape[0]
    t_task = s.n_iter * seq
    n_steps = t_task + 2  # readout steps 2 … t_task + 1 are recorded
    dt = 1.0
    alpha = np.exp(-dt / s.tau_m)
    alpha_out = np.exp(-dt / s.tau_m_out)
    rho = np.exp(-dt / s.adapt_tau)
    refractory = int(round(s.t_ref / dt))
    f_target = s.f_target / 1000.0 * dt  # spikes per step

    stamps_in = np.zeros((n_steps + 2, n_in), dtype=bool)  # input spike of stamp t: generator time t − 1
    for i, times in enumerate(w.spike_times):
        st = np.rint(np.asarray(times, dtype=np.float64)).astype(np.int64) + 1
        stamps_in[st[st < n_steps + 2], i] = True
    stamps_rec = np.zeros((n_steps + 2, n_rec), dtype=bool)

    inp = _Projection(s, w.w_in, alpha, readout=False)
    rec = _Projection(s, w.w_rec, alpha, readout=False, mask=~np.eye(n_rec, dtype=bool))
    out = _Projection(s, w.w_out, alpha_out, readout=True)
    beta = np.full(n_rec, s.adapt_beta if s.neuron == "eprop_iaf_adapt" or s.n_adaptive >= 0 else 0.0)
    if s.n_adaptive >= 0:
        beta[: n_rec - s.n_adaptive] = 0.0
    adaptive = s.neuron == "eprop_iaf_adapt" or s.n_adaptive > 0
    inp._rho = rec._rho = rho
    inp._adaptive = rec._adaptive = adaptive
    post_rec = {
        "beta": beta,
        "adaptive": adaptive,
        "psi": np.zeros((n_steps, n_rec)),
        "L": np.zeros((n_steps, n_rec)),
        "reg": np.zeros((n_steps, n_rec)),
        "rho": rho,
    }
    post_out = {"err": np.zeros((n_steps, n_out))}

    v = np.zeros(n_rec)
    adapt = np.zeros(n_rec)
    z = np.zeros(n_rec)
    r = np.zeros(n_rec, dtype=np.int64)
    f_av = np.zeros(n_rec)
    v_out = np.zeros(n_out)
    err_rec = np.zeros((n_steps, n_out))
    target = np.zeros((n_steps, n_out))  # readout step t: index t − 2 of the task's timeline
    if w.target_steps is None:
        target[2:, 0] = np.tile(w.target, s.n_iter)[: n_steps - 2]
    else:
        target[2:] = w.target_steps[: n_steps - 2]
    window = np.zeros(n_steps)
    window[2:] = 1.0 if w.window_steps is None else w.window_steps[: n_steps - 2]

    for t in range(n_steps):
        h = t - 2
        if h >= 0:
            learning = np.zeros(n_rec)  # NEST adds each readout's signal to the history entry
            for k in range(n_out):
                learning += w.b[:, k] * err_rec[h + 1, k]
            post_rec["L"][h] = learning
            inp.integrate(h, stamps_in[h].astype(float), post_rec)
            rec.integrate(h, stamps_rec[h].astype(float), post_rec)
            out.integrate(h, stamps_rec[h].astype(float), post_out)
            if s.apply_per_sequence and (h - 1) > 0 and (h - 1) % seq == 0:
                k = (h - 1) // seq
                for p in (inp, rec, out):
                    p.end_of_sequence(k)
        pre_in = np.flatnonzero(stamps_in[t])
        pre_rec = np.flatnonzero(stamps_rec[t])
        i_rec = inp.spikes(t, pre_in) + rec.spikes(t, pre_rec)
        i_out = out.spikes(t, pre_rec)

        # recurrent neurons, step t
        r = np.where(r > 0, r - 1, r)
        v = 0.0 + i_rec + alpha * v
        if adaptive:
            adapt = rho * adapt + z
            v_th = s.v_th + beta * adapt
        else:
            v_th = s.v_th
        psi = _surrogate(v, v_th, r, s)
        z = ((v >= v_th) & (r == 0)).astype(float)
        v = v - s.v_th * z
        r = np.where(z > 0, refractory, r)
        f_av = s.kappa_reg * f_av + (1.0 - s.kappa_reg) * z / dt
        post_rec["psi"][t] = psi
        post_rec["reg"][t] = s.c_reg * (f_av - f_target)
        stamps_rec[t + 1] = z > 0

        # readout, step t
        v_out = 0.0 + i_out + alpha_out * v_out
        err = (v_out - target[t]) * window[t]
        err_rec[t] = err
        post_out["err"][t] = err

    y_minus = err_rec[2 : 2 + t_task, :].T.reshape(n_out, s.n_iter, 1, seq)
    loss = 0.5 * np.mean(np.sum(y_minus**2, axis=3), axis=(0, 2))
    return {
        "loss": loss,
        "w_in": inp.w.T.copy(),
        "w_rec": rec.w.T.copy(),
        "w_out": out.w.T.copy(),
        "n_rec_spikes": int(stamps_rec.sum()),
        "spikes": stamps_rec,
        "err": err_rec,
    }


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
