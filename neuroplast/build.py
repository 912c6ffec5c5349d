"""From a validated config to the objects a run is made of: ``build(cfg) -> Setup``.

:class:`Setup` is everything that is decided before the first trial — model constants, connectivity,
seeded initial weights, the task, the rule and its initial feedback state, the loss and the regularizer's
target — built from registries by name.  The trainer, the replay of a run log and the
tests all start from the same :func:`build`, so a run and its offline replay cannot disagree about them.
Brian2 is not imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroplast.config import Config
from neuroplast.model.connectivity import Connectivity
from neuroplast.model.initializers import initialize
from neuroplast.model.losses import Loss, get_loss
from neuroplast.model.neurons import DEFAULT_NEURON, NeuronModel, alif_values, get_neuron
from neuroplast.model.params import ModelParams, Weights
from neuroplast.plasticity.rules import Rule, get_rule
from neuroplast.tasks import TASKS, Task

__all__ = ["Setup", "build", "model_params", "neuron_values", "init_weights", "target_rate"]


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


def neuron_values(cfg: Config, params: ModelParams | None = None) -> tuple[NeuronModel, dict[str, Any]]:
    """The neuron model of ``network.neuron`` and its parameters' values (floats or (N,) arrays).

    Each :class:`~neuroplast.model.neurons.Parameter` reads its ``[network]`` key (a time constant in ms
    becomes exp(−dt/τ) when the parameter is a decay factor): a field of ``[network]``, or a plugin
    model's own key (:attr:`~neuroplast.config.NetworkConfig.model_keys`, its default filled in).
    For ``alif`` the values are those of :func:`model_params` (α, and ρ, β per neuron: the first
    ``n_rec − n_alif`` neurons LIF), so that both descriptions are one model.
    """
    model = get_neuron(cfg.network.neuron)
    if model.name == DEFAULT_NEURON:
        p = model_params(cfg) if params is None else params
        return model, alif_values(p)
    dt = cfg.simulation.dt_ms
    values: dict[str, Any] = {}
    for par in model.parameters:
        given = cfg.network.model_key(par.key)
        v = float(par.default) if given is None else given
        values[par.name] = float(np.exp(-dt / v)) if par.decay else v
    return model, values


def init_weights(cfg: Config, n_in: int, seed: int) -> Weights:
    """Seeded initial weights and masks of ``network.init`` (:mod:`neuroplast.model.initializers`)."""
    return initialize(cfg.network.init, cfg.network, n_in, seed).weights


def target_rate(cfg: Config) -> float:
    """Target rate f* of the rate regularizer, spikes per step (``reg_rate_hz · dt_ms · 1e-3``)."""
    return cfg.training.reg_rate_hz * cfg.simulation.dt_ms * 1e-3


@dataclass(frozen=True)
class Setup:
    """Everything a run is made of before its first trial.

    Attributes
    ----------
    cfg : Config
        The resolved config (with the rule and seed actually used).
    seed : int
        Seed of weights, feedback and task data.
    params : ModelParams
        Model constants.
    weights : Weights
        Initial weights (with the connectivity masks).
    connectivity : Connectivity
        Masks and edge lists; the one edge layout of the run log.
    task : Task
        Yields the trials.
    rule : Rule
        The plasticity rule.
    feedback : ndarray (N, n_out)
        The rule's initial feedback state B.
    loss : Loss
        The task loss.
    f_target : float
        Target rate of the regularizer, spikes per step.
    neuron : NeuronModel
        The neuron model (``network.neuron``; docs/model.md §10).
    neuron_values : mapping
        Its parameters (:func:`neuron_values`).
    """

    cfg: Config
    seed: int
    params: ModelParams
    weights: Weights
    connectivity: Connectivity
    task: Task
    rule: Rule
    feedback: np.ndarray
    loss: Loss
    f_target: float
    neuron: NeuronModel
    neuron_values: Mapping[str, Any]

    @property
    def rule_name(self) -> str:
        """``training.rule`` as configured."""
        return self.cfg.training.rule


def build(cfg: Config, *, rule: str | None = None, seed: int | None = None) -> Setup:
    """Build the :class:`Setup` of a config.

    Parameters
    ----------
    cfg : Config
    rule : str, optional
        Use this rule instead of ``training.rule`` (the config is changed accordingly).
    seed : int, optional
        Use this seed instead of ``simulation.seed`` (the config is changed accordingly).

    Returns
    -------
    Setup
    """
    if rule is not None and rule != cfg.training.rule:
        cfg = cfg.replace("training", rule=rule)
    if seed is not None and int(seed) != cfg.simulation.seed:
        cfg = cfg.replace("simulation", seed=int(seed))
    seed_ = int(cfg.simulation.seed)
    rule_obj = get_rule(cfg.training.rule)(cfg.training)
    rule_obj.trace = rule_obj.eligibility_trace(cfg)  # a rule's own eligibility (None: e-prop's)
    task_cls: Any = TASKS.get(TASKS.name_of(type(cfg.task)))
    task = task_cls.from_config(cfg, seed_)
    initial = initialize(cfg.network.init, cfg.network, task.n_in, seed_)
    weights = initial.weights
    feedback = rule_obj.init_feedback(weights, np.random.default_rng([seed_, 3]))
    if initial.feedback is not None and rule_obj.random_feedback:
        feedback = np.array(initial.feedback, dtype=float)  # the initializer's own B (NEST's examples)
    params = model_params(cfg)
    neuron, values = neuron_values(cfg, params)
    return Setup(
        cfg=cfg,
        seed=seed_,
        params=params,
        weights=weights,
        connectivity=Connectivity.of(weights),
        task=task,
        rule=rule_obj,
        feedback=feedback,
        loss=get_loss(cfg.training.loss),
        f_target=target_rate(cfg),
        neuron=neuron,
        neuron_values=values,
    )
