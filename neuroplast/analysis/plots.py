"""PNG figures of a run log (matplotlib, Agg backend; no display needed).

:func:`plot_run` writes, into ``<stem>_plots/`` next to the file by default:

* ``loss.png`` — task loss (a sum over the trial's steps) per trial and mean per iteration (log scale);
  classification runs add the mean accuracy per iteration on a second axis;
* ``alignment.png`` — cosine similarity and norm ratio of every estimator against exact BPTT per projection
  over training, the kept part of BPTT dashed, exact estimators named instead of drawn, ``grad/bptt_full``
  dotted when present (needs ``grad/bptt`` written by ``neuroplast compare``; otherwise, and for runs that
  learn inside their trials, not written, with a note from :func:`alignment_skip_reason`);
* ``factorization.png`` — for one trial, the per-step contributions to the exact gradient
  dE/dW = Σ_t L*_t e_t split into the part e-prop keeps (readout + regularizer learning signal) and the
  part that flows back through W_rec, per step and accumulated along the BPTT direction (not for runs that
  learn inside their trials);
* ``raster.png`` — recurrent spikes of the last trial, with the replayed readout against the target
  (in-trial runs: replayed with the logged in-trial weights, :func:`replay_in_trial`).

Existing figures of the same name are overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.analysis.compare import (
    KEPT_PART,
    LOSS_RTOL,
    REFERENCE,
    REFERENCE_FULL,
    WRITTEN,
    WRITTEN_BY,
    ReplayContext,
    ReplayedTrial,
    replay_context,
    replay_trial,
)
from neuroplast.analysis.metrics import cosine_similarity, norm_ratio
from neuroplast.io import RunFileError, RunLog, open_run

__all__ = ["plot_run", "default_out_dir", "FIGURES", "alignment_skip_reason", "replay_in_trial", "Readout"]

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
    """Loss per trial (dots) and mean per iteration (line); log y axis when all losses are > 0.

    The loss of a trial is a sum over its steps (dimensionless).  Classification runs also show the mean
    accuracy per iteration on a second y axis.
    """
    plt = _pyplot()
    loss = np.asarray(run.trials["loss"], dtype=float)
    it = np.asarray(run.trials["iteration"], dtype=np.int64)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(it, loss, ".", ms=4, alpha=0.5, label="loss per trial")
    its = np.unique(it)
    mean = np.array([np.mean(loss[it == i]) for i in its])
    ax.plot(its, mean, "-", lw=1.8, label="loss, mean per iteration")
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.set_xlabel("iteration (weight update)")
    ax.set_ylabel("task loss E = Σ_t ℓ_t (sum over the trial's steps)")
    title = f"{run.path.name}: loss {mean[0]:.4g} → {mean[-1]:.4g} (mean of the first and last iteration)"
    ax.xaxis.set_major_locator(_integer_ticks())
    handles, labels = ax.get_legend_handles_labels()
    acc = run.trials.get("accuracy")
    if acc is not None:
        acc = np.asarray(acc, dtype=float)
        per_it = np.array([_finite_mean(acc[it == i]) for i in its])
        ax2 = ax.twinx()
        ax2.plot(its, per_it, "-o", ms=3, lw=1.2, color="C2", label="accuracy, mean per iteration")
        ax2.set_ylim(-0.03, 1.03)
        ax2.set_ylabel("accuracy (fraction of trials correct)", color="C2")
        ax2.axhline(1.0 / max(run.n_out, 1), color="C2", ls=":", lw=0.8, label="chance")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
        title += f", accuracy {per_it[0]:.2f} → {per_it[-1]:.2f}"
    ax.set_title(title, fontsize=9)
    ax.legend(handles, labels, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def _finite_mean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


#: An estimator is drawn as "exact" when every replayed trial has cosine and norm ratio within this of 1.
EXACT_TOL = 1e-9
#: Label of the dashed line: the part of exact BPTT that e-prop's learning signal keeps.
KEPT_LABEL = "kept part of BPTT (dashed): the best any e-prop can do"


def alignment_skip_reason(run: RunLog) -> str | None:
    """Why :func:`plot_alignment` writes no figure for ``run``, or ``None`` if it writes one."""
    if run.update_every_steps:
        return (
            "the run learned inside its trials (training.update_every_steps = "
            f"{run.update_every_steps}): its weights change during a trial, so there is no single-weights "
            "BPTT gradient to align with"
        )
    by = [run.projection(n).grad_attrs(REFERENCE).get("written_by") for n in _aligned(run)]
    if any(b == WRITTEN_BY for b in by):
        return None
    if by:
        return (
            "the run trained with exact BPTT (rule bptt), so its logged gradient is the reference itself; "
            f"`neuroplast compare {run.path}` replays the trials and aligns the logged BPTT with the replay"
        )
    return f"no grad/bptt in the file; run `neuroplast compare {run.path}` first"


def _aligned(run: RunLog) -> list[str]:
    names = [n for n in ("input", "recurrent", "output", "bias") if n in run.projection_names]
    return [n for n in names if REFERENCE in run.projection(n).estimators]


def _curves(p: Any, est: str, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = p.grad(est)
    return np.asarray(cosine_similarity(g, ref, batch_axes=1)), np.asarray(norm_ratio(g, ref, batch_axes=1))


def _is_exact(cos: np.ndarray, ratio: np.ndarray) -> bool:
    ok = np.isfinite(cos) & np.isfinite(ratio)
    return bool(ok.any()) and bool(
        np.all(np.abs(cos[ok] - 1) <= EXACT_TOL) and np.all(np.abs(ratio[ok] - 1) <= EXACT_TOL)
    )


def plot_alignment(run: RunLog, out: Path) -> Path | None:
    """Cosine and norm ratio vs ``grad/bptt`` of every estimator, per projection, over trials.

    Solid lines: each logged estimator against exact BPTT (reset path detached), drawn wide and light so
    that the dashed black line on top of it, the part of BPTT that e-prop keeps, never hides it (symmetric
    e-prop equals that part: the legend then says so); dotted (when ``compare --keep-reset`` wrote
    ``grad/bptt_full``): the same against the gradient with the reset path differentiated too.  An
    estimator equal to BPTT on every trial (e-prop's readout and bias gradients are exact) is named in the
    title as "exact" instead of being drawn as a flat line at 1; a projection with nothing else to draw
    gets no panels.  Returns ``None`` (no file) when :func:`alignment_skip_reason` gives a reason.
    """
    if alignment_skip_reason(run) is not None:
        return None
    plt = _pyplot()
    columns = {n: _estimator_curves(run.projection(n)) for n in _aligned(run)}
    exact = {n: ex for n, (_, ex) in columns.items() if ex}
    fallback = not any(curves for curves, _ in columns.values())  # nothing to draw: say it in the panels
    drawn = columns if fallback else {n: c for n, c in columns.items() if c[0]}
    fig, axes = plt.subplots(
        2, len(drawn), figsize=(3.8 * max(2, len(drawn)), 6.4), sharex=True, squeeze=False
    )
    trials = np.arange(run.n_trials)
    has_full = any(REFERENCE_FULL in run.projection(n).estimators for n in drawn)
    for col, (name, (curves, ex)) in enumerate(drawn.items()):
        _alignment_column(axes[:, col], name, run.projection(name), trials, curves, ex if fallback else [])
    axes[0, 0].set_ylabel("cosine(ĝ, g_BPTT)")
    axes[1, 0].set_ylabel("‖ĝ‖ / ‖g_BPTT‖")
    handles: dict[str, Any] = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(
            handles.values(), handles.keys(), loc="lower center", ncol=min(3, len(handles)), fontsize=8
        )
    ref = "reset detached" + ("; dotted: vs BPTT with the reset path kept (bptt_full)" if has_full else "")
    title = f"{run.path.name}: gradient alignment with exact BPTT ({ref})"
    if exact and not fallback:
        title += "\nexact, = g_BPTT on every trial (not drawn): " + "; ".join(
            f"{n}: {', '.join(ex)}" for n, ex in exact.items()
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 + 0.03 * ((len(handles) - 1) // 3), 1, 1))
    return _save(fig, out)


def _estimator_curves(p: Any) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[str]]:
    """A projection's curves to draw, ``(estimator, cosine, norm ratio)`` per trial, and the estimators
    equal to BPTT on every trial (named, not drawn)."""
    ref = p.grad(REFERENCE)
    curves, exact = [], []
    for est in [e for e in p.estimators if e not in WRITTEN or e == KEPT_PART]:
        cos, ratio = _curves(p, est, ref)
        if est != KEPT_PART and _is_exact(cos, ratio):
            exact.append(est)
        else:
            curves.append((est, cos, ratio))
    return curves, exact


def _same_curve(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two per-trial curves agree on every trial (within :data:`EXACT_TOL`)."""
    ok = np.isfinite(a) & np.isfinite(b)
    return bool(ok.any()) and bool(np.all(np.abs(a[ok] - b[ok]) <= EXACT_TOL))


def _alignment_column(
    axes: Any,
    name: str,
    p: Any,
    trials: np.ndarray,
    curves: list[tuple[str, np.ndarray, np.ndarray]],
    exact: list[str],
) -> None:
    """One projection's cosine (top) and norm-ratio (bottom) panels: ``curves`` drawn, ``exact`` named."""
    full = p.grad(REFERENCE_FULL) if REFERENCE_FULL in p.estimators else None
    kept = {e: (c, r) for e, c, r in curves}.get(KEPT_PART)
    ratios = []
    for i, (est, cos, ratio) in enumerate(curves):
        if est == KEPT_PART:  # thin and dashed, on top of the wide estimator lines
            style: dict[str, Any] = dict(ls="--", color="k", lw=1.1, zorder=3)
            label = KEPT_LABEL
        else:
            style = dict(lw=3.2, color=f"C{i}", alpha=0.6, solid_capstyle="butt", zorder=2)
            same = kept is not None and _same_curve(cos, kept[0]) and _same_curve(ratio, kept[1])
            label = f"{est} (= the kept part on every trial)" if same else est
        axes[0].plot(trials, cos, label=label, **style)
        axes[1].plot(trials, ratio, label=label, **style)
        ratios.append(ratio)
        if full is not None:
            g = p.grad(est)
            dotted = dict(style, ls=":")
            axes[0].plot(trials, cosine_similarity(g, full, batch_axes=1), **dotted)
            ratios.append(np.asarray(norm_ratio(g, full, batch_axes=1)))
            axes[1].plot(trials, ratios[-1], **dotted)
    axes[0].set_title(name)
    if exact:  # nothing else to draw here: say it in the panels
        text = "exact: " + ", ".join(exact) + "\n(ĝ = g_BPTT on every trial:\ncosine 1, norm ratio 1)"
        box = dict(boxstyle="round", fc="white", ec="0.7")
        for ax in axes:
            ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, bbox=box)
    axes[0].set_ylim(-1.05, 1.05)
    axes[0].axhline(0, color="grey", lw=0.5)
    r = np.concatenate(ratios) if ratios else np.empty(0)
    r = r[np.isfinite(r) & (r > 0)]
    if r.size and r.max() / r.min() > 10:
        axes[1].set_yscale("log")
    else:  # all within a decade: a linear axis around 1
        axes[1].set_ylim(0, max(1.5, 1.1 * float(r.max()) if r.size else 1.5))
    axes[1].axhline(1, color="grey", lw=0.5)
    axes[1].set_xlabel("trial")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(_integer_ticks())


def _integer_ticks() -> Any:
    """Tick positions at whole numbers only (trials, iterations)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def plot_factorization(ctx: ReplayContext, tr: ReplayedTrial, out: Path) -> Path:
    """Per-step contributions of the factorization dE/dW = Σ_t (L^kept_t + L^rec_t) e_t for one trial.

    Top: Frobenius norm of the per-step contribution matrices ‖C^part_t‖ (log scale).  Bottom: running
    sum of their projection on the unit BPTT gradient, Σ_{s≤t} ⟨C^part_s, Ĝ⟩; the two curves end at the
    shares of ‖g_BPTT‖ that the kept and the through-W_rec part carry (they add up to ‖g_BPTT‖).
    """
    from neuroplast.gradients.bptt import factorization_decomposition
    from neuroplast.gradients.trial import TrialData

    plt = _pyplot()
    if ctx.derived_model:  # another neuron model: its derived recursions
        from neuroplast.analysis.compare import model_trial
        from neuroplast.gradients.derived import model_factorization

        dec = model_factorization(model_trial(ctx, tr))
    else:
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
        ax.set_ylabel("‖C_t‖ (Frobenius norm, loss per weight unit)", fontsize=8)
        ax.legend(fontsize=8)
        ax = axes[1, col]
        gnorm = float(np.linalg.norm(d["bptt"]))
        for part, label, color in (("kept", "kept by e-prop", "C0"), ("recurrent", "through W_rec", "C3")):
            cum = np.cumsum(d[f"{part}_along"])
            ax.plot(
                t_ms, cum / gnorm if gnorm > 0 else cum, color=color, label=f"{label}: {cum[-1] / gnorm:.3g}"
            )
        ax.set_xlabel("time in trial (ms)")
        ax.set_ylabel("share of ‖g_BPTT‖ so far (1)", fontsize=8)
        ax.set_title(f"{name}: running Σ ⟨C_t, ĝ_BPTT⟩ / ‖g_BPTT‖")
        ax.legend(fontsize=8)
        for a in axes[:, col]:
            a.grid(alpha=0.3)
    fig.suptitle(f"{ctx.run.path.name}, trial {tr.index} (iteration {tr.iteration}): dE/dW = Σ_t L*_t e_t")
    fig.tight_layout()
    return _save(fig, out)


@dataclass(frozen=True)
class Readout:
    """The replayed readout of one trial, for the raster figure.

    Attributes
    ----------
    y : numpy.ndarray, shape (T, n_out)
        Replayed readout y_t.
    target : numpy.ndarray, shape (T, n_out)
        Regression target, or the one-hot label (classification).
    mask : numpy.ndarray, shape (T,)
        Steps that enter the loss (1/0).
    in_trial : bool
        Replayed with the logged in-trial weights (the weights changed during the trial).
    """

    y: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    in_trial: bool = False


def replay_in_trial(ctx: ReplayContext, k: int) -> tuple[Readout, float] | None:
    """Replay trial ``k`` of a run that learned inside its trials, with the logged in-trial weights.

    Every step runs with the weights in force at it (``TrialReplay.weights_at``: the iteration's weights
    up to step k − 1, then each logged in-trial row from its step on).

    Returns
    -------
    (Readout, float) or None
        The readout and the replayed loss (compare it with the logged one); ``None`` if the trial's
        weights were never logged (writer killed).
    """
    from neuroplast.model.dynamics import NetState, advance
    from neuroplast.model.surrogates import get_surrogate

    r = ctx.run.replay(k)
    if r.weights_before is None or (r.update_every_steps and r.in_trial_weights is None):
        return None
    T, n_out = r.n_steps, ctx.run.n_out
    if ctx.run.task_kind == "classification":
        target = np.zeros((T, n_out))
        target[:, int(r.target)] = 1.0
        mask = np.asarray(r.mask, dtype=np.float64)
    else:
        target, mask = np.asarray(r.target, dtype=np.float64), np.ones(T)
    sur = get_surrogate(ctx.params.surrogate)
    state = NetState.rest(1, ctx.params.n_rec, n_out)
    y = np.empty((T, n_out))
    every = r.update_every_steps or T
    for seg in range(0, T, every):
        w = ctx.dense_weights(r.weights_at(seg))  # type: ignore[arg-type]
        i_in = r.x[seg : seg + every] @ w.w_in.T
        for t in range(i_in.shape[0]):
            state, _, _ = advance(ctx.params, w, state, i_in[t][None], sur=sur)
            y[seg + t] = state.y[0]
    return Readout(y, target, mask, in_trial=bool(r.update_every_steps)), float(
        ctx.loss.value(y, target, mask)
    )


def plot_raster(run: RunLog, readout: Readout | None, k: int, out: Path, *, why_not: str = "") -> Path:
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
    a0.set_xlim(0, T * run.dt_ms)
    a0.set_ylabel("recurrent neuron")
    rate = ids.size / max(1, n_rec) / (T * run.dt_ms * 1e-3)
    a0.set_title(f"{run.path.name}, trial {k}: {ids.size} spikes ({rate:.3g} Hz per neuron)")
    t_ms = np.arange(1, T + 1) * run.dt_ms
    if readout is not None:
        for j in range(readout.target.shape[1]):
            a1.plot(t_ms, readout.y[:, j], color=f"C{j}", lw=1.2, label=f"readout y{j}")
            a1.plot(t_ms, readout.target[:, j], color=f"C{j}", ls="--", lw=1, label=f"target {j}")
        if run.task_kind == "classification":
            a1.fill_between(
                t_ms,
                0,
                1,
                where=readout.mask > 0,
                color="grey",
                alpha=0.15,
                transform=a1.get_xaxis_transform(),
                label="steps in the loss (recall)",
            )
        if readout.in_trial:
            every = run.update_every_steps
            for step in range(every, T, every):
                a1.axvline(step * run.dt_ms, color="grey", lw=0.6, ls=":")
            a1.set_title(f"replayed with the logged in-trial weights (dotted: an update every {every} steps)")
        a1.legend(fontsize=8, ncol=2)
    else:
        a1.text(0.5, 0.5, f"readout not replayed: {why_not or 'no weights logged'}", transform=a1.transAxes,
                ha="center", va="center", wrap=True)  # fmt: skip
    a1.set_xlabel("time in trial (ms)")
    a1.set_ylabel("readout")
    a1.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def _checked(
    readout: tuple[Readout, float] | None, k: int, logged: float, notes: list[str]
) -> Readout | None:
    if readout is None:
        return None
    rel = abs(readout[1] - logged) / max(abs(logged), abs(readout[1]), 1e-300)
    if not rel <= LOSS_RTOL:
        notes.append(f"trial {k}: replayed loss differs from the logged loss (rel. {rel:.2g}); not used")
        return None
    return readout[0]


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
    k_fac = run.n_trials + trial if trial < 0 else trial
    if not 0 <= k_fac < run.n_trials:
        raise RunFileError(run.path, f"has no trial {trial} (it has {run.n_trials})")
    out = Path(out_dir) if out_dir is not None else default_out_dir(run.path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(out, f"cannot create the output folder: {exc}") from exc
    written: list[Path] = [plot_loss(run, out / "loss.png")]
    notes: list[str] = []
    reason = alignment_skip_reason(run)
    if reason is None:
        written.append(plot_alignment(run, out / "alignment.png"))  # type: ignore[arg-type]
    else:
        notes.append(f"alignment.png not written: {reason}")
    try:
        ctx: ReplayContext | None = replay_context(run)
    except RunFileError as exc:
        ctx = None
        notes.append(f"factorization.png and the readout not drawn: {exc.problem}")
    k_last = run.n_trials - 1
    why_not = ""
    if ctx is not None and run.update_every_steps:
        notes.append(
            f"factorization.png not written: the weights change inside each trial (an update every "
            f"{run.update_every_steps} steps); the factorization is of a single-weights gradient"
        )
        readout = _checked(replay_in_trial(ctx, k_last), k_last, float(run.trials["loss"][k_last]), notes)
    elif ctx is not None:
        tr = _replay(ctx, k_fac, notes)
        if tr is not None:
            written.append(plot_factorization(ctx, tr, out / "factorization.png"))
        else:
            notes.append(f"factorization.png not written: trial {k_fac} cannot be replayed")
        tr_last = tr if k_last == k_fac else _replay(ctx, k_last, notes)
        readout = None if tr_last is None else Readout(tr_last.traj.y, tr_last.target, tr_last.mask)
    else:
        readout, why_not = None, "the stored config cannot be rebuilt"
    written.append(plot_raster(run, readout, k_last, out / "raster.png", why_not=why_not))
    return {"out_dir": out, "written": written, "notes": notes}


def _replay(ctx: ReplayContext, k: int, notes: list[str]) -> ReplayedTrial | None:
    tr = replay_trial(ctx, k)
    if tr is not None and not tr.loss_rel_diff <= LOSS_RTOL:
        notes.append(f"trial {tr.index}: replayed loss differs from the logged loss; not used")
        return None
    return tr
