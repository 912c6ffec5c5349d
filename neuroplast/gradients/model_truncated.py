"""The per-neuron factors of ``neuroplast analyze`` for any neuron model (docs/model.md §10, §11).

:mod:`neuroplast.gradients.truncated` writes the factorized sums of the analyses for the ``alif`` model by
hand (ε = (ε^v, ε^a), z̄ shared by every synapse of a presynaptic neuron); this module derives the same
quantities for any :class:`~neuroplast.model.neurons.NeuronModel` from its Jacobians
(:mod:`neuroplast.model.derive`), with n the number of state variables and, per neuron and step,

    J_t = D_t + S_t (ψ_{t−1} du_{t−1})ᵀ  (n × n),   ε_t = J_t ε_{t−1} + b_t pre_t,   e_t = ψ_t du_tᵀ ε_t

(e-prop's eligibility, reset detached; :func:`neuroplast.gradients.derived.model_eligibilities`):

* **factorized sums** Σ_t L_t ⊙ e_t for a stack of signals L (m, T, N): the adjoint of the ε recursion,
  λ_t = ψ_t L_t du_t + J_{t+1}ᵀ λ_{t+1} (per neuron, (m, n, N)), gives G_t = b_tᵀ λ_t and
  Σ_t L_t ⊙ e_t = Σ_t G_t pre_tᵀ — one backward scan shared by every projection, then one GEMM each;
* **contractions** u_j^t = Σ_i G_ji e_ji^t with a fixed matrix G: ε is linear in pre, so
  w_t = J_t w_{t−1} + b_t (pre_t Gᵀ) (per neuron, (n, N)) and u_t = ψ_t du_tᵀ w_t;
* **row norms** s_j^t = Σ_i M_ji (e_ji^t)²: a quadratic quantity, so the per-synapse ε (n, N, n_pre) is
  stepped forward (time O(T·n²·N·n_pre), memory O(n·N·n_pre); no per-step array of synapses is kept);
* **truncated learning signals** L^(k) with at most k hops through W_rec: the backward pass of exact BPTT
  (docs/model.md §10) in which the term c_in W_recᵀ g_{t+1} of level m comes from level m − 1::

      L^(m)_t  = direct_t + c_in W_recᵀ g^(m−1)_{t+1},       dz^(m)_t = L^(m)_t + S_{t+1}ᵀ dh^(m)_{t+1}
      dh^(m)_t = du_t ψ_t dz^(m)_t + D_{t+1}ᵀ dh^(m)_{t+1},  g^(m)_t = b_tᵀ dh^(m)_t

  so L^(0) = direct (symmetric e-prop's signal) and L^(m) = L* (the ideal signal) for m ≥ T − 1.

Every Jacobian is evaluated once per trial for all steps (:func:`model_jacobians`), the time loops step
small per-neuron states, and entries of J, D, S and b that are identically 0 (sympy) are skipped.

With ``keep_reset`` (:class:`ModelFactors`; rule ``ostl``) S_t is S_t + S_reset,t throughout: e_t is the
eligibility that keeps the reset, L* and L^(k) go through the reset too, and Σ_t L*_t e_t is BPTT with the
reset differentiated (tests/gradients/test_rule_eligibility.py).

Two classes give the analyses one interface (:class:`TrialFactors`): :class:`AlifFactors` (the ``alif``
model's hand-written fast path, :mod:`neuroplast.gradients.truncated`) and :class:`ModelFactors` (this
module, any model).  Applied to ``alif``, the derived path equals the fast path to ≤ 1e-12 relative
(tests/gradients/test_model_truncated.py).  Pure NumPy; imports :mod:`~neuroplast.gradients.derived`,
:mod:`~neuroplast.gradients.truncated`, :mod:`~neuroplast.gradients.bptt` and :mod:`neuroplast.model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from neuroplast.gradients.derived import ModelTrial
from neuroplast.gradients.trial import TrialData
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import direct_signal

__all__ = [
    "TrialFactors",
    "AlifFactors",
    "ModelFactors",
    "as_factors",
    "model_jacobians",
]

_PROJECTIONS = ("input", "recurrent")


def model_jacobians(trial: ModelTrial) -> dict[str, np.ndarray]:
    """The derived Jacobians of every step of a trial at once.

    Returns
    -------
    dict
        ``D`` (n, n, T, N) ∂h_t/∂h_{t−1}; ``S``, ``S_reset``, ``b`` (n, T, N) of step t (old state h_{t−1},
        z_{t−1}, c_t); ``du`` (n, T, N) ∂u/∂h at h_t — the values :meth:`ModelTrial.jacobians` gives step
        by step (the same elementwise operations, so the same doubles).
    """
    from neuroplast.model.stepper import parameter_values

    traj, derived = trial.traj, trial.derived
    T, N = traj.z.shape
    par = parameter_values(derived.model, trial.values, N)

    def old(a: np.ndarray) -> np.ndarray:
        return np.vstack([np.zeros((1, N)), a[:-1]])

    env: dict[str, Any] = dict(par)
    env.update({s: old(traj.state[s]) for s in derived.model.state})
    env.update(z=old(traj.z), c=traj.c, v_th=trial.params.v_th)
    out = {k: derived.evaluate(k, env, (T, N)) for k in ("D", "S", "S_reset", "b")}
    new = dict(par)
    new.update({s: traj.state[s] for s in derived.model.state})
    new["v_th"] = trial.params.v_th
    out["du"] = derived.evaluate("du", new, (T, N))
    return out


class TrialFactors(Protocol):
    """What the analyses read of one trial, for any neuron model (:class:`AlifFactors`,
    :class:`ModelFactors`).

    Attributes: ``params`` (c_in, c_out, κ), ``weights``, ``psi`` and ``z`` (T, N), ``err`` (T, n_out),
    ``reg`` (N,) or None, ``pre`` (``projection -> (T, n_pre)`` presynaptic drive).
    """

    params: ModelParams
    weights: Weights
    psi: np.ndarray
    z: np.ndarray
    err: np.ndarray
    reg: np.ndarray | None
    pre: Mapping[str, np.ndarray]

    def ideal_signal(self) -> np.ndarray:
        """L* (T, N), [E] per spike."""
        ...

    def truncated_signals(
        self, ks: Sequence[int], *, shortcut: bool = True, full: np.ndarray | None = None
    ) -> dict[int, np.ndarray]:
        """L^(k) (T, N) for every k of ``ks`` (module docstring)."""
        ...

    def factorize(
        self, signals: np.ndarray, masks: Mapping[str, np.ndarray | None] | None = None
    ) -> dict[str, np.ndarray]:
        """``projection -> (m, N, n_pre)``: Σ_t L_t ⊙ e_t for each signal of ``signals`` (m, T, N)."""
        ...

    def contract(self, name: str, G: np.ndarray) -> np.ndarray:
        """u (T, N), u_j^t = Σ_i G_ji e_ji^t of projection ``name``."""
        ...

    def row_norms(self, name: str, mask: np.ndarray) -> np.ndarray:
        """s (T, N), s_j^t = Σ_i M_ji (e_ji^t)² of projection ``name``."""
        ...


def _masks(weights: Weights) -> dict[str, np.ndarray]:
    return {"input": weights.mask_in, "recurrent": weights.mask_rec}


class AlifFactors:
    """:class:`TrialFactors` of an ``alif`` trial: the hand-written fast path
    (:mod:`neuroplast.gradients.truncated`, z̄ computed once per projection).

    Parameters
    ----------
    trial : TrialData
    """

    model = "alif"

    def __init__(self, trial: TrialData) -> None:
        self.trial = trial
        self.params, self.weights = trial.params, trial.weights
        self.psi, self.z, self.err, self.reg = trial.psi, trial.z, trial.err, trial.reg
        self.pre = {name: trial.pre[name] for name in _PROJECTIONS}
        self._zbar: dict[str, np.ndarray] = {}
        self._ideal: np.ndarray | None = None

    def zbar(self, name: str) -> np.ndarray:
        """z̄ of projection ``name`` (:func:`~neuroplast.gradients.truncated.presynaptic_trace`), cached."""
        from neuroplast.gradients.truncated import presynaptic_trace

        if name not in self._zbar:
            self._zbar[name] = presynaptic_trace(self.params, self.pre[name])
        return self._zbar[name]

    def ideal_signal(self) -> np.ndarray:
        """L* (:func:`~neuroplast.gradients.bptt.ideal_learning_signal`), cached."""
        from neuroplast.gradients.bptt import ideal_learning_signal

        if self._ideal is None:
            self._ideal = ideal_learning_signal(self.trial)["total"]
        return self._ideal

    def truncated_signals(
        self, ks: Sequence[int], *, shortcut: bool = True, full: np.ndarray | None = None
    ) -> dict[int, np.ndarray]:
        """:func:`~neuroplast.gradients.truncated.truncated_learning_signals`."""
        from neuroplast.gradients.truncated import truncated_learning_signals

        if full is None and shortcut and self._ideal is not None:
            full = self._ideal
        return truncated_learning_signals(self.trial, ks, shortcut=shortcut, full=full)

    def factorize(
        self, signals: np.ndarray, masks: Mapping[str, np.ndarray | None] | None = None
    ) -> dict[str, np.ndarray]:
        """:func:`~neuroplast.gradients.truncated.factorized_many` per projection (default: the masks)."""
        from neuroplast.gradients.truncated import factorized_many

        masks = _masks(self.weights) if masks is None else masks
        return {
            name: factorized_many(self.params, self.psi, None, signals, mask, zbar=self.zbar(name))
            for name, mask in masks.items()
        }

    def contract(self, name: str, G: np.ndarray) -> np.ndarray:
        """:func:`~neuroplast.gradients.truncated.eligibility_contract`."""
        from neuroplast.gradients.truncated import eligibility_contract

        return eligibility_contract(self.params, self.psi, None, G, zbar=self.zbar(name))

    def row_norms(self, name: str, mask: np.ndarray) -> np.ndarray:
        """:func:`~neuroplast.gradients.truncated.eligibility_row_norms`."""
        from neuroplast.gradients.truncated import eligibility_row_norms

        return eligibility_row_norms(self.params, self.psi, None, mask, zbar=self.zbar(name))


def _nonzero(matrix: Any, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Indices of the entries of a sympy matrix that are not identically 0."""
    return [idx for idx in np.ndindex(*shape) if (matrix[idx] if len(idx) == 2 else matrix[idx[0], 0]) != 0]


class ModelFactors:
    """:class:`TrialFactors` of a trial of any neuron model, from its derived Jacobians (module docstring).

    Parameters
    ----------
    trial : ModelTrial
        The trial (:meth:`ModelTrial.make`; ``alif`` too, through
        :func:`~neuroplast.gradients.derived.alif_trial`).
    keep_reset : bool
        Keep the reset term (rule ``ostl``, :attr:`~neuroplast.plasticity.rules.Rule.keeps_reset`): S_t is
        S_t + S_reset,t everywhere, so e_t is the eligibility that keeps the reset
        (:func:`~neuroplast.gradients.derived.model_eligibilities` ``keep_reset=True``), L* the ideal signal
        of the backward pass through the reset, and Σ_t L*_t e_t BPTT with the reset differentiated
        (:func:`~neuroplast.gradients.derived.model_bptt` ``detach_reset=False``).
    """

    def __init__(self, trial: ModelTrial, *, keep_reset: bool = False) -> None:
        self.trial = trial
        self.keep_reset = bool(keep_reset)
        self.model = trial.derived.model.name
        self.params, self.weights = trial.params, trial.weights
        self.psi, self.z, self.err, self.reg = trial.traj.psi, trial.traj.z, trial.err, trial.reg
        self.pre = trial.pre()
        d = trial.derived
        n = d.n
        jac = model_jacobians(trial)
        self.D, self.S, self.b, self.du = jac["D"], jac["S"], jac["b"], jac["du"]
        S_sym = d.S
        if self.keep_reset:
            self.S = self.S + jac["S_reset"]
            S_sym = d.S + d.S_reset
        T, N = self.psi.shape
        self.psi_du = self.psi[None] * self.du  # (n, T, N): ψ_t du_t
        s_rows = [i for (i,) in _nonzero(S_sym, (n,))]
        du_rows = [k for (k,) in _nonzero(d.du, (n,))]
        self._b_rows = [i for (i,) in _nonzero(d.b, (n,))]
        self._d_nz = _nonzero(d.D, (n, n))
        self._s_rows = s_rows
        # J_t = D_t + S_t (ψ_{t−1} du_{t−1})ᵀ, (n, n, T, N); only the entries that can be nonzero are kept
        prev = np.zeros((n, T, N))
        prev[:, 1:] = self.psi_du[:, :-1]
        self.J: dict[tuple[int, int], np.ndarray] = {}
        for i, k in self._d_nz:
            self.J[(i, k)] = self.D[i, k]
        for i in s_rows:
            for k in du_rows:
                term = self.S[i] * prev[k]
                self.J[(i, k)] = self.J[(i, k)] + term if (i, k) in self.J else term
        self._du_rows = du_rows
        self._n = n
        self._ideal: np.ndarray | None = None
        #: J_t and b_t the same for every neuron at every step (e.g. lif_syn: linear, scalar parameters, the
        #: spike only in the reset): then ε_ji = ε_i is shared by a presynaptic neuron's synapses, like z̄
        self.shared = all(np.all(a == a[:, :1]) for a in (*self.J.values(), *self.b[self._b_rows]))

    # -------------------------------------------------------------------------------- learning signals
    def _backward(self, levels: int, full: bool) -> np.ndarray:
        """The level recursion of the module docstring, levels 0..``levels`` − 1 ((levels, T, N)); ``full``:
        one level whose c_in W_recᵀ g_{t+1} comes from itself (exact BPTT: L*)."""
        p, w = self.params, self.weights
        T, N = self.psi.shape
        direct = direct_signal(p, self.err, w.w_out, self.reg)
        n = self._n
        sig = np.empty((levels, T, N))
        dh_next = np.zeros((levels, n, N))
        g_next = np.zeros((levels, N))
        rec = np.zeros((levels, N))
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                if full:
                    rec = p.input_scale * (g_next @ w.w_rec)
                else:
                    rec[1:] = p.input_scale * (g_next[:-1] @ w.w_rec)  # c_in W_recᵀ g^(m−1)_{t+1}
            L = direct[t] + rec
            sig[:, t] = L
            dz = L.copy()
            carried = np.zeros((levels, n, N))
            if t < T - 1:
                for i in self._s_rows:
                    dz += self.S[i, t + 1] * dh_next[:, i]
                for i, k in self._d_nz:
                    carried[:, k] += self.D[i, k, t + 1] * dh_next[:, i]
            dh = self.du[None, :, t] * (self.psi[t] * dz)[:, None, :] + carried
            g_next = np.zeros((levels, N))
            for i in self._b_rows:
                g_next += self.b[i, t] * dh[:, i]
            dh_next = dh
        return sig

    def ideal_signal(self) -> np.ndarray:
        """L*_t = direct_t + c_in W_recᵀ g_{t+1} (T, N), reset detached unless :attr:`keep_reset` (cached)."""
        if self._ideal is None:
            self._ideal = self._backward(1, full=True)[0]
        return self._ideal

    def truncated_signals(
        self, ks: Sequence[int], *, shortcut: bool = True, full: np.ndarray | None = None
    ) -> dict[int, np.ndarray]:
        """L^(k) (T, N) with at most k hops back through W_rec, for every k of ``ks``.

        Parameters
        ----------
        ks : sequence of int
            Hop counts (≥ 0).
        shortcut : bool
            Levels k ≥ T − 1 are L* (one sweep instead of T levels); False runs the level recursion
            up to max(ks) (tests).
        full : ndarray (T, N), optional
            L* if already computed.

        Returns
        -------
        dict int -> ndarray (T, N)
            [E] per spike; multiplies the unfiltered eligibility trace e_t.
        """
        ks = [int(k) for k in ks]
        if any(k < 0 for k in ks):
            raise ValueError(f"hop counts must be >= 0, got {ks}")
        T = self.psi.shape[0]
        out: dict[int, np.ndarray] = {}
        if shortcut and any(k >= T - 1 for k in ks):
            star = self.ideal_signal() if full is None else full
            out.update({k: star for k in ks if k >= T - 1})
        todo = sorted({k for k in ks if k not in out})
        if todo:
            sig = self._backward(todo[-1] + 1, full=False)
            out.update({k: sig[k] for k in todo})
        return out

    # ------------------------------------------------------------------------------- factorized sums
    def factorize(
        self, signals: np.ndarray, masks: Mapping[str, np.ndarray | None] | None = None
    ) -> dict[str, np.ndarray]:
        """Σ_t L_t ⊙ e_t (m, N, n_pre) per projection for a stack ``signals`` (m, T, N) (module docstring).

        ``masks``: ``projection -> (N, n_pre)`` bool or None (default: the weights' masks); zero elsewhere.
        """
        signals = np.asarray(signals, dtype=float)
        m, T, N = signals.shape
        h = signals * self.psi[None]  # (m, T, N)
        n = self._n
        G = np.zeros((T, m, N))
        lam = np.zeros((m, n, N))
        for t in range(T - 1, -1, -1):
            new = np.zeros((m, n, N))
            for k in self._du_rows:
                new[:, k] = h[:, t] * self.du[k, t]
            if t < T - 1:
                for (i, k), Jik in self.J.items():
                    new[:, k] += Jik[t + 1] * lam[:, i]
            lam = new
            for i in self._b_rows:
                G[t] += self.b[i, t] * lam[:, i]
        Gf = G.reshape(T, m * N)
        masks = _masks(self.weights) if masks is None else masks
        out = {}
        for name, mask in masks.items():
            g = (self.pre[name].T @ Gf).reshape(-1, m, N).transpose(1, 2, 0)
            out[name] = np.ascontiguousarray(g) if mask is None else np.where(mask, g, 0.0)
        return out

    def _forward(self, drive: np.ndarray) -> np.ndarray:
        """e_t contracted per neuron: w_t = J_t w_{t−1} + b_t drive_t, returns ψ_t du_tᵀ w_t (T, N)."""
        T, N = self.psi.shape
        n = self._n
        w = np.zeros((n, N))
        u = np.empty((T, N))
        for t in range(T):
            new = np.zeros((n, N))
            for (i, k), Jik in self.J.items():
                new[i] += Jik[t] * w[k]
            for i in self._b_rows:
                new[i] += self.b[i, t] * drive[t]
            w = new
            u[t] = sum(self.psi_du[k, t] * w[k] for k in self._du_rows)
        return u

    def contract(self, name: str, G: np.ndarray) -> np.ndarray:
        """u_j^t = Σ_i G_ji e_ji^t (T, N) for a fixed G (N, n_pre) of projection ``name``, [G]·[pre]/[v]."""
        return self._forward(self.pre[name] @ np.asarray(G, dtype=float).T)

    def row_norms(self, name: str, mask: np.ndarray) -> np.ndarray:
        """s_j^t = Σ_i M_ji (e_ji^t)² (T, N) of projection ``name``, ([pre]/[v])²: the per-synapse ε stepped
        forward (module docstring), or, when ε is shared by a presynaptic neuron's synapses
        (:attr:`shared`), Σ_kl a_k a_l ((ε_k ⊙ ε_l) Mᵀ) with a = ψ du (matrix products, as alif's LIF
        rows)."""
        pre = self.pre[name]
        T, N = self.psi.shape
        n = self._n
        M = np.asarray(mask, dtype=float)
        if self.shared:
            return self._shared_row_norms(pre, M)
        eps = np.zeros((n, N, pre.shape[1]))
        s = np.empty((T, N))
        for t in range(T):
            new = np.zeros_like(eps)
            for (i, k), Jik in self.J.items():
                new[i] += Jik[t][:, None] * eps[k]
            for i in self._b_rows:
                new[i] += self.b[i, t][:, None] * pre[t][None, :]
            eps = new
            e = sum(self.psi_du[k, t][:, None] * eps[k] for k in self._du_rows)
            s[t] = np.sum(M * e * e, axis=1)
        return s

    def _shared_row_norms(self, pre: np.ndarray, M: np.ndarray) -> np.ndarray:
        """:meth:`row_norms` when ε_ji = ε_i (:attr:`shared`): ε (n, T, n_pre) per presynaptic neuron."""
        T, N = self.psi.shape
        n = self._n
        eps = np.zeros((n, T, pre.shape[1]))
        cur = np.zeros((n, pre.shape[1]))
        for t in range(T):
            new = np.zeros_like(cur)
            for (i, k), Jik in self.J.items():
                new[i] += Jik[t, 0] * cur[k]
            for i in self._b_rows:
                new[i] += self.b[i, t, 0] * pre[t]
            cur = eps[:, t] = new
        s = np.zeros((T, N))
        rows = self._du_rows
        for a, k in enumerate(rows):
            for l in rows[a:]:
                both = self.psi_du[k] * self.psi_du[l] * ((eps[k] * eps[l]) @ M.T)
                s += both if k == l else 2.0 * both
        return s


def as_factors(trial: TrialData | ModelTrial | TrialFactors) -> TrialFactors:
    """The :class:`TrialFactors` of a trial: :class:`AlifFactors` of a :class:`TrialData` (the ``alif``
    fast path), :class:`ModelFactors` of a :class:`ModelTrial`; factors are returned as they are."""
    if isinstance(trial, TrialData):
        return AlifFactors(trial)
    if isinstance(trial, ModelTrial):
        return ModelFactors(trial)
    return trial
