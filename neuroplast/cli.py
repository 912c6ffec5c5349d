"""The ``neuroplast`` command: run | inspect (compare and plot come with later issues).

Errors in inputs (configs, files, options) print one line to stderr and exit with
status 2; nothing is overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


def _cmd_run(args: argparse.Namespace) -> int:
    from neuroplast.config import load_config
    from neuroplast.plasticity.rules import rule_names
    from neuroplast.runner import TRACEABLE, run_training

    cfg = load_config(args.config)
    if args.rule is not None and args.rule.lower() not in rule_names():
        raise UsageError(f"--rule: unknown rule {args.rule!r} (known: {', '.join(rule_names())})")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations: must be >= 1 (got {args.iterations})")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed: must be >= 0 (got {args.seed})")
    trace = [v for v in (args.trace or "").split(",") if v]
    for v in trace:
        if v not in TRACEABLE:
            raise UsageError(f"--trace: unknown variable {v!r} (known: {', '.join(TRACEABLE)})")
    out = Path(args.out) if args.out else Path("runs") / (Path(args.config).stem + ".h5")
    if out.exists() and not args.force:
        raise UsageError(f"{out}: exists; use --force to overwrite it")
    if not out.parent.exists():
        if args.out:
            raise UsageError(f"{out.parent}: output folder does not exist")
        out.parent.mkdir(parents=True)
    path = run_training(
        cfg,
        out,
        iterations=args.iterations,
        seed=args.seed,
        rule=args.rule,
        force=args.force,
        trace=trace,
        trace_neurons=args.trace_neurons,
        progress=not args.quiet,
    )
    from neuroplast.io import open_run

    run = open_run(path)
    loss = run.trials["loss"]
    print(
        f"wrote {path}: {run.n_trials} trials, {run.n_iterations} iterations, "
        f"loss {loss[0]:.6g} -> {loss[-1]:.6g}"
    )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from neuroplast.io import open_run

    print(open_run(args.run).summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroplast",
        description="Train recurrent spiking networks in Brian2 with local learning rules (e-prop, ...), "
        "log every update to HDF5, and compare with exact BPTT.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="train a model config and write the HDF5 run log",
        description="Train the network of CONFIG (a TOML file, see models/) with a plasticity rule and "
        "write every trial's spikes, gradients and every weight update to an HDF5 run log.",
    )
    run.add_argument("config", help="model config (TOML), e.g. models/sine.toml")
    run.add_argument("--out", help="run log to write (default: runs/<config name>.h5)")
    run.add_argument("--iterations", type=int, help="number of weight updates (default: training.iterations)")
    run.add_argument("--seed", type=int, help="random seed (default: simulation.seed)")
    run.add_argument(
        "--rule",
        help="plasticity rule, e.g. eprop, eprop-random, eprop-adaptive, bptt, or a "
        "plugin's name (default: training.rule)",
    )
    run.add_argument("--force", action="store_true", help="overwrite an existing run log")
    run.add_argument("--trace", help="comma-separated recurrent variables to log per step (v,a,z,psi)")
    run.add_argument("--trace-neurons", type=int, help="log traces of only the first N recurrent neurons")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_cmd_run)
    ins = sub.add_parser(
        "inspect",
        help="summarize a run log",
        description="Print populations, trials, loss curve and sizes of a run log.",
    )
    ins.add_argument("run", help="run log (HDF5) written by `neuroplast run`")
    ins.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from neuroplast.config import ConfigError
    from neuroplast.io import RunFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError, RunFileError) as exc:
        print(f"neuroplast {args.command}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neuroplast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
