"""TOML configuration → validated, frozen dataclasses.

A config has four tables: ``[simulation]``, ``[network]``, ``[task]`` and
``[training]``, and a fifth, ``[nest]``, read only by a device with NEST's plasticity
(``nest-current``).  Every key is checked (unknown keys, types, ranges); an error is a
:class:`ConfigError` whose one-line message names the offending key, e.g.
``network.tau_m_ms: must be > 0 (got -3.0)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from neuroplast.devices import AUTO, device_info, require
from neuroplast.errors import ConfigError, file_kind
from neuroplast.model.initializers import INITIALIZERS
from neuroplast.model.losses import LOSSES
from neuroplast.model.neurons import DEFAULT_NEURON, NEURONS
from neuroplast.model.surrogates import SURROGATES
from neuroplast.plasticity import nest_current
from neuroplast.plasticity.optim import OPTIMIZERS
from neuroplast.plasticity.rules import get_rule, rule_names
from neuroplast.tasks import TASKS

__all__ = [
    "check_size",
    "check_log_size",
    "estimate_log_bytes",
    "estimate_memory",
    "GRADIENT_PATHS",
    "ConfigError",
    "SimulationConfig",
    "NetworkConfig",
    "TrainingConfig",
    "NestConfig",
    "Config",
    "load_config",
    "parse_config",
    "to_toml",
]


#: Values of ``training.path`` besides ``"auto"``: how the trainer gets a rule's gradient
#: (:mod:`neuroplast.training.trainer`).
GRADIENT_PATHS = ("online", "factorized")


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _nonneg(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _prob(v: float) -> str | None:
    return None if 0.0 < v <= 1.0 else "must be in (0, 1]"


def _fraction(v: float) -> str | None:
    return None if 0.0 <= v < 1.0 else "must be in [0, 1)"


def _check(*fns):
    return {"checks": fns}


#: Bounds of ``simulation.dt_ms`` (ms).  1 µs is far below every time scale of the model (Brian2's own
#: default step is 0.1 ms, spikes last about 1 ms); 1 s is longer than any membrane, adaptation or readout
#: time constant worth simulating, so a step outside this range is a typo (``1e-300``, ``1e306``), and
#: such values overflow or underflow on the way into Brian2 after the old log was already replaced.
DT_MS_RANGE = (1e-3, 1e3)
#: Bounds of the time constants ``*_ms`` of ``[network]`` (ms).  Below 1 µs (the shortest step) a
#: time constant is not resolved by any step and its decay factor exp(−Δt/τ) is 0 to machine precision;
#: 1e9 ms (≈ 11.6 days) already means "no decay" over any trial (the factor differs from 1 by < 1e-6 even
#: at the longest step), so a larger value can only be a typo.
TAU_MS_RANGE = (1e-3, 1e9)


def _in_range(lo: float, hi: float):
    def check(v: float) -> str | None:
        return None if lo <= v <= hi else f"must be in [{lo:g}, {hi:g}]"

    return check


_dt_range = _in_range(*DT_MS_RANGE)
_tau_range = _in_range(*TAU_MS_RANGE)


#: Field metadata of keys added after run logs existed: :func:`to_toml` writes them only when they differ
#: from their default, so the ``config`` text of a run log (and ``--resume`` of an older log) is unchanged
#: for configs that do not use them.
_NEW_KEY = {"omit_default": True}


@dataclass(frozen=True)
class SimulationConfig:
    """``[simulation]``: dt_ms (ms), n_steps per trial, seed, device (``auto`` or a name of
    :data:`neuroplast.devices.DEVICES`: runtime, cpp_standalone, numpy), and the engine keys chunk_iterations
    and threads."""

    dt_ms: float = field(default=1.0, metadata=_check(_positive, _dt_range))
    n_steps: int = field(default=1000, metadata=_check(_positive))
    seed: int = field(default=0, metadata=_check(_nonneg))
    device: str = "auto"
    # --- engine keys (how a run executes, never what it computes; see EXECUTION_KEYS) ---
    #: Training iterations per Brian2 launch (docs/model.md §7): 0 = auto (from a memory budget), 1 = one
    #: trial per launch. Configurations the chunked engine cannot express run one trial per launch.
    chunk_iterations: int = field(default=0, metadata={**_check(_nonneg), **_NEW_KEY, "execution": True})
    #: OpenMP threads of the cpp_standalone binary (docs/model.md §8); results are the same for every value.
    threads: int = field(default=1, metadata={**_check(_positive), **_NEW_KEY, "execution": True})

    def __post_init__(self) -> None:
        # the devices and what each can do: neuroplast.devices (``auto`` picks one when the run starts)
        if self.device.strip().lower() != AUTO:
            info = device_info(self.device)
            if self.threads > 1:
                require(info, "threads", "simulation.threads", "> 1 threads")


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: sizes, neuron constants (ms, units of v), connectivity, initial weights.

    ``neuron`` names the neuron model (:data:`neuroplast.model.neurons.NEURONS`, docs/model.md §10; each
    reads its own keys).  The default, ``alif``: the first ``n_rec − n_alif`` recurrent neurons are LIF
    (β = 0), the last ``n_alif`` are ALIF with adaptation strength ``beta`` and time constant
    ``tau_a_ms``.  ``lif_syn`` reads ``tau_m_ms`` and ``tau_syn_ms``; ``adlif`` ``tau_m_ms``, ``tau_w_ms``,
    ``adapt_a`` and ``adapt_b``.
    Initial weights come from the initializer ``init`` (default Gaussian with standard deviation
    ``w_*_scale / sqrt(fan_in)``; :mod:`neuroplast.model.initializers`); ``readout_bias = false`` keeps
    the readout bias b at 0 (not trained), as NEST's readout, which has none.
    """

    n_rec: int = field(default=100, metadata=_check(_positive))
    n_alif: int = field(default=0, metadata=_check(_nonneg))
    n_out: int = field(default=1, metadata=_check(_positive))
    tau_m_ms: float = field(default=30.0, metadata=_check(_positive, _tau_range))
    tau_a_ms: float = field(default=2000.0, metadata=_check(_positive, _tau_range))
    beta: float = field(default=0.0, metadata=_check(_nonneg))
    v_th: float = field(default=0.03, metadata=_check(_positive))
    n_ref: int = field(default=0, metadata=_check(_nonneg))
    gamma: float = field(default=0.3, metadata=_check(_positive))
    tau_out_ms: float = field(default=30.0, metadata=_check(_positive, _tau_range))
    surrogate: str = "piecewise_linear"
    input_scale: float = field(default=1.0, metadata=_check(_positive))
    readout_scale: float = field(default=1.0, metadata=_check(_positive))
    p_in: float = field(default=1.0, metadata=_check(_prob))
    p_rec: float = field(default=1.0, metadata=_check(_prob))
    w_in_scale: float = field(default=1.0, metadata=_check(_nonneg))
    w_rec_scale: float = field(default=0.0, metadata=_check(_nonneg))
    w_out_scale: float = field(default=1.0, metadata=_check(_nonneg))
    readout_bias: bool = field(default=True, metadata=_NEW_KEY)
    init: str = field(default="gaussian", metadata=_NEW_KEY)
    neuron: str = field(default=DEFAULT_NEURON, metadata=_NEW_KEY)
    tau_syn_ms: float = field(default=5.0, metadata={**_check(_positive, _tau_range), **_NEW_KEY})
    tau_w_ms: float = field(default=200.0, metadata={**_check(_positive, _tau_range), **_NEW_KEY})
    adapt_a: float = field(default=0.5, metadata=_NEW_KEY)
    adapt_b: float = field(default=0.5, metadata=_NEW_KEY)
    #: The keys a plugin's neuron model reads that ``[network]`` has no field for ((key, value) pairs,
    #: sorted; written as ``[network]`` keys, docs/plugins.md): filled by :func:`_network`, never by name.
    model_keys: tuple[tuple[str, float], ...] = field(default=(), metadata={"derived": True})

    def model_key(self, key: str) -> float | None:
        """The value of a ``[network]`` key of the neuron model: a field, or one of :attr:`model_keys`."""
        extra = dict(self.model_keys)
        if key in extra:
            return extra[key]
        value = getattr(self, key, None)
        return None if value is None or isinstance(value, (str, bool, tuple)) else float(value)

    def __post_init__(self) -> None:
        if self.neuron not in NEURONS:
            raise ConfigError(
                f"network.neuron: unknown neuron model {self.neuron!r} (known: {', '.join(NEURONS.names())})"
            )
        if NEURONS.get(self.neuron).name != DEFAULT_NEURON:
            for key in ("n_alif", "beta"):
                if getattr(self, key):
                    raise ConfigError(
                        f"network.{key}: a key of the {DEFAULT_NEURON!r} neuron model; network.neuron = "
                        f"{self.neuron!r} does not read it (got {getattr(self, key)!r}; leave it out)"
                    )
        if self.n_alif > self.n_rec:
            raise ConfigError(f"network.n_alif: must be <= network.n_rec ({self.n_rec}) (got {self.n_alif})")
        if self.surrogate not in SURROGATES:
            raise ConfigError(
                f"network.surrogate: unknown surrogate {self.surrogate!r} "
                f"(known: {', '.join(SURROGATES.names())})"
            )
        if self.init not in INITIALIZERS:
            raise ConfigError(
                f"network.init: unknown initializer {self.init!r} (known: {', '.join(INITIALIZERS.names())})"
            )
        if getattr(INITIALIZERS.get(self.init), "all_to_all", False):
            for key in ("p_in", "p_rec"):
                if getattr(self, key) != 1.0:
                    raise ConfigError(
                        f"network.{key}: the {self.init!r} initializer connects all to all, needs 1.0 "
                        f"(got {getattr(self, key)!r})"
                    )


@dataclass(frozen=True)
class TrainingConfig:
    """``[training]``: rule, loss, optimizer and schedule.

    ``learning_rate`` is per batch-mean gradient; ``reg_coeff`` c_reg and
    ``reg_rate_hz`` f* set the firing-rate regularization; ``weight_decay`` is used by
    the adaptive (Kolen–Pollack) feedback; ``feedback_scale`` scales random feedback.
    """

    rule: str = "eprop"
    loss: str = "mse"
    optimizer: str = "sgd"
    learning_rate: float = field(default=1e-4, metadata=_check(_positive))
    iterations: int = field(default=100, metadata=_check(_positive))
    batch_size: int = field(default=1, metadata=_check(_positive))
    reg_coeff: float = field(default=0.0, metadata=_check(_nonneg))
    reg_rate_hz: float = field(default=10.0, metadata=_check(_nonneg))
    weight_decay: float = field(default=0.0, metadata=_check(_nonneg))
    feedback_scale: float = field(default=1.0, metadata=_check(_positive))
    adam_beta1: float = field(default=0.9, metadata=_check(_fraction))
    adam_beta2: float = field(default=0.999, metadata=_check(_fraction))
    adam_eps: float = field(default=1e-8, metadata=_check(_positive))
    path: str = "auto"
    train_output: bool = True
    train_recurrent: bool = field(default=True, metadata=_NEW_KEY)
    update_every_steps: int = field(default=0, metadata=_check(_nonneg))
    average_gradient: bool = field(default=False, metadata=_NEW_KEY)
    #: Stop once the error over the trials of the last ``stop_window`` iterations is below this fraction
    #: (classification tasks; 0 = train all ``iterations``; the rule: :mod:`neuroplast.tasks.criterion`).
    stop_error: float = field(default=0.0, metadata={**_check(_fraction), **_NEW_KEY})
    stop_window: int = field(default=10, metadata={**_check(_positive), **_NEW_KEY})

    def __post_init__(self) -> None:
        if self.rule.strip().lower() not in rule_names():
            raise ConfigError(f"training.rule: unknown rule {self.rule!r} (known: {', '.join(rule_names())})")
        if self.loss not in LOSSES:
            raise ConfigError(
                f"training.loss: unknown loss {self.loss!r} (known: {', '.join(LOSSES.names())})"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"training.optimizer: unknown optimizer {self.optimizer!r} "
                f"(known: {', '.join(OPTIMIZERS.names())})"
            )
        if self.path != "auto" and self.path not in GRADIENT_PATHS:
            raise ConfigError(
                f"training.path: must be 'auto' or one of {', '.join(GRADIENT_PATHS)} (got {self.path!r})"
            )
        if self.update_every_steps:
            self._check_in_trial()

    def _check_in_trial(self) -> None:
        """In-trial updates (docs/model.md §6) need SGD, single trials, the online path, a Brian2 rule."""
        why = "in-trial updates (training.update_every_steps > 0)"
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"training.optimizer: {why} support 'sgd' and 'adam'; got {self.optimizer!r}")
        if self.batch_size != 1:
            raise ConfigError(
                f"training.batch_size: {why} learn from one trial at a time; got {self.batch_size}"
            )
        if self.path == "factorized":
            raise ConfigError(f"training.path: {why} run on the online path; got 'factorized'")
        rule = get_rule(self.rule)
        if not rule.online or rule.brian2_update is None:
            raise ConfigError(
                f"training.rule: {rule.name!r} cannot learn inside a trial (it has no Brian2 update code); "
                "set training.update_every_steps = 0"
            )


def _unit(v: float) -> str | None:
    return None if 0.0 <= v < 1.0 else "must be in [0, 1)"


@dataclass(frozen=True)
class NestConfig:
    """``[nest]``: NEST 3.10's current e-prop models, read by a device with ``nest_plasticity``
    (``simulation.device = "nest-current"``, docs/validation.md); NEST's parameter names and units.

    Defaults are NEST's sine-wave example (``eprop_supervised_regression_sine-waves.py``).  Neurons:
    ``tau_m_ms`` (ms), ``v_th`` (mV above E_L = 0), ``t_ref_ms`` (ms) of ``eprop_iaf``; the last
    ``network.n_alif`` neurons are ``eprop_iaf_adapt`` with ``adapt_beta`` (mV) and ``adapt_tau_ms`` (ms);
    the readout's ``tau_m_readout_ms`` (ms).  Regularization ``c_reg`` and ``f_target_hz`` (Hz) with the rate
    filter ``kappa_reg``; eligibility filter ``kappa``; ``surrogate`` (NEST's
    ``surrogate_gradient_function``) with ``surrogate_height`` (NEST's ``beta``) and ``surrogate_width``
    (mV, NEST's ``gamma``); ``isi_trace_cutoff_ms`` (``eprop_isi_trace_cutoff``, ms, a whole number of
    steps, at least 2).  Optimizer (``weight_optimizer`` of ``eprop_synapse``): ``optimizer``
    (``gradient_descent`` or ``adam``), ``eta``, ``beta_1``, ``beta_2``, ``epsilon``,
    ``optimizer_batch_size`` (in optimizer calls), ``optimize_each_step`` and the clipping bounds ``w_min``,
    ``w_max`` (pA).
    """

    tau_m_ms: float = field(default=30.0, metadata=_check(_positive, _tau_range))
    tau_m_readout_ms: float = field(default=30.0, metadata=_check(_positive, _tau_range))
    v_th: float = field(default=0.03, metadata=_check(_positive))
    t_ref_ms: float = field(default=0.0, metadata=_check(_nonneg))
    c_reg: float = field(default=300.0 / 1000.0, metadata=_check(_nonneg))
    f_target_hz: float = field(default=10.0, metadata=_check(_nonneg))
    kappa: float = field(default=0.97, metadata=_check(_unit))
    kappa_reg: float = field(default=0.97, metadata=_check(_unit))
    surrogate: str = "piecewise_linear"
    surrogate_height: float = field(default=10.0, metadata=_check(_nonneg))
    surrogate_width: float = field(default=1.0 / 33.3, metadata=_check(_positive))
    isi_trace_cutoff_ms: float = field(default=100.0, metadata=_check(_in_range(2.0, 1e9)))
    optimizer: str = "gradient_descent"
    eta: float = field(default=1e-4 * (1.0 - 0.97) ** 2, metadata=_check(_positive))
    beta_1: float = field(default=0.9, metadata=_check(_unit))
    beta_2: float = field(default=0.999, metadata=_check(_unit))
    epsilon: float = field(default=1e-7, metadata=_check(_positive))
    optimizer_batch_size: int = field(default=1, metadata=_check(_positive))
    optimize_each_step: bool = False
    w_min: float = -100.0
    w_max: float = 100.0
    adapt_beta: float = field(default=0.0, metadata=_check(_nonneg))
    adapt_tau_ms: float = field(default=10.0, metadata=_check(_positive, _tau_range))

    def __post_init__(self) -> None:
        if self.surrogate not in nest_current.SURROGATES:
            raise ConfigError(
                f"nest.surrogate: unknown surrogate gradient function {self.surrogate!r} "
                f"(NEST's: {', '.join(nest_current.SURROGATES)})"
            )
        if self.optimizer not in nest_current.OPTIMIZERS:
            raise ConfigError(
                f"nest.optimizer: unknown weight optimizer {self.optimizer!r} "
                f"(NEST's: {', '.join(nest_current.OPTIMIZERS)})"
            )
        if self.w_min > self.w_max:
            raise ConfigError(f"nest.w_min: must be <= nest.w_max ({self.w_max!r}) (got {self.w_min!r})")

    def changed(self) -> list[str]:
        """The keys whose value differs from their default, in table order."""
        return [f.name for f in fields(self) if getattr(self, f.name) != f.default]


@dataclass(frozen=True)
class Config:
    """A whole resolved configuration."""

    simulation: SimulationConfig
    network: NetworkConfig
    task: Any  # the task's own frozen parameter dataclass (see neuroplast.tasks)
    training: TrainingConfig
    source: str = ""
    nest: NestConfig = field(default_factory=NestConfig)

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one table changed (validated again)."""
        sec = getattr(self, section)
        data = {f.name: getattr(sec, f.name) for f in fields(sec) if not f.metadata.get("derived")}
        if section == "network":
            data.update(dict(sec.model_keys))
        data.update(changes)
        new_sec = _network(data) if section == "network" else _build(type(sec), data, section)
        new = dataclasses.replace(self, **{section: new_sec})
        _check_tables(new)
        TASKS.get(TASKS.name_of(type(new.task))).check_config(new)
        return new


_SCALARS = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}
_INT_LIMIT = 2**63


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (inner,) = typing.get_args(tp)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list (got {type(value).__name__})")
        return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    allowed = _SCALARS.get(tp)
    if allowed is None:  # pragma: no cover - programming error in a dataclass
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    if isinstance(value, bool) and tp is not bool:
        raise ConfigError(f"{key}: must be {tp.__name__} (got bool)")
    if not isinstance(value, allowed):
        raise ConfigError(f"{key}: must be {tp.__name__} (got {type(value).__name__} {value!r})")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number (got {value!r})")
    if tp is int and not -_INT_LIMIT < value < _INT_LIMIT:
        raise ConfigError(f"{key}: must be an integer below 2**63 in magnitude (got {value!r})")
    return tp(value)


def _network(data: dict[str, Any]) -> NetworkConfig:
    """``[network]``, with the keys of the neuron model that ``NetworkConfig`` has no field for.

    A neuron model's :class:`~neuroplast.model.neurons.Parameter` names its ``[network]`` key; the
    built-in models' keys are fields, a plugin's may be new: those are accepted for that model only (a
    number; a time constant of a decay factor also within :data:`TAU_MS_RANGE`), default filled in, and
    kept in :attr:`NetworkConfig.model_keys`.
    """
    data = dict(data)
    name = data.get("neuron", DEFAULT_NEURON)
    own = {f.name for f in fields(NetworkConfig)}
    params = NEURONS.get(name).parameters if isinstance(name, str) and name in NEURONS else ()
    extra: dict[str, float] = {}
    for par in params:
        if par.key in own or par.key in extra:
            continue
        key = f"network.{par.key}"
        value = _coerce(float, data.pop(par.key, par.default), key)
        if par.decay and not TAU_MS_RANGE[0] <= value <= TAU_MS_RANGE[1]:
            raise ConfigError(
                f"{key}: a time constant (ms) of neuron model {name!r}, {_tau_range(value)} (got {value!r})"
            )
        extra[par.key] = value
    net = _build(NetworkConfig, data, "network")
    return dataclasses.replace(net, model_keys=tuple(sorted(extra.items())))


def _build(cls: type, data: dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls) if not f.metadata.get("derived")}
    for key in data:
        if key not in names:
            raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data or f.metadata.get("derived"):
            continue
        key = f"{section}.{f.name}"
        value = _coerce(hints[f.name], data[f.name], key)
        for check in f.metadata.get("checks", ()):
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                msg = check(v)
                if msg:
                    raise ConfigError(f"{key}: {msg} (got {v!r})")
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from None


def _check_physics(cfg: Config) -> None:
    """Bounds that involve the time step: rates and the refractory period.

    A neuron (or an input channel) spikes at most once per step, so every rate key (``*_hz``, in any
    table but ``[simulation]``; a task's input rates and ``training.reg_rate_hz``) must give at most one
    spike per step, ``rate_hz · dt_ms / 1000 <= 1``: more is no rate the discrete model can produce (a
    Bernoulli probability above 1).  ``network.n_ref`` is bounded by ``simulation.n_steps``: a refractory
    period longer than a trial only says "at most one spike per trial", and larger numbers (``1e9``) only
    overflow the step counters of the simulation.
    """
    dt = cfg.simulation.dt_ms
    for section in ("network", "task", "training"):
        sec = getattr(cfg, section)
        for f in fields(sec):
            v = getattr(sec, f.name)
            if f.name.endswith("_hz") and isinstance(v, (int, float)) and v * dt / 1000.0 > 1.0:
                raise ConfigError(
                    f"{section}.{f.name}: {v!r} Hz is more than one spike per time step of "
                    f"simulation.dt_ms = {dt!r} ms; must be <= {1000.0 / dt:.6g} Hz"
                )
    n_ref, n_steps = cfg.network.n_ref, cfg.simulation.n_steps
    if n_ref > n_steps:
        raise ConfigError(
            f"network.n_ref: {n_ref} refractory steps are longer than a trial; must be <= "
            f"simulation.n_steps ({n_steps})"
        )


def _check_tables(cfg: Config) -> None:
    """Checks across ``[network]``, ``[training]`` and ``[nest]`` (and :func:`_check_physics`)."""
    _check_physics(cfg)
    _check_nest(cfg)  # first: NEST's models name their own keys for what the others would refuse
    if cfg.training.average_gradient and cfg.training.update_every_steps:
        raise ConfigError(
            "training.average_gradient: true needs per-trial updates; "
            f"got training.update_every_steps = {cfg.training.update_every_steps}"
        )
    if not cfg.training.train_recurrent and cfg.training.update_every_steps:
        raise ConfigError(
            "training.train_recurrent: false needs per-trial updates (the in-trial updates train W_rec); "
            f"got training.update_every_steps = {cfg.training.update_every_steps}"
        )
    if not cfg.network.readout_bias and cfg.training.update_every_steps:
        raise ConfigError(
            "network.readout_bias: false needs per-trial updates (the in-trial updates train the bias); "
            f"got training.update_every_steps = {cfg.training.update_every_steps}"
        )
    if cfg.training.update_every_steps and cfg.simulation.device.strip().lower() != AUTO:
        info = device_info(cfg.simulation.device)
        require(info, "in_trial", "training.update_every_steps", "learning inside a trial")
    if cfg.training.stop_error > 0 and getattr(TASKS.get(TASKS.name_of(type(cfg.task))), "kind", "") != (
        "classification"
    ):
        raise ConfigError(
            "training.stop_error: the stopping criterion counts wrong answers, so it needs a classification "
            f"task (task.name = {TASKS.name_of(type(cfg.task))!r} is a regression); set it to 0"
        )
    _check_neuron(cfg)


def _nest_device(cfg: Config) -> bool:
    """Whether ``simulation.device`` names a device with NEST's plasticity (``auto`` never picks one)."""
    device = cfg.simulation.device
    return device.strip().lower() != AUTO and device_info(device).capabilities.nest_plasticity


#: Keys of the other tables that a device with NEST's plasticity does not read, with what to set instead
#: (NEST's parameter in ``[nest]``, or why): they must stay at their defaults (or be left out).
NEST_UNREAD = {
    "network.tau_m_ms": "nest.tau_m_ms",
    "network.tau_out_ms": "nest.tau_m_readout_ms",
    "network.v_th": "nest.v_th",
    "network.n_ref": "nest.t_ref_ms",
    "network.tau_a_ms": "nest.adapt_tau_ms",
    "network.beta": "nest.adapt_beta",
    "network.gamma": "nest.surrogate_height",
    "network.surrogate": "nest.surrogate",
    "network.input_scale": "none: NEST's synapses add their weight to v",
    "network.readout_scale": "none: NEST's readout adds its weight to its v",
    "network.neuron": "none: eprop_iaf, with network.n_alif eprop_iaf_adapt neurons",
    "training.optimizer": "nest.optimizer",
    "training.learning_rate": "nest.eta",
    "training.adam_beta1": "nest.beta_1",
    "training.adam_beta2": "nest.beta_2",
    "training.adam_eps": "nest.epsilon",
    "training.reg_coeff": "nest.c_reg",
    "training.reg_rate_hz": "nest.f_target_hz",
    "training.update_every_steps": "nest.optimize_each_step (NEST updates during every sequence)",
    "training.path": "none: NEST's synapses compute their own gradient",
    "training.weight_decay": "none: NEST's optimizer has none",
    "training.feedback_scale": "none: B is the initializer's",
    "training.average_gradient": "nest.optimizer_batch_size",
    "training.train_output": "none: NEST trains every synapse",
    "training.train_recurrent": "none: NEST trains every synapse",
}
#: The rule that is NEST's e-prop in neuroplast's terms: a fixed random feedback B (the initializer's).
NEST_RULE = "eprop-random"


def _nest_elsewhere(key: str, cfg: Config) -> str:
    """The message refusing ``[nest]`` key ``key`` on a device without NEST's plasticity."""
    return (
        f"nest.{key}: the [nest] table is read only by a device with NEST's plasticity "
        f"(simulation.device = 'nest-current'); got simulation.device = {cfg.simulation.device!r}"
    )


def _check_nest(cfg: Config) -> None:
    """A device with NEST's plasticity (``nest-current``) runs what NEST's current models can express; a
    ``[nest]`` key on any other device is refused (it would be ignored).  One line naming the key."""
    if not _nest_device(cfg):
        changed = cfg.nest.changed()
        if changed:
            raise ConfigError(_nest_elsewhere(changed[0], cfg))
        return
    what = f"simulation.device = {cfg.simulation.device!r}"
    for key, instead in NEST_UNREAD.items():
        section, name = key.split(".")
        f = next(f for f in fields(getattr(cfg, section)) if f.name == name)
        if getattr(getattr(cfg, section), name) != f.default:
            raise ConfigError(
                f"{key}: not read by {what} (NEST's models; set {instead}); leave it out "
                f"(got {getattr(getattr(cfg, section), name)!r})"
            )
    rule = get_rule(cfg.training.rule).name
    if rule != NEST_RULE:
        raise ConfigError(
            f"training.rule: {what} learns with NEST's e-prop, whose feedback B is fixed and random: "
            f"{NEST_RULE!r} (got {cfg.training.rule!r})"
        )
    if cfg.training.batch_size != 1:
        raise ConfigError(
            f"training.batch_size: {what} runs one sequence per iteration, as NEST does "
            f"(its optimizer's batch is nest.optimizer_batch_size); got {cfg.training.batch_size}"
        )
    if cfg.training.loss != "mse":
        raise ConfigError(f"training.loss: {what} runs NEST's eprop_readout (mse); got {cfg.training.loss!r}")
    if cfg.network.readout_bias:
        raise ConfigError(f"network.readout_bias: {what} needs false (NEST's eprop_readout has no bias)")
    if cfg.simulation.dt_ms != 1.0:
        raise ConfigError(
            f"simulation.dt_ms: {what} runs NEST's example resolution, 1.0 ms (got {cfg.simulation.dt_ms!r})"
        )
    if cfg.nest.isi_trace_cutoff_ms != round(cfg.nest.isi_trace_cutoff_ms):
        raise ConfigError(
            "nest.isi_trace_cutoff_ms: must be a whole number of 1 ms steps "
            f"(got {cfg.nest.isi_trace_cutoff_ms!r})"
        )
    for key in ("p_in", "p_rec"):
        if getattr(cfg.network, key) != 1.0:
            raise ConfigError(
                f"network.{key}: {what} connects all to all (without autapses) as NEST's examples do; "
                f"needs 1.0 (got {getattr(cfg.network, key)!r})"
            )


def _check_neuron(cfg: Config) -> None:
    """A neuron model other than ``alif`` (docs/model.md §10): what runs it so far.

    Such a model is simulated by a device with the ``neuron_models`` capability and trained by a rule whose
    gradient is e-prop with its B (the derived eligibility, :mod:`neuroplast.gradients.derived`) on the
    online path; the rest is refused here, one line naming the key."""
    name = cfg.network.neuron
    if NEURONS.get(name).name == DEFAULT_NEURON:
        return
    what = f"network.neuron = {name!r}"
    if cfg.simulation.device.strip().lower() != AUTO:
        info = device_info(cfg.simulation.device)
        require(info, "neuron_models", "network.neuron", f"neuron model {name!r}")
    if cfg.training.update_every_steps:
        raise ConfigError(
            f"training.update_every_steps: learning inside a trial runs the {DEFAULT_NEURON!r} neuron model "
            f"only (its Brian2 and NumPy implementations); {what} learns per trial (0)"
        )
    if cfg.training.path == "factorized":
        raise ConfigError(
            f"training.path: 'factorized' is the {DEFAULT_NEURON!r} model's; {what} needs 'online' or 'auto'"
        )
    rule = get_rule(cfg.training.rule)(cfg.training)
    own = rule.keeps_reset or rule.eligibility_trace(cfg) is not None
    if not (rule.simulated and (rule.eprop_gradient or own)):
        raise ConfigError(
            f"training.rule: {cfg.training.rule!r} computes its own gradient, written for the "
            f"{DEFAULT_NEURON!r} neuron model; {what} trains with e-prop rules (their eligibility derived "
            "from the model's equations)"
        )


def parse_config(data: dict[str, Any], source: str = "<dict>", *, check_resources: bool = True) -> Config:
    """Validate a parsed TOML mapping into a :class:`Config`.

    Parameters
    ----------
    data : dict
        The parsed TOML tables.
    source : str
        Where ``data`` came from (the config's file name), kept as :attr:`Config.source`.
    check_resources : bool
        Also refuse a config whose run cannot fit into this machine's memory (:func:`check_size`).  The
        readers of a run log's stored config (``compare``, ``analyze``) pass ``False``: a log is data, and
        a run made on a larger machine must stay readable here.

    Raises
    ------
    ConfigError
        One line naming the offending key.
    """

    known = {"simulation", "network", "task", "training", "nest"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{key}: unknown table (known: {', '.join(sorted(known))})")
        if not isinstance(data[key], dict):
            raise ConfigError(f"{key}: must be a table")
    sim = _build(SimulationConfig, data.get("simulation", {}), "simulation")
    net = _network(data.get("network", {}))
    task_data = dict(data.get("task", {}))
    task_name = task_data.pop("name", "sine")
    if not isinstance(task_name, str) or task_name not in TASKS:
        raise ConfigError(f"task.name: unknown task {task_name!r} (known: {', '.join(TASKS.names())})")
    task_cls = TASKS.get(task_name)
    task = _build(task_cls.Params, task_data, "task")
    train = _build(TrainingConfig, data.get("training", {}), "training")
    nest = _build(NestConfig, data.get("nest", {}), "nest")
    cfg = Config(sim, net, task, train, source, nest)
    given = list(data.get("nest", {}))
    if given and not _nest_device(cfg):
        raise ConfigError(_nest_elsewhere(given[0], cfg))
    if train.update_every_steps >= sim.n_steps:
        raise ConfigError(
            f"training.update_every_steps: {train.update_every_steps} leaves no update inside a trial of "
            f"simulation.n_steps = {sim.n_steps} steps (use a smaller value, or 0 for per-trial updates)"
        )
    _check_tables(cfg)
    task_cls.check_config(cfg)
    if check_resources:
        check_size(cfg)
    return cfg


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 0


#: Size keys of the memory estimate, with the value each is compared against when the key is named.
_SIZE_KEYS = {
    "network.n_rec": 100,
    "task.n_in": 100,
    "network.n_out": 1,
    "simulation.n_steps": 1000,
    "training.batch_size": 1,
}


def _sizes(cfg: Config) -> dict[str, float]:
    n = cfg.network
    return {
        "network.n_rec": float(n.n_rec),
        "task.n_in": float(getattr(cfg.task, "n_in", 0)),
        "network.n_out": float(n.n_out),
        "simulation.n_steps": float(cfg.simulation.n_steps),
        "training.batch_size": float(cfg.training.batch_size),
        "p_rec": float(n.p_rec),
        "p_in": float(n.p_in),
    }


def _estimate(z: dict[str, float]) -> float:
    N, n_in, n_out = z["network.n_rec"], z["task.n_in"], z["network.n_out"]
    T, B = z["simulation.n_steps"], z["training.batch_size"]
    synapses = N * (N * z["p_rec"] + n_in * z["p_in"] + n_out)
    per_trial = T * (n_in + n_out + 1) * 8.0 * 3 + T * N * 8.0 * 6
    return synapses * 8.0 * (5 + 7 * B) + B * per_trial


def estimate_memory(cfg: Config) -> float:
    """Bytes a run of ``cfg`` needs at least (a lower bound from the sizes alone, float64 everywhere).

    Per synapse: the weight, its mask, the gradient and the optimizer's moments (≈ 5 numbers) and, in each
    of the batch's copies side by side in the simulation, the weight and eligibility state (≈ 7 numbers).
    Per trial of a batch and step: input, target and mask (three copies each) and the recorded recurrent
    states (v, a, z, ψ, refractory flag, learning signal).
    """
    return _estimate(_sizes(cfg))


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if b < 1000 or unit == "PB":
            return f"{b:.3g} {unit}"
        b /= 1000
    return f"{b:.3g} PB"  # pragma: no cover


def estimate_log_bytes(cfg: Config, iterations: int | None = None) -> float:
    """Bytes the run log of ``cfg`` takes at least (a lower bound from the sizes alone).

    Per trial the input spikes (one byte per step and input), the regression target and one gradient per
    synapse (float64); per iteration the weights before the update and the update of every synapse.
    Spikes, traces and the resume state come on top.
    """
    z = _sizes(cfg)
    N, n_in, n_out = z["network.n_rec"], z["task.n_in"], z["network.n_out"]
    T, B = z["simulation.n_steps"], z["training.batch_size"]
    edges = N * (N * z["p_rec"] + n_in * z["p_in"] + 2 * n_out) + n_out
    per_iteration = B * (T * n_in + T * n_out * 8.0 + edges * 8.0) + 2 * edges * 8.0
    n = cfg.training.iterations if iterations is None else int(iterations)
    return float(n) * per_iteration


def check_log_size(cfg: Config, folder: str | Path, iterations: int | None = None) -> None:
    """Refuse a run whose log (:func:`estimate_log_bytes`) cannot fit on the disk holding ``folder``.

    A folder on a file system of size 0 (``/proc``, ``/sys``: kernel views that hold no files) is refused
    as an output folder, not blamed on the config.

    Raises
    ------
    ConfigError
        Naming the output folder when its file system has no storage at all; else naming
        ``training.iterations``, the estimate, the output folder and its free space.
    """
    import shutil

    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return
    if usage.total == 0:
        raise ConfigError(
            f"{folder}: the output folder is on a file system without storage (size 0, such as /proc or "
            "/sys); write the run log to another folder"
        )
    need = estimate_log_bytes(cfg, iterations)
    if need > usage.free:
        n = cfg.training.iterations if iterations is None else int(iterations)
        raise ConfigError(
            f"training.iterations: {n} iterations make a run log of at least {_fmt_bytes(need)}; "
            f"the output folder {folder} has {_fmt_bytes(usage.free)} free"
        )


def check_size(cfg: Config, available: int | None = None) -> None:
    """Refuse a config whose estimated memory (:func:`estimate_memory`) exceeds this machine's.

    The key named is the size whose reduction to a usual value (100 neurons or inputs, 1000 steps, one
    output, batch 1) shrinks the estimate most.

    Raises
    ------
    ConfigError
        Naming that key, the estimate and the memory of this machine.
    """
    available = memory_bytes() if available is None else int(available)
    if available <= 0:
        return
    sizes = _sizes(cfg)
    total = _estimate(sizes)
    if total <= available:
        return

    def without(key: str) -> float:
        return _estimate({**sizes, key: min(sizes[key], _SIZE_KEYS[key])})

    key = min(_SIZE_KEYS, key=without)
    raise ConfigError(
        f"{key}: {int(sizes[key])} makes the run need about {_fmt_bytes(total)} of memory; "
        f"this machine has {_fmt_bytes(available)}"
    )


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file (errors name the file or the key).

    A regular file or a pipe (a FIFO, or a shell's process substitution ``<(...)``: read to its end) is
    read; a device, socket or folder is refused with one line saying what it is.
    """
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        why = "is a symbolic link to a missing file" if p.is_symlink() else "config file not found"
        raise ConfigError(f"{p}: {why}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{p}: is a directory, not a config file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ConfigError(f"{p}: is {file_kind(mode)}, not a config file (a TOML text file)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not valid TOML (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({str(exc).splitlines()[0]})") from None
    return parse_config(data, str(p))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


#: Keys that choose how a run executes and never change its results (``section.key``): a run log stores
#: them only when they differ from their default, and ``--resume`` ignores them.
EXECUTION_KEYS = ("simulation.chunk_iterations", "simulation.threads")


def to_toml(cfg: Config) -> str:
    """The full resolved config (every key, defaults included; :data:`EXECUTION_KEYS` and keys added after
    run logs existed only when not at their default, unless the neuron model reads them) as TOML text."""

    lines: list[str] = []
    # the keys the neuron model reads are always written: its run log says what it simulated
    read = {p.key for p in NEURONS.get(cfg.network.neuron).parameters}
    for section in ("simulation", "network", "task", "training"):
        sec = getattr(cfg, section)
        lines.append(f"[{section}]")
        if section == "task":
            lines.append(f"name = {_toml_value(TASKS.name_of(type(sec)))}")
        for f in fields(sec):
            if f.metadata.get("derived"):
                continue
            if f.metadata.get("omit_default") and getattr(sec, f.name) == f.default:
                if not (section == "network" and f.name in read):
                    continue
            lines.append(f"{f.name} = {_toml_value(getattr(sec, f.name))}")
        if section == "network":  # a plugin neuron model's own keys
            lines += [f"{k} = {_toml_value(v)}" for k, v in sec.model_keys]
        lines.append("")
    if _nest_device(cfg) or cfg.nest.changed():  # [nest]: only in configs that use it
        lines.append("[nest]")
        lines += [f"{f.name} = {_toml_value(getattr(cfg.nest, f.name))}" for f in fields(cfg.nest)]
        lines.append("")
    return "\n".join(lines)
