"""Tasks: what the network sees (input spikes) and what it must produce (targets).

Every task is a class with a frozen ``Params`` dataclass (its ``[task]`` table) and
registers by name in :data:`TASKS`.  ``Task.trials(iteration, batch_size)`` returns
the batch of :class:`Trial` for one iteration, deterministically from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from neuroplast.registry import Registry

__all__ = ["Trial", "Task", "TASKS", "register_task"]


@dataclass(frozen=True)
class Trial:
    """One trial's data.

    Attributes
    ----------
    x : ndarray (T, n_in)      input spikes (0/1) per step
    target : ndarray (T, n_out) regression target y*, or one-hot π* for classification
    mask : ndarray (T,)        steps that count for the loss (recall window), 1/0
    label : int                class label (−1 for regression)
    """

    x: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    label: int = -1


class _TaskRegistry(Registry[type]):
    def name_of(self, params_cls: type) -> str:
        for name, cls in self._items.items():
            if cls.Params is params_cls:
                return name
        raise KeyError(f"no task uses {params_cls.__name__}")


def _check_task(obj: object, name: str) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise TypeError(f"{obj!r} is not a neuroplast Task subclass")
    obj.name = name


#: Task classes by name; third parties add theirs through the ``neuroplast.tasks`` entry points.
TASKS: _TaskRegistry = _TaskRegistry("task", check=_check_task)


def register_task(name: str):
    """Class decorator: register a task class under ``name``."""

    def deco(cls):
        cls.name = name
        TASKS.register(name, cls)
        return cls

    return deco


class Task:
    """Base class of tasks (see module docstring)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "regression"  # or "classification"
    Params: ClassVar[type]

    def __init__(self, params: Any, n_steps: int, dt_ms: float, seed: int) -> None:
        self.params = params
        self.n_steps = int(n_steps)
        self.dt_ms = float(dt_ms)
        self.seed = int(seed)

    @property
    def n_in(self) -> int:
        return int(self.params.n_in)

    n_out: int = 1

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Cross-table checks (e.g. network.n_out must match the task)."""

    @classmethod
    def from_config(cls, cfg: Any, seed: int) -> Task:
        """The task of a resolved config with ``seed`` (tasks that need more of the config override it)."""
        return cls(cfg.task, cfg.simulation.n_steps, cfg.simulation.dt_ms, seed)

    def trials(self, iteration: int, batch_size: int) -> list[Trial]:
        raise NotImplementedError


from neuroplast.tasks import evidence, nest, sine, store_recall  # noqa: E402,F401  (registers built-ins)
