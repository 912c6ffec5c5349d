"""NEST 3.10's e-prop example tasks, generated as the examples generate them.

``nest-sine`` is the task of ``eprop_supervised_regression_sine-waves_bsshslm_2020.py``.  The example
seeds the legacy generator (``np.random.seed(seed)``), draws the initial weights (the ``nest-sine``
initializer, :mod:`neuroplast.model.initializers`) and then, from the same generator, the task data;
this task replays the weight draws (:func:`~neuroplast.model.initializers.legacy_stream`) and continues:

* input: ``rand(n_steps, n_in) < spike_prob``, with the first step of the sequence set to no spike;
  frozen, the same in every trial (x_t of step t = 1..T is row t − 1);
* target: amplitudes A_m ~ U[0.5, 2), then phases φ_m ~ U[0, 2π) (one each per period), the sum over m
  of A_m sin(linspace(φ_m, φ_m + 2π·(n_steps // P_m), n_steps)) (periods P_m in steps), minus its first
  value, divided by max(max |·|, 10⁻⁶).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroplast.errors import ConfigError
from neuroplast.model.initializers import legacy_stream
from neuroplast.tasks import Task, Trial, register_task

__all__ = ["NestSineTask", "superimposed_sines"]


def _pos(v):
    return None if v > 0 else "must be > 0"


def _prob(v):
    return None if 0.0 <= v <= 1.0 else "must be in [0, 1]"


def superimposed_sines(rs: np.random.RandomState, n_steps: int, periods: tuple[int, ...]) -> np.ndarray:
    """NEST's sine-wave target from the legacy generator ``rs`` (module docstring), shape (n_steps,)."""
    amplitudes = rs.uniform(low=0.5, high=2.0, size=len(periods))
    phases = rs.uniform(low=0.0, high=2.0 * np.pi, size=len(periods))
    total: np.ndarray | float = 0.0
    for amp, phase, period in zip(amplitudes, phases, periods, strict=True):
        total = total + amp * np.sin(np.linspace(phase, phase + 2.0 * np.pi * (n_steps // period), n_steps))
    y = np.asarray(total, dtype=float)
    y = y - y[0]
    return y / max(np.abs(y).max(), 1e-6)


@register_task("nest-sine")
class NestSineTask(Task):
    """NEST's sine-wave regression: frozen input spikes → a sum of sines (module docstring).

    The data depend on the number of recurrent neurons and readouts (the weight draws before them), so
    the task is made by :meth:`from_config`.
    """

    kind = "regression"

    @dataclass(frozen=True)
    class Params:
        n_in: int = field(default=100, metadata={"checks": (_pos,)})
        spike_prob: float = field(default=0.05, metadata={"checks": (_prob,)})
        periods_steps: tuple[int, ...] = field(default=(1000, 500, 333, 200), metadata={"checks": (_pos,)})

    @classmethod
    def check_config(cls, cfg) -> None:
        if not cfg.task.periods_steps:
            raise ConfigError("task.periods_steps: must list at least one period (got [])")
        if cfg.network.n_out != 1:
            raise ConfigError(f"network.n_out: the nest-sine task has 1 output (got {cfg.network.n_out})")
        if cfg.training.loss != "mse":
            raise ConfigError(
                f"training.loss: the nest-sine task is a regression, use 'mse' (got {cfg.training.loss!r})"
            )

    @classmethod
    def from_config(cls, cfg, seed: int) -> NestSineTask:
        n = cfg.network
        return cls(cfg.task, cfg.simulation.n_steps, cfg.simulation.dt_ms, seed, n_rec=n.n_rec, n_out=n.n_out)

    def __init__(self, params, n_steps, dt_ms, seed, *, n_rec: int = 100, n_out: int = 1):
        super().__init__(params, n_steps, dt_ms, seed)
        p = self.params
        rs = legacy_stream("nest-sine", seed, p.n_in, n_rec, n_out)
        x = rs.rand(self.n_steps, p.n_in) < p.spike_prob
        x[0, :] = False
        self._x = x.astype(float)
        self._target = superimposed_sines(rs, self.n_steps, p.periods_steps)[:, None]

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        mask = np.ones(self.n_steps)
        return [Trial(self._x, self._target, mask) for _ in range(batch_size)]
