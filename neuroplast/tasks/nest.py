"""NEST 3.10's e-prop example tasks, generated as the examples generate them.

``nest-evidence`` is the task of ``eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py``
(and of NEST's test ``test_eprop_classification``): after the ``nest-evidence`` weight draws, one batch
per iteration, in order (:func:`evidence_batch`).

``nest-sine`` is the task of ``eprop_supervised_regression_sine-waves_bsshslm_2020.py``.  The example
seeds the legacy generator (``np.random.seed(seed)``), draws the initial weights (the ``nest-sine``
initializer, :mod:`neuroplast.model.initializers`) and then, from the same generator, the task data;
this task replays the weight draws (:func:`~neuroplast.model.initializers.legacy_stream`) and continues:

* input: ``rand(n_steps, n_in) < spike_prob``, with the first step of the sequence set to no spike;
  frozen, the same in every trial (x_t of step t = 1..T is row t − 1);
* target: amplitudes A_m ~ U[0.5, 2), then phases φ_m ~ U[0, 2π) (one each per period), the sum over m
  of A_m sin(linspace(φ_m, φ_m + 2π·(n_steps // P_m), n_steps)) (periods P_m in steps), minus its first
  value, divided by max(max |·|, 10⁻⁶).

``nest-current-sine`` is the task of NEST 3.10's current ``eprop_supervised_regression_sine-waves.py``
(after the ``nest-current-sine`` weight draws, which consume the generator as ``nest-sine``'s do): the
same input and target draws, without the legacy example's spike-free first step.  NEST's spike generators
give input spike j of a sequence the time k·T + j + 1 ms; it arrives in the network's step k·T + j + 2,
which the ``nest-current`` device simulates as step j of sequence k (the device's first sequence starts
after NEST's two steps before any spike can arrive, docs/validation.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroplast.errors import ConfigError
from neuroplast.model.initializers import legacy_stream
from neuroplast.tasks import Task, Trial, register_task
from neuroplast.tasks.evidence import check_evidence_config

__all__ = ["NestSineTask", "NestCurrentSineTask", "NestEvidenceTask", "superimposed_sines", "evidence_batch"]


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

    #: Whether the first step of the sequence has no input spike (the legacy example's rule).
    first_step_silent = True

    def __init__(self, params, n_steps, dt_ms, seed, *, n_rec: int = 100, n_out: int = 1):
        super().__init__(params, n_steps, dt_ms, seed)
        p = self.params
        rs = legacy_stream("nest-sine", seed, p.n_in, n_rec, n_out)
        x = rs.rand(self.n_steps, p.n_in) < p.spike_prob
        if self.first_step_silent:
            x[0, :] = False
        self._x = x.astype(float)
        self._target = superimposed_sines(rs, self.n_steps, p.periods_steps)[:, None]

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        mask = np.ones(self.n_steps)
        return [Trial(self._x, self._target, mask) for _ in range(batch_size)]


@register_task("nest-current-sine")
class NestCurrentSineTask(NestSineTask):
    """NEST 3.10's current sine-wave example: the ``nest-sine`` draws with input in every step (module
    docstring); trained by the ``nest-current`` device."""

    first_step_silent = False

    @dataclass(frozen=True)
    class Params(NestSineTask.Params):
        """The ``nest-sine`` keys (a class of its own: the task registry knows a task by its table)."""


def evidence_batch(
    rs: np.random.RandomState, p, n_steps: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """One batch of NEST's evidence-accumulation task from the legacy generator ``rs``.

    Draws, in order: which of the two groups is likely (``choice([0, 1], batch)``), the cues of each trial
    (``choice([0, 1], n_cues, p)`` with the float32 probabilities (prob_group, 1 − prob_group) in that
    order), then one uniform number per (trial, step, input); an input spikes where its spike probability
    exceeds it.  Spike probabilities: ``spike_prob`` for the cued group (inputs cue·n/4 … (cue+1)·n/4)
    during cue c (steps c·(cue + spacing) + spacing … + cue), for the recall group (the third quarter) in
    the last ``recall_steps``, ``spike_prob / 4`` for the noise group (the last quarter) always; the first
    step has no spike.  Label: more than ``n_cues // 2`` cues of group 1.

    Returns
    -------
    x : bool ndarray (batch, n_steps, n_in)
    labels : int ndarray (batch,)
    """
    n_pop = p.n_in // 4
    choices = np.array([p.prob_group, 1 - p.prob_group], dtype=np.float32)
    idx = rs.choice([0, 1], batch_size)
    probs = np.zeros((batch_size, 2), dtype=np.float32)
    probs[:, 0] = choices[idx]
    probs[:, 1] = choices[1 - idx]
    cues = np.zeros((batch_size, p.n_cues), dtype=int)
    for b in range(batch_size):
        cues[b] = rs.choice([0, 1], p.n_cues, p=probs[b])
    rate = np.zeros((batch_size, n_steps, p.n_in))
    for b in range(batch_size):
        for c, cue in enumerate(cues[b]):
            start = c * (p.cue_steps + p.spacing_steps) + p.spacing_steps
            rate[b, start : start + p.cue_steps, cue * n_pop : (cue + 1) * n_pop] = p.spike_prob
    rate[:, -p.recall_steps :, 2 * n_pop : 3 * n_pop] = p.spike_prob
    rate[:, :, 3 * n_pop :] = p.spike_prob / 4.0
    x = rate > rs.rand(rate.size).reshape(rate.shape)
    x[:, 0, :] = False
    return x, (cues.sum(axis=1) > p.n_cues // 2).astype(int)


@register_task("nest-evidence")
class NestEvidenceTask(Task):
    """NEST's evidence accumulation: cues of two groups, answer in the recall window (:func:`evidence_batch`).

    The batches of iterations 0, 1, … come from one generator in order (made on first use and kept), so
    ``trials(i, b)`` is the same whatever order it is asked in.  The loss counts the recall window (NEST's
    ``eprop_learning_window``).  Made by :meth:`from_config` (the weight draws before the data depend on
    the network's sizes).
    """

    kind = "classification"
    n_out = 2

    @dataclass(frozen=True)
    class Params:
        n_in: int = field(default=40, metadata={"checks": (_pos,)})
        n_cues: int = field(default=7, metadata={"checks": (_pos,)})
        prob_group: float = field(default=0.3, metadata={"checks": (_prob,)})
        spike_prob: float = field(default=0.04, metadata={"checks": (_prob,)})
        cue_steps: int = field(default=100, metadata={"checks": (_pos,)})
        spacing_steps: int = field(default=50, metadata={"checks": (_pos,)})
        recall_steps: int = field(default=150, metadata={"checks": (_pos,)})

    @classmethod
    def check_config(cls, cfg) -> None:
        p = cfg.task
        check_evidence_config(cfg, cls.name, p.n_cues * (p.cue_steps + p.spacing_steps) + p.recall_steps)

    @classmethod
    def from_config(cls, cfg, seed: int) -> NestEvidenceTask:
        n = cfg.network
        return cls(cfg.task, cfg.simulation.n_steps, cfg.simulation.dt_ms, seed, n_rec=n.n_rec, n_out=n.n_out)

    def __init__(self, params, n_steps, dt_ms, seed, *, n_rec: int = 100, n_out: int = 2):
        super().__init__(params, n_steps, dt_ms, seed)
        self._rs = legacy_stream("nest-evidence", seed, params.n_in, n_rec, n_out)
        self._batches: list[list[Trial]] = []
        self._batch_size: int | None = None

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        if self._batch_size not in (None, batch_size):
            raise ValueError("NestEvidenceTask: one batch size per task (NEST draws batches in order)")
        self._batch_size = batch_size
        T, recall = self.n_steps, self.params.recall_steps
        mask = np.zeros(T)
        mask[T - recall :] = 1.0
        while len(self._batches) <= iteration:
            x, labels = evidence_batch(self._rs, self.params, T, batch_size)
            batch = []
            for xb, label in zip(x, labels, strict=True):
                target = np.zeros((T, 2))
                target[:, label] = 1.0
                batch.append(Trial(xb.astype(float), target, mask, int(label)))
            self._batches.append(batch)
        return self._batches[iteration]
