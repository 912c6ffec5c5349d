"""PNG figures of a run log (matplotlib, Agg backend; no display needed).

:func:`plot_run` writes, into ``<stem>_plots/`` next to the file by default:

* ``loss.png`` — task loss per trial and mean per iteration (log scale);
* ``alignment.png`` — cosine similarity and norm ratio of every estimator against exact BPTT per projection
  over training (needs ``grad/bptt``, written by ``neuroplast compare``; otherwise skipped with a note);
* ``factorization.png`` — for one trial, the per-step contributions to the exact gradient
  dE/dW = Σ_t L*_t e_t split into the part e-prop keeps (readout + regularizer learning signal) and the
  part that flows back through W_rec, per step and accumulated along the BPTT direction;
* ``raster.png`` — recurrent spikes of the last trial, with the replayed readout against the target.

Existing figures of the same name are overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.analysis.compare import (
    LOSS_RTOL,
    REFERENCE,
    WRITTEN,
    ReplayContext,
    ReplayedTrial,
    replay_context,
    replay_trial,
)
from neuroplast.analysis.metrics import cosine_similarity, norm_ratio
from neuroplast.io import RunFileError, RunLog, open_run

__all__ = ["plot_run", "default_out_dir", "FIGURES"]

#: File names written by :func:`plot_run`.
FIGURES = ("loss.png", "alignment.png", "factorization.png", "raster.png")


def default_out_dir(path: str | Path) -> Path:
    """``<folder of the file>/<stem>_plots``."""
    p = Path(path)
    return p.with_name(f"{p.stem}_plots")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_loss(run: RunLog, out: Path) -> Path:
    """Loss per trial (dots) and mean per iteration (line); log y axis when all losses are > 0."""
    plt = _pyplot()
    loss = np.asarray(run.trials["loss"], dtype=float)
    it = np.asarray(run.trials["iteration"], dtype=np.int64)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(it, loss, ".", ms=4, alpha=0.5, label="per trial")
    its = np.unique(it)
    mean = np.array([np.mean(loss[it == i]) for i in its])
    ax.plot(its, mean, "-", lw=1.8, label="mean per iteration")
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.set_xlabel("iteration (weight update)")
    ax.set_ylabel("task loss E (dimensionless)")
    ax.set_title(f"{run.path.name}: loss {loss[0]:.4g} → {loss[-1]:.4g}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def plot_alignment(run: RunLog, out: Path) -> Path | None:
    """Cosine and norm ratio vs ``grad/bptt`` of every estimator, per projection, over trials.

    Returns ``None`` (no file) if no projection has ``grad/bptt``.
    """
    plt = _pyplot()
    names = [n for n in ("input", "recurrent", "output", "bias") if n in run.projection_names]
    projs = {n: run.projection(n) for n in names}
    projs = {n: p for n, p in projs.items() if REFERENCE in p.estimators}
    if not projs:
        return None
    fig, axes = plt.subplots(2, len(projs), figsize=(3.6 * len(projs), 6), sharex=True, squeeze=False)
    trials = np.arange(run.n_trials)
    for col, (name, p) in enumerate(projs.items()):
        ref = p.grad(REFERENCE)
        ests = [e for e in p.estimators if e not in WRITTEN or e == "bptt_eprop_part"]
        ratios = []
        for est in ests:
            g = p.grad(est)
            style = dict(ls="--", color="k", lw=1) if est == "bptt_eprop_part" else dict(lw=1.5)
            label = "kept part (ideal e-prop)" if est == "bptt_eprop_part" else est
            axes[0, col].plot(trials, cosine_similarity(g, ref, batch_axes=1), label=label, **style)
            ratios.append(np.asarray(norm_ratio(g, ref, batch_axes=1)))
            axes[1, col].plot(trials, ratios[-1], label=label, **style)
        axes[0, col].set_title(name)
        axes[0, col].set_ylim(-1.05, 1.05)
        axes[0, col].axhline(0, color="grey", lw=0.5)
        r = np.concatenate(ratios) if ratios else np.empty(0)
        r = r[np.isfinite(r) & (r > 0)]
        if r.size and r.max() / r.min() > 10:
            axes[1, col].set_yscale("log")
        else:  # all within a decade (e.g. exact readout gradients): a linear axis around 1
            axes[1, col].set_ylim(0, max(1.5, 1.1 * float(r.max()) if r.size else 1.5))
        axes[1, col].axhline(1, color="grey", lw=0.5)
        axes[1, col].set_xlabel("trial")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("cosine(ĝ, g_BPTT)")
    axes[1, 0].set_ylabel("‖ĝ‖ / ‖g_BPTT‖")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"{run.path.name}: gradient alignment with exact BPTT (reset detached)")
    fig.tight_layout()
    return _save(fig, out)


def plot_factorization(ctx: ReplayContext, tr: ReplayedTrial, out: Path) -> Path:
    """Per-step contributions of the factorization dE/dW = Σ_t (L^kept_t + L^rec_t) e_t for one trial.

    Top: Frobenius norm of the per-step contribution matrices ‖C^part_t‖ (log scale).  Bottom: running
    sum of their projection on the unit BPTT gradient, Σ_{s≤t} ⟨C^part_s, Ĝ⟩; the two curves end at the
    shares of ‖g_BPTT‖ that the kept and the through-W_rec part carry (they add up to ‖g_BPTT‖).
    """
    from neuroplast.gradients.bptt import factorization_decomposition
    from neuroplast.gradients.trial import TrialData

    plt = _pyplot()
    trial = TrialData(
        ctx.params, tr.weights, tr.x, tr.traj, tr.target, tr.mask, ctx.loss, ctx.c_reg, ctx.f_target
    )
    dec = factorization_decomposition(trial)
    dt = ctx.params.dt
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True)
    for col, name in enumerate(("input", "recurrent")):
        d = dec[name]
        t_ms = np.arange(1, d["kept_norm"].size + 1) * dt
        ax = axes[0, col]
        for part, label, color in (("kept", "kept by e-prop", "C0"), ("recurrent", "through W_rec", "C3")):
            v = d[f"{part}_norm"]
            ax.plot(t_ms, np.where(v > 0, v, np.nan), color=color, lw=0.8, label=label)
        ax.set_yscale("log")
        ax.set_title(f"{name}: ‖L_t ⊙ e_t‖ per step")
        ax.legend(fontsize=8)
        ax = axes[1, col]
        gnorm = float(np.linalg.norm(d["bptt"]))
        for part, label, color in (("kept", "kept by e-prop", "C0"), ("recurrent", "through W_rec", "C3")):
            cum = np.cumsum(d[f"{part}_along"])
            ax.plot(
                t_ms, cum / gnorm if gnorm > 0 else cum, color=color, label=f"{label}: {cum[-1] / gnorm:.3g}"
            )
        ax.set_xlabel("time in trial (ms)")
        ax.set_title(f"{name}: running Σ ⟨C_t, ĝ_BPTT⟩ / ‖g_BPTT‖")
        ax.legend(fontsize=8)
        for a in axes[:, col]:
            a.grid(alpha=0.3)
    fig.suptitle(f"{ctx.run.path.name}, trial {tr.index} (iteration {tr.iteration}): dE/dW = Σ_t L*_t e_t")
    fig.tight_layout()
    return _save(fig, out)


def plot_raster(run: RunLog, tr: ReplayedTrial | None, k: int, out: Path) -> Path:
    """Recurrent spike raster of trial ``k`` and, if replayed, the readout y_t against the target."""
    plt = _pyplot()
    ts, ids = run.spikes("recurrent", trial=k)
    start = int(run.trials["start_step"][k])
    T = int(run.trials["n_steps"][k])
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    t_local = ts - start * run.dt_ms
    a0.plot(t_local, ids, "|", ms=3, color="k")
    n_rec = run.population_sizes.get("recurrent", int(ids.max()) + 1 if ids.size else 1)
    a0.set_ylim(-0.5, n_rec - 0.5)
    a0.set_ylabel("recurrent neuron")
    rate = ids.size / max(1, n_rec) / (T * run.dt_ms * 1e-3)
    a0.set_title(f"{run.path.name}, trial {k}: {ids.size} spikes ({rate:.3g} Hz per neuron)")
    t_ms = np.arange(1, T + 1) * run.dt_ms
    if tr is not None:
        for j in range(tr.target.shape[1]):
            a1.plot(t_ms, tr.traj.y[:, j], color=f"C{j}", lw=1.2, label=f"readout y{j}")
            a1.plot(t_ms, tr.target[:, j], color=f"C{j}", ls="--", lw=1, label=f"target {j}")
        if run.task_kind == "classification":
            a1.fill_between(
                t_ms, 0, 1, where=tr.mask > 0, color="grey", alpha=0.15, transform=a1.get_xaxis_transform()
            )
    else:
        a1.text(0.5, 0.5, "trial not replayable (no weights)", transform=a1.transAxes, ha="center")
    a1.set_xlabel("time in trial (ms)")
    a1.set_ylabel("readout")
    a1.legend(fontsize=8, ncol=2)
    a1.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def plot_run(path: str | Path, out_dir: str | Path | None = None, *, trial: int = 0) -> dict[str, Any]:
    """Write the figures of a run log.

    Parameters
    ----------
    path : str or Path
        Run log written by ``neuroplast run``.
    out_dir : str or Path, optional
        Folder for the PNGs (created if missing); default :func:`default_out_dir`.
    trial : int
        Trial whose factorization is plotted (negative counts from the end).

    Returns
    -------
    dict
        ``out_dir`` (Path), ``written`` (list of Path) and ``notes`` (list of str: figures skipped and why).

    Raises
    ------
    RunFileError
        If the file is not a run log, has no trials, or ``out_dir`` cannot be created.
    """
    run = open_run(path)
    if run.n_trials == 0:
        raise RunFileError(run.path, "has no complete trials to plot")
    out = Path(out_dir) if out_dir is not None else default_out_dir(run.path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(out, f"cannot create the output folder: {exc}") from exc
    written: list[Path] = [plot_loss(run, out / "loss.png")]
    notes: list[str] = []
    p = plot_alignment(run, out / "alignment.png")
    if p is None:
        notes.append(
            f"alignment.png skipped: no grad/bptt in the file; run `neuroplast compare {run.path}` first"
        )
    else:
        written.append(p)

    try:
        ctx: ReplayContext | None = replay_context(run)
    except RunFileError as exc:
        ctx = None
        notes.append(f"factorization.png and readout skipped: {exc.problem}")

    def _replay(k: int) -> ReplayedTrial | None:
        if ctx is None:
            return None
        tr = replay_trial(ctx, k)
        if tr is not None and not tr.loss_rel_diff <= LOSS_RTOL:
            notes.append(f"trial {tr.index}: replayed loss differs from the logged loss; not used")
            return None
        return tr

    k_fac = run.n_trials + trial if trial < 0 else trial
    if not 0 <= k_fac < run.n_trials:
        raise RunFileError(run.path, f"has no trial {trial} (it has {run.n_trials})")
    tr = _replay(k_fac)
    if tr is not None:
        written.append(plot_factorization(ctx, tr, out / "factorization.png"))  # type: ignore[arg-type]
    elif ctx is not None:
        notes.append(f"factorization.png skipped: trial {k_fac} cannot be replayed")
    k_last = run.n_trials - 1
    written.append(plot_raster(run, tr if k_last == k_fac else _replay(k_last), k_last, out / "raster.png"))
    return {"out_dir": out, "written": written, "notes": notes}
