"""NEST 3.10's *current* e-prop models in NumPy, exactly: the ``nest-current`` device's semantics.

The models are ``eprop_iaf`` / ``eprop_iaf_adapt`` (recurrent), ``eprop_readout`` (mean-squared error)
and ``eprop_synapse`` with the ``weight_optimizer`` (``gradient_descent`` or ``adam``), as NEST 3.10
computes them (models/eprop_iaf*.cpp, eprop_readout.cpp, eprop_synapse.h, weight_optimizer.cpp and
nestkernel/eprop_archiving_node*.h).  Written from the equations and the semantics of that code;
docs/validation.md ("NEST's current models") lists how they differ from neuroplast's e-prop
(docs/model.md), and tests/nest/test_current.py checks them against NEST's own losses
(data/nest_current.json, written by scripts/nest_current.py): bit for bit on the example.

:class:`NestNetwork` is the network as a state that advances one time step at a time; NEST never resets
it, so sequence k + 1 starts where sequence k ended (membranes, traces, optimizer).  :func:`simulate`
runs a whole task timeline; :class:`neuroplast.plasticity.nest_simulator.NestCurrentSimulator` runs it
sequence by sequence for the trainer (``simulation.device = "nest-current"``).

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

Every synapse's interval is integrated step by step in time order ("dense": history step h is processed
at the start of step h + 2, when its learning signal has arrived and before that step's spikes are
delivered); the operations per synapse and their order are NEST's, so the losses agree to rounding.  The
flush events of NEST's examples (``flush_event_send_interval``) only split an interval into pieces
(memory) and are not needed.  ``eprop_isi_trace_cutoff`` must be at least 2 steps (NEST's buffering of
the previous spike differs below that).

Two switches of :class:`NestSettings` are not NEST's; they turn a feature off to measure its effect
(docs/validation.md) and are not reachable from a config: ``adam_catch_up = False`` (one Adam step per
optimizer call), ``apply_per_sequence = True`` (the summed gradient applied once per sequence, at its end,
as neuroplast's batch e-prop does).  Pure NumPy: no Brian2, no trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NestSettings", "NestNetwork", "SURROGATES", "OPTIMIZERS", "surrogate", "simulate"]

#: NEST 3.10's ``surrogate_gradient_function`` values.
SURROGATES = ("piecewise_linear", "exponential", "fast_sigmoid_derivative", "arctan_derivative")
#: NEST 3.10's ``weight_optimizer`` types.
OPTIMIZERS = ("gradient_descent", "adam")
#: Steps of history :class:`NestNetwork` keeps: a step's history is integrated 2 steps later, and the
#: spikes of step t are stored as stamp t + 1.
_RING = 4


@dataclass(frozen=True)
class NestSettings:
    """Parameters of NEST's models (NEST's names; the sine-wave example's values by default).

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
        Coefficient of the firing-rate regularization (the example: 300 / sequence duration in ms).
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
        ``eprop_isi_trace_cutoff`` of recurrent and readout neurons (steps = ms), at least 2.
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

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate {self.surrogate!r} (known: {', '.join(SURROGATES)})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (known: {', '.join(OPTIMIZERS)})")
        if self.cutoff < 2:
            raise ValueError(f"eprop_isi_trace_cutoff must be at least 2 steps (got {self.cutoff})")


class _Optimizer:
    """NEST's ``WeightOptimizer`` for every synapse of a projection (rows: presynaptic neurons).

    All synapses of one presynaptic neuron are called together, so the step counter is per row.
    """

    def __init__(self, s: NestSettings, shape: tuple[int, int]) -> None:
        self.s = s
        self.cum = np.zeros(shape)
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.b1 = np.ones(shape[0])
        self.b2 = np.ones(shape[0])
        self.step = np.ones(shape[0], dtype=np.int64)

    def __call__(self, rows: np.ndarray, index: np.ndarray, grad: np.ndarray, w: np.ndarray) -> None:
        """``optimized_weight`` for ``rows`` with indices ``index`` (rows,) and gradients (rows, targets);
        ``w`` (pre × post) is updated in place."""
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
            rows, current, wr = self._adam(rows, current, cum, wr)
        w[rows] = np.clip(wr, s.w_min, s.w_max)
        self.cum[rows] = 0.0
        self.step[rows] = current

    def _adam(
        self, rows: np.ndarray, current: np.ndarray, cum: np.ndarray, wr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Adam's steps since each row's last call (NEST's catch-up; the first with the gradient).

        Returns the rows, their step indices and their new (unclipped) weights, most steps first."""
        s = self.s
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
        return rows, current, wr


class _Projection:
    """The eprop_synapses from one population to another: weights (pre × post) and per-synapse state."""

    def __init__(
        self,
        s: NestSettings,
        w: np.ndarray,
        alpha: float,
        readout: bool,
        mask: np.ndarray | None = None,
        *,
        rho: float = 1.0,
        adaptive: bool = False,
    ) -> None:
        self.s = s
        self.w = np.array(w, dtype=float).T.copy()  # rows: presynaptic neurons
        self.mask = None if mask is None else mask.T.astype(float)
        self.alpha = alpha
        self.readout = readout
        self.rho = rho
        self.adaptive = adaptive and not readout
        shape = self.w.shape
        self.z_bar = np.zeros(shape)
        self.e_bar = np.zeros(shape)
        self.e_bar_reg = np.zeros(shape)
        self.eps = np.zeros(shape)
        self.grad = np.zeros(shape)
        #: Σ of the gradients g_h integrated since :meth:`take_given` (what the synapses gave the optimizer).
        self.given = np.zeros(shape)
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
            inc = post["err"][None, :] * z_bar
        else:
            psi = post["psi"][None, :]
            if post["adaptive"]:
                e = psi * (z_bar - post["beta"][None, :] * self.eps[rows])
                self.eps[rows] = post["rho"] * self.eps[rows] + e
            else:
                e = psi * z_bar
            e_bar = s.kappa * self.e_bar[rows] + e
            e_bar_reg = s.kappa_reg * self.e_bar_reg[rows] + (1.0 - s.kappa_reg) * e
            self.e_bar[rows], self.e_bar_reg[rows] = e_bar, e_bar_reg
            inc = post["L"][None, :] * e_bar + post["reg"][None, :] * e_bar_reg
        if self.mask is not None:
            inc = inc * self.mask[rows]
        self.given[rows] += inc
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
                if self.adaptive:
                    self.eps[d] *= np.power(self.rho, k)
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

    def take_given(self) -> np.ndarray:
        """Σ g_h since the last call, post × pre (and restart the sum)."""
        out = self.given.T.copy()
        self.given[:] = 0.0
        return out


def surrogate(v: np.ndarray, v_th: np.ndarray | float, r: np.ndarray, s: NestSettings) -> np.ndarray:
    """ψ of NEST's four surrogate functions (0 while refractory), in NEST's operation order.

    Parameters
    ----------
    v, v_th : ndarray (N,) or float
        Membrane potential and (adaptive) threshold (mV).
    r : ndarray (N,)
        Refractory steps left.
    s : NestSettings
        ``surrogate``, ``height`` and ``width`` (mV).
    """
    if s.surrogate == "piecewise_linear":
        psi = s.height * np.maximum(0.0, 1.0 - np.abs(v - v_th) / s.width)
    elif s.surrogate == "exponential":
        psi = s.height * np.exp(-np.abs(v - v_th) / s.width)
    elif s.surrogate == "fast_sigmoid_derivative":
        psi = s.height * np.power(1.0 + np.abs(v - v_th) / s.width, -2.0)
    else:  # arctan_derivative (NestSettings checks the name)
        psi = s.height / (1.0 + np.power((v - v_th) / s.width, 2.0))
    return np.where(r > 0, 0.0, psi)


class NestNetwork:
    """NEST's recurrent network, readout and e-prop synapses as a state advanced one step at a time.

    Parameters
    ----------
    s : NestSettings
        The models' parameters.
    w_in : ndarray (N, n_in)
    w_rec : ndarray (N, N)
        Its diagonal is not used (no autapses: those synapses do not exist).
    w_out : ndarray (n_out, N)
    b : ndarray (N, n_out)
        Feedback weights (``eprop_learning_signal_connection``), fixed.

    Attributes
    ----------
    t : int
        The next global time step (0 before the first).
    """

    def __init__(
        self, s: NestSettings, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, b: np.ndarray
    ):
        n_rec, n_in = np.shape(w_in)
        n_out = np.shape(w_out)[0]
        self.s, self.n_rec, self.n_in, self.n_out = s, n_rec, n_in, n_out
        self.dt = 1.0
        self.alpha = np.exp(-self.dt / s.tau_m)
        self.alpha_out = np.exp(-self.dt / s.tau_m_out)
        self.rho = np.exp(-self.dt / s.adapt_tau)
        self.refractory = int(round(s.t_ref / self.dt))
        self.f_target = s.f_target / 1000.0 * self.dt  # spikes per step
        beta = np.full(n_rec, s.adapt_beta if s.neuron == "eprop_iaf_adapt" or s.n_adaptive >= 0 else 0.0)
        if s.n_adaptive >= 0:
            beta[: n_rec - s.n_adaptive] = 0.0
        self.beta = beta
        self.adaptive = s.neuron == "eprop_iaf_adapt" or s.n_adaptive > 0
        extra = {"rho": self.rho, "adaptive": self.adaptive}
        self.inp = _Projection(s, w_in, self.alpha, readout=False, **extra)
        no_autapses = ~np.eye(n_rec, dtype=bool)
        self.rec = _Projection(s, w_rec, self.alpha, readout=False, mask=no_autapses, **extra)
        self.out = _Projection(s, w_out, self.alpha_out, readout=True)
        self.b = np.array(b, dtype=float)
        self.t = 0
        # neuron states
        self.v = np.zeros(n_rec)
        self.adapt = np.zeros(n_rec)
        self.z = np.zeros(n_rec)
        self.r = np.zeros(n_rec, dtype=np.int64)
        self.f_av = np.zeros(n_rec)
        self.v_out = np.zeros(n_out)
        # the last steps' history, indexed by global step modulo _RING
        self.stamps_in = np.zeros((_RING, n_in), dtype=bool)
        self.stamps_rec = np.zeros((_RING, n_rec), dtype=bool)
        self.psi = np.zeros((_RING, n_rec))
        self.reg = np.zeros((_RING, n_rec))
        self.err = np.zeros((_RING, n_out))

    @property
    def projections(self) -> dict[str, _Projection]:
        """``input``, ``recurrent`` and ``output`` synapses."""
        return {"input": self.inp, "recurrent": self.rec, "output": self.out}

    def weights(self) -> dict[str, np.ndarray]:
        """The current weights, post × pre: ``w_in`` (N, n_in), ``w_rec`` (N, N), ``w_out`` (n_out, N)."""
        return {"w_in": self.inp.w.T.copy(), "w_rec": self.rec.w.T.copy(), "w_out": self.out.w.T.copy()}

    def take_given(self) -> dict[str, np.ndarray]:
        """Σ of the gradients every synapse integrated since the last call, post × pre, by projection."""
        return {k: p.take_given() for k, p in self.projections.items()}

    def step(self, x: np.ndarray, target: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance one step t (:attr:`t`, then incremented).

        Parameters
        ----------
        x : ndarray of bool (n_in,)
            Input spikes of stamp t (spike generator time t − 1 ms).
        target : ndarray (n_out,)
            The readouts' target of step t.
        window : float
            The learning window of step t (1: the error counts, 0: it does not).

        Returns
        -------
        (v_out, z) : (ndarray (n_out,), ndarray (N,))
            The readouts' membrane (y) and the recurrent spikes of step t (stamp t + 1).
        """
        s, t = self.s, self.t
        ring = lambda k: k % _RING  # noqa: E731
        self.stamps_in[ring(t)] = x
        h = t - 2
        if h >= 0:
            # NEST adds each readout's signal to the history entry
            learning = np.zeros(self.n_rec)
            err_next = self.err[ring(h + 1)]
            for k in range(self.n_out):
                learning += self.b[:, k] * err_next[k]
            post_rec = {
                "beta": self.beta,
                "adaptive": self.adaptive,
                "psi": self.psi[ring(h)],
                "L": learning,
                "reg": self.reg[ring(h)],
                "rho": self.rho,
            }
            z_in = self.stamps_in[ring(h)].astype(float)
            z_rec = self.stamps_rec[ring(h)].astype(float)
            self.inp.integrate(h, z_in, post_rec)
            self.rec.integrate(h, z_rec, post_rec)
            self.out.integrate(h, z_rec, {"err": self.err[ring(h)]})
            seq = s.steps_sequence
            if s.apply_per_sequence and (h - 1) > 0 and (h - 1) % seq == 0:
                for p in (self.inp, self.rec, self.out):
                    p.end_of_sequence((h - 1) // seq)
        pre_in = np.flatnonzero(self.stamps_in[ring(t)])
        pre_rec = np.flatnonzero(self.stamps_rec[ring(t)])
        i_rec = self.inp.spikes(t, pre_in) + self.rec.spikes(t, pre_rec)
        i_out = self.out.spikes(t, pre_rec)

        # recurrent neurons, step t
        r = np.where(self.r > 0, self.r - 1, self.r)
        v = 0.0 + i_rec + self.alpha * self.v
        if self.adaptive:
            self.adapt = self.rho * self.adapt + self.z
            v_th = s.v_th + self.beta * self.adapt
        else:
            v_th = s.v_th
        psi = surrogate(v, v_th, r, s)
        z = ((v >= v_th) & (r == 0)).astype(float)
        self.v = v - s.v_th * z
        self.r = np.where(z > 0, self.refractory, r)
        self.z = z
        self.f_av = s.kappa_reg * self.f_av + (1.0 - s.kappa_reg) * z / self.dt
        self.psi[ring(t)] = psi
        self.reg[ring(t)] = s.c_reg * (self.f_av - self.f_target)
        self.stamps_rec[ring(t + 1)] = z > 0

        # readout, step t
        self.v_out = 0.0 + i_out + self.alpha_out * self.v_out
        self.err[ring(t)] = (self.v_out - target) * window
        self.t = t + 1
        return self.v_out.copy(), z

    def run(
        self, x: np.ndarray, target: np.ndarray, window: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance ``len(x)`` steps.

        Parameters
        ----------
        x : ndarray (T, n_in)
            Input spikes (0/1) arriving in each step.
        target : ndarray (T, n_out)
        window : ndarray (T,), optional
            Learning window (default all 1).

        Returns
        -------
        (y, err, z) : ndarray (T, n_out), ndarray (T, n_out), ndarray (T, N)
            Readout membranes, errors (y − y*) · window, recurrent spikes of each step.
        """
        T = len(x)
        window = np.ones(T) if window is None else np.asarray(window, dtype=float)
        x = np.asarray(x) != 0
        target = np.asarray(target, dtype=float).reshape(T, self.n_out)
        y = np.zeros((T, self.n_out))
        err = np.zeros((T, self.n_out))
        z = np.zeros((T, self.n_rec))
        for j in range(T):
            y[j], z[j] = self.step(x[j], target[j], window[j])
            err[j] = self.err[(self.t - 1) % _RING]
        return y, err, z


def simulate(
    s: NestSettings,
    w_in: np.ndarray,
    w_rec: np.ndarray,
    w_out: np.ndarray,
    b: np.ndarray,
    spike_times: list,
    target_steps: np.ndarray,
    window_steps: np.ndarray | None = None,
) -> dict:
    """Run a whole task timeline as NEST does: the per-sequence losses and the final weights.

    Parameters
    ----------
    s : NestSettings
    w_in, w_rec, w_out, b : ndarray
        Initial weights (post × pre) and feedback (N, n_out), as :class:`NestNetwork` takes them.
    spike_times : list of ndarray
        The spike generators' spike times of each input (ms).
    target_steps : ndarray (n_iter · steps_sequence, n_out)
        The target of every step of the task.
    window_steps : ndarray (n_iter · steps_sequence,), optional
        The learning window of every step (default all 1).

    Returns
    -------
    dict
        ``loss`` (n_iter,): ½ Σ_t (y_t − y*_t)² per sequence over readout steps 2 … (NEST's recording);
        ``w_in``, ``w_rec``, ``w_out`` (post × pre) after the run; ``n_rec_spikes``; ``spikes`` (bool,
        by stamp) and ``err`` of every step.
    """
    seq = s.steps_sequence
    n_in = np.shape(w_in)[1]
    n_out = np.shape(w_out)[0]
    t_task = s.n_iter * seq
    n_steps = t_task + 2  # readout steps 2 … t_task + 1 are recorded
    stamps_in = np.zeros((n_steps, n_in), dtype=bool)  # input spike of stamp t: generator time t − 1
    for i, times in enumerate(spike_times):
        st = np.rint(np.asarray(times, dtype=np.float64)).astype(np.int64) + 1
        stamps_in[st[st < n_steps], i] = True
    target = np.zeros((n_steps, n_out))  # readout step t: index t − 2 of the task's timeline
    target[2:] = np.asarray(target_steps, dtype=float).reshape(-1, n_out)[: n_steps - 2]
    window = np.zeros(n_steps)
    window[2:] = 1.0 if window_steps is None else window_steps[: n_steps - 2]

    net = NestNetwork(s, w_in, w_rec, w_out, b)
    _, err_rec, z = net.run(stamps_in, target, window)
    y_minus = err_rec[2 : 2 + t_task, :].T.reshape(n_out, s.n_iter, 1, seq)
    loss = 0.5 * np.mean(np.sum(y_minus**2, axis=3), axis=(0, 2))
    spikes = np.zeros((n_steps + 1, net.n_rec), dtype=bool)
    spikes[1:] = z > 0
    return {
        "loss": loss,
        **net.weights(),
        "n_rec_spikes": int(spikes.sum()),
        "spikes": spikes,
        "err": err_rec,
    }
