"""The ``neuroplast sweep`` and ``neuroplast sweep-report`` subcommands (registered by the cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuroplast.errors import UsageError

__all__ = ["add_parsers"]


def _cmd_sweep(args: argparse.Namespace) -> int:
    from neuroplast.sweep.driver import import_distributed, run_sweep
    from neuroplast.sweep.spec import load_sweep

    if args.workers < 1:
        raise UsageError(f"--workers: must be >= 1 (got {args.workers})")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations: must be >= 1 (got {args.iterations})")
    import_distributed()  # a missing dask is one line, before anything is read or written
    sweep = load_sweep(args.sweep, iterations=args.iterations)
    out = Path(args.out) if args.out else Path("sweeps") / Path(args.sweep).stem
    if not args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
    where = f"scheduler {args.scheduler}" if args.scheduler else f"a local cluster of {args.workers} workers"
    print(
        f"sweep {sweep.path}: {len(sweep.points)} points over {', '.join(sweep.axes) or 'no axes'} on {where}"
    )
    manifest = run_sweep(
        sweep,
        out,
        scheduler=args.scheduler,
        workers=args.workers,
        resume=args.resume,
        progress=not args.quiet,
    )
    points = manifest["points"]
    failed = [p for p in points if p["state"] == "failed"]
    done = sum(p["state"] == "done" for p in points)
    print(
        f"wrote {out}: {done} of {len(points)} points done, {len(failed)} failed (manifest {out}/sweep.json)"
    )
    for p in failed:
        print(f"  failed: {p['name']}: {p['error']}")
    return 1 if failed else 0


def _cmd_sweep_report(args: argparse.Namespace) -> int:
    from neuroplast.sweep.report import sweep_report

    res = sweep_report(args.dir, args.out)
    for error in res["unreadable"]:  # a done point whose log cannot be read: never passed over in silence
        print(f"neuroplast sweep-report: warning: {error}", file=sys.stderr)
    bad = f", {len(res['unreadable'])} unreadable" if res["unreadable"] else ""
    written = ", ".join(str(p) for p in res["written"])
    print(f"{res['rows']} points ({res['missing']} not done{bad}) -> {written}")
    for note in res["notes"]:
        print(f"note: {note}")
    return 1 if res["unreadable"] else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and ``sweep-report`` to the ``neuroplast`` subcommands ``sub``."""
    sw = sub.add_parser(
        "sweep",
        help="run every point of a sweep file (seeds x config keys) on a Dask cluster",
        description="Expand SWEEP (a base config and axes over its keys, see docs/sweeps.md) into points, "
        "run each as an ordinary `neuroplast run` in a Dask worker (its own run log and resolved config in "
        "DIR, named from its parameters) and keep the manifest DIR/sweep.json (state, error, wall time of "
        "every point). Exit 0 when every point is done, 1 when some failed, 2 on bad input.",
    )
    sw.add_argument("sweep", help="sweep file (TOML), e.g. models/sweep_rules.toml")
    sw.add_argument("--out", help="sweep folder (default: sweeps/<sweep name>)")
    sw.add_argument(
        "--scheduler", metavar="ADDRESS", help="connect to a running Dask scheduler (tcp://host:port)"
    )
    sw.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes of the local cluster (default 2, 1 thread each)",
    )
    sw.add_argument("--iterations", type=int, help="override every point's training.iterations")
    sw.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in DIR: skip finished points, continue interrupted run logs bit for bit, "
        "run failed and pending points again",
    )
    sw.add_argument("--quiet", action="store_true", help="no progress lines")
    sw.set_defaults(func=_cmd_sweep)
    rep = sub.add_parser(
        "sweep-report",
        help="table (CSV, Parquet) and figures of a sweep folder",
        description="Read every finished point of DIR and write report.csv and report.parquet (one row per "
        "point: axes, final and best loss, accuracy, mean rate, e-prop vs BPTT cosine where compared, wall "
        "time) and PNG figures of the final loss (and accuracy) against each axis, spread over seeds. "
        "A point listed as done whose run log cannot be read keeps its row (state 'unreadable', the reason "
        "as its error) and is warned about on stderr, one line each. Exit 0 when every done point was read, "
        "1 when some could not be, 2 on bad input.",
    )
    rep.add_argument("dir", help="sweep folder written by `neuroplast sweep`")
    rep.add_argument("--out", help="folder for the report (default: DIR/report)")
    rep.set_defaults(func=_cmd_sweep_report)
