"""Evidence accumulation (Bellec et al. 2020, Fig. 3): count cues, answer after a delay."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroplast.errors import ConfigError
from neuroplast.tasks import Task, Trial, register_task


def _pos(v):
    return None if v > 0 else "must be > 0"


def check_evidence_config(cfg, task_name: str, need_steps: float) -> None:
    """The cross-table checks that every evidence-accumulation task shares.

    Parameters
    ----------
    cfg : the resolved config (its ``task`` table has ``n_in``).
    task_name : the task's registered name, for the messages.
    need_steps : how many simulation steps (dt = ``simulation.dt_ms``) the cues and the recall window
        take, possibly fractional; ``simulation.n_steps`` must be at least that.

    Raises
    ------
    ConfigError
        ``task.n_in`` not a multiple of 4 (four input groups), ``network.n_out`` not 2,
        ``training.loss`` not ``cross_entropy``, or too few ``simulation.n_steps``.
    """
    n_in = cfg.task.n_in
    if n_in % 4:
        raise ConfigError(f"task.n_in: must be a multiple of 4 (got {n_in})")
    if cfg.network.n_out != 2:
        raise ConfigError(f"network.n_out: the {task_name} task has 2 outputs (got {cfg.network.n_out})")
    if cfg.training.loss != "cross_entropy":
        raise ConfigError(
            f"training.loss: the {task_name} task needs 'cross_entropy' (got {cfg.training.loss!r})"
        )
    if need_steps > cfg.simulation.n_steps:
        raise ConfigError(
            f"simulation.n_steps: cues and recall need {int(np.ceil(need_steps))} steps "
            f"(got {cfg.simulation.n_steps})"
        )


@register_task("evidence")
class EvidenceTask(Task):
    """Left/right cues; after a delay the network must report the side with more cues.

    ``n_in`` inputs form four equal groups: left cues, right cues, recall cue, noise.
    Cues last ``cue_ms`` with ``gap_ms`` between them; after ``n_cues`` cues and a
    delay comes a recall window of ``recall_ms`` at the end of the trial, which is
    the only part that counts for the (cross-entropy) loss.  Trial k of iteration i
    is drawn from the seed and (i, k), so every run sees the same trials.
    """

    kind = "classification"
    n_out = 2

    @dataclass(frozen=True)
    class Params:
        n_in: int = field(default=40, metadata={"checks": (_pos,)})
        n_cues: int = field(default=7, metadata={"checks": (_pos,)})
        cue_ms: float = field(default=100.0, metadata={"checks": (_pos,)})
        gap_ms: float = field(default=50.0, metadata={"checks": (_pos,)})
        recall_ms: float = field(default=150.0, metadata={"checks": (_pos,)})
        cue_rate_hz: float = field(default=40.0, metadata={"checks": (_pos,)})
        noise_rate_hz: float = field(default=10.0, metadata={"checks": (_pos,)})

    @classmethod
    def check_config(cls, cfg) -> None:
        p = cfg.task
        check_evidence_config(
            cfg, cls.name, (p.n_cues * (p.cue_ms + p.gap_ms) + p.recall_ms) / cfg.simulation.dt_ms
        )

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        p, T, dt = self.params, self.n_steps, self.dt_ms
        g = p.n_in // 4
        out = []
        for k in range(batch_size):
            rng = np.random.default_rng([self.seed, 2, iteration, k])
            sides = rng.integers(0, 2, p.n_cues)
            rate = np.full((T, p.n_in), p.noise_rate_hz)
            rate[:, : 3 * g] = 0.0
            step = int(round((p.cue_ms + p.gap_ms) / dt))
            cue = int(round(p.cue_ms / dt))
            for c, side in enumerate(sides):
                rate[c * step : c * step + cue, side * g : (side + 1) * g] = p.cue_rate_hz
            recall = int(round(p.recall_ms / dt))
            rate[T - recall :, 2 * g : 3 * g] = p.cue_rate_hz
            x = (rng.random((T, p.n_in)) < rate * dt * 1e-3).astype(float)
            label = int(sides.sum() * 2 > p.n_cues)
            target = np.zeros((T, 2))
            target[:, label] = 1.0
            mask = np.zeros(T)
            mask[T - recall :] = 1.0
            out.append(Trial(x, target, mask, label))
        return out
