"""Train a model, follow its loss, and check the logged rule against exact BPTT — the scripting API only.

    python examples/train_script.py                       # models/sine.toml on its configured device
    python examples/train_script.py --numpy --iterations 3 --out /tmp/sine.h5   # the NumPy reference

Everything comes from ``import neuroplast as npl`` (docs/architecture.md, "The scripting API").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import neuroplast as npl

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE.parent / "models" / "sine.toml"), help="a TOML model file")
    ap.add_argument("--out", default="runs/train_script.h5", help="the run log to write (replaced)")
    ap.add_argument("--iterations", type=int, default=10, help="training iterations")
    ap.add_argument("--numpy", action="store_true", help="simulate with the NumPy reference (no compiler)")
    args = ap.parse_args()

    cfg = npl.load_config(args.config)
    print(f"rules: {', '.join(npl.RULES.names())}; devices: {', '.join(npl.DEVICES.names())}")

    def on_iteration(rec) -> None:  # an IterationRecord: losses, trials, updates, in the log's terms
        print(f"iteration {rec.iteration:3d}  loss {sum(rec.losses) / len(rec.losses):10.4f}")

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    run = npl.train(
        cfg,
        args.out,
        iterations=args.iterations,
        force=True,
        callback=on_iteration,
        device="numpy" if args.numpy else None,
    )
    print(f"{run.path}: {run.n_iterations} iterations, rule {run.rule}, {run.n_trials} trials logged")

    report = npl.compare(run.path)  # exact BPTT of every logged trial, stored in the log
    for proj, by_estimator in report["projections"].items():
        for name, metrics in by_estimator.items():
            print(f"{proj:>9} {name:>8}: cosine to BPTT {metrics['cosine']['mean']:.3f}")


if __name__ == "__main__":
    main()
