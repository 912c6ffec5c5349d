"""`neuroplast run` as a function: train a config and log everything to HDF5."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.config import Config, to_toml
from neuroplast.model.losses import softmax
from neuroplast.training.trainer import Trainer

__all__ = [
    "run_training",
    "log_iteration",
    "log_edges",
    "edge_vectors",
    "weight_vectors",
    "config_difference",
    "TRACEABLE",
]

#: Recurrent variables that ``--trace`` can write as SONATA reports.
TRACEABLE = ("v", "a", "z", "psi")


def log_edges(trainer: Trainer) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """The run log's ``projections_edges`` (every projection; the bias as the writer's default)."""
    return {**trainer.connectivity.edges, "bias": None}


def edge_vectors(trainer: Trainer, dense: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dense (post × pre) matrices → 1-D arrays in the log's edge order."""
    return trainer.connectivity.edge_vectors(dense)


def weight_vectors(trainer: Trainer, weights: Any, feedback: np.ndarray) -> dict[str, np.ndarray]:
    """Weights and feedback B → the log's edge vectors of every projection."""
    return trainer.connectivity.weight_vectors(weights, feedback)


def _populations(trainer: Trainer) -> dict[str, dict[str, np.ndarray]]:
    p, N = trainer.params, trainer.params.n_rec
    full = lambda v: np.full(N, float(v))  # noqa: E731
    n_out = trainer.weights.n_out
    return {
        "input": {},
        "recurrent": {
            "alpha": full(p.alpha),
            "rho": p.rho,
            "beta": p.beta,
            "v_th": full(p.v_th),
            "n_ref": full(p.n_ref),
            "gamma": full(p.gamma),
            "input_scale": full(p.input_scale),
        },
        "readout": {"kappa": np.full(n_out, p.kappa), "readout_scale": np.full(n_out, p.readout_scale)},
    }


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, a in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = a.item() if a.ndim == 0 else a
    out.setdefault("optimizer", {})
    return out


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
        missing), or ``None`` if the configs are equal.
    """
    a, b = tomllib.loads(logged_toml), tomllib.loads(given_toml)

    def walk(x: Any, y: Any, key: str) -> tuple[str, Any, Any] | None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(x) + [k for k in y if k not in x]:
                sub = f"{key}.{k}" if key else k
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


def _check_resume(cfg: Config, path: Path, trace: Sequence[str], trace_neurons: int | None):
    """Validate a run log for ``--resume``: config equal, traces as logged.  Returns (run, trace, n)."""
    from neuroplast.io import RunFileError, open_run

    run = open_run(path)
    diff = config_difference(run.config_toml, to_toml(cfg))
    if diff is not None:
        key, logged, given = diff
        raise RunFileError(
            path,
            f"cannot resume: config differs at {key} (run log: {logged!r}, given: {given!r}); "
            "resume with the same config and --iterations/--seed/--rule",
        )
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
    return run, (list(trace) or logged_vars), logged_n


def _extras(trial, res, dt_ms: float, kind: str) -> dict[str, float]:
    T = res.y.shape[0]
    ex = {"rate_hz": float(res.spike_count.mean() / (T * dt_ms * 1e-3))}
    if kind == "classification":
        w = trial.mask > 0
        pred = int(np.argmax(softmax(res.y[w]).mean(axis=0)))
        ex["accuracy"] = float(pred == trial.label)
    return ex


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
        An unfinished run log of the same config (after the overrides above; its ``config`` attribute
        must be equal, else :class:`~neuroplast.io.RunFileError` naming the first differing key).  Everything
        after its last complete iteration is cut off, the trainer state of that iteration (dense weights,
        feedback B, optimizer state, iteration count; stored under ``/resume``) is restored and training
        continues in the same file, so that the result equals an uninterrupted run bit for bit.  Traces
        continue as logged (``trace``/``trace_neurons``, if given, must match).  A finished run log is left
        untouched (nothing to do).
    on_resume : callable, optional
        Called with :attr:`RunWriter.resumed <neuroplast.io.RunWriter>` (``iterations``, ``trials``,
        ``dropped_trials``, ``dropped_iterations``) once the file has been cut back.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    RunFileError
        With ``resume``: missing or damaged file, config mismatch, inconsistent resume state.
    """
    from tqdm import tqdm

    from neuroplast.io import RunWriter

    for var in trace:
        if var not in TRACEABLE:
            raise ValueError(f"--trace: unknown variable {var!r} (known: {', '.join(TRACEABLE)})")
    cfg = _apply_overrides(cfg, iterations, seed, rule)
    if resume is not None:
        resume = Path(resume)
        if out is not None and Path(out).resolve() != resume.resolve():
            raise ValueError(f"resume: out ({out}) must be left out or be the resumed file ({resume})")
        run, trace, logged_n = _check_resume(cfg, resume, trace, trace_neurons)
        if run.finished:
            return resume
        if logged_n is not None:
            trace_neurons = logged_n
        projs = [run.projection(name) for name in run.projection_names]
        # the weights each logged update was applied to (with in-trial learning: the last in-trial row)
        logged = {
            pl.name: (
                pl.weights
                if pl.in_trial_weights is None or pl.in_trial_weights.shape[1] == 0
                else pl.in_trial_weights[:, -1],
                pl.updates,
            )
            for pl in projs
        }
        out = resume
    elif out is None:
        raise ValueError("out: a run-log path is needed (or resume=...)")
    trainer = Trainer.from_config(cfg, record=bool(trace))
    kind = trainer.task.kind
    T, dt = trainer.T, cfg.simulation.dt_ms
    n_trace = trainer.params.n_rec if trace_neurons is None else min(trace_neurons, trainer.params.n_rec)
    out = Path(out)
    if resume is not None:
        writer = RunWriter.append(out, require_state=True, trials_per_iteration=cfg.training.batch_size)
        try:
            _restore(trainer, writer, logged)
        except BaseException:
            writer.close()
            raise
        if on_resume is not None:
            on_resume(dict(writer.resumed or {}))
    else:
        writer = RunWriter(
            out,
            config_toml=to_toml(cfg),
            dt_ms=dt,
            seed=trainer.seed,
            populations=_populations(trainer),
            projections_edges=log_edges(trainer),
            n_in=trainer.task.n_in,
            n_out=trainer.weights.n_out,
            task_kind=kind,
            n_steps=T,
            force=force,
            update_every_steps=cfg.training.update_every_steps,
        )
    with writer:
        bar = tqdm(
            range(trainer.iteration, cfg.training.iterations),
            desc=f"{trainer.rule_name}",
            unit="it",
            initial=trainer.iteration,
            total=cfg.training.iterations,
            disable=not progress,
            leave=False,
        )
        for _ in bar:
            log = trainer.run_iteration()
            log_iteration(writer, trainer, log, trace=trace, n_trace=n_trace)
            bar.set_postfix(loss=f"{np.mean(log.losses):.4g}")
        writer.finish(weight_vectors(trainer, trainer.weights, trainer.effective_feedback()))
    return out


def log_iteration(
    writer: Any, trainer: Trainer, log: Any, *, trace: Sequence[str] = (), n_trace: int = 0
) -> None:
    """Write one iteration of ``trainer`` (its trials, traces, update and resume state) to ``writer``.

    Parameters
    ----------
    writer : RunWriter
    trainer : Trainer
        The trainer *after* :meth:`Trainer.run_iteration` returned ``log``.
    log : IterationLog
    trace : sequence of str
        Recurrent variables to write as SONATA reports.
    n_trace : int
        Number of (first) recurrent neurons traced.
    """
    kind, T, dt = trainer.task.kind, trainer.T, trainer.cfg.simulation.dt_ms
    for trial, res, g in zip(log.trials, log.results, log.trial_grads, strict=True):
        x_steps, x_ids = np.nonzero(trial.x)
        target = trial.target if kind == "regression" else trial.label
        k = writer.add_trial(
            log.iteration,
            trial.x,
            target,
            loss=trainer.loss.value(res.y, trial.target, trial.mask),
            mask=(trial.mask > 0) if kind == "classification" else None,
            spikes={"recurrent": res.spikes, "input": (x_steps, x_ids)},
            extras=_extras(trial, res, dt, kind),
            grads={p: {trainer.rule_name: v} for p, v in edge_vectors(trainer, g).items()},
        )
        for var in trace:
            writer.add_trace(
                "recurrent", var, getattr(res, var)[:, :n_trace], np.arange(n_trace), start_step=k * T
            )
    wb = weight_vectors(trainer, log.weights_before, log.feedback_before)
    ups = dict(log.updates)
    fb_end = log.feedback_before if log.feedback_end is None else log.feedback_end
    ups["feedback"] = trainer.effective_feedback() - fb_end
    writer.add_iteration(
        wb, edge_vectors(trainer, ups), state=_flatten(trainer.state()), in_trial=log.in_trial
    )


def _restore(trainer: Trainer, writer: Any, logged: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Load the writer's resume state into ``trainer`` and check it against the logged weights."""
    from neuroplast.io import RunFileError

    K = int((writer.resumed or {}).get("iterations", 0))
    if K == 0:
        return
    state = _unflatten(writer.resume_state)
    if int(state.get("iteration", -1)) != K:
        raise RunFileError(writer.path, f"resume state is for iteration {state.get('iteration')}, not {K}")
    try:
        trainer.load_state(state)
    except (KeyError, ValueError) as exc:
        raise RunFileError(writer.path, f"resume state does not fit the config: {exc}") from exc
    now = weight_vectors(trainer, trainer.weights, trainer.feedback)
    for name in ("input", "recurrent", "output", "bias"):
        w, u = logged[name]
        if not np.array_equal(w[K - 1] + u[K - 1], now[name]):
            raise RunFileError(
                writer.path, f"resume state of iteration {K} does not match the logged {name} weights"
            )
