"""``neuroplast sweep-report DIR``: one tidy table of a sweep (CSV and Parquet) and its figures (PNG).

One row per point of the manifest, in sweep order: its name and state, one column per axis (the dotted
config key), and from its run log the final loss (mean over the trials of the last iteration), the best
loss (lowest mean over the trials of one iteration), the accuracy of the last iteration (classification
tasks), the mean firing rate of the recurrent neurons over the last iteration (Hz), the cosine between the
rule's logged gradient and exact BPTT (mean over the compared trials, all projections together; where
``neuroplast compare`` has written BPTT into the log), the iterations done and the wall time of the point
(s).  Points that are not done keep their row, with empty results and their error; a point the manifest
lists as done whose run log cannot be read keeps its row too, in state ``unreadable`` with the reason as
its error (``neuroplast sweep-report`` warns about each on stderr and exits 1).

Figures: ``final_loss_vs_<axis>.png`` (and accuracy, for classification) for every axis but the seed, with
every point, and the mean and range (min…max) over the other axes (the seeds); ``loss_curves.png``, the
loss per iteration, mean and spread over seeds, of each combination of the other axes.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.errors import UsageError, first_line
from neuroplast.sweep.manifest import read_manifest
from neuroplast.sweep.spec import SEED_KEY, short_names

__all__ = ["point_row", "report_table", "sweep_report", "RESULT_COLUMNS"]

#: Result columns after the axes (``accuracy`` and ``cosine_vs_bptt`` only when some point has one).
RESULT_COLUMNS = (
    "final_loss",
    "best_loss",
    "accuracy",
    "mean_rate_hz",
    "cosine_vs_bptt",
    "iterations",
    "wall_s",
)
_OPTIONAL = ("accuracy", "cosine_vs_bptt")


def _iteration_means(values: np.ndarray, iteration: np.ndarray) -> np.ndarray:
    its = np.unique(iteration)
    return np.array([values[iteration == i].mean() for i in its])


def _cosine_vs_bptt(run: Any) -> float | None:
    """Mean over trials of cos(rule's gradient, BPTT), all projections with both concatenated."""
    from neuroplast.analysis.metrics import cosine_similarity

    written = run.gradients()
    est, ref = [], []
    for proj, ests in written.items():
        own = [e for e, who in ests.items() if who == "training" and e != "bptt"]
        if own and "bptt" in ests and ests["bptt"] != "training":
            p = run.projection(proj)
            est.append(p.grad(own[0]))
            ref.append(p.grad("bptt"))
    if not est:
        return None
    a, b = np.concatenate(est, axis=1), np.concatenate(ref, axis=1)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if not ok.any():
        return None
    return float(np.mean(cosine_similarity(a[ok], b[ok], batch_axes=1)))


def point_row(log: Path) -> dict[str, Any]:
    """The results of one run log (the columns of :data:`RESULT_COLUMNS` but ``wall_s``) and its loss curve.

    Returns
    -------
    dict
        ``final_loss``, ``best_loss``, ``accuracy`` (None for regression), ``mean_rate_hz``,
        ``cosine_vs_bptt`` (None where not compared), ``iterations`` and ``curve`` (mean loss per iteration).
    """
    from neuroplast.io import open_run

    run = open_run(log)
    t = run.trials
    it = t["iteration"]
    last = it == it.max()
    curve = _iteration_means(t["loss"], it)
    if "rate_hz" in t:
        rate = float(np.mean(t["rate_hz"][last]))
    else:  # older logs: count the spikes of the last iteration's trials
        ks = np.flatnonzero(last)
        n = sum(run.spikes("recurrent", trial=int(k))[0].size for k in ks)
        secs = float(t["n_steps"][last].sum()) * run.dt_ms / 1000.0
        rate = n / (run.population_sizes["recurrent"] * secs)
    acc = t.get("accuracy")
    return {
        "final_loss": float(curve[-1]),
        "best_loss": float(curve.min()),
        "accuracy": float(np.mean(acc[last]))
        if acc is not None and run.task_kind == "classification"
        else None,
        "mean_rate_hz": rate,
        "cosine_vs_bptt": _cosine_vs_bptt(run),
        "iterations": int(run.n_iterations),
        "curve": curve,
    }


def report_table(
    folder: str | Path,
) -> tuple[list[str], list[dict[str, Any]], dict[str, np.ndarray], list[str]]:
    """The table of a sweep folder: ``(columns, rows, loss curves by point name, notes)``."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    axes = list(manifest.get("axes", []))
    rows, curves, notes = [], {}, []
    for p in manifest["points"]:
        row: dict[str, Any] = {"name": p["name"], "state": p["state"]}
        row.update({a: p["params"].get(a) for a in axes})
        row.update({c: None for c in RESULT_COLUMNS})
        row["wall_s"] = p.get("wall_s")
        row["error"] = p.get("error")
        if p["state"] == "done":
            try:
                res = point_row(folder / p["log"])
            except Exception as exc:  # noqa: BLE001 - one unreadable log: marked, the others are reported
                row["state"] = "unreadable"
                row["error"] = f"{p['log']}: not read ({first_line(exc)})"
            else:
                curves[p["name"]] = res.pop("curve")
                row.update(res)
        rows.append(row)
    columns = ["name", "state", *axes]
    columns += [c for c in RESULT_COLUMNS if c not in _OPTIONAL or any(r[c] is not None for r in rows)]
    columns.append("error")
    return columns, rows, curves, notes


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return " ".join(_csv_value(x) for x in v)
    return str(v)


def _write_tables(columns: list[str], rows: list[dict[str, Any]], out: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(out / "report.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([_csv_value(r[c]) for c in columns])
    table = pa.table({c: [r[c] for r in rows] for c in columns})
    pq.write_table(table, out / "report.parquet")
    return [out / "report.csv", out / "report.parquet"]


#: Line styles of the loss curves, in turn (solid first).
CURVE_STYLES = ("-", "--", "-.", ":")


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _plot_axis(
    rows: list[dict[str, Any]], axis: str, metrics: Sequence[str], seeds: bool, out: Path, name: str
) -> Path:
    from neuroplast.analysis.plots import _pyplot, _save

    plt = _pyplot()
    values = list(dict.fromkeys(r[axis] for r in rows if r[axis] is not None))
    fig, axs = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics) + 1.0, 3.8), squeeze=False)
    spread = "seeds" if seeds else "points"
    for ax, m in zip(axs[0], metrics, strict=True):
        for i, v in enumerate(values):
            ys = np.array([r[m] for r in rows if r[axis] == v and r[m] is not None], dtype=float)
            ys = ys[np.isfinite(ys)]
            if not ys.size:
                continue
            jitter = np.linspace(-0.12, 0.12, ys.size) if ys.size > 1 else np.zeros(1)
            ax.scatter(i + jitter, ys, s=14, color="0.55", zorder=2)
            lo, hi = ys.mean() - ys.min(), ys.max() - ys.mean()
            ax.errorbar(i, ys.mean(), yerr=[[lo], [hi]], fmt="o", color="C0", capsize=5, ms=7, zorder=3)
        ax.set_xticks(range(len(values)), [_label(v) for v in values], rotation=20 if len(values) > 3 else 0)
        ax.set_xlabel(axis)
        ax.set_ylabel(m.replace("_", " "))
        if m.endswith("loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{axis}: mean, min…max over {spread}; grey: each point", fontsize=10)
    fig.tight_layout()
    return _save(fig, out / name)


def _plot_curves(
    rows: list[dict[str, Any]], curves: dict[str, np.ndarray], axes: list[str], out: Path
) -> Path | None:
    from neuroplast.analysis.plots import _pyplot, _save

    others = [a for a in axes if a != SEED_KEY]
    groups: dict[tuple, list[np.ndarray]] = {}
    for r in rows:
        if r["name"] in curves:
            groups.setdefault(tuple(r[a] for a in others), []).append(curves[r["name"]])
    if not groups or len(groups) > 12:
        return None
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    names = short_names(others)
    drawn: list[tuple[str, np.ndarray]] = []
    for i, (key, cs) in enumerate(groups.items()):
        n = min(c.size for c in cs)
        arr = np.stack([c[:n] for c in cs])
        x = np.arange(1, n + 1)
        mean = arr.mean(axis=0)
        label = ", ".join(f"{names[a]}={_label(v)}" for a, v in zip(others, key, strict=True)) or "all points"
        # a curve equal to one drawn before would vanish under it: say so, and draw every curve in its own
        # dash pattern, narrower than the ones before it, so that both stay visible
        same = [lab for lab, m in drawn if m.shape == mean.shape and np.array_equal(m, mean)]
        note = f", = {same[0]}" if same else ""
        style = CURVE_STYLES[i % len(CURVE_STYLES)]
        lw = 1.2 + 0.5 * (len(groups) - 1 - i)
        ax.plot(x, mean, style, color=f"C{i}", lw=lw, label=f"{label} (n={len(cs)}{note})")
        drawn.append((label, mean))
        if len(cs) > 1:
            ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole numbers
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (mean over the iteration's trials)")
    ax.set_title("training loss: mean over seeds, band = min…max")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out / "loss_curves.png")


def sweep_report(folder: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write the table and the figures of the sweep in ``folder``.

    Parameters
    ----------
    folder : path
        A sweep folder (holding ``sweep.json``).
    out : path, optional
        Where to write (default ``folder/report``; created, files in it overwritten).

    Returns
    -------
    dict
        ``written`` (paths), ``rows`` (points), ``missing`` (points not done, the unreadable included),
        ``unreadable`` (the error of each done point whose run log could not be read: its row has state
        ``unreadable``), ``columns`` and ``notes``.

    Raises
    ------
    ConfigError, UsageError
        No or a damaged manifest; an output path that is not a folder; pyarrow missing.
    """
    folder = Path(folder)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(
            "pyarrow is not installed; install it with: pip install 'neuroplast[sweep]'"
        ) from None
    columns, rows, curves, notes = report_table(folder)
    out = folder / "report" if out is None else Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = _write_tables(columns, rows, out)
    done = [r for r in rows if r["final_loss"] is not None]
    axes = [c for c in columns[2:] if c not in RESULT_COLUMNS and c != "error"]
    metrics = ["final_loss"] + (["accuracy"] if "accuracy" in columns else [])
    seeds = SEED_KEY in axes
    for a in axes:
        if a == SEED_KEY:
            continue
        if len({_label(r[a]) for r in done}) < 2:
            notes.append(f"{a}: fewer than two values among the done points; no figure")
            continue
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in a)
        written.append(_plot_axis(done, a, metrics, seeds, out, f"final_loss_vs_{safe}.png"))
    if done:
        p = _plot_curves(done, curves, axes, out)
        if p is not None:
            written.append(p)
    else:
        notes.append("no point is done yet; no figures")
    missing = sum(r["state"] != "done" for r in rows)
    unreadable = [r["error"] for r in rows if r["state"] == "unreadable"]
    return {
        "written": written,
        "rows": len(rows),
        "missing": missing,
        "unreadable": unreadable,
        "columns": columns,
        "notes": notes,
    }
