"""The scripting API: what ``import neuroplast as npl`` gives (``npl.train``, ``npl.open_run``, …).

A simulation script needs nothing else::

    import neuroplast as npl

    cfg = npl.load_config("models/sine.toml")
    run = npl.train(cfg, "runs/sine.h5", iterations=40, force=True,
                    callback=lambda rec: print(rec.iteration, sum(rec.losses)))
    print(run.n_iterations, run.trials["loss"][-1])
    report = npl.compare(run.path)               # exact BPTT per logged trial vs the logged estimator
    print(report["projections"]["recurrent"]["eprop"]["cosine"]["mean"])

Every function here is a thin front door to the module that owns the job (the same code path as the
``neuroplast`` command); errors are the same one-line exceptions (:mod:`neuroplast.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuroplast.analysis.analyze import DEFAULT_KS, analyze_run
from neuroplast.analysis.compare import compare_run
from neuroplast.config import Config, load_config, parse_config
from neuroplast.devices import DEVICES
from neuroplast.io import RunLog, open_run
from neuroplast.model.initializers import INITIALIZERS
from neuroplast.model.losses import LOSSES
from neuroplast.model.neurons import NEURONS, NeuronModel, Parameter, register_neuron
from neuroplast.model.surrogates import SURROGATES
from neuroplast.plasticity.optim import OPTIMIZERS
from neuroplast.plasticity.reference import NumpySimulator
from neuroplast.plasticity.rules import RULES, Rule, register_rule
from neuroplast.tasks import TASKS
from neuroplast.training.runner import run_training

if TYPE_CHECKING:
    import numpy as np

    from neuroplast.build import Setup
    from neuroplast.model.simulator import Simulator
    from neuroplast.training.trainer import IterationRecord

__all__ = [
    "DEVICES",
    "INITIALIZERS",
    "LOSSES",
    "NEURONS",
    "OPTIMIZERS",
    "RULES",
    "SURROGATES",
    "TASKS",
    "Config",
    "NeuronModel",
    "Parameter",
    "NumpySimulator",
    "Rule",
    "RunLog",
    "analyze",
    "compare",
    "load_config",
    "open_run",
    "parse_config",
    "register_neuron",
    "register_rule",
    "train",
]


def train(
    config: Config | str | Path,
    out: str | Path,
    *,
    iterations: int | None = None,
    seed: int | None = None,
    rule: str | None = None,
    force: bool = False,
    resume: bool = False,
    trace: Sequence[str] = (),
    callback: Callable[[IterationRecord], None] | None = None,
    simulator: Callable[[Setup], Simulator] | None = None,
    device: str | None = None,
    progress: bool = False,
) -> RunLog:
    """Train a config and log every trial and update to an HDF5 run log (``neuroplast run``).

    Parameters
    ----------
    config : Config, str or Path
        A config (:func:`load_config`, :func:`parse_config`) or the path of a TOML file.
    out : str or Path
        The run log to write (an existing file is refused unless ``force``; with ``resume``, the log to
        continue).
    iterations, seed, rule : optional
        Override ``training.iterations``, ``simulation.seed``, ``training.rule`` (a name of :data:`RULES`).
    force : bool
        Replace an existing run log at ``out``.
    resume : bool
        Continue the run log at ``out`` after its last complete iteration, bit for bit as if never stopped
        (``iterations`` may extend a finished run).
    trace : sequence of str
        Recurrent variables to log at every step (``v``, ``a``, ``z``, ``psi``).
    callback : callable, optional
        Called after every iteration with its :class:`~neuroplast.training.trainer.IterationRecord`
        (``iteration``, ``losses``, ``trials``, ``updates``, all in the log's edge order).  An exception it
        raises stops training; the log keeps every iteration before and can be resumed.
    simulator : callable, optional
        ``simulator(setup) -> Simulator``: a simulator of your own (any
        :class:`~neuroplast.model.simulator.Simulator`); default the one of ``simulation.device``.
    device : str, optional
        Override ``simulation.device``: a name of :data:`DEVICES` (``"numpy"``: the NumPy reference, no
        compiler needed; ``"runtime"``, ``"cpp_standalone"``: Brian2) or ``"auto"``.
    progress : bool
        Progress messages on stderr (compiling, training, ETA), as the command shows them.

    Returns
    -------
    RunLog
        The written log, opened read-only (:func:`open_run`).

    Raises
    ------
    ConfigError, RunFileError, UsageError
        Bad input (one line naming the key or file); nothing is overwritten.
    DivergedError
        A non-finite loss, gradient or weight; the log keeps every iteration before it.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    if device is not None:
        cfg = cfg.replace("simulation", device=device)
    path = run_training(
        cfg,
        None if resume else out,
        iterations=iterations,
        seed=seed,
        rule=rule,
        force=force,
        trace=tuple(trace),
        progress=progress,
        resume=out if resume else None,
        on_iteration=callback,
        simulator=simulator,
    )
    return open_run(path)


def compare(
    path: str | Path,
    *,
    estimators: list[str] | None = None,
    keep_reset: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Exact BPTT for every logged trial, stored in the log, compared with each logged estimator.

    Same as ``neuroplast compare``; see :func:`neuroplast.analysis.compare.compare_run` for the returned
    dictionary (per projection and estimator: cosine, relative error, sign agreement, norm ratio;
    dimensionless).
    """
    return compare_run(path, estimators=estimators, keep_reset=keep_reset, progress=progress)


def analyze(
    path: str | Path,
    *,
    trials: str | np.ndarray | None = None,
    ks: tuple[int | str, ...] = DEFAULT_KS,
    progress: bool = False,
) -> dict[str, Any]:
    """Where in time and in which neurons the logged rule departs from BPTT (``neuroplast analyze``).

    See :func:`neuroplast.analysis.analyze.analyze_run`; the log is only read.
    """
    return analyze_run(path, trials=trials, ks=ks, progress=progress)
