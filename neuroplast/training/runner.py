"""`neuroplast run` as a function: train a config and log everything to HDF5."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.build import Setup, build
from neuroplast.config import EXECUTION_KEYS, Config, to_toml
from neuroplast.devices import AUTO, device_info
from neuroplast.errors import DivergedError
from neuroplast.model.connectivity import PROJECTIONS
from neuroplast.model.neurons import DEFAULT_NEURON, get_neuron
from neuroplast.model.simulator import Simulator
from neuroplast.network.devices import cache_dir
from neuroplast.progress import Progress
from neuroplast.tasks.criterion import criterion_met, window_error
from neuroplast.training.trainer import RECORDED, IterationRecord, Trainer, default_neuron

__all__ = [
    "run_training",
    "log_iteration",
    "config_difference",
    "logged_iterations",
    "TRACEABLE",
    "traceable",
]

#: Recurrent variables that ``--trace`` can write as SONATA reports.
TRACEABLE = RECORDED


def traceable(cfg: Config) -> tuple[str, ...]:
    """The recurrent variables ``--trace`` may name for ``cfg``'s neuron model: :data:`TRACEABLE` for
    ``alif``; a model's own state variables, ``z`` and ``psi`` for another (docs/model.md §10)."""
    model = get_neuron(cfg.network.neuron)
    if model.name == DEFAULT_NEURON:
        return TRACEABLE
    return tuple(dict.fromkeys((*model.state, "z", "psi")))


def config_difference(logged_toml: str, given_toml: str) -> tuple[str, Any, Any] | None:
    """First key in which two resolved configs (TOML text) differ.

    Parameters
    ----------
    logged_toml, given_toml : str
        The ``config`` attribute of a run log and ``to_toml`` of the config to compare.

    Returns
    -------
    (str, object, object) or None
        Dotted key (``"training.learning_rate"``), its logged and its given value (``None`` where the key is
        missing), or ``None`` if the configs are equal.  Keys that never change results
        (:data:`~neuroplast.config.EXECUTION_KEYS`) are not compared.
    """
    a, b = tomllib.loads(logged_toml), tomllib.loads(given_toml)

    def walk(x: Any, y: Any, key: str) -> tuple[str, Any, Any] | None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(x) + [k for k in y if k not in x]:
                sub = f"{key}.{k}" if key else k
                if sub in EXECUTION_KEYS:
                    continue
                if k not in x or k not in y:
                    return sub, x.get(k), y.get(k)
                d = walk(x[k], y[k], sub)
                if d is not None:
                    return d
            return None
        return None if (x == y and type(x) is type(y)) else (key, x, y)

    return walk(a, b, "")


def _apply_overrides(cfg: Config, iterations: int | None, seed: int | None, rule: str | None) -> Config:
    if rule is not None:
        cfg = cfg.replace("training", rule=rule)
    if seed is not None:
        cfg = cfg.replace("simulation", seed=int(seed))
    if iterations is not None:
        cfg = cfg.replace("training", iterations=int(iterations))
    return cfg


def logged_iterations(run: Any) -> int:
    """``training.iterations`` of the config stored in a run log (the run's target).

    Raises
    ------
    RunFileError
        The stored config has no readable ``training.iterations``.
    """
    from neuroplast.io import RunFileError

    try:
        return int(tomllib.loads(run.config_toml)["training"]["iterations"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RunFileError(
            run.path, f"damaged run log: stored config has no training.iterations ({exc})"
        ) from exc


def _check_resume(
    cfg: Config, path: Path, iterations: int | None, trace: Sequence[str], trace_neurons: int | None
) -> tuple[Any, Config, list[str], int | None]:
    """Validate a run log for ``--resume``.  Returns ``(run, cfg, trace, logged trace neurons)``.

    The config must equal the logged one except for ``training.iterations``: that is the logged one unless
    ``iterations`` is given, which must not be below the iterations done (more extends the run).  The run
    must not have diverged; traces continue as logged.
    """
    from neuroplast.io import RunFileError, open_run

    if cfg.simulation.device.strip().lower() != AUTO:
        if device_info(cfg.simulation.device).capabilities.nest_plasticity:
            raise RunFileError(
                path,
                f"cannot resume: simulation.device = {cfg.simulation.device!r} keeps NEST's network state "
                "(membranes, traces, optimizer) from one sequence to the next, which the run log does not "
                "store; start a new run",
            )
    run = open_run(path)
    if run.diverged is not None:
        raise RunFileError(
            path,
            f"cannot resume: the run diverged ({run.diverged}); it would diverge again: start a new run "
            "with a changed config (e.g. a smaller training.learning_rate)",
        )
    logged_target = logged_iterations(run)
    diff = config_difference(run.config_toml, to_toml(cfg.replace("training", iterations=logged_target)))
    if diff is not None:
        key, logged, given = diff
        raise RunFileError(
            path,
            f"cannot resume: config differs at {key} (run log: {logged!r}, given: {given!r}); "
            "resume with the same config and --seed/--rule",
        )
    target = logged_target if iterations is None else int(iterations)
    if target < run.n_iterations:
        raise RunFileError(
            path,
            f"cannot resume: --iterations {target} is fewer than the {run.n_iterations} iterations the run "
            "log already holds (a run is never cut short)",
        )
    cfg = cfg.replace("training", iterations=target)
    logged_vars = [v for pop, v in run.traces if pop == "recurrent"]
    logged_n = None
    if logged_vars:
        logged_n = run.trace("recurrent", logged_vars[0]).node_ids.size
    if trace and sorted(trace) != sorted(logged_vars):
        raise RunFileError(
            path,
            f"cannot resume: --trace {','.join(trace)} differs from the logged traces "
            f"({','.join(logged_vars) or 'none'}); leave --trace out to continue the logged ones",
        )
    n_rec = cfg.network.n_rec
    if trace_neurons is not None and logged_n is not None and min(trace_neurons, n_rec) != logged_n:
        raise RunFileError(
            path, f"cannot resume: --trace-neurons {trace_neurons} differs from the logged {logged_n}"
        )
    return run, cfg, (list(trace) or logged_vars), logged_n


def run_training(
    cfg: Config,
    out: str | Path | None,
    *,
    iterations: int | None = None,
    seed: int | None = None,
    rule: str | None = None,
    force: bool = False,
    trace: Sequence[str] = (),
    trace_neurons: int | None = None,
    progress: bool = True,
    resume: str | Path | None = None,
    on_resume: Callable[[dict[str, int]], None] | None = None,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    simulator: Callable[[Setup], Simulator] | None = None,
) -> Path:
    """Train ``cfg`` and write the run log to ``out``, or continue a killed run (``resume``).

    Parameters
    ----------
    cfg : Config
    out : path or None
        HDF5 file to create (an existing file is an error unless ``force``).  With ``resume`` it may be
        ``None`` or the same file.
    iterations, seed, rule : optional
        Override ``training.iterations``, ``simulation.seed``, ``training.rule``.
    trace : sequence of str
        Recurrent variables to log per step as SONATA reports (subset of TRACEABLE).
    trace_neurons : int, optional
        Log traces of only the first ``trace_neurons`` recurrent neurons.
    progress : bool
        Show a progress bar.
    resume : path, optional
        A run log of the same config (after the overrides above; its ``config`` attribute must be equal
        except for ``training.iterations``, else :class:`~neuroplast.io.RunFileError` naming the first
        differing key).  Everything after its last complete iteration is cut off, the trainer state of that
        iteration (dense weights, feedback B, optimizer state, iteration count; stored under ``/resume``) is
        restored and training continues in the same file, so that the result equals an uninterrupted run
        bit for bit.  The run trains up to the logged ``training.iterations``, or to ``iterations`` if given
        (never fewer than the log holds; the stored config records the new count): a *finished* run given
        more iterations is extended (``finished`` cleared, set again at the end with the new final
        weights), bit for bit as if that count had been given at the start; a finished run given no more is
        left untouched (nothing to do).  A run that diverged is refused.  Traces continue as logged
        (``trace``/``trace_neurons``, if given, must match).
    on_resume : callable, optional
        Called with :attr:`RunWriter.resumed <neuroplast.io.RunWriter>` (``iterations``, ``trials``,
        ``dropped_trials``, ``dropped_iterations``) once the file has been cut back.
    on_iteration : callable, optional
        Called with every iteration's :class:`~neuroplast.training.trainer.IterationRecord` once it has been
        handed to the log (losses, updates, spikes; its arrays are read-only and must not be kept beyond
        the call if memory matters).  An exception it raises stops the run like any error: the log keeps
        every iteration before.
    simulator : callable, optional
        ``simulator(setup) -> Simulator``: what simulates the trials (e.g.
        :meth:`neuroplast.plasticity.reference.NumpySimulator.of`, the NumPy reference); default the Brian2
        network of ``simulation.device``.  The trainer uses only what the simulator declares
        (:class:`~neuroplast.model.simulator.Simulator`, its ``capabilities``).

    Returns
    -------
    Path of the written file.

    Raises
    ------
    RunFileError
        With ``resume``: missing, damaged or diverged file, config mismatch, fewer ``iterations`` than
        done, inconsistent resume state; a file another process has open (``resume`` or ``force``).
    DivergedError
        Training produced a non-finite loss, gradient or weight: the log keeps every iteration before it
        and is marked (root attribute ``diverged``, :attr:`RunLog.diverged <neuroplast.io.RunLog>`).
    KeyboardInterrupt
        Ctrl-C: the log is closed at its last complete iteration and can be resumed.
    """
    known = traceable(cfg)
    for var in trace:
        if var not in known:
            raise ValueError(f"--trace: unknown variable {var!r} (known: {', '.join(known)})")
    logged, extend, run = None, False, None
    if resume is not None:
        cfg = _apply_overrides(cfg, None, seed, rule)
        resume = Path(resume)
        if out is not None and Path(out).resolve() != resume.resolve():
            raise ValueError(f"resume: out ({out}) must be left out or be the resumed file ({resume})")
        run, cfg, trace, logged_n = _check_resume(cfg, resume, iterations, trace, trace_neurons)
        if run.finished and (cfg.training.iterations == run.n_iterations or run.stopped is not None):
            return resume  # nothing to do (a run stopped by its criterion has met it: it stays as it is)
        extend = run.finished
        if logged_n is not None:
            trace_neurons = logged_n
        logged = _logged_updates(run)
        out = resume
    elif out is None:
        raise ValueError("out: a run-log path is needed (or resume=...)")
    else:
        cfg = _apply_overrides(cfg, iterations, seed, rule)
    progress_ = Progress(cfg.training.iterations, 0, cfg.training.rule, enabled=progress)
    device = cfg.simulation.device
    note = ""
    auto = device.strip().lower() == AUTO
    if simulator is None and (auto and default_neuron(cfg) or not auto and not device_info(device).simulator):
        note = f" (Brian2 compiles code on a first run, cached in {cache_dir()})"
    progress_.phase(f"building the network{note}")
    if simulator is None:
        trainer = Trainer.from_config(cfg, record=bool(trace))
    else:
        setup = build(cfg)
        trainer = Trainer(setup, simulator(setup), record=bool(trace))
    hit = getattr(trainer.net, "cache_hit", None)
    how = {True: ", reused the compiled network", False: ", compiled"}.get(hit, "")
    how += f", {trainer.threads} threads" if trainer.threads > 1 else ""
    path = f"; {trainer.path_reason}" if getattr(trainer, "path_reason", "") else ""
    progress_.phase_done(
        f"network ready on {trainer.device} ({trainer.device_reason}{how}; {trainer.chunk_reason}{path})"
    )
    n_rec = trainer.params.n_rec
    n_trace = n_rec if trace_neurons is None else min(trace_neurons, n_rec)
    try:
        writer = _open_writer(trainer, Path(out), logged, force=force, extend=extend, on_resume=on_resume)
        with writer:  # closed on any exit (Ctrl-C included), at its last complete iteration
            progress_.done = trainer.iteration
            correct = _logged_correct(run, trainer.iteration) if run is not None else []
            try:
                stopped = _train(trainer, writer, trace, n_trace, progress_, on_iteration, correct)
            except DivergedError as exc:
                writer.mark_diverged(str(exc))
                raise
            writer.finish(trainer.final_weights(), stopped=stopped)
    finally:
        progress_.close()
    return Path(out)


def _logged_updates(run: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per projection: the weights each logged update was applied to, and the updates.

    With in-trial learning the update of an iteration applies to its last in-trial row.
    """
    logged = {}
    for name in run.projection_names:
        pl = run.projection(name)
        in_trial = pl.in_trial_weights is not None and pl.in_trial_weights.shape[1] > 0
        logged[name] = (pl.in_trial_weights[:, -1] if in_trial else pl.weights, pl.updates)
    return logged


def _open_writer(
    trainer: Trainer,
    out: Path,
    logged: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    *,
    force: bool,
    extend: bool,
    on_resume: Callable[[dict[str, int]], None] | None,
) -> Any:
    """A new run log, or (``logged`` given) the resumed one cut back, with the trainer restored.

    A resumed log stores the config it continues with (``training.iterations`` may have grown); with
    ``extend`` it was finished and is reopened.
    """
    from neuroplast.io import RunWriter

    batch = trainer.cfg.training.batch_size
    if logged is None:
        return _flush_schedule(RunWriter(out, **trainer.log_header(), force=force), trainer)
    writer = RunWriter.append(
        out,
        require_state=True,
        trials_per_iteration=batch,
        extend=extend,
        config_toml=to_toml(trainer.cfg),
    )
    try:
        _restore(trainer, writer, logged)
    except BaseException:
        writer.close()
        raise
    if on_resume is not None:
        on_resume(dict(writer.resumed or {}))
    return _flush_schedule(writer, trainer)


def _flush_schedule(writer: Any, trainer: Trainer) -> Any:
    """Flush (data and resume slots) once per launch of the chunked engine, one trial per launch: every
    iteration; each flush is written in the writer's background thread while the next launch runs (a kill
    then loses at most the launch in flight and, while it is still being written, the one before)."""
    n = max(1, trainer.chunk)
    writer.flush_iterations = n
    writer.background = True
    if n > 1:  # the window's trials wait for its last iteration (no flush between: a fixed count)
        writer.flush_every = max(writer.flush_every, n * trainer.cfg.training.batch_size + 1)
    return writer


def _logged_correct(run: Any, n_iterations: int) -> list[np.ndarray]:
    """Per complete iteration of a resumed log (the first ``n_iterations``), its trials' accuracy (1/0):
    the history the stopping criterion continues from (empty when the log has no ``accuracy`` column)."""
    acc = run.trials.get("accuracy")
    if acc is None or n_iterations == 0:
        return []
    it = np.asarray(run.trials["iteration"], dtype=np.int64)
    acc = np.asarray(acc, dtype=np.float64)
    return [acc[it == i] for i in range(n_iterations)]


def _stop_reason(trainer: Trainer, correct: list[np.ndarray]) -> str | None:
    """Why training stops after the iterations in ``correct`` (:mod:`neuroplast.tasks.criterion`), if it
    does."""
    tr = trainer.cfg.training
    if not criterion_met(correct, tr.stop_error, tr.stop_window):
        return None
    return (
        f"stopped after iteration {len(correct)}: error {window_error(correct, tr.stop_window):.6g} < "
        f"{tr.stop_error:g} over the trials of the last {tr.stop_window} iterations (training.stop_error)"
    )


def _train(
    trainer: Trainer,
    writer: Any,
    trace: Sequence[str],
    n_trace: int,
    progress: Progress,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    correct: Sequence[np.ndarray] = (),
) -> str | None:
    """Run the remaining iterations, handing each record to the writer (then to ``on_iteration``).

    ``correct`` is the accuracy history of the iterations already logged (a resumed run). Returns the reason
    when the stopping criterion (``training.stop_error``) ended training early, else ``None``."""
    correct = list(correct)
    stop = trainer.cfg.training.stop_error > 0
    if stop and (reason := _stop_reason(trainer, correct)) is not None:
        return reason  # a resumed log that was killed after meeting it
    if trainer.iteration < trainer.cfg.training.iterations:
        note = " (the first iteration also compiles, on a first run)" if trainer.compiles_first else ""
        progress.phase(f"training{note}")
    for _ in range(trainer.iteration, trainer.cfg.training.iterations):
        launched = not trainer.in_flight  # only launches time the rate (several iterations per launch)
        record = trainer.run_iteration()
        log_iteration(writer, record, trace=trace, n_trace=n_trace)
        acc = [t.extras["accuracy"] for t in record.trials if "accuracy" in t.extras]
        progress.iteration(
            float(np.mean(record.losses)), f"accuracy={np.mean(acc):.2f}" if acc else "", launched=launched
        )
        if on_iteration is not None:
            on_iteration(record)
        if stop:
            correct.append(np.asarray(acc, dtype=np.float64))
            if (reason := _stop_reason(trainer, correct)) is not None:
                progress.say(reason)
                return reason
    return None


def log_iteration(
    writer: Any, record: IterationRecord, *, trace: Sequence[str] = (), n_trace: int = 0
) -> None:
    """Write one iteration (its trials, traces, update and resume state) to ``writer``.

    Parameters
    ----------
    writer : RunWriter
    record : IterationRecord
        As returned by :meth:`Trainer.run_iteration`.
    trace : sequence of str
        Recurrent variables to write as SONATA reports (recorded in ``TrialRecord.states``).
    n_trace : int
        Number of (first) recurrent neurons traced.
    """
    from neuroplast.io.interrupts import deferred_interrupts

    # one block for the whole iteration: Ctrl-C waits until it is logged (the writer's methods nest in it
    # instead of each swapping the SIGINT handler twice)
    with deferred_interrupts():
        for tr in record.trials:
            T = tr.trial.x.shape[0]
            k = writer.add_trial(
                record.iteration,
                tr.trial.x,
                tr.target,
                loss=tr.loss,
                mask=tr.mask,
                spikes=tr.spikes,
                extras=tr.extras,
                grads=tr.grads,
            )
            for var in trace:
                writer.add_trace(
                    "recurrent", var, tr.states[var][:, :n_trace], np.arange(n_trace), start_step=k * T
                )
        writer.add_iteration(
            record.weights_before,
            record.updates,
            state=record.state,
            in_trial=record.in_trial,
            copy_state=False,  # read-only views of arrays that training replaces (IterationRecord.state)
        )


def _restore(trainer: Trainer, writer: Any, logged: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Load the writer's resume state into ``trainer`` and check it against the logged weights."""
    from neuroplast.io import RunFileError

    K = int((writer.resumed or {}).get("iterations", 0))
    if K == 0:
        return
    flat = writer.resume_state
    it = flat.get("iteration")
    if it is None or int(it) != K:
        found = None if it is None else int(it)
        raise RunFileError(writer.path, f"resume state is for iteration {found}, not {K}")
    try:
        trainer.load_flat_state(flat)
    except (KeyError, ValueError) as exc:
        raise RunFileError(writer.path, f"resume state does not fit the config: {exc}") from exc
    now = trainer.weight_vectors(trainer.weights, trainer.feedback)
    for name in PROJECTIONS:
        w, u = logged[name]
        if not np.array_equal(w[K - 1] + u[K - 1], now[name]):
            raise RunFileError(
                writer.path, f"resume state of iteration {K} does not match the logged {name} weights"
            )
