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

from neuroplast.build import Setup, build
from neuroplast.config import GRADIENT_PATHS, Config
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.dynamics import Trajectory
from neuroplast.model.params import Weights
from neuroplast.plasticity.optim import apply_updates, make_optimizer, trainable
from neuroplast.plasticity.rules import TrialData

__all__ = ["PATH_FNS", "IterationLog", "Trainer", "choose_path", "trajectory_of"]


# ------------------------------------------------------------- gradient paths
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


#: How the trainer gets a trial's gradient, by the names of ``training.path`` (:data:`config.GRADIENT_PATHS`).
PATH_FNS: dict[str, Callable] = {"online": _online, "factorized": _factorized}
assert set(PATH_FNS) == set(GRADIENT_PATHS), "config.GRADIENT_PATHS and the trainer's paths differ"


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
    """Runs the training of one :class:`~neuroplast.build.Setup` on a simulator, iteration by iteration.

    Parameters
    ----------
    setup : Setup
        What the run is made of (:func:`neuroplast.build.build`).
    simulator : optional
        The network that simulates trials (default: a :class:`~neuroplast.network.builder.Brian2Network`
        built for the setup, on ``simulation.device``).
    record : bool
        Record per-step recurrent states even on the online path (for traces).
    """

    def __init__(self, setup: Setup, simulator: Any = None, *, record: bool = False) -> None:
        cfg = setup.cfg
        self.setup = setup
        self.cfg = cfg
        self.seed = setup.seed
        self.rule_name = setup.rule_name
        self.rule = setup.rule
        self.task = setup.task
        self.T = cfg.simulation.n_steps
        self.params = setup.params
        self.connectivity = setup.connectivity
        self.weights = setup.weights.copy()
        self.feedback = np.array(setup.feedback, copy=True)
        self.optimizer = make_optimizer(cfg.training.optimizer, cfg.training)
        self.loss = setup.loss
        self.f_target = setup.f_target
        self.path = choose_path(cfg, self.rule.online)
        self.net = simulator if simulator is not None else self._network(record)
        self.iteration = 0

    @classmethod
    def from_config(
        cls, cfg: Config, *, rule: str | None = None, seed: int | None = None, record: bool = False
    ) -> Trainer:
        """``Trainer(build(cfg, rule=rule, seed=seed), record=record)``."""
        return cls(build(cfg, rule=rule, seed=seed), record=record)

    def _network(self, record: bool) -> Any:
        from neuroplast.network.builder import Brian2Network

        cfg = self.cfg
        in_trial = bool(cfg.training.update_every_steps)
        return Brian2Network(
            self.params,
            self.weights,
            self.T,
            device=cfg.simulation.device,
            loss=cfg.training.loss,
            gradients=self.path == "online",
            regularization=cfg.training.reg_coeff > 0,
            record=record or self.path != "online",
            update_every=cfg.training.update_every_steps,
            rule_code=self.rule.brian2_update if in_trial else None,
            in_trial_optimizer=cfg.training.optimizer if in_trial else "sgd",
        )

    def run_iteration(self) -> IterationLog:
        """Simulate one batch, compute the gradient, apply the update."""
        it = self.iteration
        trials = self.task.trials(it, self.cfg.training.batch_size)
        w_before = self.weights.copy()
        fb = self.effective_feedback()
        if self.cfg.training.update_every_steps:
            return self._in_trial_iteration(trials, w_before, fb)
        path = PATH_FNS[self.path]
        losses, grads_list, results = [], [], []
        for trial in trials:
            res = self.net.run_trial(self.weights, trial.x, target=trial.target, mask=trial.mask, feedback=fb)
            traj = trajectory_of(res, res.y) if res.v is not None else None
            data = TrialData(
                self.params,
                self.weights,
                trial.x,
                traj,
                trial.target,
                trial.mask,
                self.cfg.training.loss,
                self.cfg.training.reg_coeff,
                self.f_target,
                fb,
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
            None,
            trial.target,
            trial.mask,
            tr.loss,
            tr.reg_coeff,
            self.f_target,
            b_end,
        )
        g = PATH_FNS["online"](self, res, data)  # what the last segment left, + regularization
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
        opt, conn = self.optimizer, self.connectivity
        moments = {}
        for mom in ("m", "v"):
            d = getattr(opt, mom)
            moments[mom] = {
                key: conn.to_edges(key, d.get(key, np.zeros(conn.shape(key)))) for key in PROJECTIONS
            }
        return {"t": opt.t, "b1": opt.b1, "b2": opt.b2, "eps": opt.eps, **moments}

    def _adam_out(self, moments: dict, n_updates: int) -> None:
        """Take the network's Adam moments after a trial with ``n_updates`` in-trial steps."""
        opt, conn = self.optimizer, self.connectivity
        for mom in ("m", "v"):
            setattr(opt, mom, {key: conn.to_dense(key, moments[mom][key]) for key in PROJECTIONS})
        opt.t += n_updates

    def dense_weights(self, edge_values: dict[str, np.ndarray]) -> tuple[Weights, np.ndarray]:
        """Weights and B (N × n_out) from edge-order vectors of the log's projections.

        Parameters
        ----------
        edge_values : dict
            ``input``, ``recurrent``, ``output``, ``feedback``, ``bias`` edge vectors
            (:class:`~neuroplast.model.connectivity.Connectivity`).
        """
        return self.connectivity.weights(edge_values), self.connectivity.feedback(edge_values["feedback"])

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
