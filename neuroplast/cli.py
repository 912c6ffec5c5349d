"""The ``neuroplast`` command: run | inspect | compare | analyze | plot | cache | sweep | sweep-report.

Errors in inputs (configs, files, options) print one line to stderr and exit with
status 2; nothing is overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from neuroplast.errors import DivergedError, NeuroplastError, UsageError, first_line

__all__ = ["main"]


def _cmd_run(args: argparse.Namespace) -> int:
    from neuroplast.config import check_log_size, load_config
    from neuroplast.io.lock import check_not_busy
    from neuroplast.io.paths import check_log_path
    from neuroplast.plasticity.rules import rule_names
    from neuroplast.training.runner import logged_iterations, run_training, traceable

    cfg = load_config(args.config)
    if args.rule is not None and args.rule.lower() not in rule_names():
        raise UsageError(f"--rule: unknown rule {args.rule!r} (known: {', '.join(rule_names())})")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations: must be >= 1 (got {args.iterations})")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed: must be >= 0 (got {args.seed})")
    if args.trace_neurons is not None and args.trace_neurons < 1:
        raise UsageError(f"--trace-neurons: must be >= 1 (got {args.trace_neurons})")
    trace = [v.strip() for v in (args.trace or "").split(",") if v.strip()]
    known = traceable(cfg)
    for v in trace:
        if v not in known:
            raise UsageError(f"--trace: unknown variable {v!r} (known: {', '.join(known)})")
        if trace.count(v) > 1:
            raise UsageError(f"--trace: {v!r} is given more than once (got {args.trace!r})")
    resumed: dict[str, int] = {}
    # every check of the run-log path comes before anything is built, deleted or written; a path that is
    # not a regular file (a device such as /dev/null, a FIFO, a socket, a folder, a dangling link) or that
    # is the config itself is never replaced, --force or not
    if args.resume is not None:
        from neuroplast.io import open_run

        out = Path(args.resume)
        if args.force:
            raise UsageError("--resume continues a run log in place; it cannot be combined with --force")
        if args.out and Path(args.out).resolve() != out.resolve():
            raise UsageError(f"--out {args.out}: with --resume the run log is {out}; leave --out out")
        if not os.path.lexists(out):
            raise UsageError(
                f"{out}: --resume: no such run log; to start a new run, leave out --resume (and write it "
                f"with --out {out})"
            )
        check_log_path(args.resume, protect={"the config file": args.config})
        check_not_busy(out)
        before = open_run(out)
        was_finished, n_before = before.finished, before.n_iterations
    else:
        given = args.out or str(Path("runs") / (Path(args.config).stem + ".h5"))
        out = check_log_path(given, protect={"the config file": args.config})
        if out.exists() and not args.force:
            raise UsageError(f"{out}: exists; use --force to overwrite it (or --resume {out} to continue it)")
        check_not_busy(out)  # --force never deletes a log that a live run writes
        if not out.parent.exists():
            if args.out:
                raise UsageError(f"{out.parent}: output folder does not exist")
            try:
                out.parent.mkdir(parents=True)
            except OSError as exc:
                raise UsageError(f"{out.parent}: cannot create the output folder ({exc.strerror})") from None
        if not out.parent.is_dir():
            raise UsageError(f"{out.parent}: is not a folder")
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise UsageError(f"{out.parent}: output folder is not writable")
    if args.resume is not None:  # room for the iterations still to come, of the run's own length
        target = args.iterations if args.iterations is not None else logged_iterations(before)
        check_log_size(cfg, out.parent, max(0, int(target) - n_before))
    else:
        check_log_size(cfg, out.parent, args.iterations)
    from neuroplast.network.devices import import_brian2, simulated_by_brian2

    if simulated_by_brian2(cfg.simulation.device):  # this process is ours: brian2 without pylab's names
        import_brian2(pylab=False)
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
        resume=out if args.resume is not None else None,
        on_resume=resumed.update,
    )
    from neuroplast.io import open_run

    run = open_run(path)
    if args.resume is not None and was_finished and run.n_iterations == n_before:
        print(f"{path}: run already finished ({run.n_iterations} iterations); nothing to resume")
        return 0
    if args.resume is not None and was_finished:
        print(f"extended {path} from {n_before} to {run.n_iterations} iterations")
    elif resumed:
        print(
            f"resumed {path} after iteration {resumed['iterations']} "
            f"(cut off {resumed['dropped_trials']} trials, {resumed['dropped_iterations']} iterations "
            "of unfinished work)"
        )
    first, last = run.iteration_loss(0), run.iteration_loss(-1)  # as the progress lines show it
    line = (
        f"wrote {path}: {run.n_trials} trials, {run.n_iterations} iterations, "
        f"loss {first:.6g} -> {last:.6g} (mean over the first and the last iteration's trials)"
    )
    acc = run.trials.get("accuracy")
    if acc is not None and len(acc):
        k = max(1, len(acc) // 5)
        line += f", accuracy {acc[:k].mean():.2f} (first 20 % of trials) -> {acc[-k:].mean():.2f} (last 20 %)"
    print(line + (f"; {run.stopped}" if run.stopped else ""))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from neuroplast.io import open_run

    print(open_run(args.run).summary())
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from neuroplast.analysis.compare import compare_run
    from neuroplast.io.lock import check_not_busy

    def _fmt(v: float) -> str:
        return "nan" if v != v else f"{v:.3g}"

    check_not_busy(args.run)  # a live run's log is not replayed (and not written to)
    if args.self_test:
        return _compare_self_test(args)
    res = compare_run(
        args.run, keep_reset=args.keep_reset, progress=not (args.quiet or args.json), rtrl=args.rtrl
    )
    if args.json:

        def plain(o):
            if isinstance(o, dict):
                return {k: plain(v) for k, v in o.items()}
            if isinstance(o, (list, tuple, np.ndarray)):
                return [plain(v) for v in (o.tolist() if isinstance(o, np.ndarray) else o)]
            if isinstance(o, float) and o != o:
                return None
            return o

        print(json.dumps(plain(res), indent=1))
        return 0
    ref = res["reference"]
    print(
        f"{res['file']}: rule {res['rule']}, {len(res['replayed'])} of {res['n_trials']} trials replayed, "
        f"reference {ref} ({'reset path kept' if res['keep_reset'] else 'reset detached'}); "
        f"replayed vs logged loss: max rel. diff {res['loss_check']['max_rel_diff']:.2g}"
    )
    print("wrote " + ", ".join(f"grad/{e}" for e in res["written"]))
    cols = ("cosine", "rel_error", "sign_agreement", "norm_ratio", "rel_error_vs_eprop_part")
    heads = ("cosine", "rel. error", "sign agreement", "norm ratio", "vs kept part")
    for proj, ests in res["projections"].items():
        print(f"\n{proj}: vs {ref}, mean over trials [first -> last]")
        used = [c for c in cols if any(c in m for m in ests.values())]
        table = [["estimator"] + [heads[cols.index(c)] for c in used]]
        for est, m in ests.items():
            table.append(
                [est]
                + [
                    f"{_fmt(m[c]['mean'])} [{_fmt(m[c]['first'])} -> {_fmt(m[c]['last'])}]" if c in m else "-"
                    for c in used
                ]
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _compare_self_test(args: argparse.Namespace) -> int:
    """``neuroplast compare --self-test``: 0 if every expectation holds, 1 otherwise; writes nothing."""
    import json

    from neuroplast.analysis.compare import SELF_TEST_AGREE, SELF_TEST_DIFFER, self_test

    res = self_test(args.run)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0 if res["ok"] else 1
    print(
        f"{res['file']}: self-test on trials {', '.join(map(str, res['trials']))} "
        f"(replayed vs logged loss: max rel. diff {res['loss_check']['max_rel_diff']:.2g}); nothing written"
    )
    for c in res["checks"]:
        bound = f"<= {SELF_TEST_AGREE:g}" if c["expect"] == "agree" else f"> {SELF_TEST_DIFFER:g}"
        verdict = "ok" if c["ok"] else "FAILED"
        print(
            f"  trial {c['trial']}: {c['check']}: rel. diff {c['rel_diff']:.3g} (expected {bound}) {verdict}"
        )
    print("self-test passed" if res["ok"] else "self-test FAILED")
    return 0 if res["ok"] else 1


def _cmd_analyze(args: argparse.Namespace) -> int:
    import json

    from neuroplast.analysis.analyze import analyze_run
    from neuroplast.analysis.analyze_report import plain, summary_lines

    ks: tuple[int | str, ...] | None = None
    if args.k is not None:
        try:
            ks = tuple("T" if v.strip().upper() == "T" else int(v) for v in args.k.split(",") if v.strip())
        except ValueError:
            raise UsageError(
                f"--k: expected comma-separated hop counts such as 0,1,2,4,T (got {args.k!r})"
            ) from None
        if not ks or any(isinstance(v, int) and v < 0 for v in ks):
            raise UsageError(f"--k: hop counts must be >= 0 (got {args.k!r})")
        for v in ks:
            if ks.count(v) > 1:
                raise UsageError(f"--k: {v} is given more than once (got {args.k!r})")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {out}: parent folder {out.parent} does not exist")
    kw = {} if ks is None else {"ks": ks}
    res = analyze_run(args.run, trials=args.trials, progress=not (args.quiet or args.json), **kw)
    written = []
    if out is not None:
        from neuroplast.analysis.analyze_plots import plot_analysis

        written = plot_analysis(res, out)
        (out / "analysis.json").write_text(json.dumps(plain(res), indent=1))
        written.append(out / "analysis.json")
    if args.json:
        print(json.dumps(plain(res), indent=1))
        return 0
    for line in summary_lines(res):
        print(line)
    if written:
        print(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from neuroplast.analysis.plots import plot_run

    res = plot_run(args.run, args.out, trial=args.trial)
    for note in res["notes"]:
        print(f"note: {note}")
    names = ", ".join(p.name for p in res["written"])
    print(f"wrote {len(res['written'])} figures to {res['out_dir']}: {names}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`), not usage + message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _cmd_cache(args: argparse.Namespace) -> int:
    from neuroplast.network.cache import cache_info, clear_cache

    if args.action == "clear":
        print(f"removed {_mb(clear_cache())} of compiled networks from {cache_info()['root']}")
        return 0
    info = cache_info()
    entries = info["standalone"]
    print(f"cache: {info['root']} (set NEUROPLAST_CACHE to move it)")
    print(f"runtime (Cython) code: {_mb(info['cython_bytes'])}")
    total = sum(size for _, size, _ in entries)
    print(f"cpp_standalone networks: {len(entries)}, {_mb(total)}")
    for key, size, ok in entries:
        print(f"  {key}  {_mb(size):>9}  {'built' if ok else 'incomplete (rebuilt on next use)'}")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from neuroplast.errors import UsageError
    from neuroplast.model.derive import describe
    from neuroplast.model.neurons import NEURONS

    if args.action == "list" or args.name is None:
        if args.action == "show":
            raise UsageError("model show: name a neuron model (known: " + ", ".join(NEURONS.names()) + ")")
        for name in NEURONS.names():
            print(f"{name:<12} {NEURONS.get(name).summary}")
        return 0
    try:
        model = NEURONS.get(args.name)
    except KeyError:
        raise UsageError(
            f"model show: unknown neuron model {args.name!r} (known: {', '.join(NEURONS.names())})"
        ) from None
    print(describe(model))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    run.add_argument(
        "--out",
        help="run log to write (default: runs/<config name>.h5); a new path, or with --force a regular file "
        "(never a device, FIFO, socket, folder, dangling link or the config itself)",
    )
    run.add_argument("--iterations", type=int, help="number of weight updates (default: training.iterations)")
    run.add_argument("--seed", type=int, help="random seed (default: simulation.seed)")
    run.add_argument(
        "--rule",
        help="plasticity rule, e.g. eprop, eprop-random, eprop-adaptive, three-factor, bptt, or a "
        "plugin's name (default: training.rule)",
    )
    run.add_argument(
        "--force", action="store_true", help="overwrite an existing run log (never one a live run writes)"
    )
    run.add_argument("--trace", help="comma-separated recurrent variables to log per step (v,a,z,psi)")
    run.add_argument("--trace-neurons", type=int, help="log traces of only the first N recurrent neurons")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--resume",
        metavar="RUN.h5",
        help="continue a run log of the same config in place: cut it back to its last complete iteration "
        "and train on, bit for bit as an uninterrupted run, up to its logged iterations or --iterations N "
        "(a finished run given a larger N is extended; without one it is left as it is, exit 0); a run "
        "that diverged or that a live run still writes is refused",
    )
    run.set_defaults(func=_cmd_run)
    ins = sub.add_parser(
        "inspect",
        help="summarize a run log",
        description="Print populations, trials, loss curve and sizes of a run log.",
    )
    ins.add_argument("run", help="run log (HDF5) written by `neuroplast run`")
    ins.set_defaults(func=_cmd_inspect)
    cmp_ = sub.add_parser(
        "compare",
        help="replay every trial, write exact BPTT into the run log and compare the logged estimators",
        description="Replay every trial of RUN with the NumPy reference (checking that the replayed loss "
        "equals the logged one), write the exact BPTT gradient and its split into the part e-prop keeps "
        "and the part through W_rec (grad/bptt, grad/bptt_eprop_part, grad/bptt_recurrent_part), and "
        "print cosine, relative error, sign agreement and norm ratio of every logged estimator against it.",
    )
    cmp_.add_argument("run", help="run log (HDF5) written by `neuroplast run`; gradients are added to it")
    cmp_.add_argument("--json", action="store_true", help="print the results as JSON")
    cmp_.add_argument(
        "--keep-reset",
        action="store_true",
        help="compare against the gradient with the reset path differentiated too (grad/bptt_full)",
    )
    cmp_.add_argument(
        "--rtrl",
        action="store_true",
        help="also compute exact RTRL (grad/rtrl: the forward factorization of the same gradient, equal to "
        "BPTT to rounding) and compare it; small networks only (cost N^3 (n_in + N) T per trial)",
    )
    cmp_.add_argument("--quiet", action="store_true", help="no progress bar")
    cmp_.add_argument(
        "--self-test",
        action="store_true",
        help="instead: show on RUN's own model and trials that the comparator agrees where it must "
        "(W_rec = 0; the ideal learning signal) and disagrees where it must (the logged W_rec); "
        "exit 1 if not; writes nothing",
    )
    cmp_.set_defaults(func=_cmd_compare)
    ana = sub.add_parser(
        "analyze",
        help="where and why the rule departs from the exact gradient (read only)",
        description="Replay the selected trials of RUN and report: the time-resolved gap between the rule's "
        "gradient and BPTT (aligned to the task's events), the per-neuron quality of the learning signal, "
        "counterfactual rules (learning signal truncated to k hops through W_rec; the least-squares fixed "
        "feedback B*), and the alignment of the applied updates with the exact gradient over training. "
        "Refuses runs that learned inside their trials. Nothing is written into RUN.",
    )
    ana.add_argument("run", help="run log (HDF5) written by `neuroplast run`")
    ana.add_argument(
        "--trials", help="trials to analyse: all (default), 0:50, ::10, -20: (the last 20), 0,5,9"
    )
    ana.add_argument("--out", help="folder for the figures and analysis.json (created; files overwritten)")
    ana.add_argument("--json", action="store_true", help="print every result as JSON")
    ana.add_argument("--k", help="hop counts of the truncated learning signal (default 0,1,2,4,8,16,32,T)")
    ana.add_argument("--quiet", action="store_true", help="no progress bar")
    ana.set_defaults(func=_cmd_analyze)
    plot = sub.add_parser(
        "plot",
        help="write PNG figures of a run log",
        description="Write loss.png, alignment.png (needs `neuroplast compare` first), factorization.png "
        "and raster.png for RUN; a note says why a figure was not written (e.g. runs that learn inside "
        "their trials have no alignment or factorization figure).",
    )
    plot.add_argument("run", help="run log (HDF5) written by `neuroplast run`")
    plot.add_argument("--out", help="output folder (default: <run stem>_plots/ next to the file)")
    plot.add_argument("--trial", type=int, default=0, help="trial whose factorization is plotted (default 0)")
    plot.set_defaults(func=_cmd_plot)
    cache = sub.add_parser(
        "cache",
        help="show or clear the compiled-network cache",
        description="info: where compiled networks are cached and how much room they take; "
        "clear: remove them all (they are rebuilt when next needed).",
    )
    cache.add_argument(
        "action", choices=("info", "clear"), help="info (default) or clear", nargs="?", default="info"
    )
    cache.set_defaults(func=_cmd_cache)
    model = sub.add_parser(
        "model",
        help="list the neuron models, or show one's equations and derived eligibility and BPTT",
        description="list: the registered neuron models (network.neuron); show NAME: the model's "
        "statements, parameters and what neuroplast derives from them (docs/model.md §10).",
    )
    model.add_argument("action", choices=("list", "show"), help="list or show")
    model.add_argument("name", nargs="?", help="neuron model (show)")
    model.set_defaults(func=_cmd_model)
    from neuroplast.sweep.commands import add_parsers as add_sweep_parsers

    add_sweep_parsers(sub)  # sweep, sweep-report (neuroplast/sweep/)
    return parser


#: The run-log argument of every command that reads one (``run``: only with ``--resume``).
RUN_LOG_ARGS = {"inspect": "run", "plot": "run", "compare": "run", "run": "resume"}


def check_run_log(args: argparse.Namespace) -> None:
    """The one validation of a run log, for every command: :func:`neuroplast.io.open_run` with
    ``strict=True`` on the command's run-log argument, before the command does anything.

    Raises
    ------
    RunFileError
        One line naming the file and what is wrong with it (the file is only read).
    """
    name = RUN_LOG_ARGS.get(args.command)
    value = getattr(args, name, None) if name else None
    if value is None or (args.command == "run" and not Path(value).is_file()):
        return  # `run` reports a missing --resume file or a folder itself
    from neuroplast.io import open_run

    open_run(value, strict=True)


def _error(where: str, exc: BaseException) -> int:
    print(f"{where}: error: {first_line(exc)}", file=sys.stderr)
    return 2


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line: one line, neuroplast's as they are worded (they name what they are
    about), others with their category."""
    text = str(message)
    return f"{text}\n" if text.startswith("neuroplast") else f"{category.__name__}: {text}\n"


#: Options whose value may start with ``-`` (``analyze --trials -20:``, the last 20 trials): argparse takes
#: such a word for an option, so :func:`main` joins it to its option (``--trials=-20:``) first.
DASH_VALUE_OPTIONS = ("--trials",)


def _join_dash_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``OPTION VALUE`` written ``OPTION=VALUE`` where OPTION is one of
    :data:`DASH_VALUE_OPTIONS` and VALUE starts with ``-`` followed by a digit, ``:`` or ``,`` (a value,
    never an option: options start with ``--`` or ``-`` and a letter)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":  # everything after it is positional
            out.extend(argv[i:])
            break
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        value = len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] in ":,")
        if word in DASH_VALUE_OPTIONS and value:
            out.append(f"{word}={nxt}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``neuroplast`` command line; returns the exit status.

    0 success; 1 a check failed (``compare``); 2 bad input (one line on stderr naming the key, file or
    option; nothing written); 3 training diverged (a non-finite loss, gradient or weight; the iterations
    before it are kept, the log is marked ``diverged``); 130 interrupted (Ctrl-C; the run log is closed at its
    last complete iteration and can be resumed); 141 the output pipe was closed (e.g. ``| head``).
    """
    warnings.formatwarning = _one_line_warning
    # neuroplast checks every loss, gradient and weight for non-finite values itself (exit 3, one line):
    # NumPy's floating-point warnings on the way there would only say the same thing first, several times
    warnings.filterwarnings(
        "ignore", r"(overflow|invalid value|divide by zero|underflow) encountered", RuntimeWarning
    )
    parser = build_parser()
    try:
        args = parser.parse_args(_join_dash_values(sys.argv[1:] if argv is None else list(argv)))
    except UsageError as exc:
        return _error("neuroplast", exc)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    where = f"neuroplast {args.command}"
    try:
        check_run_log(args)
        return int(args.func(args) or 0)
    except DivergedError as exc:
        _error(where, exc)
        return 3
    except NeuroplastError as exc:
        return _error(where, exc)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``neuroplast compare RUN | head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
