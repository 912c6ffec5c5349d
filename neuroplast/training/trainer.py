"""Training loop: Brian2 trials, rule gradients, optimizers, weight updates, logging.

Per iteration: the task yields a batch of trials; the Brian2 network simulates each
from rest with the current weights (a batch's trials side by side in one launch,
docs/model.md §8; batch 1: many iterations per launch, §7) and either accumulates the
rule's gradient online (``online`` path: per-synapse eligibility traces inside
Brian2) or records per-neuron factors from which NumPy contracts the same gradient
(``factorized`` path; also used by rules that are not online, e.g. ``bptt``).  The
batch-mean gradient goes through the optimizer and is applied once per iteration.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from neuroplast.build import Setup, build
from neuroplast.config import GRADIENT_PATHS, Config, to_toml
from neuroplast.devices import Capabilities, load_simulator
from neuroplast.errors import DivergedError
from neuroplast.model.connectivity import PROJECTIONS, EdgeWeights
from neuroplast.model.dynamics import Trajectory
from neuroplast.model.losses import softmax
from neuroplast.model.neurons import DEFAULT_NEURON, get_neuron
from neuroplast.model.params import Weights
from neuroplast.model.simulator import Simulator
from neuroplast.plasticity.optim import (
    SGD,
    Adam,
    NestAdam,
    apply_edge_updates,
    apply_updates,
    averaged,
    averaging_steps,
    make_optimizer,
    trainable,
)
from neuroplast.plasticity.rules import EpropAdaptive, EpropRandom, EpropSymmetric, ThreeFactor, TrialData
from neuroplast.training.cost import PathCosts, launch_iterations, path_costs, workload

__all__ = [
    "PATH_FNS",
    "RECORDED",
    "IterationLog",
    "IterationRecord",
    "TrialRecord",
    "Trainer",
    "choose_path",
    "trajectory_of",
]


# ------------------------------------------------------------- gradient paths
def _reg_signal(count: np.ndarray, T: int, c_reg: float, f_target: float) -> np.ndarray:
    """Per-neuron regularization signal c_reg (f_j − f*)/T (f in spikes per step)."""
    return c_reg * (count / T - f_target) / T


def _online(trainer: Trainer, results: list, datas: list) -> list[dict[str, np.ndarray]]:
    """Each trial's gradient as the simulation accumulated it, plus the rate-regularization term."""
    out = []
    for res in results:
        grads = trainer.trial_grads(res.grads)
        if trainer.cfg.training.reg_coeff > 0 and not getattr(res, "regularized", False):
            r = _reg_signal(res.spike_count, trainer.T, trainer.cfg.training.reg_coeff, trainer.f_target)
            esum = trainer.trial_grads(res.esum, ("input", "recurrent"))
            for key in ("input", "recurrent"):
                # r_j Σe_ji per synapse: r of each edge's target (dense: r[:, None], the same products)
                post = trainer.connectivity.edges[key][1] if trainer.edge_optimizer else (slice(None), None)
                grads[key] = grads[key] + r[post] * esum[key]
        out.append(grads)
    return out


def _factorized(trainer: Trainer, results: list, datas: list) -> list[dict[str, np.ndarray]]:
    """The rule's NumPy gradient of every trial of the batch, in one ``rule.numpy_grads_batch`` call — or,
    when the simulation computed the same formula itself (cpp_standalone, docs/model.md §9), its gradients."""
    if trainer.compiled_gradients:
        return [trainer.trial_grads(res.grads) for res in results]
    return trainer.rule.numpy_grads_batch(datas)


#: How the trainer gets a batch's gradients (one per trial) from its results and :class:`TrialData`, by the
#: names of ``training.path`` (:data:`config.GRADIENT_PATHS`).
PATH_FNS: dict[str, Callable] = {"online": _online, "factorized": _factorized}
assert set(PATH_FNS) == set(GRADIENT_PATHS), "config.GRADIENT_PATHS and the trainer's paths differ"


def default_neuron(cfg: Config) -> bool:
    """Whether ``network.neuron`` is the LIF/ALIF mix that every path and device implements."""
    return get_neuron(cfg.network.neuron).name == DEFAULT_NEURON


def path_is_chosen(cfg: Config, rule_online: bool) -> bool:
    """Whether ``training.path = "auto"`` leaves the path to be chosen: a rule whose gradient the simulation
    can compute, the ``alif`` model, no in-trial learning (the others have one path, :func:`choose_path`)."""
    return (
        rule_online
        and default_neuron(cfg)
        and not cfg.training.update_every_steps
        and cfg.training.path == "auto"
    )


def choose_path(cfg: Config, rule_online: bool, costs: PathCosts | None = None) -> str:
    """``training.path`` or, for ``auto``: factorized for non-online rules; online for a neuron model other
    than ``alif`` and for in-trial learning (their gradient lives in the simulation; docs/model.md §10, §6;
    the config refuses anything else); otherwise the cheaper path of the cost model ``costs``
    (:mod:`neuroplast.training.cost`), given for devices with a compiled gradient (cpp_standalone, where it
    was fitted).  Without it (the runtime device, a simulator of its own) the rule it replaced: factorized
    for large dense networks (N ≥ 256, p_rec = 1) and batches of several trials, else online."""
    if not rule_online:
        return "factorized"
    if not default_neuron(cfg) or cfg.training.update_every_steps:
        return "online"
    if cfg.training.path != "auto":
        return cfg.training.path
    if costs is not None:
        return costs.choice
    n = cfg.network
    large_dense = n.n_rec >= 256 and n.p_rec == 1.0
    return "factorized" if large_dense or cfg.training.batch_size > 1 else "online"


#: Rules whose boundary update the chunked engine has (``run_chunk(feedback_rule=…)``), by exact class:
#: their NumPy hooks leave the optimizer's update unchanged and B fixed or = W_outᵀ, or take Kolen–Pollack's
#: step (adaptive).
CHUNK_FEEDBACK: dict[type, str] = {
    EpropSymmetric: "symmetric",
    EpropRandom: "fixed",
    ThreeFactor: "fixed",
    EpropAdaptive: "adaptive",
}
#: Optimizers whose step the chunked engine takes at a boundary, by exact class: the name of that step in
#: the network (``Brian2Network(chunk_optimizer=…)``, the optimizers' registry names).
CHUNK_OPTIMIZER: dict[type, str] = {SGD: "sgd", Adam: "adam", NestAdam: "adam-nest"}
#: Memory for one launch's inputs, targets and monitors when ``simulation.chunk_iterations`` = 0 (auto).
CHUNK_MEMORY_BYTES = 256 * 2**20
#: At most this many iterations per launch (auto): a kill loses at most one launch's iterations.
CHUNK_MAX = 100


def averaging_run(masks: list) -> tuple[float, int]:
    """n of the averaged gradient g / n (``training.average_gradient``) that a launch of the chunked engine
    takes, and how many of these trials' masks, from the first, share it: the trials a launch holds.

    Parameters
    ----------
    masks : list of array_like
        The recall-window masks of the next trials, in order (at least one).

    Returns
    -------
    (float, int)
        n (:func:`~neuroplast.plasticity.optim.averaging_steps` of the first mask) and the number of
        leading masks with the same n (≥ 1).
    """
    counts = [averaging_steps(m) for m in masks]
    first = counts[0]
    return first, next((k for k, c in enumerate(counts) if c != first), len(counts))


def chunk_length(cfg: Config, n_edges: int, *, auto: bool = False) -> int:
    """Iterations per launch for ``simulation.chunk_iterations`` (0: auto, from the memory budget and the
    cost model).

    Auto: as many as :data:`CHUNK_MEMORY_BYTES` holds (inputs, targets and readout per step; gradients and
    weights per trial; spikes at up to 100 Hz; all of it for each of ``training.batch_size`` trials side by
    side), at most :data:`CHUNK_MAX`, and no more than the cost model needs to make the launch's cost a
    small share of the iterations (:func:`neuroplast.training.cost.launch_iterations`: large networks hold
    a few iterations' gradients and weights, not a budget's).  It depends on the network and
    the task alone, never on ``training.iterations``: a launch runs as many trials as are left (its duration
    is chosen when the binary runs), so that changing ``--iterations`` or resuming never recompiles.
    ``auto``: what auto gives, whatever ``simulation.chunk_iterations`` says (the cost model's plan).
    """
    given = 0 if auto else cfg.simulation.chunk_iterations
    if given:
        return int(given)
    T, n = cfg.simulation.n_steps, cfg.network
    per_trial = 8 * T * (cfg.task.n_in + 2 * n.n_out + 1) + 16 * (n_edges + n.n_out) + 16 * n.n_rec * T // 10
    per_iteration = per_trial * max(1, cfg.training.batch_size)
    needed = launch_iterations(workload(cfg, n_edges), n_edges)
    return int(max(1, min(CHUNK_MAX, CHUNK_MEMORY_BYTES // per_iteration, needed)))


def _check_finite(
    iteration: int,
    losses: list[float],
    grads: dict[str, np.ndarray],
    weights: Weights | dict[str, np.ndarray] | None = None,
) -> None:
    """Raise :class:`DivergedError` naming the first non-finite loss, gradient or weight (``weights``: the
    dense :class:`Weights`, or their edge vectors by projection — the same check, entries off the
    connectivity being 0)."""
    for k, loss in enumerate(losses):
        if not np.isfinite(loss):
            raise DivergedError(iteration, f"the loss of trial {k + 1} of the batch is {loss}")
    for name, g in grads.items():
        if not np.all(np.isfinite(g)):
            raise DivergedError(iteration, f"the {name} gradient is not finite")
    if weights is None:
        return
    if isinstance(weights, Weights):
        weights = {
            "input": weights.w_in,
            "recurrent": weights.w_rec,
            "output": weights.w_out,
            "bias": weights.b_out,
        }
    for name in ("input", "recurrent", "output"):
        if not np.all(np.isfinite(weights[name])):
            raise DivergedError(iteration, f"the {name} weights are not finite after the update")
    if not np.all(np.isfinite(weights["bias"])):
        raise DivergedError(iteration, "the bias is not finite after the update")


def _batch_mean(grads_list: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The batch's mean gradient per projection; one trial's own arrays for a batch of one (the mean of
    one value is that value bit for bit, and nothing changes a gradient in place: no copy of its size)."""
    if len(grads_list) == 1:
        return {k: grads_list[0][k] for k in PROJECTIONS}
    return {k: np.mean([g[k] for g in grads_list], axis=0) for k in PROJECTIONS}


def trajectory_of(res, y: np.ndarray) -> Trajectory:
    """Unbatched Trajectory from a recorded Brian2 trial."""
    return Trajectory(res.v, res.a, res.z, res.psi, res.refractory, y, batched=False)


_DRAW_POOL: list[ThreadPoolExecutor] = []


def _draw_pool() -> ThreadPoolExecutor:
    """The one thread that draws the next iteration's trials during a launch (:meth:`Trainer._draw_ahead`)."""
    if not _DRAW_POOL:
        _DRAW_POOL.append(ThreadPoolExecutor(1, thread_name_prefix="neuroplast-trials"))
    return _DRAW_POOL[0]


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
    #: ``trial_grads`` and ``updates`` are edge vectors in the log's order (:attr:`Trainer.edge_optimizer`),
    #: not dense matrices.
    edges: bool = False


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the run log takes it.

    Attributes
    ----------
    trial : Trial
        The task's trial (input spikes ``x``, ``target``, ``mask``, ``label``).
    target : ndarray or int
        What the log stores as the target: y* (T, n_out) for regression, the label for classification.
    mask : ndarray of bool (T,) or None
        Recall window (classification only).
    loss : float
        Task loss of the trial (a sum over steps).
    spikes : dict
        ``population -> (step indices, node ids)`` of ``recurrent`` and ``input``.
    extras : dict of str to float
        Per-trial scalars: ``rate_hz`` (mean recurrent rate, Hz), ``accuracy`` (classification, 0/1).
    grads : dict
        ``projection -> {estimator: edge vector}``: the rule's gradient estimate of the trial.
    states : dict of str to ndarray (T, N)
        Recorded recurrent variables (``v``, ``a``, ``z``, ``psi``) when the network records them.
    """

    trial: Any
    target: Any
    mask: np.ndarray | None
    loss: float
    spikes: dict[str, tuple[np.ndarray, np.ndarray]]
    extras: dict[str, float]
    grads: dict[str, dict[str, np.ndarray]]
    states: dict[str, np.ndarray]


@dataclass(frozen=True)
class IterationRecord:
    """One training iteration in the run log's terms (edge vectors in the log's order).

    Attributes
    ----------
    iteration : int
        0-based index of the iteration.
    trials : list of TrialRecord
    weights_before : dict of str to ndarray
        Edge vectors of every projection (``feedback`` and ``bias`` included) in force at the trials' start.
    updates : dict of str to ndarray
        The change applied at the end of the iteration, per projection (``feedback``: the change of B).
    state : dict of str to ndarray
        Flat resumable trainer state after the iteration (:meth:`Trainer.flat_state`), not copied: read-only
        views of the trainer's own arrays, which later iterations replace and never change in place (so
        the run log's writer keeps them without a copy, ``RunWriter.add_iteration(copy_state=False)``).
    in_trial : dict of str to ndarray or None
        In-trial learning: the weights in force from step k, 2k, … on, rows (n_updates, n_edges).
    """

    iteration: int
    trials: list[TrialRecord]
    weights_before: dict[str, np.ndarray]
    updates: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    in_trial: dict[str, np.ndarray] | None = None

    @property
    def losses(self) -> list[float]:
        """Task loss of every trial."""
        return [t.loss for t in self.trials]


#: Recurrent variables that a trial can record (``--trace``).
RECORDED = ("v", "a", "z", "psi")


def _input_spikes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero(x)`` of a (T, n_in) input: (steps, channel ids) in row-major order.

    The same arrays, from the flat indices of a boolean copy: several times faster than ``np.nonzero`` of
    a 2-D float array (which ``record`` does for every trial).
    """
    x = np.asarray(x)
    flat = np.flatnonzero(x != 0)
    return np.divmod(flat, x.shape[1])


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``."""
    v = a.view()
    v.flags.writeable = False
    return v


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, a in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = a.item() if a.ndim == 0 else a
    out.setdefault("optimizer", {})
    return out


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

    def __init__(self, setup: Setup, simulator: Simulator | None = None, *, record: bool = False) -> None:
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
        self.weights = setup.weights  # replaced by every update, never changed in place: no copy
        self.feedback = np.array(setup.feedback, copy=True)
        self.optimizer = make_optimizer(cfg.training.optimizer, cfg.training)
        self.loss = setup.loss
        self.f_target = setup.f_target
        #: How gradients are computed: "online" (inside Brian2) or "factorized" (NumPy, from recordings).
        self.gradient_path = choose_path(cfg, self.rule.simulated)
        #: Why (the cost model's figures where it chose; "" otherwise).
        self.path_reason = ""
        self.device, self.device_reason = getattr(simulator, "device", "given"), "simulator given"
        #: What the simulation can do (:class:`neuroplast.devices.Capabilities`; a given simulator declares
        #: its own, none by default).
        self.capabilities = getattr(simulator, "capabilities", Capabilities())
        #: Iterations per Brian2 launch (0: one trial per launch) and why.
        self.chunk, self.chunk_reason = int(getattr(simulator, "chunk", 0)), "simulator given"
        self.threads = int(getattr(simulator, "threads", 1))
        #: Trials of an iteration side by side in one launch (1: one trial per launch).
        self.batch = int(getattr(simulator, "batch", 1))
        #: Whether the simulation computes the factorized gradients itself (``factorized`` networks).
        self.compiled_gradients = bool(getattr(simulator, "factorized", False))
        self.compiles_first = False
        self._pending: deque = deque()
        #: Trials drawn in a thread during a launch: (first iteration, the future of their batches).
        self._ahead: tuple[int, Future] | None = None
        #: Trials of iterations already drawn (for the launch in flight, or ahead), by iteration.
        self._drawn: dict[int, list] = {}
        self._record = record
        #: Whether the optimizer steps on edge vectors (its moments too) instead of dense matrices: set by
        #: :meth:`_network` where every gradient is zero off the connectivity (:meth:`_optimizer_step`).
        self.edge_optimizer = False
        #: The edge vectors of the last two dense :class:`Weights` asked for (:meth:`_weight_edges`),
        #: newest last.
        self._edges_of: list[tuple[Weights, dict[str, np.ndarray]]] = []
        if simulator is None:  # the network is built from the connectivity alone (no dense weights read)
            self.weights = self.connectivity.edge_weights(self.connectivity.weight_vectors(setup.weights))
        self.net = simulator if simulator is not None else self._network(record)
        if self.edge_optimizer:  # weights as edge vectors throughout; the setup's dense ones are let go
            self.setup = replace(setup, weights=self.weights)
        else:  # dense weights, as the simulator and the NumPy gradients read them
            self.weights = setup.weights
        self.iteration = 0

    @classmethod
    def from_config(
        cls, cfg: Config, *, rule: str | None = None, seed: int | None = None, record: bool = False
    ) -> Trainer:
        """``Trainer(build(cfg, rule=rule, seed=seed), record=record)``."""
        return cls(build(cfg, rule=rule, seed=seed), record=record)

    def _network(self, record: bool, chunked: bool = True) -> Simulator:
        from neuroplast.network.builder import Brian2Network
        from neuroplast.network.devices import resolve_device

        cfg = self.cfg
        needs, why = ((), "")
        if not default_neuron(cfg):
            needs, why = ("neuron_models",), f"neuron model {cfg.network.neuron!r}"
        elif self.rule.own_eligibility and self.rule.simulated:  # generated from the model's equations
            needs, why = ("neuron_models",), f"rule {self.rule_name!r}'s eligibility"
        #: The device in use and why (``simulation.device = "auto"`` resolves here).
        info, self.device_reason = resolve_device(cfg.simulation.device, needs, why)
        self.device, self.capabilities = info.name, info.capabilities
        #: Whether the first trial compiles code (Brian2's runtime device compiles per code object then).
        self.compiles_first = not info.simulator and not info.capabilities.ahead_of_time
        #: Threads of the simulation (``simulation.threads``; 1 on a device without threads, which only
        #: ``auto`` can pick: a named device without them is refused by the config).
        self.threads = cfg.simulation.threads if self.capabilities.threads else 1
        if not info.simulator:
            self._choose_path()
        if chunked:
            self.chunk, self.chunk_reason = self._chunk_plan(record)
        if info.simulator:  # simulated by a simulator of its own (e.g. "numpy"), not by Brian2
            self.batch = 1
            return load_simulator(info)(self.setup)
        if self.chunk:
            self.edge_optimizer = True  # an optimizer of CHUNK_OPTIMIZER, gradients from the simulation
            self.batch = cfg.training.batch_size  # the plan chunks batches only on a device that has them
            # the factorized path only where the binary computes e-prop's gradient (the plan's condition)
            self.compiled_gradients = self.gradient_path != "online"
            return Brian2Network(
                self.params,
                self.weights,
                self.T,
                device=self.device,
                loss=cfg.training.loss,
                gradients=not self.compiled_gradients,
                regularization=cfg.training.reg_coeff > 0,
                record=False,
                chunk_trials=self.chunk,
                chunk_optimizer=CHUNK_OPTIMIZER[type(self.optimizer)],
                batch=self.batch,
                threads=self.threads,
                factorized=self.compiled_gradients,
                reg=(cfg.training.reg_coeff, self.f_target),
            )
        in_trial = bool(cfg.training.update_every_steps)
        # a neuron model other than alif: its generated statements (network/model_code.py)
        neuron: dict[str, Any] = {}
        if not default_neuron(cfg) or self.rule.own_eligibility:
            neuron = {"neuron": self.setup.neuron, "neuron_values": self.setup.neuron_values}
        if self.rule.trace is not None:  # the rule's own eligibility, generated next to the model's code
            neuron["trace"] = self.rule.trace
        if self.rule.keeps_reset:  # the model's eligibility with the reset differentiated
            neuron["keep_reset"] = True
        self.batch = 1 if cfg.simulation.chunk_iterations == 1 else cfg.training.batch_size
        self.compiled_gradients = (
            self.gradient_path == "factorized"
            and self.capabilities.compiled_gradients
            and self.rule.eprop_gradient
        )
        # what NumPy's gradient reads of the trajectory (nothing when the simulation computes it)
        numpy_factorized = self.gradient_path != "online" and not self.compiled_gradients
        recorded = self.rule.trajectory if numpy_factorized else False
        self.edge_optimizer = (
            type(self.optimizer) in CHUNK_OPTIMIZER and not numpy_factorized and not in_trial
        )
        return Brian2Network(
            self.params,
            self.weights,
            self.T,
            device=self.device,
            loss=cfg.training.loss,
            gradients=self.gradient_path == "online",
            regularization=cfg.training.reg_coeff > 0,
            record=True if record else recorded,
            update_every=cfg.training.update_every_steps,
            rule_code=self.rule.brian2_update if in_trial else None,
            in_trial_optimizer=cfg.training.optimizer if in_trial else "sgd",
            batch=self.batch,
            threads=self.threads,
            factorized=self.compiled_gradients,
            reg=(cfg.training.reg_coeff, self.f_target),
            **neuron,
        )

    def _choose_path(self) -> None:
        """The gradient path on this (Brian2) device: ``training.path``, or for ``auto`` on a device with a
        compiled gradient (cpp_standalone, where the model was fitted) the cost model's cheaper one
        (:mod:`neuroplast.training.cost`: the online path with the iterations per launch that auto
        ``simulation.chunk_iterations`` would give without recorded traces — so that neither that setting nor
        ``--trace`` changes what is computed — and the factorized one compiled into the binary where the
        rule allows it, else NumPy's)."""
        cfg = self.cfg
        if not path_is_chosen(cfg, self.rule.simulated) or not self.capabilities.compiled_gradients:
            return  # one path, or a device the model was not fitted on (choose_path's rule)
        self.gradient_path = "online"  # the plan of the online path's launches (auto length, no traces)
        k, _ = self._chunk_plan(False, auto=True)
        hidden = sum(self.connectivity.edges[name][0].size for name in ("input", "recurrent"))
        compiled = self.capabilities.compiled_gradients and self.rule.eprop_gradient
        costs = path_costs(workload(cfg, hidden), compiled=bool(compiled), chunk=max(1, k))
        self.gradient_path = choose_path(cfg, self.rule.simulated, costs)
        self.path_reason = costs.reason()

    def _chunk_plan(self, record: bool, auto: bool = False) -> tuple[int, str]:
        """Iterations per launch and why (0 and the reason when the chunked engine cannot run this config).

        ``auto``: the plan of ``simulation.chunk_iterations = 0`` whatever the config says (the cost model's:
        the gradient path never depends on that setting)."""
        cfg, tr = self.cfg, self.cfg.training
        why = None
        one = cfg.simulation.chunk_iterations == 1 and not auto
        side = tr.batch_size > 1 and not one and self.capabilities.batch  # a batch's trials side by side
        if one:
            why = "simulation.chunk_iterations = 1"
        elif not self.capabilities.chunks:
            why = f"device {self.device} runs one iteration per launch"
        elif tr.batch_size > 1 and not self.capabilities.batch:
            why = f"device {self.device} runs a batch's trials one after another"
        elif self.gradient_path != "online" and not (
            self.capabilities.compiled_gradients and self.rule.eprop_gradient
        ):  # NumPy's gradient: the trajectory of every trial (the binary's: at every boundary, §9)
            why = f"the {self.gradient_path} gradient path reads every trial's recorded trajectory"
        elif tr.update_every_steps:
            why = "in-trial learning (training.update_every_steps) steps inside each trial"
        elif record:
            why = "traces are recorded"
        elif type(self.optimizer) not in CHUNK_OPTIMIZER:
            why = f"optimizer {tr.optimizer!r} has no step inside the simulation"
        elif self.rule.own_eligibility:
            own = "its own eligibility trace" if self.rule.trace else "an eligibility with the reset"
            why = f"rule {self.rule_name!r} brings {own} (the chunked engine runs e-prop's)"
        elif type(self.rule) not in CHUNK_FEEDBACK:
            why = f"rule {self.rule_name!r} has no exact feedback update inside the simulation"
        elif not default_neuron(cfg):
            why = f"the chunked engine runs the {DEFAULT_NEURON!r} neuron model (network.neuron)"
        one_launch = "one trial per launch"
        if side:
            one_launch = f"one batch per launch, its {tr.batch_size} trials side by side"
        if why is not None:
            return 0, f"{one_launch}: {why}"
        k = chunk_length(cfg, sum(v[0].size for v in self.connectivity.edges.values()), auto=auto)
        if k < 2:
            return 0, f"{one_launch}: one iteration per launch"
        if side:
            return k, f"up to {k} iterations per launch, each its {tr.batch_size} trials side by side"
        return k, f"up to {k} iterations per launch"

    def _simulate_batch(self, trials: list, fb: np.ndarray) -> list:
        """The batch's results: the next iteration of the chunk in flight (or a new one), side by side in
        one launch when the network has the copies, else trial by trial."""
        if self.chunk:
            return self._from_chunk(trials, fb)
        if getattr(self.net, "batch", 1) >= len(trials) > 1:
            return self.net.run_batch(self.weights, [(t.x, t.target, t.mask) for t in trials], feedback=fb)
        return [
            self.net.run_trial(self.weights, t.x, target=t.target, mask=t.mask, feedback=fb) for t in trials
        ]

    def _from_chunk(self, trials: list, fb: np.ndarray) -> list:
        """This iteration's results from the chunk in flight (a new launch when none is), checked: every
        trial (every copy side by side) ran with NumPy's weights and B."""
        if not self._pending:
            self._simulate_chunk(fb, trials)
        it, results = self._pending.popleft()
        now = self.weight_vectors(self.weights, fb)
        # the weights and B each trial ran with (every one the chunk monitors) against NumPy's
        same = (
            it == self.iteration
            and len(results) == len(trials)
            and all(np.array_equal(v, now[k]) for res in results for k, v in res.ran_with.items())
        )
        if same:
            return results
        # The simulation's optimizer step left NumPy's (never seen in the tests): go on one launch per
        # iteration.
        warnings.warn(
            f"iteration {self.iteration}: the weights of the chunked simulation differ from NumPy's; "
            "continuing with one iteration per launch",
            RuntimeWarning,
            stacklevel=2,
        )
        one = "one trial per launch"
        if len(trials) > 1 and self.capabilities.batch:
            one = f"one batch per launch, its {len(trials)} trials side by side"
        self.chunk, self.chunk_reason = 0, f"{one}: the chunked simulation disagreed"
        self._pending.clear()
        self._drawn.clear()
        self.net = self._network(self._record, chunked=False)
        return self._simulate_batch(trials, fb)

    def _simulate_chunk(self, fb: np.ndarray, first: list) -> None:
        """Simulate the next iterations (up to ``chunk``, not past ``training.iterations``) in one launch,
        each iteration's ``training.batch_size`` trials side by side; ``first``: this iteration's trials.

        The trials of the launch's other iterations are kept for :meth:`_batch_trials` (drawn once), and
        those of the next launch are drawn in a thread while this one runs."""
        tr, it, B = self.cfg.training, self.iteration, self.batch
        n = min(self.chunk, max(1, tr.iterations - it))
        self._settle_ahead()
        for k in range(1, n):
            if it + k not in self._drawn:
                self._drawn[it + k] = self.task.trials(it + k, B)
        batches = [first] + [self._drawn[it + k] for k in range(1, n)]
        steps = 1.0
        if tr.average_gradient:  # one n of g / n per launch: the iterations whose trials all share it
            steps, same = averaging_run([t.mask for batch in batches for t in batch])
            n = max(1, same // B)  # one iteration alone takes no step inside the launch: any n
            batches = batches[:n]
        trials = [t for batch in batches for t in batch]
        self._draw_ahead(it + n, min(self.chunk, tr.iterations - it - n))
        results = self.net.run_chunk(
            self.weights,
            [(t.x, t.target, t.mask) for t in trials],
            feedback=fb,
            learning_rate=tr.learning_rate,
            adam=self._adam_in() if self.net.adam else None,
            reg=(tr.reg_coeff, self.f_target),
            feedback_rule=CHUNK_FEEDBACK[type(self.rule)],
            weight_decay=tr.weight_decay,
            trained={
                "input": True,
                "recurrent": tr.train_recurrent,
                "output": tr.train_output,
                "bias": tr.train_output and self.cfg.network.readout_bias,
            },
            average_steps=steps,
        )
        self._pending = deque((it + k, results[k * B : (k + 1) * B]) for k in range(n))

    def _batch_trials(self, it: int) -> list:
        """The task's trials of iteration ``it``: drawn for the launch in flight or ahead during the
        previous launch when they were (the draws depend on the seed and ``it`` alone), else drawn now."""
        self._settle_ahead()
        for old in [k for k in self._drawn if k < it]:  # iterations gone by (a resumed or cut run)
            del self._drawn[old]
        if it in self._drawn:
            return self._drawn.pop(it)
        return self.task.trials(it, self.cfg.training.batch_size)

    def _settle_ahead(self) -> None:
        """Wait for the trials drawn in the thread (also when unused: the task is never drawn from by two
        threads at once) and keep them in :attr:`_drawn`."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            for k, batch in enumerate(ahead[1].result()):
                self._drawn.setdefault(ahead[0] + k, batch)

    def _draw_ahead(self, it: int, n: int = 1) -> None:
        """Draw the trials of iterations ``it`` … ``it + n − 1`` in a thread while a cpp_standalone launch
        runs (the calling thread only waits for the binary then): the next iteration's with one iteration
        per launch, the next launch's with several."""
        n = min(n, self.cfg.training.iterations - it)
        if not self.capabilities.ahead_of_time or n < 1:
            return
        self._settle_ahead()  # one draw at a time
        B = self.cfg.training.batch_size
        self._ahead = (it, _draw_pool().submit(lambda: [self.task.trials(it + k, B) for k in range(n)]))

    @property
    def in_flight(self) -> int:
        """Iterations already simulated by the launch in flight and not yet returned (0: the next
        :meth:`run_iteration` launches a simulation of its own)."""
        return len(self._pending)

    def run_iteration(self) -> IterationRecord:
        """Simulate one batch, compute the gradient, apply the update; the iteration in log terms."""
        return self.record(self.iterate())

    def iterate(self) -> IterationLog:
        """Simulate one batch, compute the gradient, apply the update (dense arrays, raw results)."""
        it = self.iteration
        trials = self._batch_trials(it)
        if not self.chunk:  # a chunk draws the next launch's trials itself (_simulate_chunk)
            self._draw_ahead(it + 1)
        # the update replaces the weights and never changes them in place (apply_updates, load_state):
        # the weights before it need no copy (a dense copy of every matrix per iteration)
        w_before = self.weights
        fb = self.effective_feedback()
        if self.capabilities.nest_plasticity:
            return self._own_plasticity_iteration(trials, w_before, fb)
        if self.cfg.training.update_every_steps:
            return self._in_trial_iteration(trials, w_before, fb)
        path = PATH_FNS[self.gradient_path]
        results, datas = [], []
        for trial, res in zip(trials, self._simulate_batch(trials, fb), strict=True):
            traj = trajectory_of(res, res.y) if res.psi is not None else None
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
            results.append(res)
            datas.append(data)
        grads_list = path(self, results, datas)
        if self.cfg.training.average_gradient:
            grads_list = [averaged(g, trial.mask) for g, trial in zip(grads_list, trials, strict=True)]
        losses = [
            self.loss.value(res.y, trial.target, trial.mask)
            for res, trial in zip(results, trials, strict=True)
        ]
        mean = _batch_mean(grads_list)
        _check_finite(it, losses, mean)
        steps = self._optimizer_step(
            trainable(
                mean,
                self.cfg.training.train_output,
                self.cfg.network.readout_bias,
                self.cfg.training.train_recurrent,
            )
        )
        if self.edge_optimizer:  # edge vectors throughout: no N × N array (EdgeWeights)
            self.weights, self.feedback, updates, edges = apply_edge_updates(
                self.rule, w_before, self.feedback, steps, self.connectivity, self._weight_edges(w_before)
            )
            _check_finite(it, [], {}, edges)
        else:
            self.weights, self.feedback, updates = apply_updates(self.rule, w_before, self.feedback, steps)
            _check_finite(it, [], {}, self.weights)
        self.iteration += 1
        return IterationLog(
            it, losses, grads_list, results, trials, w_before, fb, updates, edges=self.edge_optimizer
        )

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
        (g,) = PATH_FNS["online"](self, [res], [data])  # what the last segment left, + regularization
        _check_finite(self.iteration, [self.loss.value(res.y, trial.target, trial.mask)], g, w_end)
        self.weights, self.feedback, updates = apply_updates(
            self.rule, w_end, b_end, self.optimizer.step(trainable(g, tr.train_output))
        )
        _check_finite(self.iteration, [], {}, self.weights)
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

    def _own_plasticity_iteration(self, trials, w_before: Weights, fb: np.ndarray) -> IterationLog:
        """One sequence of a simulation that learns by itself (capability ``nest_plasticity``: NEST's
        models, ``simulation.device = "nest-current"``): the weights it ended with become the trainer's.

        The iteration's ``updates`` are the change over the sequence (the sum of the simulation's own
        updates during it); the trial's gradient is what the simulation gave its optimizer.
        """
        (trial,) = trials  # batch_size is 1 (checked by the config)
        res = self.net.run_trial(self.weights, trial.x, target=trial.target, mask=trial.mask, feedback=fb)
        loss = self.loss.value(res.y, trial.target, trial.mask)
        w_end = res.weights_end
        _check_finite(self.iteration, [loss], res.grads, w_end)
        updates = {
            "input": w_end.w_in - w_before.w_in,
            "recurrent": w_end.w_rec - w_before.w_rec,
            "output": w_end.w_out - w_before.w_out,
            "bias": w_end.b_out - w_before.b_out,
        }
        self.weights = w_end.copy()
        self.iteration += 1
        return IterationLog(
            self.iteration - 1, [loss], [dict(res.grads)], [res], trials, w_before, fb, updates
        )

    def _optimizer_step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The optimizer's updates for the gradients ``grads`` (dense; edge vectors with
        :attr:`edge_optimizer`, and then so are the updates).

        With :attr:`edge_optimizer` the optimizer steps on the edge vectors of the gradients: an optimizer
        of :data:`CHUNK_OPTIMIZER` acts element by element, and where no synapse is the dense step saw zero
        gradients, kept zero moments and gave a zero update (masked by ``apply_updates``), so the updates
        and the moments on the synapses are the same bit for bit — over N·p·N values instead of N·N (a
        sparse net's step was ≈ 1/6 of an iteration at N = 3,000, p = 0.1).
        """
        return self.optimizer.step(grads)

    def trial_grads(
        self, grads: Mapping[str, np.ndarray], keys: tuple[str, ...] = PROJECTIONS
    ) -> dict[str, np.ndarray]:
        """A simulated trial's gradients (``TrialResult.grads`` or ``esum``) as the iteration uses them:
        edge vectors in the log's order with :attr:`edge_optimizer` (taken as they are where the result
        keeps them, ``edge_vector``; never made dense), else dense matrices."""
        if not self.edge_optimizer:
            return {k: grads[k] for k in keys}
        take = getattr(grads, "edge_vector", None)
        conn = self.connectivity
        return {k: take(k) if take is not None else conn.to_edges(k, grads[k]) for k in keys}

    def _adam_in(self) -> dict:
        """The Adam state as the network takes it (moments as edge-order vectors)."""
        opt, conn = self.optimizer, self.connectivity
        moments = {}
        for mom in ("m", "v"):
            d = getattr(opt, mom)
            if self.edge_optimizer:  # edge vectors already
                moments[mom] = {key: d.get(key, np.zeros(conn.n_edges(key))) for key in PROJECTIONS}
                continue
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

    # ------------------------------------------------------------- log terms
    def weight_vectors(self, weights: Weights, feedback: np.ndarray) -> dict[str, np.ndarray]:
        """Weights and feedback B → edge vectors of every projection of the run log."""
        edges = self._weight_edges(weights)
        vectors = {k: edges[k] for k in ("input", "recurrent", "output")}
        vectors["feedback"] = self.connectivity.to_edges("feedback", feedback)
        vectors["bias"] = edges["bias"]
        return vectors

    def final_weights(self) -> dict[str, np.ndarray]:
        """Edge vectors of the weights (and the B the next trial would use) after the last iteration."""
        return self.weight_vectors(self.weights, self.effective_feedback())

    def log_header(self) -> dict[str, Any]:
        """What a new run log is created with (the keyword arguments of ``RunWriter``)."""
        p, N, n_out = self.params, self.params.n_rec, self.weights.n_out
        full = lambda v: np.full(N, float(v))  # noqa: E731
        # the neuron model's parameters, one value per neuron (alif: α, ρ, β)
        values = {
            k: np.broadcast_to(np.asarray(v, dtype=float), (N,)).copy()
            for k, v in self.setup.neuron_values.items()
        }
        populations = {
            "input": {},
            "recurrent": {
                **values,
                "v_th": full(p.v_th),
                "n_ref": full(p.n_ref),
                "gamma": full(p.gamma),
                "input_scale": full(p.input_scale),
            },
            "readout": {"kappa": np.full(n_out, p.kappa), "readout_scale": np.full(n_out, p.readout_scale)},
        }
        return {
            "config_toml": to_toml(self.cfg),
            "dt_ms": self.cfg.simulation.dt_ms,
            "seed": self.seed,
            "populations": populations,
            "projections_edges": {**self.connectivity.edges, "bias": None},
            "n_in": self.task.n_in,
            "n_out": n_out,
            "task_kind": self.task.kind,
            "n_steps": self.T,
            "update_every_steps": self.cfg.training.update_every_steps,
        }

    def _trial_record(
        self, trial: Any, res: Any, grads: dict[str, np.ndarray], loss: float, edges: bool = False
    ) -> TrialRecord:
        kind, T, dt = self.task.kind, res.y.shape[0], self.cfg.simulation.dt_ms
        extras = {"rate_hz": float(res.spike_count.mean() / (T * dt * 1e-3))}
        if kind == "classification":
            pred = int(np.argmax(softmax(res.y[trial.mask > 0]).mean(axis=0)))
            extras["accuracy"] = float(pred == trial.label)
        x_steps, x_ids = _input_spikes(trial.x)
        return TrialRecord(
            trial=trial,
            target=trial.target if kind == "regression" else trial.label,
            mask=(trial.mask > 0) if kind == "classification" else None,
            loss=loss,
            spikes={"recurrent": res.spikes, "input": (x_steps, x_ids)},
            extras=extras,
            grads={
                p: {self.rule_name: v}
                for p, v in (grads if edges else self.connectivity.edge_vectors(grads)).items()
            },
            states={
                **(getattr(res, "state", None) or {}),  # a neuron model's own states (docs/model.md §10)
                **{v: getattr(res, v) for v in RECORDED if getattr(res, v) is not None},
            },
        )

    def record(self, log: IterationLog) -> IterationRecord:
        """An :class:`IterationLog` just returned by :meth:`iterate`, in the run log's terms."""
        trials = [
            # the loss iterate took (the same function of res.y)
            self._trial_record(trial, res, g, loss, log.edges)
            for trial, res, g, loss in zip(log.trials, log.results, log.trial_grads, log.losses, strict=True)
        ]
        fb_end = log.feedback_before if log.feedback_end is None else log.feedback_end
        fb_update = self.effective_feedback() - fb_end
        if log.edges:
            ups = {k: log.updates[k] for k in ("input", "recurrent", "output")}
            ups["feedback"] = self.connectivity.to_edges("feedback", fb_update)
            ups["bias"] = log.updates["bias"]
        else:
            ups = self.connectivity.edge_vectors({**log.updates, "feedback": fb_update})
        return IterationRecord(
            iteration=log.iteration,
            trials=trials,
            weights_before=self.weight_vectors(log.weights_before, log.feedback_before),
            updates=ups,
            state={k: _read_only(a) for k, a in self.flat_state(copy=False).items()},
            in_trial=log.in_trial,
        )

    # ------------------------------------------------------------- resumable state
    def flat_state(self, *, copy: bool = True) -> dict[str, np.ndarray]:
        """:meth:`state` as ``{"a/b/c": array}`` (what the run log's resume slots store); ``copy`` as
        there."""
        return _flatten(self.state(copy=copy))

    def load_flat_state(self, flat: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`flat_state` (see :meth:`load_state`)."""
        self.load_state(_unflatten(flat))

    def state(self, *, copy: bool = True) -> dict[str, Any]:
        """Everything that evolves during training, to continue a run bit for bit (``--resume``).

        Parameters
        ----------
        copy : bool, optional
            Copy the arrays (default).  ``False`` gives the trainer's own arrays, which training replaces
            and never changes in place (what :meth:`record` hands, read-only, to the run log).

        Returns
        -------
        dict
            ``iteration`` (int, iterations done), ``weights`` (edge vectors of the projections ``input``,
            ``recurrent``, ``output`` and ``bias`` in the run log's edge order,
            :class:`~neuroplast.model.connectivity.Connectivity`: the dense weights are zero off the
            connectivity, so these give them back exactly), ``feedback`` (the rule's B, shape (N, n_out))
            and ``optimizer`` (the optimizer's :meth:`state`, e.g. Adam ``t``, ``m``, ``v``: edge vectors
            where the optimizer steps on them, :attr:`edge_optimizer`, else its dense matrices).  Arrays
            are copies unless ``copy`` is false.
        """
        cp = True if copy else None  # None: NumPy copies only what is not an array already
        opt = self.optimizer.state()
        if type(self.optimizer) in CHUNK_OPTIMIZER:  # element by element: the synapses' moments are all
            opt = self._moments_as(opt, edges=True)
        return {
            "iteration": int(self.iteration),
            "weights": {k: np.array(v, copy=cp) for k, v in self._weight_edges(self.weights).items()},
            "feedback": np.array(self.feedback, copy=cp),
            "optimizer": {
                k: ({n: np.array(a, copy=cp) for n, a in v.items()} if isinstance(v, dict) else v)
                for k, v in opt.items()
            },
        }

    def _moments_as(self, state: dict[str, Any], edges: bool) -> dict[str, Any]:
        """An optimizer state with its moments (``m``, ``v``: dicts by projection) as edge vectors or dense
        matrices, each converted only where it has the other form (by its shape; a bias is one vector in
        both).  Dense moments off the connectivity, which an optimizer stepping on dense NumPy gradients
        may hold, are dropped by ``edges``: an optimizer of :data:`CHUNK_OPTIMIZER` acts element by
        element, and the updates there are masked, so they change nothing that is applied or logged."""
        conn = self.connectivity

        def convert(key: str, a: np.ndarray) -> np.ndarray:
            if key == "bias" or (np.ndim(a) == 1) == edges:
                return a
            return conn.to_edges(key, a) if edges else conn.to_dense(key, a)

        return {
            k: {key: convert(key, a) for key, a in v.items()} if k in ("m", "v") else v
            for k, v in state.items()
        }

    def _weight_edges(self, weights: Weights) -> dict[str, np.ndarray]:
        """Edge vectors of ``weights`` (``input``, ``recurrent``, ``output``, ``bias``), computed once per
        :class:`Weights` object: weights are replaced, never changed in place, and an iteration's
        :meth:`state` and the next one's record read the same weights (one gather over the dense matrices
        instead of two); an :class:`EdgeWeights`' own vectors."""
        if isinstance(weights, EdgeWeights) and weights.connectivity is self.connectivity:
            return weights.edges
        for held, edges in self._edges_of:
            if held is weights:
                return edges
        edges = self.connectivity.weight_vectors(weights)
        self._remember_edges(weights, edges)
        return edges

    def _remember_edges(self, weights: Weights, edges: dict[str, np.ndarray]) -> None:
        """Keep ``weights``' edge vectors with those asked for last (an iteration's record reads the
        weights before its update, its resume state those after it)."""
        self._edges_of = [*self._edges_of[-1:], (weights, edges)]

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state` (connectivity masks stay those of this trainer's initialization).

        Parameters
        ----------
        state : dict
            As returned by :meth:`state`; or the dense form of run logs of format version 1 (``weights``
            ``w_in``, ``w_rec``, ``w_out``, ``b_out``, dense moments).

        Raises
        ------
        ValueError
            If an array's shape differs from this trainer's.
        KeyError
            If a weight is missing.
        """
        w, conn = self.weights, self.connectivity
        given = state["weights"]
        dense = "w_rec" in given  # a run log of format version 1
        arrays = {}
        for key, attr in (("input", "w_in"), ("recurrent", "w_rec"), ("output", "w_out"), ("bias", "b_out")):
            a = np.asarray(given[attr if dense else key], dtype=float)
            want = getattr(w, attr).shape if dense else (conn.n_edges(key),)
            if a.shape != want:
                raise ValueError(f"state: {attr if dense else key} has shape {a.shape}, expected {want}")
            arrays[key] = conn.to_edges(key, a) if dense else a.copy()
        fb = np.asarray(state["feedback"], dtype=float)
        if fb.shape != np.shape(self.feedback):
            raise ValueError(f"state: feedback has shape {fb.shape}, expected {np.shape(self.feedback)}")
        if self.edge_optimizer:  # the form the trainer holds them in
            self.weights = conn.edge_weights(arrays)
            self._edges_of = []
        else:
            self.weights = conn.weights(arrays)  # zero off the connectivity, as every Weights
            self._edges_of = [(self.weights, arrays)]
        self.feedback = fb.copy()
        opt = state["optimizer"]
        if type(self.optimizer) in CHUNK_OPTIMIZER:  # the form this trainer's optimizer steps on
            opt = self._moments_as(opt, edges=self.edge_optimizer)
        self.optimizer.load_state(opt)
        self.iteration = int(state["iteration"])
        self._pending.clear()
        self._drawn.clear()
