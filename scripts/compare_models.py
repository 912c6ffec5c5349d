"""Rules against exact BPTT on the neuron models lif_syn and adlif (docs/comparison.md, other models).

For each model and rule, train a small network on models/<model>.toml's task (sizes below, small enough for
exact RTRL), then ``neuroplast compare --rtrl --keep-reset`` it: every logged trial is replayed through the
model's equations, exact BPTT (reset detached, and with the reset differentiated) and RTRL are computed from
its derived Jacobians, and the rule's gradient is measured against both.  Prints one table row per (model,
rule) — the cosine per projection with BPTT (reset detached), mean over trials and over the last 20 %, the
mean cosine with the full BPTT (reset differentiated, what ``ostl``'s eligibility follows) — with RTRL's
relative difference from the full BPTT, and draws the figure docs/figures/models_vs_bptt.png (cosine with
BPTT over training).

    python scripts/compare_models.py [--iterations 60] [--out runs/models] [--figure PNG] [--plot-only]
                                     [--rules eprop,eprop-random,three-factor,superspike,ostl[,PLUGIN...]]

``--rules`` takes any registered rule, a plugin's too (e.g. ``superspike-alpha`` of examples/plugin_rule,
a rule with its own trace state and learning signal).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lif_syn", "adlif")
RULES = ("eprop", "eprop-random", "three-factor", "superspike", "ostl")
#: Small enough for exact RTRL (N³ (n_in + N) T ≈ 5e8 multiply-adds per trial).
SIZES = {"n_rec": 30, "n_in": 30, "n_steps": 300}


def _config(model: str, rule: str, iterations: int):
    from neuroplast.config import load_config

    cfg = load_config(ROOT / "models" / f"{model}.toml")
    cfg = cfg.replace("simulation", n_steps=SIZES["n_steps"])
    cfg = cfg.replace("network", n_rec=SIZES["n_rec"])
    cfg = cfg.replace("task", n_in=SIZES["n_in"], periods_ms=[300.0, 150.0, 100.0])
    return cfg.replace("training", rule=rule, iterations=iterations)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--rules", default=",".join(RULES), help="comma-separated rule names")
    ap.add_argument("--out", default="runs/models", help="folder of the run logs")
    ap.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "models_vs_bptt.png"))
    ap.add_argument(
        "--plot-only", action="store_true", help="table and figure from the compared logs already in --out"
    )
    args = ap.parse_args(argv)
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    from neuroplast.analysis.compare import compare_run
    from neuroplast.training.runner import run_training

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    print(f"sizes {SIZES}, {args.iterations} iterations, sine task, Adam; cosine with BPTT (reset detached)")
    print(
        f"{'model':8} {'rule':14} {'loss first->last':>20} {'input cos':>22} {'recurrent cos':>22} "
        f"{'full in/rec':>12} {'RTRL vs full':>13}"
    )
    for model in MODELS:
        for rule in rules:
            path = out / f"{model}_{rule}.h5"
            took = ""
            if not args.plot_only:
                t0 = time.perf_counter()
                run_training(_config(model, rule, args.iterations), path, force=True, progress=False)
                took = f"   (trained in {time.perf_counter() - t0:.0f} s)"
                compare_run(path, progress=False, rtrl=True, keep_reset=True)
            loss, cos, rtrl = _measured(path, rule)
            results[(model, rule)] = cos
            tail = max(1, len(loss) // 5)
            cells = [
                f"{np.nanmean(c):.3f} (last {np.nanmean(c[-tail:]):.3f})" for c in cos["detached"].values()
            ]
            fcell = "/".join(f"{np.nanmean(c):.3f}" for c in cos["full"].values())
            print(
                f"{model:8} {rule:14} {loss[0]:9.3g} -> {np.mean(loss[-tail:]):<8.3g} "
                f"{cells[0]:>22} {cells[1]:>22} {fcell:>12} {rtrl:13.1e}{took}",
                flush=True,
            )
    _figure(results, Path(args.figure), rules)
    print(f"wrote {args.figure}")
    return 0


def _measured(path: Path, rule: str) -> tuple[np.ndarray, dict, float]:
    """A compared log's trial losses, the rule's cosine per trial with BPTT (``detached``: reset detached,
    ``full``: differentiated) per projection, and RTRL's largest relative difference from the full BPTT."""
    from neuroplast.analysis.metrics import cosine_similarity, relative_error
    from neuroplast.io import open_run

    run = open_run(path)
    cos: dict[str, dict[str, np.ndarray]] = {"detached": {}, "full": {}}
    rtrl = 0.0
    for p in ("input", "recurrent"):
        g = {k: np.asarray(run.projection(p).grad(k)) for k in (rule, "bptt", "bptt_full", "rtrl")}
        cos["detached"][p] = np.asarray(cosine_similarity(g[rule], g["bptt"], batch_axes=1))
        cos["full"][p] = np.asarray(cosine_similarity(g[rule], g["bptt_full"], batch_axes=1))
        rtrl = max(rtrl, float(np.nanmax(relative_error(g["rtrl"], g["bptt_full"], batch_axes=1))))
    return np.asarray(run.trials["loss"]), cos, rtrl


#: Line styles per rule: superspike's curve equals e-prop's on lif_syn (its trace is e-prop's there), so it is
#: drawn dashed over e-prop's wider line.
STYLE = {"superspike": {"ls": "--", "lw": 1.5}}


def _figure(results: dict, path: Path, rules: tuple[str, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    refs = (("detached", "BPTT, reset detached"), ("full", "BPTT, reset differentiated (= RTRL)"))
    fig, axes = plt.subplots(len(refs), len(MODELS), figsize=(11, 7.5), sharey=True, sharex=True)
    for row, (ref, what) in enumerate(refs):
        for col, model in enumerate(MODELS):
            ax = axes[row, col]
            for k, rule in enumerate(rules):
                cos = results[(model, rule)][ref]["recurrent"]
                ax.plot(np.arange(1, cos.size + 1), cos, ".", ms=3, alpha=0.35, color=f"C{k}")
                w = max(1, cos.size // 10)
                smooth = np.convolve(cos, np.ones(w) / w, mode="valid")
                style = {"ls": "-", "lw": 2.5 if rule == "eprop" else 2, **STYLE.get(rule, {})}
                ax.plot(np.arange(w, cos.size + 1), smooth, color=f"C{k}", label=rule, **style)
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set_title(f"{model}: recurrent weights vs {what}", fontsize=10)
            ax.grid(alpha=0.3)
            if row == len(refs) - 1:
                ax.set_xlabel("trial (running mean over 6)")
        axes[row, 0].set_ylabel("cosine with exact BPTT")
    axes[0, 0].legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
