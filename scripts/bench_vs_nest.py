"""Benchmark: neuroplast against NEST's e-prop on NEST's own workloads, alternating, in one run.

    python scripts/bench_vs_nest.py [--repeats 2] [--iterations 200] [--evidence] [--evidence-iterations 3]
                                    [--evidence-profile-iterations 12] [--no-nest] [--no-sine] [--threads 1]
                                    [--nest-mode [--per-trial]] [--json FILE]

(a) Sine-wave regression, the size of NEST's ``eprop_supervised_regression_sine-waves_bsshslm_2020.py``
    (100 Poisson inputs at 50 Hz, 100 LIF neurons, 1 readout, 1000 steps of 1 ms, batch 1, one update per
    sequence, 1 thread).  NEST runs its example unchanged except for the iteration count and plotting
    (turned off); neuroplast runs ``models/sine.toml`` (same sizes, steps, input rate and readout; its own
    initialization and Adam — the cost per iteration does not depend on the weight values beyond the
    firing rate, which both report).
(n) ``--nest-mode``: the same NEST example against ``neuroplast run models/nest_sine.toml`` — NEST's exact
    workload (its initial weights, inputs, readout without bias, SGD, random feedback): the whole command
    that docs/validation.md reproduces number for number; ``--per-trial`` adds, alternating in the same
    repeats, the same neuroplast run with one trial per launch (``simulation.chunk_iterations = 1``, the
    path NEST mode took before it ran several iterations per launch).
(b) ``--evidence``: evidence accumulation at the size of NEST's
    ``eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py`` (40 inputs, 50 LIF + 50 ALIF,
    2 readouts, 7 cues, 2250 steps, batch 32) for a few iterations (NEST needs 5–7 s per iteration here);
    neuroplast's timed training runs ``--evidence-profile-iterations`` (a median of 2 iterations is at the
    mercy of the shared machine's noise), its commands as many as NEST's.

Measured per tool and repeat (NEST and neuroplast alternate, so machine noise hits both alike):

* per iteration: NEST — time inside ``nest.Simulate`` / iterations simulated; neuroplast — median wall
  time of one training iteration *including its logging*, from the second iteration on (the first one
  of a runtime-device run compiles); with many iterations per launch (``simulation.chunk_iterations``),
  whose launch cost lands on the first iteration of each chunk, the mean over all iterations;
* whole command: wall time of the child process (NEST: the example script; neuroplast: ``neuroplast
  run``), for neuroplast with a cold compile cache (an empty ``NEUROPLAST_CACHE``) and a warm one;
* peak memory: the child's maximum resident set size;
* a profile of a neuroplast iteration: simulation (Brian2 launch and reading results back), the rest of
  the training step (gradient, optimizer), preparing the record, and writing the log.

Ratios are neuroplast / NEST within the same repeat.  Nothing here is a test; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from nest_example import example_path, write_json  # noqa: E402

NEST_SINE = "eprop_supervised_regression_sine-waves_bsshslm_2020.py"
NEST_EVIDENCE = "eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py"

# Runs NEST's example with fewer iterations, no plotting, and nest.Simulate timed.
_NEST_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
import nest
from nest_example import patched_source, stub_ipython
stub_ipython()
src = patched_source(Path(sys.argv[1]), json.loads(sys.argv[2]), simulate="_timed_simulate")
spent = [0.0]
def _timed_simulate(t):
    t0 = time.perf_counter(); nest.Simulate(t); spent[0] += time.perf_counter() - t0
ns = {"__name__": "__main__", "_timed_simulate": _timed_simulate}
try:
    exec(compile(src, sys.argv[1], "exec"), ns)
except SystemExit:  # the examples exit() when plotting is off
    pass
n_iter = ns.get("n_iter_sim", ns.get("n_iter"))
print("BENCH " + json.dumps({"simulate_s": spent[0], "iterations": int(n_iter)}))
"""

# Trains a neuroplast config like `neuroplast run`, timing each part of every iteration.
_NP_CHILD = r"""
import json, sys, time, statistics
sys.path.insert(0, sys.argv[3])
from neuroplast.config import parse_config
import tomllib
from neuroplast.io import RunWriter
from neuroplast.training.runner import _flush_schedule, log_iteration
from neuroplast.training.trainer import Trainer
cfg = parse_config(json.loads(sys.argv[1]))
t0 = time.perf_counter()
tr = Trainer.from_config(cfg)
build_s = time.perf_counter() - t0
sim = [0.0]
def timing(fn):
    def timed(*a, **k):
        t = time.perf_counter(); r = fn(*a, **k); sim[0] += time.perf_counter() - t; return r
    return timed
tr.net.run_trial = timing(tr.net.run_trial)
if tr.chunk:
    tr.net.run_chunk = timing(tr.net.run_chunk)
if getattr(tr.net, "batch", 1) > 1:
    tr.net.run_batch = timing(tr.net.run_batch)
rows = []
with _flush_schedule(RunWriter(sys.argv[2], **tr.log_header(), force=True), tr) as w:
    for _ in range(cfg.training.iterations):
        sim[0] = 0.0
        t1 = time.perf_counter(); log = tr.iterate(); t2 = time.perf_counter()
        rec = tr.record(log); del log; t3 = time.perf_counter()  # kept by nobody, as in neuroplast run
        log_iteration(w, rec); t4 = time.perf_counter()
        rates = [t.extras["rate_hz"] for t in rec.trials]
        rows.append((t4 - t1, sim[0], t2 - t1 - sim[0], t3 - t2, t4 - t3, sum(rates) / len(rates)))
    w.finish(tr.final_weights())
body = rows[1:] or rows
med = lambda i: statistics.median(r[i] for r in body)
if tr.chunk:  # a launch's cost lands on the first iteration of each chunk: the mean over all iterations
    med = lambda i: statistics.fmean(r[i] for r in rows)
print("BENCH " + json.dumps({"build_s": build_s, "device": tr.device, "chunk": tr.chunk,
      "threads": tr.threads, "per_iteration_s": med(0),
      "simulate_s": med(1), "train_rest_s": med(2), "record_s": med(3), "log_s": med(4),
      "rate_hz": med(5), "iterations": len(rows)}))
"""


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float, float, str]:
    """Run a child; returns (its BENCH json or {}, wall seconds, peak RSS in MB of that child, its stderr if
    it failed else "")."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wrapped = ["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd] if Path("/usr/bin/time").exists() else cmd
    t0 = time.perf_counter()
    proc = subprocess.run(wrapped, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    info = {}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            info = json.loads(line[6:])
    rss = [int(x.split()[1]) for x in proc.stderr.splitlines() if x.startswith("MAXRSS_KB")]
    peak_mb = (rss[-1] if rss else max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)) / 1e3
    return info, wall, peak_mb, proc.stderr if proc.returncode != 0 else ""


def _child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float, float]:
    """:func:`run_child`, exiting with the child's error when it failed."""
    info, wall, peak_mb, error = run_child(cmd, env)
    if error:
        sys.exit(f"bench_vs_nest: child failed ({' '.join(cmd[:4])} ...):\n{error[-3000:]}")
    return info, wall, peak_mb


def _config(kind: str, iterations: int, threads: int = 1) -> dict:
    import tomllib

    if kind in ("sine", "nest-sine", "nest-sine-per-trial"):
        name = "sine.toml" if kind == "sine" else "nest_sine.toml"
        data = tomllib.loads((ROOT / "models" / name).read_text())
        if kind == "nest-sine-per-trial":
            data["simulation"]["chunk_iterations"] = 1
    else:
        data = tomllib.loads((ROOT / "models" / "evidence.toml").read_text())
        data["simulation"]["n_steps"] = 2250
        data["task"].update(n_cues=7)  # 7 × (100 + 50) ms cues and gaps, delay, 150 ms recall: 2250 steps
        data["training"]["batch_size"] = 32
    data["training"]["iterations"] = iterations
    data["simulation"]["device"] = "auto"
    if threads > 1:  # neuroplast's binary only; NEST runs its example's one thread
        data["simulation"]["threads"] = threads
    return data


def bench(
    kind: str,
    iterations: int,
    repeats: int,
    with_nest: bool,
    threads: int = 1,
    profile_iterations: int = 0,
    first: int = 1,
) -> list[dict]:
    """Alternate NEST and neuroplast ``repeats`` times on one workload; returns one row per repeat
    (numbered from ``first``).

    ``profile_iterations``: iterations of neuroplast's timed training (the per-iteration figure and its
    split), if more than ``iterations`` (the commands, NEST's and neuroplast's, run ``iterations``)."""
    sine = kind != "evidence"
    example = example_path(NEST_SINE if sine else NEST_EVIDENCE) if with_nest else None
    if with_nest and example is None:
        print("NEST is not installed (pip install '.[nest]'): neuroplast only", file=sys.stderr)
    nest_vars = (
        {"n_iter": iterations, "do_plotting": False}
        if sine
        else {"n_iter_train": iterations, "n_iter_test": 1, "do_plotting": False}
    )
    cfg = _config(kind, iterations, threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            row: dict = {"repeat": first + r}
            if example is not None:
                cmd = [
                    sys.executable,
                    "-c",
                    _NEST_CHILD,
                    str(example),
                    json.dumps(nest_vars),
                    str(ROOT / "scripts"),
                ]
                info, wall, mem = _child(cmd)
                row["nest"] = {
                    "per_iteration_s": info["simulate_s"] / info["iterations"],
                    "command_s": wall,
                    "peak_mb": mem,
                    "iterations": info["iterations"],
                }
            cold = Path(tmp) / f"cache_cold_{r}"
            env = {**os.environ, "NEUROPLAST_CACHE": str(cold)}
            out = str(Path(tmp) / "bench.h5")
            cli = [sys.executable, "-m", "neuroplast", "run", "CFG", "--out", out, "--force", "--quiet"]
            cfg_path = Path(tmp) / f"{kind}.toml"
            cfg_path.write_text(_toml(cfg))
            cli[4] = str(cfg_path)
            _, cold_s, _ = _child(cli, env)
            _, warm_s, _ = _child(cli, env)
            timed = _config(kind, max(iterations, profile_iterations), threads)
            info, _, mem = _child([sys.executable, "-c", _NP_CHILD, json.dumps(timed), out, str(ROOT)], env)
            row["neuroplast"] = {**info, "command_cold_s": cold_s, "command_warm_s": warm_s, "peak_mb": mem}
            rows.append(row)
            _print_row(kind, row)
    return rows


def _toml(data: dict) -> str:
    from neuroplast.config import parse_config, to_toml

    return to_toml(parse_config(data))


def _print_row(kind: str, row: dict) -> None:
    n = row["neuroplast"]
    print(
        f"[{kind} #{row['repeat']}] neuroplast ({n['device']}, {n.get('chunk', 0) or 1} it/launch, "
        f"{n.get('threads', 1)} thread{'s' if n.get('threads', 1) > 1 else ''}): "
        f"{1e3 * n['per_iteration_s']:.1f} ms/it "
        f"(simulate {1e3 * n['simulate_s']:.1f}, rest of step {1e3 * n['train_rest_s']:.1f}, record "
        f"{1e3 * n['record_s']:.1f}, log {1e3 * n['log_s']:.1f}; {n['rate_hz']:.1f} Hz), command cold "
        f"{n['command_cold_s']:.1f} s / warm {n['command_warm_s']:.1f} s, peak {n['peak_mb']:.0f} MB"
    )
    if "nest" in row:
        s = row["nest"]
        print(
            f"[{kind} #{row['repeat']}] NEST: {1e3 * s['per_iteration_s']:.1f} ms/iteration, command "
            f"{s['command_s']:.1f} s, peak {s['peak_mb']:.0f} MB"
        )
        print(
            f"[{kind} #{row['repeat']}] ratio neuroplast/NEST: per iteration "
            f"{n['per_iteration_s'] / s['per_iteration_s']:.3f}, command warm "
            f"{n['command_warm_s'] / s['command_s']:.3f}, cold {n['command_cold_s'] / s['command_s']:.3f}"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=200, help="sine-wave iterations (NEST's example: 200)")
    ap.add_argument("--evidence", action="store_true", help="also evidence accumulation at batch 32")
    ap.add_argument("--evidence-iterations", type=int, default=3)
    ap.add_argument(
        "--evidence-profile-iterations",
        type=int,
        default=12,
        help="iterations of neuroplast's timed evidence training (per-iteration median from the 2nd on)",
    )
    ap.add_argument("--no-nest", action="store_true", help="neuroplast only")
    ap.add_argument("--no-sine", action="store_true", help="skip workload (a) (with --evidence)")
    ap.add_argument("--threads", type=int, default=1, help="neuroplast's simulation.threads (NEST: 1)")
    ap.add_argument("--nest-mode", action="store_true", help="NEST's own workload: models/nest_sine.toml")
    ap.add_argument(
        "--per-trial", action="store_true", help="with --nest-mode: one trial per launch too, alternating"
    )
    ap.add_argument("--json", help="also write every figure to this JSON file")
    args = ap.parse_args(argv)
    results = {}
    if not args.no_sine:
        results["sine"] = bench("sine", args.iterations, args.repeats, not args.no_nest, args.threads)
    if args.nest_mode:
        kinds = ["nest-sine"] + (["nest-sine-per-trial"] if args.per_trial else [])
        for r in range(args.repeats):  # the kinds alternate, each NEST run next to its neuroplast runs
            for kind in kinds:
                rows = bench(kind, args.iterations, 1, not args.no_nest, args.threads, first=r + 1)
                results.setdefault(kind, []).extend(rows)
    if args.evidence:
        results["evidence"] = bench(
            "evidence",
            args.evidence_iterations,
            args.repeats,
            not args.no_nest,
            args.threads,
            args.evidence_profile_iterations,
        )
    for kind, rows in results.items():
        pairs = [r for r in rows if "nest" in r]
        if pairs:
            ratios = [r["neuroplast"]["per_iteration_s"] / r["nest"]["per_iteration_s"] for r in pairs]
            warm = [r["neuroplast"]["command_warm_s"] / r["nest"]["command_s"] for r in pairs]
            print(
                f"{kind}: per-iteration ratio median {statistics.median(ratios):.3f} "
                f"(range {min(ratios):.3f}-{max(ratios):.3f}), warm command ratio median "
                f"{statistics.median(warm):.3f}"
            )
    return write_json(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
