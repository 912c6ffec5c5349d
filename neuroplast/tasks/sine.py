"""Pattern generation (Bellec et al. 2020, Fig. 2): frozen Poisson input → sum of sines."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroplast.errors import ConfigError
from neuroplast.tasks import Task, Trial, register_task


def _pos(v):
    return None if v > 0 else "must be > 0"


@register_task("sine")
class SineTask(Task):
    """Regress a fixed sum of sines from frozen Poisson input spikes.

    y*_t = Σ_m A_m sin(2π t dt / P_m + φ_m), amplitudes A_m ~ U[0.5, 2] and phases
    φ_m ~ U[0, 2π) drawn once from the seed, then scaled so max |y*| = ``target_scale``.
    The input (``n_in`` Poisson trains at ``rate_hz``) is drawn once and frozen.
    """

    kind = "regression"

    @dataclass(frozen=True)
    class Params:
        n_in: int = field(default=100, metadata={"checks": (_pos,)})
        rate_hz: float = field(default=50.0, metadata={"checks": (_pos,)})
        periods_ms: tuple[float, ...] = field(
            default=(1000.0, 500.0, 333.0, 200.0), metadata={"checks": (_pos,)}
        )
        target_scale: float = field(default=1.0, metadata={"checks": (_pos,)})

    @classmethod
    def check_config(cls, cfg) -> None:
        if not cfg.task.periods_ms:
            raise ConfigError("task.periods_ms: must list at least one period (got [])")
        if cfg.network.n_out != 1:
            raise ConfigError(f"network.n_out: the sine task has 1 output (got {cfg.network.n_out})")
        if cfg.training.loss != "mse":
            raise ConfigError(
                f"training.loss: the sine task is a regression, use 'mse' (got {cfg.training.loss!r})"
            )

    def __init__(self, params, n_steps, dt_ms, seed):
        super().__init__(params, n_steps, dt_ms, seed)
        rng = np.random.default_rng([seed, 1])
        p = self.params
        t_ms = np.arange(1, self.n_steps + 1) * self.dt_ms
        amp = rng.uniform(0.5, 2.0, len(p.periods_ms))
        phase = rng.uniform(0.0, 2 * np.pi, len(p.periods_ms))
        y = sum(
            a * np.sin(2 * np.pi * t_ms / per + ph)
            for a, per, ph in zip(amp, p.periods_ms, phase, strict=True)
        )
        y = y * (p.target_scale / np.max(np.abs(y)))
        self._target = y[:, None]
        prob = p.rate_hz * self.dt_ms * 1e-3
        self._x = (rng.random((self.n_steps, p.n_in)) < prob).astype(float)

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        mask = np.ones(self.n_steps)
        return [Trial(self._x, self._target, mask) for _ in range(batch_size)]
