"""Training loop: Brian2 trials, rule gradients, optimizers, weight updates, logging.

Per iteration: the task yields a batch of trials; for each, the Brian2 network
simulates the trial from rest with the current weights and either accumulates the
rule's gradient online (``online`` path: per-synapse eligibility traces inside
Brian2) or records per-neuron factors from which NumPy contracts the same gradient
(``factorized`` path; also used by rules that are not online, e.g. ``bptt``).  The
batch-mean gradient goes through the optimizer and is applied once per iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroplast.config import Config
from neuroplast.model.losses import get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.reference import Trajectory
from neuroplast.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "GRADIENT_PATHS",
    "model_params",
    "init_weights",
    "Trainer",
    "PROJECTIONS",
]

#: Trainable parameter groups, in log order.
PROJECTIONS = ("input", "recurrent", "output", "bias")


# ----------------------------------------------------------------- optimizers
class SGD:
    """Plain gradient descent: Δθ = −η g."""

    def __init__(self, training: Any) -> None:
        self.lr = training.learning_rate

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: -self.lr * g for k, g in grads.items()}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, per parameter group."""

    def __init__(self, training: Any) -> None:
        self.lr = training.learning_rate
        self.b1, self.b2, self.eps = training.adam_beta1, training.adam_beta2, training.adam_eps
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.t += 1
        out = {}
        for k, g in grads.items():
            m = self.m.get(k, np.zeros_like(g))
            v = self.v.get(k, np.zeros_like(g))
            m = self.b1 * m + (1 - self.b1) * g
            v = self.b2 * v + (1 - self.b2) * g * g
            self.m[k], self.v[k] = m, v
            mhat = m / (1 - self.b1**self.t)
            vhat = v / (1 - self.b2**self.t)
            out[k] = -self.lr * mhat / (np.sqrt(vhat) + self.eps)
        return out

    def state(self) -> dict[str, Any]:
        return {"t": self.t, "m": dict(self.m), "v": dict(self.v)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.m = dict(state["m"])
        self.v = dict(state["v"])


OPTIMIZERS: Registry[type] = Registry("optimizer")
OPTIMIZERS.register("sgd", SGD)
OPTIMIZERS.register("adam", Adam)


# ------------------------------------------------------------- model & weights
def model_params(cfg: Config) -> ModelParams:
    """ModelParams of docs/model.md from a config (first n_rec − n_alif neurons LIF)."""
    n = cfg.network
    beta = np.zeros(n.n_rec)
    beta[n.n_rec - n.n_alif :] = n.beta
    return ModelParams.from_time_constants(
        n_rec=n.n_rec,
        dt=cfg.simulation.dt_ms,
        tau_m=n.tau_m_ms,
        tau_a=n.tau_a_ms,
        beta=beta,
        v_th=n.v_th,
        n_ref=n.n_ref,
        gamma=n.gamma,
        tau_out=n.tau_out_ms,
        input_scale=n.input_scale,
        readout_scale=n.readout_scale,
        surrogate=n.surrogate,
    )


def init_weights(cfg: Config, n_in: int, seed: int) -> Weights:
    """Seeded initial weights and connectivity masks (std = scale/√fan_in)."""
    n = cfg.network
    rng = np.random.default_rng([seed, 0])
    mask_in = rng.random((n.n_rec, n_in)) < n.p_in
    mask_rec = (rng.random((n.n_rec, n.n_rec)) < n.p_rec) & ~np.eye(n.n_rec, dtype=bool)
    w_in = rng.normal(0.0, n.w_in_scale / np.sqrt(max(1.0, n_in * n.p_in)), (n.n_rec, n_in))
    w_rec = rng.normal(0.0, n.w_rec_scale / np.sqrt(max(1.0, n.n_rec * n.p_rec)), (n.n_rec, n.n_rec))
    w_out = rng.normal(0.0, n.w_out_scale / np.sqrt(n.n_rec), (n.n_out, n.n_rec))
    return Weights(w_in, w_rec, w_out, np.zeros(n.n_out), mask_in, mask_rec)


# ------------------------------------------------------------- gradient paths
@dataclass
class PathResult:
    grads: dict[str, np.ndarray]
    traj: Trajectory | None


def _reg_signal(count: np.ndarray, T: int, c_reg: float, f_target: float) -> np.ndarray:
    """Per-neuron regularization signal c_reg (f_j − f*)/T (f in spikes per step)."""
    return c_reg * (count / T - f_target) / T


def _online(trainer: Trainer, res, data) -> dict[str, np.ndarray]:
    grads = dict(res.grads)
    if trainer.cfg.training.reg_coeff > 0:
        r = _reg_signal(res.spike_count, trainer.T, trainer.cfg.training.reg_coeff, trainer.f_target)
        grads["input"] = grads["input"] + r[:, None] * res.esum["input"]
        grads["recurrent"] = grads["recurrent"] + r[:, None] * res.esum["recurrent"]
    return grads


def _factorized(trainer: Trainer, res, data) -> dict[str, np.ndarray]:
    return trainer.rule.numpy_grads(data)


GRADIENT_PATHS: Registry[Callable] = Registry("gradient path")
GRADIENT_PATHS.register("online", _online)
GRADIENT_PATHS.register("factorized", _factorized)


def choose_path(cfg: Config, rule_online: bool) -> str:
    """``training.path`` or, for ``auto``: factorized for large dense nets and non-online rules."""
    if not rule_online:
        return "factorized"
    if cfg.training.update_every_steps:
        return "online"  # in-trial updates need the gradient inside the simulation
    if cfg.training.path != "auto":
        return cfg.training.path
    n = cfg.network
    large_dense = n.n_rec >= 256 and n.p_rec == 1.0
    return "factorized" if large_dense else "online"


def trajectory_of(res, y: np.ndarray) -> Trajectory:
    """Unbatched Trajectory from a recorded Brian2 trial."""
    return Trajectory(res.v, res.a, res.z, res.psi, res.refractory, y, batched=False)


# ------------------------------------------------------------------- updates
def trainable(grads: dict[str, np.ndarray], train_output: bool) -> dict[str, np.ndarray]:
    """``grads`` with the readout's (output and bias) zeroed unless ``train_output``."""
    if train_output:
        return dict(grads)
    out = dict(grads)
    out["output"] = np.zeros_like(grads["output"])
    out["bias"] = np.zeros_like(grads["bias"])
    return out


def apply_updates(
    rule: Any, weights: Weights, feedback: np.ndarray, updates: dict[str, np.ndarray]
) -> tuple[Weights, np.ndarray, dict[str, np.ndarray]]:
    """Apply an optimizer's updates the way every training mode does.

    The updates are masked by the connectivity, changed by ``rule.adjust_updates``, the rule's B
    state follows (``rule.after_update``), and the weights receive them.

    Parameters
    ----------
    rule : Rule
    weights : Weights
        Weights before the update.
    feedback : ndarray (N, n_out)
        The rule's B state before the update.
    updates : dict
        ``input``, ``recurrent``, ``output``, ``bias`` changes from the optimizer (dense).

    Returns
    -------
    weights : Weights       after the update
    feedback : ndarray      the rule's B state after the update
    updates : dict          the changes actually applied (``w_after − w_before`` up to rounding)
    """
    masks = {
        "input": weights.mask_in,
        "recurrent": weights.mask_rec,
        "output": weights.mask_out,
        "bias": np.ones_like(weights.b_out, dtype=bool),
    }
    updates = {k: np.where(masks[k], u, 0.0) for k, u in updates.items()}
    updates = rule.adjust_updates(updates, weights)
    feedback = rule.after_update(feedback, weights, updates)
    new = Weights(
        weights.w_in + updates["input"],
        weights.w_rec + updates["recurrent"],
        weights.w_out + updates["output"],
        weights.b_out + updates["bias"],
        weights.mask_in,
        weights.mask_rec,
        weights.mask_out,
    )
    return new, feedback, updates


# --------------------------------------------------------------------- trainer
@dataclass
class IterationLog:
    """What one iteration produced (for logs and progress)."""

    iteration: int
    losses: list[float]
    trial_grads: list[dict[str, np.ndarray]]
    results: list[Any]
    trials: list[Any]
    weights_before: Weights
    feedback_before: np.ndarray  # the B the trials of this iteration used (at their start)
    updates: dict[str, np.ndarray] = field(default_factory=dict)
    #: In-trial learning: edge-order weights in force from step k, 2k, … on (``input``, ``recurrent``,
    #: ``output``, ``feedback``, ``bias``; rows (n_updates, n_edges)); ``updates`` then apply to the last row.
    in_trial: dict[str, np.ndarray] | None = None
    #: B at the end of the trial, before the (trial-end) update.
    feedback_end: np.ndarray | None = None


class Trainer:
    """Owns the network, task, rule and optimizer of one training run.

    Parameters
    ----------
    cfg : Config
    rule : str, optional
        Rule name (default ``cfg.training.rule``).
    seed : int, optional
        Overrides ``cfg.simulation.seed``.
    record : bool
        Record per-step recurrent states even on the online path (for traces).
    """

    def __init__(
        self, cfg: Config, *, rule: str | None = None, seed: int | None = None, record: bool = False
    ) -> None:
        from neuroplast.network.builder import Brian2Network
        from neuroplast.plasticity.rules import get_rule
        from neuroplast.tasks import TASKS

        self.cfg = cfg
        self.seed = cfg.simulation.seed if seed is None else int(seed)
        self.rule_name = rule or cfg.training.rule
        self.rule = get_rule(self.rule_name)(cfg.training)
        task_name = TASKS.name_of(type(cfg.task))
        self.task = TASKS.get(task_name)(cfg.task, cfg.simulation.n_steps, cfg.simulation.dt_ms, self.seed)
        self.T = cfg.simulation.n_steps
        self.params = model_params(cfg)
        self.weights = init_weights(cfg, self.task.n_in, self.seed)
        self.feedback = self.rule.init_feedback(self.weights, np.random.default_rng([self.seed, 3]))
        self.optimizer = OPTIMIZERS.get(cfg.training.optimizer)(cfg.training)
        self.loss = get_loss(cfg.training.loss)
        self.f_target = cfg.training.reg_rate_hz * cfg.simulation.dt_ms * 1e-3
        self.path = choose_path(cfg, self.rule.online)
        self.net = Brian2Network(
            self.params,
            self.weights,
            self.T,
            device=cfg.simulation.device,
            loss=cfg.training.loss,
            gradients=self.path == "online",
            regularization=cfg.training.reg_coeff > 0,
            record=record or self.path != "online",
            update_every=cfg.training.update_every_steps,
            rule_code=self.rule.brian2_update if cfg.training.update_every_steps else None,
            in_trial_optimizer=cfg.training.optimizer if cfg.training.update_every_steps else "sgd",
        )
        self.iteration = 0

    def run_iteration(self) -> IterationLog:
        """Simulate one batch, compute the gradient, apply the update."""
        from neuroplast.plasticity.rules import TrialData

        it = self.iteration
        trials = self.task.trials(it, self.cfg.training.batch_size)
        w_before = self.weights.copy()
        fb = self.effective_feedback()
        if self.cfg.training.update_every_steps:
            return self._in_trial_iteration(trials, w_before, fb)
        path = GRADIENT_PATHS.get(self.path)
        losses, grads_list, results = [], [], []
        for trial in trials:
            res = self.net.run_trial(self.weights, trial.x, target=trial.target, mask=trial.mask, feedback=fb)
            traj = trajectory_of(res, res.y) if res.v is not None else None
            data = TrialData(
                self.params,
                self.weights,
                trial.x,
                trial.target,
                trial.mask,
                traj,
                self.cfg.training.loss,
                fb,
                self.cfg.training.reg_coeff,
                self.f_target,
            )
            g = path(self, res, data)
            grads_list.append(g)
            results.append(res)
            losses.append(self.loss.value(res.y, trial.target, trial.mask))
        mean = {k: np.mean([g[k] for g in grads_list], axis=0) for k in PROJECTIONS}
        self.weights, self.feedback, updates = apply_updates(
            self.rule,
            self.weights,
            self.feedback,
            self.optimizer.step(trainable(mean, self.cfg.training.train_output)),
        )
        self.iteration += 1
        return IterationLog(it, losses, grads_list, results, trials, w_before, fb, updates)

    def _in_trial_iteration(self, trials, w_before: Weights, fb: np.ndarray) -> IterationLog:
        """One trial that learns inside itself (docs/model.md §6), then the trial-end update."""
        from neuroplast.plasticity.rules import TrialData

        tr = self.cfg.training
        (trial,) = trials  # batch_size is 1 (checked by the config)
        res = self.net.run_trial(
            self.weights,
            trial.x,
            target=trial.target,
            mask=trial.mask,
            feedback=fb,
            learning_rate=tr.learning_rate,
            output_learning_rate=tr.learning_rate if tr.train_output else 0.0,
            weight_decay=tr.weight_decay,
            adam=self._adam_in() if self.net.adam else None,
        )
        if self.net.adam:
            self._adam_out(res.adam, len(next(iter(res.in_trial.values()))) - 1)
        # the weights and B in force at the end of the trial (after the last in-trial update)
        w_end, b_end = self.dense_weights({k: v[-1] for k, v in res.in_trial.items()})
        data = TrialData(
            self.params,
            w_end,
            trial.x,
            trial.target,
            trial.mask,
            None,
            tr.loss,
            b_end,
            tr.reg_coeff,
            self.f_target,
        )
        g = GRADIENT_PATHS.get("online")(self, res, data)  # what the last segment left, + regularization
        self.weights, self.feedback, updates = apply_updates(
            self.rule, w_end, b_end, self.optimizer.step(trainable(g, tr.train_output))
        )
        self.iteration += 1
        rows = {k: v[1:] for k, v in res.in_trial.items()}
        return IterationLog(
            self.iteration - 1,
            [self.loss.value(res.y, trial.target, trial.mask)],
            [g],
            [res],
            trials,
            w_before,
            fb,
            updates,
            in_trial=rows,
            feedback_end=b_end,
        )

    def _adam_in(self) -> dict:
        """The Adam state as the network takes it (moments as edge-order vectors)."""
        opt, w = self.optimizer, self.weights
        shapes = {
            "input": w.w_in.shape,
            "recurrent": w.w_rec.shape,
            "output": w.w_out.shape,
            "bias": w.b_out.shape,
        }
        moments = {}
        for mom in ("m", "v"):
            d = getattr(opt, mom)
            moments[mom] = {}
            for key, shape in shapes.items():
                a = d.get(key, np.zeros(shape))
                if key != "bias":
                    src, tgt = self.net.edges[key]
                    a = a[tgt, src]
                moments[mom][key] = a
        return {"t": opt.t, "b1": opt.b1, "b2": opt.b2, "eps": opt.eps, **moments}

    def _adam_out(self, moments: dict, n_updates: int) -> None:
        """Take the network's Adam moments after a trial with ``n_updates`` in-trial steps."""
        opt, w = self.optimizer, self.weights
        shapes = {"input": w.w_in.shape, "recurrent": w.w_rec.shape, "output": w.w_out.shape}
        for mom in ("m", "v"):
            d = {}
            for key, shape in shapes.items():
                src, tgt = self.net.edges[key]
                a = np.zeros(shape)
                a[tgt, src] = moments[mom][key]
                d[key] = a
            d["bias"] = np.array(moments[mom]["bias"], dtype=float)
            setattr(opt, mom, d)
        opt.t += n_updates

    def dense_weights(self, edge_values: dict[str, np.ndarray]) -> tuple[Weights, np.ndarray]:
        """Weights and B (N × n_out) from edge-order vectors of the network's projections.

        Parameters
        ----------
        edge_values : dict
            ``input``, ``recurrent``, ``output``, ``feedback`` (in the output projection's edge order),
            ``bias``.
        """
        w = self.weights
        dense = {
            "input": np.zeros_like(w.w_in),
            "recurrent": np.zeros_like(w.w_rec),
            "output": np.zeros_like(w.w_out),
        }
        for key, m in dense.items():
            src, tgt = self.net.edges[key]
            m[tgt, src] = edge_values[key]
        src, tgt = self.net.edges["output"]
        b = np.zeros((w.n_rec, w.n_out))
        b[src, tgt] = edge_values["feedback"]
        new = Weights(
            dense["input"],
            dense["recurrent"],
            dense["output"],
            np.array(edge_values["bias"], dtype=float),
            w.mask_in,
            w.mask_rec,
            w.mask_out,
        )
        return new, b

    def effective_feedback(self) -> np.ndarray:
        """The feedback matrix B (N × n_out) the next trials use: ``rule.feedback(weights, B state)``."""
        return self.rule.feedback(self.weights, self.feedback)

    # ------------------------------------------------------------- resumable state
    def state(self) -> dict[str, Any]:
        """Everything that evolves during training, to continue a run bit for bit (``--resume``).

        Returns
        -------
        dict
            ``iteration`` (int, iterations done), ``weights`` (dict of the dense ``w_in``, ``w_rec``,
            ``w_out``, ``b_out`` arrays), ``feedback`` (the rule's B, shape (N, n_out)) and ``optimizer``
            (the optimizer's :meth:`state`, e.g. Adam ``t``, ``m``, ``v``).  Arrays are copies.
        """
        w = self.weights
        opt = self.optimizer.state()
        return {
            "iteration": int(self.iteration),
            "weights": {k: getattr(w, k).copy() for k in ("w_in", "w_rec", "w_out", "b_out")},
            "feedback": np.array(self.feedback, copy=True),
            "optimizer": {
                k: ({n: np.array(a, copy=True) for n, a in v.items()} if isinstance(v, dict) else v)
                for k, v in opt.items()
            },
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state` (connectivity masks stay those of this trainer's initialization).

        Parameters
        ----------
        state : dict
            As returned by :meth:`state`.

        Raises
        ------
        ValueError
            If an array's shape differs from this trainer's.
        """
        w = self.weights
        arrays = {}
        for k in ("w_in", "w_rec", "w_out", "b_out"):
            a = np.asarray(state["weights"][k], dtype=float)
            if a.shape != getattr(w, k).shape:
                raise ValueError(f"state: {k} has shape {a.shape}, expected {getattr(w, k).shape}")
            arrays[k] = a.copy()
        fb = np.asarray(state["feedback"], dtype=float)
        if fb.shape != np.shape(self.feedback):
            raise ValueError(f"state: feedback has shape {fb.shape}, expected {np.shape(self.feedback)}")
        a = arrays
        self.weights = Weights(
            a["w_in"], a["w_rec"], a["w_out"], a["b_out"], w.mask_in, w.mask_rec, w.mask_out
        )
        self.feedback = fb.copy()
        self.optimizer.load_state(state["optimizer"])
        self.iteration = int(state["iteration"])
