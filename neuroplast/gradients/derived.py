"""e-prop and exact BPTT of any neuron model, from its derived Jacobians (docs/model.md §10).

The same two factorizations as :mod:`neuroplast.gradients.eprop` and :mod:`neuroplast.gradients.bptt`
(which are the ``alif`` model written out by hand), for a :class:`~neuroplast.model.neurons.NeuronModel`:
the eligibility ε_t = J_t ε_{t−1} + b_t pre_t of every synapse (the full vector over the neuron's state),
e_t = ψ_t du_tᵀ ε_t, and the backward recursion of :mod:`neuroplast.model.derive`.  The ideal learning
signal L*_t = direct_t + c_in W_recᵀ g_{t+1} (every path to E but the neuron's own state) turns e-prop into
BPTT: Σ_t L*_t e_t = dE/dW with the reset detached (tests/gradients/test_derived.py).

Reference code: the per-synapse state is (n, N, n_pre) floats; meant for checking, not for size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroplast.gradients.trial import TrialData, mask_grads
from neuroplast.model.derive import Derived, derive
from neuroplast.model.losses import Loss, as_loss
from neuroplast.model.neurons import NeuronModel
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.signals import direct_signal, output_grads, reg_signal
from neuroplast.model.stepper import ModelTrajectory, parameter_values, simulate_model

__all__ = [
    "ModelTrial",
    "alif_trial",
    "model_eligibility",
    "model_eligibilities",
    "model_eprop",
    "model_eprop_grads",
    "model_bptt",
    "model_ideal_signal",
    "model_signal_parts",
    "model_factorization",
    "model_rtrl",
    "rtrl_ops",
    "RTRL_MAX_OPS",
]

#: Largest RTRL cost (multiply-adds, :func:`rtrl_ops`) :func:`model_rtrl` takes on (≈ 10–30 s of NumPy).
RTRL_MAX_OPS = 2e10


@dataclass(frozen=True, eq=False)
class ModelTrial:
    """One simulated trial of a neuron model, as the gradient formulas read it.

    Attributes
    ----------
    derived : Derived
        :func:`neuroplast.model.derive.derive` of the model.
    values : mapping
        The model's parameters (floats or (N,) arrays).
    params : ModelParams
        The shared constants (v_th, γ, κ, c_in, c_out, surrogate).
    weights : Weights
        The weights in force.
    x : ndarray (T, n_in)
    traj : ModelTrajectory
    err : ndarray (T, n_out)
        dE/dy_t (the loss's explicit error).
    reg : ndarray (N,) or None
        The rate regularizer's learning signal c_reg (f_j − f*)/T.
    """

    derived: Derived
    values: Mapping[str, Any]
    params: ModelParams
    weights: Weights
    x: np.ndarray
    traj: ModelTrajectory
    err: np.ndarray
    reg: np.ndarray | None = None

    @classmethod
    def make(
        cls,
        model: NeuronModel,
        values: Mapping[str, Any],
        params: ModelParams,
        weights: Weights,
        x: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        loss: Loss | str,
        *,
        traj: ModelTrajectory | None = None,
        c_reg: float = 0.0,
        f_target: float = 0.0,
    ) -> ModelTrial:
        """The trial of input ``x`` (simulated with :func:`~neuroplast.model.stepper.simulate_model` when
        ``traj`` is not given): the loss's error for ``target``/``mask`` and, when ``c_reg`` ≠ 0, the rate
        regularizer's signal c_reg (f_j − f*)/T (``f_target`` in spikes per step)."""
        values = parameter_values(model, values, weights.n_rec)
        if traj is None:
            traj = simulate_model(model, values, params, weights, x)
        err = np.asarray(as_loss(loss).error(traj.y, target, mask), dtype=float)
        reg = reg_signal(traj.z, c_reg, f_target) if c_reg != 0.0 else None
        return cls(derive(model), values, params, weights, np.asarray(x, dtype=float), traj, err, reg)

    @property
    def n_steps(self) -> int:
        """T."""
        return self.traj.z.shape[0]

    def pre(self) -> dict[str, np.ndarray]:
        """Presynaptic drive (T, n_pre): ``input`` c_in x_t, ``recurrent`` c_in z_{t−1}."""
        z_prev = np.vstack([np.zeros((1, self.traj.z.shape[1])), self.traj.z[:-1]])
        c_in = self.params.input_scale
        return {"input": c_in * np.asarray(self.x, dtype=float), "recurrent": c_in * z_prev}

    def env(self, t: int, *, new: bool = False) -> dict[str, Any]:
        """The names a derivative reads at step t (0-based): the state before it (``new``: after it),
        z_{t−1}, c_t, v_th and the parameters."""
        N = self.traj.z.shape[1]
        model = self.derived.model
        out: dict[str, Any] = dict(parameter_values(model, self.values, N))
        k = t if new else t - 1
        for s in model.state:
            out[s] = self.traj.state[s][k] if k >= 0 else np.zeros(N)
        out["z"] = self.traj.z[t - 1] if t >= 1 else np.zeros(N)
        out["c"] = self.traj.c[t]
        out["v_th"] = self.params.v_th
        return out

    def jacobians(self, t: int) -> dict[str, np.ndarray]:
        """``D`` (n, n, N), ``S``, ``S_reset``, ``b`` (n, N) of step t and ``du`` (n, N) at h_t."""
        N = self.traj.z.shape[1]
        env = self.env(t)
        out = {k: self.derived.evaluate(k, env, N) for k in ("D", "S", "S_reset", "b")}
        out["du"] = self.derived.evaluate("du", self.env(t, new=True), N)
        return out


def model_eligibility(
    trial: ModelTrial, pre: np.ndarray, *, keep_reset: bool = False
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, e_t)``: the per-synapse eligibility (N, n_pre) of a projection with drive ``pre``
    (T, n_pre); ``keep_reset`` as :func:`model_eligibilities`."""
    for t, es in model_eligibilities(trial, {"pre": pre}, keep_reset=keep_reset):
        yield t, es["pre"]


def model_eligibilities(
    trial: ModelTrial, pres: Mapping[str, np.ndarray], *, keep_reset: bool = False
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(t, {name: e_t})`` for several projections at once (the Jacobians evaluated once per step).

    Parameters
    ----------
    trial : ModelTrial
    pres : mapping str -> ndarray (T, n_pre)
        The presynaptic drive of each projection (:meth:`ModelTrial.pre`).
    keep_reset : bool
        e-prop's eligibility (False) leaves the reset term R(…) undifferentiated: J_t = D_t + S_t ψ_{t−1}
        du_{t−1}ᵀ.  True keeps the neuron's own spike in the reset too, J_t = D_t + (S_t + S_reset,t)
        ψ_{t−1} du_{t−1}ᵀ: the whole temporal path through the neuron's own state (rule ``ostl``; with
        W_rec = 0 then Σ_t L*_t e_t is BPTT with the reset kept, :func:`model_bptt` ``detach_reset=False``).
    """
    psi = trial.traj.psi
    T, N = psi.shape
    pres = {k: np.asarray(v, dtype=float) for k, v in pres.items()}
    eps = {k: np.zeros((trial.derived.n, N, v.shape[1])) for k, v in pres.items()}
    psi_du_prev = np.zeros((trial.derived.n, N))  # ψ_{t−1} du_{t−1}
    for t in range(T):
        jac = trial.jacobians(t)
        S = jac["S"] + jac["S_reset"] if keep_reset else jac["S"]
        J = jac["D"] + S[:, None, :] * psi_du_prev[None, :, :]  # J[i, k, j]
        psi_du = psi[t][None, :] * jac["du"]
        out = {}
        for k, pre in pres.items():
            eps[k] = np.einsum("ikj,kjp->ijp", J, eps[k]) + jac["b"][:, :, None] * pre[t][None, None, :]
            out[k] = np.einsum("kj,kjp->jp", psi_du, eps[k])
        yield t, out
        psi_du_prev = psi_du


def model_eprop(
    trial: ModelTrial, feedback: np.ndarray | None = None, *, keep_reset: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """e-prop's Σ_t L_t ē_t without the regularizer, and Σ_t e_t, in one scan (what a simulator returns);
    ``keep_reset``: with the eligibility that keeps the reset (:func:`model_eligibilities`, rule ``ostl``).

    Returns
    -------
    grads : dict
        ``input``, ``recurrent`` (Σ_t L_t ē_t, L_t = c_out B err_t), ``output``, ``bias`` (masked).
    esum : dict
        ``input``, ``recurrent``: Σ_t e_t (masked), what the rate regularizer's signal multiplies.
    """
    p, w = trial.params, trial.weights
    B = w.w_out.T if feedback is None else np.asarray(feedback, dtype=float)
    L = p.readout_scale * trial.err @ B.T  # (T, N)
    pres = trial.pre()
    g = {k: np.zeros((w.n_rec, v.shape[1])) for k, v in pres.items()}
    ebar = {k: np.zeros_like(v) for k, v in g.items()}
    esum = {k: np.zeros_like(v) for k, v in g.items()}
    for t, es in model_eligibilities(trial, pres, keep_reset=keep_reset):
        for k, e in es.items():
            ebar[k] = p.kappa * ebar[k] + e
            g[k] += L[t][:, None] * ebar[k]
            esum[k] += e
    g["output"], g["bias"] = output_grads(p, trial.traj.z, trial.err)
    return mask_grads(w, g), mask_grads(w, esum)


def model_eprop_grads(
    trial: ModelTrial, feedback: np.ndarray | None = None, *, keep_reset: bool = False
) -> dict[str, np.ndarray]:
    """e-prop: Σ_t L_t ē_t + R Σ_t e_t, L_t = c_out B err_t, ē the κ-filtered e (docs/model.md §3).

    Parameters
    ----------
    trial : ModelTrial
    feedback : ndarray (N, n_out), optional
        B (default W_outᵀ, symmetric e-prop).
    keep_reset : bool
        The eligibility that keeps the reset (:func:`model_eligibilities`; rule ``ostl``).

    Returns
    -------
    dict
        ``input``, ``recurrent``, ``output``, ``bias`` (masked).
    """
    grads, esum = model_eprop(trial, feedback, keep_reset=keep_reset)
    if trial.reg is not None:
        for k in esum:
            grads[k] = grads[k] + trial.reg[:, None] * esum[k]
    return grads


def alif_trial(trial: TrialData) -> ModelTrial:
    """A trial of the ``alif`` model (:class:`~neuroplast.gradients.trial.TrialData`) as a
    :class:`ModelTrial`: re-simulated through the model's statements (the same trajectory bit for bit),
    with its loss, regularizer and the weights in force."""
    from neuroplast.model.neurons import DEFAULT_NEURON, alif_values, get_neuron

    p = trial.params
    return ModelTrial.make(
        get_neuron(DEFAULT_NEURON),
        alif_values(p),
        p,
        trial.weights,
        trial.x,
        trial.target,
        trial.mask,
        trial.loss,
        c_reg=trial.c_reg,
        f_target=trial.f_target,
    )


def model_bptt(
    trial: ModelTrial, *, detach_reset: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Exact BPTT of the trial loss through the model's equations (pseudo-derivative ψ for the spikes).

    Parameters
    ----------
    trial : ModelTrial
    detach_reset : bool
        Leave the reset term R(…) undifferentiated (as e-prop does); ``False``: the true gradient.

    Returns
    -------
    grads : dict
        ``input``, ``recurrent``, ``output``, ``bias`` (masked).
    adjoints : dict of ndarray (T, N)
        ``direct`` (readout and regularizer), ``recurrent`` (c_in W_recᵀ g_{t+1}) and ``g`` (the adjoint of
        the drive c_t, g_t = b_tᵀ dh_t).
    """
    p, w, traj = trial.params, trial.weights, trial.traj
    T, N = traj.z.shape
    direct = direct_signal(p, trial.err, w.w_out, trial.reg)
    n = trial.derived.n
    dh_next = np.zeros((n, N))
    nxt: dict[str, np.ndarray] | None = None  # the Jacobians of step t + 1
    g_next = np.zeros(N)
    rec, g_all = np.zeros((T, N)), np.zeros((T, N))
    for t in range(T - 1, -1, -1):
        jac = trial.jacobians(t)
        dz = direct[t].copy()
        if nxt is not None:
            rec[t] = p.input_scale * (g_next @ w.w_rec)
            dz += rec[t] + np.einsum("kj,kj->j", nxt["S"], dh_next)
            if not detach_reset:
                dz += np.einsum("kj,kj->j", nxt["S_reset"], dh_next)
            carried = np.einsum("ikj,ij->kj", nxt["D"], dh_next)
        else:
            carried = np.zeros((n, N))
        dh = jac["du"] * (traj.psi[t] * dz)[None, :] + carried
        g_next = np.einsum("kj,kj->j", jac["b"], dh)
        g_all[t] = g_next
        dh_next, nxt = dh, jac
    pre = trial.pre()
    grads = {name: g_all.T @ d for name, d in pre.items()}
    grads["output"], grads["bias"] = output_grads(p, traj.z, trial.err)
    return mask_grads(w, grads), {"direct": direct, "recurrent": rec, "g": g_all}


def model_ideal_signal(trial: ModelTrial) -> np.ndarray:
    """L*_t (T, N): dE/dz_t through every path but the neuron's own state (reset detached)."""
    _, adj = model_bptt(trial, detach_reset=True)
    return adj["direct"] + adj["recurrent"]


def model_signal_parts(
    trial: ModelTrial, adjoints: Mapping[str, np.ndarray] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """The split dE/dW = Σ_t L*_t e_t = Σ_t L^kept_t e_t + Σ_t L^rec_t e_t (reset detached).

    L^kept_t is the part e-prop keeps (``direct``: through the readout and the rate regularizer), L^rec_t
    the part that flows back through W_rec (c_in W_recᵀ g_{t+1}).

    Parameters
    ----------
    trial : ModelTrial
    adjoints : mapping, optional
        The adjoints of :func:`model_bptt` (reset detached) when the caller has them already.

    Returns
    -------
    dict
        ``"eprop"`` and ``"recurrent"``, each ``input`` and ``recurrent`` (N, n_pre), masked.
    """
    adj = model_bptt(trial, detach_reset=True)[1] if adjoints is None else adjoints
    pres = trial.pre()
    parts = {
        part: {k: np.zeros((trial.weights.n_rec, v.shape[1])) for k, v in pres.items()}
        for part in ("eprop", "recurrent")
    }
    signals = {"eprop": adj["direct"], "recurrent": adj["recurrent"]}
    for t, es in model_eligibilities(trial, pres):
        for part, sig in signals.items():
            for k, e in es.items():
                parts[part][k] += sig[t][:, None] * e
    return {part: mask_grads(trial.weights, g) for part, g in parts.items()}


def model_factorization(trial: ModelTrial) -> dict[str, dict[str, Any]]:
    """:func:`neuroplast.gradients.bptt.factorization_decomposition` of any neuron model: the exact gradient
    (reset detached) of the input and recurrent weights split into the per-step contributions
    C^part_t = L^part_t ⊙ e_t of the part e-prop keeps (``kept``) and the part through W_rec
    (``recurrent``), with the same keys (``bptt``, ``kept``, ``recurrent``, ``*_norm``, ``*_along``)."""
    grads, adj = model_bptt(trial, detach_reset=True)
    parts = {"kept": adj["direct"], "recurrent": adj["recurrent"]}
    masks = {"input": trial.weights.mask_in, "recurrent": trial.weights.mask_rec}
    T = trial.n_steps
    out: dict[str, dict[str, Any]] = {}
    ghats = {}
    for name in masks:
        g = grads[name]
        gnorm = float(np.linalg.norm(g))
        ghats[name] = g / gnorm if gnorm > 0 else np.zeros_like(g)
        res: dict[str, Any] = {"bptt": g}
        for part in parts:
            res[part] = np.zeros_like(g)
            res[f"{part}_norm"] = np.zeros(T)
            res[f"{part}_along"] = np.zeros(T)
        out[name] = res
    for t, es in model_eligibilities(trial, {k: v for k, v in trial.pre().items() if k in masks}):
        for name, e in es.items():
            e = np.where(masks[name], e, 0.0)
            res, ghat = out[name], ghats[name]
            for part, L in parts.items():
                c = L[t][:, None] * e
                res[part] += c
                res[f"{part}_norm"][t] = np.linalg.norm(c)
                res[f"{part}_along"][t] = np.sum(c * ghat)
    return out


def rtrl_ops(n_rec: int, n_in: int, n_steps: int) -> float:
    """Multiply-adds of :func:`model_rtrl` on a network: the recurrent sensitivity N · N · (n_in + N) per
    presynaptic neuron and step, N³ (n_in + N) T."""
    return float(n_rec) ** 3 * (n_in + n_rec) * n_steps


def model_rtrl(
    trial: ModelTrial, *, detach_reset: bool = True, max_ops: float = RTRL_MAX_OPS
) -> dict[str, np.ndarray]:
    """Exact real-time recurrent learning: the other factorization of the same gradient, forward in time.

    Where BPTT (:func:`model_bptt`) runs dE/dh backward, RTRL carries the full sensitivity of every
    neuron's state to every input and recurrent weight forward (Williams & Zipser 1989), with the same
    derived Jacobians and the same pseudo-derivative ψ for the spikes::

        dc_t/dW   = c_in W_rec dz_{t−1}/dW + [pre_t on the weight's own neuron]
        dh_t/dW   = D_t dh_{t−1}/dW + S_t dz_{t−1}/dW [+ S_reset,t dz_{t−1}/dW with the reset] + b_t dc_t/dW
        dz_t/dW   = ψ_t du_tᵀ dh_t/dW,        dy_t/dW = κ dy_{t−1}/dW + c_out W_out dz_t/dW
        dE/dW     = Σ_t err_tᵀ dy_t/dW + Σ_t reg · dz_t/dW

    It equals BPTT on the trajectory to rounding (tests/gradients/test_derived.py) — the two
    factorizations side by side — at a cost of N³ (n_in + N) T (:func:`rtrl_ops`): small networks only.

    Parameters
    ----------
    trial : ModelTrial
    detach_reset : bool
        Leave the reset term undifferentiated (as e-prop and :func:`model_bptt` by default).
    max_ops : float
        Refuse (``ValueError``, one line with the sizes) a trial whose cost exceeds this.

    Returns
    -------
    dict
        ``input``, ``recurrent`` (masked); ``output``, ``bias`` (exact, local to the readout).
    """
    p, w, traj = trial.params, trial.weights, trial.traj
    T, N = traj.z.shape
    ops = rtrl_ops(N, w.n_in, T)
    if ops > max_ops:
        raise ValueError(
            f"RTRL of {N} neurons, {w.n_in} inputs and {T} steps needs ≈ {ops:.1e} multiply-adds "
            f"(more than {max_ops:.0e}): it is for small networks"
        )
    n = trial.derived.n
    pres = trial.pre()
    sizes = {k: v.shape[1] for k, v in pres.items()}
    M = {k: np.zeros((n, N, N, m)) for k, m in sizes.items()}  # dh[i, j]/dW[a, b]
    dz_prev = {k: np.zeros((N, N, m)) for k, m in sizes.items()}  # dz_{t−1}[j]/dW[a, b]
    Y = {k: np.zeros((w.n_out, N, m)) for k, m in sizes.items()}  # dy_t/dW
    g = {k: np.zeros((N, m)) for k, m in sizes.items()}
    diag = np.arange(N)
    for t in range(T):
        jac = trial.jacobians(t)
        S = jac["S"] if detach_reset else jac["S"] + jac["S_reset"]
        for k, pre in pres.items():
            dc = p.input_scale * np.einsum("jk,kab->jab", w.w_rec, dz_prev[k])
            dc[diag, diag, :] += pre[t][None, :]
            Mk = np.einsum("ikj,kjab->ijab", jac["D"], M[k])
            Mk += S[:, :, None, None] * dz_prev[k][None] + jac["b"][:, :, None, None] * dc[None]
            dz = traj.psi[t][:, None, None] * np.einsum("kj,kjab->jab", jac["du"], Mk)
            Y[k] = p.kappa * Y[k] + p.readout_scale * np.einsum("oj,jab->oab", w.w_out, dz)
            g[k] += np.einsum("o,oab->ab", trial.err[t], Y[k])
            if trial.reg is not None:
                g[k] += np.einsum("j,jab->ab", trial.reg, dz)
            M[k], dz_prev[k] = Mk, dz
    g["output"], g["bias"] = output_grads(p, traj.z, trial.err)
    return mask_grads(w, g)
