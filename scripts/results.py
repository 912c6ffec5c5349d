"""The experiments of docs/results.md: choose each rule's learning rate, then tables and learning curves.

Every experiment runs in two sweeps (``neuroplast sweep``): a *grid* over rule × learning rate on two seeds
(100, 101) that the results do not use, and the *results* over 5 seeds (0–4), each rule at the learning
rate the grid chose. This script reads the sweep folders (their run logs); it trains nothing.

    python scripts/results.py choose sweeps/pattern_grid          # the learning rate of each rule
    python scripts/results.py report sweeps/pattern --out docs/figures/results --name pattern
    python scripts/results.py summarize sweeps/pattern   # results.json: the logs may then be deleted

``choose`` ranks a rule's learning rates by the mean over the grid's seeds of: regression — the final
normalized MSE; classification — (share of runs that met the stopping criterion, highest first; mean
iterations to it, a run that did not counting its whole budget; final error). ``report`` prints the
markdown table of docs/results.md (mean ± standard deviation over seeds, and the range) and writes the
learning-curve figure ``<name>.png``.

Normalized MSE (regression): Σ_t (y_t − y*_t)² / Σ_t (y*_t − mean y*)² of a trial — the logged loss is
½ Σ_t (y − y*)² (docs/model.md), so NMSE = 2 · loss / Σ_t (y* − mean y*)². The "final" value is the mean
over the trials of the last 10 iterations. Error (classification): the fraction of wrong answers over the
trials of the last ``training.stop_window`` iterations (:mod:`neuroplast.tasks.criterion`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.io import open_run
from neuroplast.tasks.criterion import iterations_to_criterion, window_error

RULE, LR, SEED = "training.rule", "training.learning_rate", "simulation.seed"
#: The rules in the order of the tables and figures.
RULE_ORDER = ("eprop", "eprop-random", "eprop-adaptive", "bptt", "bptt-full")
FINAL_ITERATIONS = 10  # regression: the final NMSE is the mean over this many last iterations


def _points(folder: Path) -> list[dict[str, Any]]:
    manifest = json.loads((folder / "sweep.json").read_text())
    return [p for p in manifest["points"] if p["state"] == "done"]


def run_result(log: Path) -> dict[str, Any]:
    """What the tables need of one run log: kind, curve (per iteration), final value, iterations."""
    run = open_run(log)
    training = tomllib.loads(run.config_toml)["training"]
    it = np.asarray(run.trials["iteration"], dtype=np.int64)
    n_it = int(run.n_iterations)
    loss = np.asarray(run.trials["loss"], dtype=np.float64)
    if run.task_kind == "classification":
        acc = np.asarray(run.trials["accuracy"], dtype=np.float64)
        window = int(training.get("stop_window", 10))
        stop = float(training.get("stop_error", 0.0))
        per_it = [acc[it == i] for i in range(n_it)]
        curve = np.array([1.0 - a.mean() for a in per_it])
        return {
            "kind": "classification",
            "curve": curve,
            "final": window_error(per_it, min(window, n_it)),
            "to_criterion": iterations_to_criterion(it, acc, stop, window) if stop > 0 else None,
            "iterations": n_it,
            "budget": int(training["iterations"]),
            "stopped": run.stopped is not None,
        }
    y_star = np.asarray(run.replay(0).target, dtype=np.float64)
    denom = float(np.sum((y_star - y_star.mean(axis=0)) ** 2))
    frozen = all(np.array_equal(run.replay(k).target, y_star) for k in (len(it) - 1,))
    if not frozen:
        raise SystemExit(f"{log}: the targets differ between trials; NMSE needs one frozen target")
    nmse = 2.0 * loss / denom
    curve = np.array([nmse[it == i].mean() for i in range(n_it)])
    return {
        "kind": "regression",
        "curve": curve,
        "final": float(curve[-FINAL_ITERATIONS:].mean()),
        "iterations": n_it,
        "budget": int(training["iterations"]),
    }


SUMMARY = "results.json"  # per point: what run_result read from its log (summarize)


def _load_summary(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / SUMMARY
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    for res in data.values():
        res["curve"] = np.asarray(res["curve"], dtype=np.float64)
    return data


def summarize(folder: Path) -> list[str]:
    """Write ``folder/results.json``: :func:`run_result` of every finished point whose log is there (points
    already in it are kept). A 2000-iteration run log of models/sine.toml is ≈ 1.4 GB; once summarized, the
    tables and figures no longer need it. Returns the names of the points summarized now."""
    data = _load_summary(folder)
    new = []
    for p in _points(folder):
        if p["name"] not in data and (folder / p["log"]).is_file():
            data[p["name"]] = run_result(folder / p["log"])
            new.append(p["name"])
    if new:
        payload = {k: {**v, "curve": [float(x) for x in v["curve"]]} for k, v in data.items()}
        tmp = folder / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(folder / SUMMARY)
    return new


def _collect(folder: Path) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """Results by (rule, learning rate), one entry per seed, with wall time and seed (from the run logs, or
    from ``results.json`` for a point summarized there)."""
    out: dict[tuple[str, float], list[dict[str, Any]]] = {}
    summary = _load_summary(folder)
    for p in _points(folder):
        res = dict(summary[p["name"]]) if p["name"] in summary else run_result(folder / p["log"])
        res.update(seed=p["params"].get(SEED), wall_s=p.get("wall_s"))
        training = tomllib.loads((folder / p["config"]).read_text())["training"]
        lr = p["params"].get(LR, training["learning_rate"])
        res.setdefault("stop_error", training.get("stop_error"))
        out.setdefault((p["params"][RULE], float(lr)), []).append(res)
    return out


def _rank_key(results: list[dict[str, Any]]) -> tuple[float, ...]:
    """Smaller is better (see the module docstring)."""
    finals = [r["final"] if r["final"] is not None else math.inf for r in results]
    finals = [f if math.isfinite(f) else math.inf for f in finals]
    if results[0]["kind"] == "regression":
        return (float(np.mean(finals)),)
    reached = [r["to_criterion"] is not None for r in results]
    its = [r["to_criterion"] if r["to_criterion"] is not None else r["budget"] for r in results]
    return (-float(np.mean(reached)), float(np.mean(its)), float(np.mean(finals)))


def _collect_all(folders: list[Path]) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """:func:`_collect` over several folders of one sweep (e.g. a grid extended later by one more value)."""
    out: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for folder in folders:
        for key, res in _collect(folder).items():
            out.setdefault(key, []).extend(res)
    return out


def choose(folders: list[Path]) -> dict[str, float]:
    """Each rule's learning rate from a grid sweep (one folder, or the folders it ran in); prints the
    ranking."""
    by = _collect_all(folders)
    chosen = {}
    for rule in [r for r in RULE_ORDER if any(k[0] == r for k in by)]:
        cands = sorted((lr, res) for (ru, lr), res in by.items() if ru == rule)
        ranked = sorted(cands, key=lambda c: _rank_key(c[1]))
        chosen[rule] = ranked[0][0]
        for lr, res in cands:
            finals = ", ".join(f"{r['final']:.4g}" for r in res)
            extra = ""
            if res[0]["kind"] == "classification":
                extra = " to criterion: " + ", ".join(str(r["to_criterion"]) for r in res)
            mark = "  <- chosen" if lr == chosen[rule] else ""
            print(f"{rule:15s} lr {lr:<8g} final {finals}{extra}{mark}")
    print("\n[[zip]]")
    print(f'"{RULE}" = [{", ".join(json.dumps(r) for r in chosen)}]')
    print(f'"{LR}" = [{", ".join(f"{v:g}" for v in chosen.values())}]')
    return chosen


def _fmt(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return "–"
    return f"{v.mean():.{digits}g} ± {v.std():.2g} ({v.min():.{digits}g}–{v.max():.{digits}g})"


def report(folders: list[Path], out: Path, name: str) -> None:
    """The markdown table (stdout) and ``out/<name>.png``."""
    by = _collect_all(folders)
    rules = [r for r in RULE_ORDER if any(k[0] == r for k in by)]
    kind = next(iter(by.values()))[0]["kind"]
    if kind == "regression":
        print("| rule | learning rate | seeds | final NMSE, mean ± sd (range) | wall time per run (s) |")
        print("|---|---|---|---|---|")
    else:
        print(
            "| rule | learning rate | seeds | met the criterion | iterations to it, mean ± sd (range) | "
            "final error | wall time per run (s) |"
        )
        print("|---|---|---|---|---|---|---|")
    for rule in rules:
        for (ru, lr), res in sorted(by.items()):
            if ru != rule:
                continue
            finals = [r["final"] for r in res if r["final"] is not None]
            walls = [r["wall_s"] for r in res if r["wall_s"] is not None]
            if kind == "regression":
                print(f"| {rule} | {lr:g} | {len(res)} | {_fmt(finals)} | {_fmt(walls, 3)} |")
            else:
                its = [r["to_criterion"] for r in res if r["to_criterion"] is not None]
                budget = res[0]["budget"]
                print(
                    f"| {rule} | {lr:g} | {len(res)} | {len(its)} of {len(res)} (budget {budget}) | "
                    f"{_fmt(its)} | {_fmt(finals)} | {_fmt(walls, 3)} |"
                )
    _figure(by, rules, kind, out / f"{name}.png", name)


def _figure(by: dict, rules: list[str], kind: str, path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), constrained_layout=True)
    colors = dict(zip(RULE_ORDER, ("C0", "C1", "C2", "C3", "C4"), strict=True))
    for rule in rules:
        rates = sorted(lr for ru, lr in by if ru == rule)
        for (ru, lr), res in sorted(by.items()):
            if ru != rule:
                continue
            label = f"{rule} (lr {lr:g}, {len(res)} seed{'s' if len(res) > 1 else ''})"
            ls = ("-", "--", ":", "-.")[rates.index(lr) % 4]  # a rule's learning rates told apart by dashes
            if kind == "regression":
                n = min(len(r["curve"]) for r in res)
                c = np.array([r["curve"][:n] for r in res])
                x = np.arange(1, n + 1)
                ax.plot(x, c.mean(axis=0), color=colors[rule], ls=ls, label=label)
                ax.fill_between(x, c.min(axis=0), c.max(axis=0), color=colors[rule], alpha=0.2, lw=0)
            else:
                for j, r in enumerate(res):
                    w = min(10, len(r["curve"]))  # a run shorter than the window: its whole mean
                    c = np.convolve(r["curve"], np.ones(w) / w, mode="valid")
                    x = np.arange(w, len(r["curve"]) + 1)
                    ax.plot(
                        x, c, color=colors[rule], ls=ls, lw=1.0, alpha=0.8, label=label if j == 0 else None
                    )
                    if r["to_criterion"] is not None:
                        ax.plot([r["to_criterion"]], [c[-1]], "o", color=colors[rule], ms=4)
    if kind == "regression":
        ax.set_yscale("log")
        ax.set_ylabel("normalized MSE (mean, range over seeds)")
    else:
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")  # chance
        stops = {r.get("stop_error") for res in by.values() for r in res} - {None}
        for stop in stops:  # the stopping criterion
            ax.axhline(stop, color="0.3", lw=0.8, ls="--", label=f"criterion ({stop:.0%} error)")
        ax.set_ylabel("error (mean over 10 iterations' trials)")
        ax.set_ylim(0, 0.65)
    ax.set_xlabel("iteration")
    ax.set_title(name)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nwrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("choose", help="each rule's learning rate from a grid sweep folder (or its parts)")
    c.add_argument("folder", type=Path, nargs="+")
    m = sub.add_parser("summarize", help="write FOLDER/results.json from the finished points' run logs")
    m.add_argument("folder", type=Path)
    r = sub.add_parser("report", help="table (stdout) and learning-curve figure of a results sweep folder")
    r.add_argument("folder", type=Path, nargs="+")
    r.add_argument("--out", type=Path, default=Path("docs/figures/results"))
    r.add_argument("--name", required=True, help="figure name (and title)")
    args = ap.parse_args(argv)
    folders = args.folder if isinstance(args.folder, list) else [args.folder]
    for folder in folders:
        if not (folder / "sweep.json").is_file():
            print(f"{folder}: no sweep.json (not a sweep folder)", file=sys.stderr)
            return 2
    if args.cmd == "summarize":
        for name in summarize(args.folder):
            print(name)
    elif args.cmd == "choose":
        choose(folders)
    else:
        report(folders, args.out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
