"""`neuroplast run` as a function: train a config and log everything to HDF5."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroplast.config import Config, to_toml
from neuroplast.model.losses import softmax
from neuroplast.training import PROJECTIONS, Trainer

__all__ = ["run_training", "edge_vectors", "TRACEABLE"]

#: Recurrent variables that ``--trace`` can write as SONATA reports.
TRACEABLE = ("v", "a", "z", "psi")


def _edges(trainer: Trainer) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    e = dict(trainer.net.edges)
    src, tgt = e["output"]
    e["feedback"] = (tgt, src)  # readout k → recurrent j
    return e


def edge_vectors(trainer: Trainer, dense: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dense (post × pre) matrices → 1-D arrays in the log's edge order."""
    edges = _edges(trainer)
    out = {}
    for name, m in dense.items():
        if name == "bias":
            out[name] = np.asarray(m, float).copy()
        else:
            src, tgt = edges[name]
            out[name] = np.asarray(m, float)[tgt, src]
    return out


def _weight_dict(w, b) -> dict[str, np.ndarray]:
    return {"input": w.w_in, "recurrent": w.w_rec, "output": w.w_out, "bias": w.b_out, "feedback": b}


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
    out: str | Path,
    *,
    iterations: int | None = None,
    seed: int | None = None,
    rule: str | None = None,
    force: bool = False,
    trace: Sequence[str] = (),
    trace_neurons: int | None = None,
    progress: bool = True,
) -> Path:
    """Train ``cfg`` and write the run log to ``out``.

    Parameters
    ----------
    cfg : Config
    out : path
        HDF5 file to create (an existing file is an error unless ``force``).
    iterations, seed, rule : optional
        Override ``training.iterations``, ``simulation.seed``, ``training.rule``.
    trace : sequence of str
        Recurrent variables to log per step as SONATA reports (subset of TRACEABLE).
    trace_neurons : int, optional
        Log traces of only the first ``trace_neurons`` recurrent neurons.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path of the written file.
    """
    from tqdm import tqdm

    from neuroplast.io import RunWriter

    for var in trace:
        if var not in TRACEABLE:
            raise ValueError(f"--trace: unknown variable {var!r} (known: {', '.join(TRACEABLE)})")
    if rule is not None or seed is not None:
        changes = {}
        if rule is not None:
            cfg = cfg.replace("training", rule=rule)
        if seed is not None:
            changes["seed"] = int(seed)
            cfg = cfg.replace("simulation", **changes)
    if iterations is not None:
        cfg = cfg.replace("training", iterations=int(iterations))
    trainer = Trainer(cfg, record=bool(trace))
    kind = trainer.task.kind
    T, dt = trainer.T, cfg.simulation.dt_ms
    n_trace = trainer.params.n_rec if trace_neurons is None else min(trace_neurons, trainer.params.n_rec)
    edges = _edges(trainer)
    edges_with_bias = {**edges, "bias": None}
    out = Path(out)
    with RunWriter(
        out,
        config_toml=to_toml(cfg),
        dt_ms=dt,
        seed=trainer.seed,
        populations=_populations(trainer),
        projections_edges=edges_with_bias,
        n_in=trainer.task.n_in,
        n_out=trainer.weights.n_out,
        task_kind=kind,
        n_steps=T,
        force=force,
    ) as writer:
        bar = tqdm(
            range(cfg.training.iterations),
            desc=f"{trainer.rule_name}",
            unit="it",
            disable=not progress,
            leave=False,
        )
        for _ in bar:
            log = trainer.run_iteration()
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
            wb = edge_vectors(trainer, _weight_dict(log.weights_before, log.feedback_before))
            ups = dict(log.updates)
            ups["feedback"] = trainer.feedback - log.feedback_before
            writer.add_iteration(wb, edge_vectors(trainer, ups))
            bar.set_postfix(loss=f"{np.mean(log.losses):.4g}")
        writer.finish(edge_vectors(trainer, _weight_dict(trainer.weights, trainer.feedback)))
    return out


__all__ += ["PROJECTIONS"]
