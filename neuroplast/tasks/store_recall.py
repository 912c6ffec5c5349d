"""Store-recall (Bellec et al. 2018, NeurIPS; 2020, Nat. Commun.): hold one bit across a delay.

A trial is a sequence of ``n_slots`` slots of ``slot_ms``. Every slot but the last shows a random bit
(the *bit 0* or the *bit 1* input group fires); in one of them, drawn at random, the *store* group fires
too: that bit must be kept. The last slot is the *recall* slot (the *recall* group fires, no bit is shown)
and is the only part of the trial that counts for the loss: the readout must report the stored bit there.
Every other bit is a distractor, so the network has to gate what it keeps by the store cue and carry it
across ``min_delay_slots`` to ``n_slots - 2`` distractor slots — with 20 ms membranes, a delay that only
slow adaptation (ALIF, τ_a ≈ 1–2 s) or recurrent activity can bridge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroplast.errors import ConfigError
from neuroplast.tasks import Task, Trial, register_task

#: The four input groups, in order of the input channels (each ``n_in / 4`` channels).
GROUPS = ("store", "recall", "bit 0", "bit 1")


def _pos(v):
    return None if v > 0 else "must be > 0"


def _nonneg(v):
    return None if v >= 0 else "must be >= 0"


def _at_least_2(v):
    return None if v >= 2 else "must be >= 2 (at least one bit slot and the recall slot)"


@register_task("store-recall")
class StoreRecallTask(Task):
    """Report the bit shown with the store cue when the recall cue comes.

    ``n_in`` inputs form four equal groups: store, recall, bit 0, bit 1. Slot s (``slot_ms`` long,
    s = 0 … ``n_slots`` − 2) shows a random bit b_s: the bit-b_s group fires at ``cue_rate_hz``. The store
    cue comes with the bit of slot s* ~ U{0, …, ``n_slots`` − 2 − ``min_delay_slots``}; the last slot is
    the recall window (recall group at ``cue_rate_hz``, the loss mask) and the label is b_{s*}. Every
    channel also fires at ``noise_rate_hz`` throughout. The slots end with the trial (the steps before the
    first slot, if ``simulation.n_steps`` is longer, carry only noise). Trial k of iteration i is drawn
    from the seed and (i, k), so every run of a seed sees the same trials.
    """

    kind = "classification"
    n_out = 2

    @dataclass(frozen=True)
    class Params:
        n_in: int = field(default=40, metadata={"checks": (_pos,)})
        n_slots: int = field(default=6, metadata={"checks": (_at_least_2,)})
        slot_ms: float = field(default=200.0, metadata={"checks": (_pos,)})
        min_delay_slots: int = field(default=0, metadata={"checks": (_nonneg,)})
        cue_rate_hz: float = field(default=50.0, metadata={"checks": (_pos,)})
        noise_rate_hz: float = field(default=0.0, metadata={"checks": (_nonneg,)})

    @classmethod
    def check_config(cls, cfg) -> None:
        p, dt = cfg.task, cfg.simulation.dt_ms
        if p.n_in % 4:
            raise ConfigError(f"task.n_in: must be a multiple of 4 (four input groups; got {p.n_in})")
        if p.min_delay_slots > p.n_slots - 2:
            raise ConfigError(
                f"task.min_delay_slots: at most n_slots - 2 = {p.n_slots - 2} (a store slot must exist; "
                f"got {p.min_delay_slots})"
            )
        if cfg.network.n_out != 2:
            raise ConfigError(f"network.n_out: the store-recall task has 2 outputs (got {cfg.network.n_out})")
        if cfg.training.loss != "cross_entropy":
            raise ConfigError(
                f"training.loss: the store-recall task needs 'cross_entropy' (got {cfg.training.loss!r})"
            )
        slot = p.slot_ms / dt
        if abs(slot - round(slot)) > 1e-9:
            raise ConfigError(
                f"task.slot_ms: must be a whole number of steps of simulation.dt_ms = {dt} (got {p.slot_ms})"
            )
        need = p.n_slots * round(slot)
        if need > cfg.simulation.n_steps:
            raise ConfigError(
                f"simulation.n_steps: {p.n_slots} slots of {p.slot_ms} ms need {need} steps "
                f"(got {cfg.simulation.n_steps})"
            )

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        p, T, dt = self.params, self.n_steps, self.dt_ms
        g = p.n_in // 4
        slot = int(round(p.slot_ms / dt))
        start = T - p.n_slots * slot  # the slots end with the trial
        out = []
        for k in range(batch_size):
            rng = np.random.default_rng([self.seed, 3, iteration, k])
            bits = rng.integers(0, 2, p.n_slots - 1)
            store = int(rng.integers(0, p.n_slots - 1 - p.min_delay_slots))
            rate = np.full((T, p.n_in), p.noise_rate_hz)
            for s, bit in enumerate(bits):
                a = start + s * slot
                rate[a : a + slot, (2 + bit) * g : (3 + bit) * g] = p.cue_rate_hz
            a = start + store * slot
            rate[a : a + slot, 0:g] = p.cue_rate_hz
            rate[T - slot :, g : 2 * g] = p.cue_rate_hz
            x = (rng.random((T, p.n_in)) < rate * dt * 1e-3).astype(float)
            label = int(bits[store])
            target = np.zeros((T, 2))
            target[:, label] = 1.0
            mask = np.zeros(T)
            mask[T - slot :] = 1.0
            out.append(Trial(x, target, mask, label))
        return out
