"""Benchmark: neuroplast's e-prop at growing sizes, both gradient paths, against NEST, alternating.

    python scripts/bench_scaling.py [--sizes 100:1,300:1,1000:1,1000:0.1,3000:0.1,10000:0.1]
                                    [--iterations 0] [--nest-iterations 3] [--repeats 1]
                                    [--paths online,factorized]
                                    [--no-nest] [--nest-max-synapses 2e6] [--json FILE]
                                    [--roots DIR,DIR] [--threads 1,2] [--profile]

The workload is the sine-wave task of ``models/sine.toml`` (100 Poisson inputs at 50 Hz, 1000 steps of 1 ms,
one readout, batch 1, symmetric e-prop, Adam) with N recurrent LIF neurons connected with probability p
(``network.n_rec``, ``network.p_rec``; the initial weights scaled by the fan-in as the config does), on
cpp_standalone with one thread (``--threads``: others too).  For every size and every repeat, in this order:

* NEST 3.10 (up to ``--nest-max-synapses``): ``eprop_supervised_regression_sine-waves_bsshslm_2020.py``
  with ``n_rec = N`` and, for p < 1, the recurrent connection drawn ``pairwise_bernoulli`` with weights
  N(0, 1/(N p)) instead of ``all_to_all`` (no dense N × N weight matrices are read out),
  ``--nest-iterations`` iterations, plotting off; per iteration = time inside ``nest.Simulate`` / iterations;
* neuroplast, each gradient path of ``--paths`` forced (``training.path``), in a child process, for
  ``--iterations`` iterations (by default as many as make several iterations per launch count as they do in
  a run): per iteration as in scripts/bench_vs_nest.py (the median from the second iteration on, including
  the logging; with several iterations per launch, the mean over all), the compile not timed.

Printed per size and path: seconds per iteration, the peak resident memory of the child and that divided
by the synapses (bytes per synapse: everything the process holds, Python and NumPy included), ns per
synapse-step, the ratio to NEST, the ratio to the physical minimum, Python's share of the iterations (the
time outside the simulation's binary, ``NeuroplastStandaloneDevice.run``, over the iterations' wall time)
and which path ``training.path = "auto"`` picks (:func:`neuroplast.training.trainer.choose_path`, the cost
model) — marked ``*`` when it is the faster of the paths measured in that repeat.

``--roots``: neuroplast packages to run the child on, alternating (e.g. a checkout of main and this one:
before/after in one run; default: this checkout).  ``--threads``: ``simulation.threads`` values to run each
path with, alternating (e.g. ``1,2``: the ratio of one thread to two measured in one run, printed as
``t1/tN``; default 1).  ``--profile``: the child runs its iterations under
cProfile and the functions with the most time of their own are printed (the binary's wait included).

Physical minimum (issue 26): ≈ 1 ns per memory-bound operation over 2·N·T neuron steps, twice the synaptic
events (spikes × out-degree, from the measured rate) and three passes over the synapses for Adam.

Nothing here is a test; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_vs_nest import _NEST_CHILD, _NP_CHILD, NEST_SINE, run_child  # noqa: E402
from nest_example import example_path  # noqa: E402

#: NEST's example lines replaced for a sparse recurrent net, and to read out no dense weight matrix.
_NO_WEIGHT_MATRICES = {
    "def get_weights(pop_pre, pop_post):": (
        "def get_weights(pop_pre, pop_post):\n    return {}  # bench_scaling: no dense matrices"
    ),
}


def _sparse_lines(p: float) -> dict[str, str]:
    return {
        "weights_rec_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=dtype_weights)": (
            "weights_rec_rec = np.zeros((1, 1))  # bench_scaling: drawn by NEST below"
        ),
        'params_syn_rec["weight"] = weights_rec_rec': (
            f'params_syn_rec["weight"] = nest.random.normal(0.0, 1.0 / np.sqrt(n_rec * {p!r}))'
        ),
        "nest.Connect(nrns_rec, nrns_rec, params_conn_all_to_all, params_syn_rec)  # connection 3": (
            f'nest.Connect(nrns_rec, nrns_rec, {{"rule": "pairwise_bernoulli", "p": {p!r}, '
            '"allow_autapses": False}, params_syn_rec)  # connection 3 (bench_scaling: sparse)'
        ),
    }


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float, float, str]:
    """:func:`bench_vs_nest.run_child`, the error as its last line (a failed size is reported, not fatal)."""
    info, wall, mem, error = run_child(cmd, env)
    return info, wall, mem, (error.strip().splitlines() or ["?"])[-1][:200] if error else ""


def _config(n: int, p: float, iterations: int, path: str, threads: int = 1) -> dict:
    data = tomllib.loads((ROOT / "models" / "sine.toml").read_text())
    data["network"].update(n_rec=n, p_rec=p)
    data["simulation"].update(device="cpp_standalone", threads=threads)
    data["training"].update(iterations=iterations, path=path)
    return data


def synapses(n: int, p: float, n_in: int = 100) -> float:
    """Expected trained synapses: input (dense), recurrent (N(N−1)p, no autapses), readout."""
    return n * n_in + n * (n - 1) * p + n


def physical_minimum_s(n: int, p: float, steps: int, rate_hz: float) -> float:
    """≈ 1 ns per memory-bound operation: 2 N T neuron steps, 2 × synaptic events, 3 passes for Adam."""
    syn = synapses(n, p)
    events = rate_hz * steps * 1e-3 * n * ((n - 1) * p + 1) + 50.0 * steps * 1e-3 * 100 * n
    return 1e-9 * (2 * n * steps + 2 * events + 3 * syn)


def auto_path(n: int, p: float) -> str:
    """The path ``training.path = "auto"`` takes on cpp_standalone (the trainer's cost model, with the
    iterations per launch the chunked engine would run)."""
    from neuroplast.config import parse_config
    from neuroplast.training.cost import path_costs, workload
    from neuroplast.training.trainer import chunk_length

    cfg = parse_config(_config(n, p, 2, "auto"), check_resources=False)
    hidden = round(synapses(n, p) - n)
    k = chunk_length(cfg, round(synapses(n, p)), auto=True)
    return path_costs(workload(cfg, hidden), compiled=True, chunk=k).choice


def default_iterations(n: int, p: float) -> int:
    """Two launches of the iterations per launch that ``simulation.chunk_iterations = 0`` gives the size
    (at least 12 below 2·10^6 synapses, else 4)."""
    from neuroplast.config import parse_config
    from neuroplast.training.trainer import chunk_length

    cfg = parse_config(_config(n, p, 2, "auto"), check_resources=False)
    k = chunk_length(cfg, round(synapses(n, p)), auto=True)
    return max(2 * k, 12 if synapses(n, p) < 2e6 else 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100:1,300:1,1000:1,1000:0.1,3000:0.1,10000:0.1")
    ap.add_argument(
        "--iterations",
        type=int,
        default=0,
        help="neuroplast's iterations per size (0: two launches of the iterations per launch that the "
        "size runs — 200 at N = 100, as models/nest_sine.toml's run —, at least 12 below 2·10^6 synapses, "
        "else 4: their launch cost amortized as in a run)",
    )
    ap.add_argument("--nest-iterations", type=int, default=3, help="NEST's (its cost per iteration is flat)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--paths", default="online,factorized")
    ap.add_argument("--no-nest", action="store_true")
    ap.add_argument("--nest-max-synapses", type=float, default=2e6, help="run NEST up to this many synapses")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    ap.add_argument(
        "--roots", default=str(ROOT), help="neuroplast checkouts to run, alternating (comma-separated)"
    )
    ap.add_argument(
        "--threads", default="1", help="simulation.threads values to run every path with, alternating"
    )
    ap.add_argument("--profile", action="store_true", help="print the child's top functions (cProfile)")
    args = ap.parse_args(argv)
    roots = args.roots.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    child = _profiled_child(args.profile)
    sizes = [(int(a), float(b)) for a, b in (s.split(":") for s in args.sizes.split(","))]
    paths = args.paths.split(",")
    example = None if args.no_nest else example_path(NEST_SINE)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NEUROPLAST_CACHE": os.environ.get("NEUROPLAST_CACHE", str(Path(tmp) / "cache"))}
        for rep in range(args.repeats):
            for n, p in sizes:
                syn = synapses(n, p)
                row: dict = {
                    "repeat": rep + 1,
                    "n_rec": n,
                    "p_rec": p,
                    "synapses": syn,
                    "auto": auto_path(n, p),
                }
                if example is not None and syn <= args.nest_max_synapses:
                    values = {"n_iter": args.nest_iterations, "do_plotting": False, "n_rec": n}
                    lines = dict(_NO_WEIGHT_MATRICES, **(_sparse_lines(p) if p < 1.0 else {}))
                    cmd = [sys.executable, "-c", _NEST_CHILD_LINES, str(example), json.dumps(values),
                           str(ROOT / "scripts"), json.dumps(lines)]  # fmt: skip
                    info, _, mem, err = _run(cmd)
                    row["nest"] = (
                        {"error": err}
                        if err
                        else {"per_iteration_s": info["simulate_s"] / info["iterations"], "peak_mb": mem}
                    )
                iterations = args.iterations or default_iterations(n, p)
                row["iterations"] = iterations
                for path, root, t in ((p_, r, t_) for p_ in paths for r in roots for t_ in threads):
                    cfg = _config(n, p, iterations, path, t)
                    out = str(Path(tmp) / "bench.h5")
                    info, _, mem, err = _run([sys.executable, "-c", child, json.dumps(cfg), out, root], env)
                    path = _label(path, root, t, roots, threads)
                    if err:
                        row[path] = {"error": err}
                        continue
                    per = info["per_iteration_s"]
                    row[path] = {
                        "python_share": info["python_share"],
                        "top": info.get("top", []),
                        "per_iteration_s": per,
                        "peak_mb": mem,
                        "bytes_per_synapse": mem * 1e6 / syn,
                        "ns_per_synapse_step": per * 1e9 / (syn * 1000),
                        "rate_hz": info["rate_hz"],
                        "chunk": info["chunk"],
                        "vs_minimum": per / physical_minimum_s(n, p, 1000, info["rate_hz"]),
                    }
                    if "per_iteration_s" in row.get("nest", {}):
                        row[path]["vs_nest"] = per / row["nest"]["per_iteration_s"]
                _print(
                    row, [_label(p_, r, t, roots, threads) for p_ in paths for r in roots for t in threads]
                )
                _print_thread_ratios(
                    row, [_label(p_, r, 1, roots, [1]) for p_ in paths for r in roots], threads
                )
                rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _label(path: str, root: str, threads: int, roots: list[str], all_threads: list[int]) -> str:
    """A path's column: ``path``, ``@root`` with several roots, ``/tN`` with several thread counts."""
    return (
        path
        + (f"@{Path(root).name}" if len(roots) > 1 else "")
        + (f"/t{threads}" if len(all_threads) > 1 else "")
    )


def _print_thread_ratios(row: dict, columns: list[str], threads: list[int]) -> None:
    """With several thread counts: per column, seconds per iteration with the first count over each other,
    for the iteration and for the binary's part of it (the iteration less Python's share)."""
    if len(threads) < 2:
        return
    for col in columns:
        runs = {t: row.get(f"{col}/t{t}", {}) for t in threads}
        if "per_iteration_s" not in runs[threads[0]]:
            continue
        binary = {
            t: r["per_iteration_s"] * (1 - r["python_share"]) for t, r in runs.items() if "python_share" in r
        }
        t0 = threads[0]
        ratios = {
            f"t{t0}/t{t}": [runs[t0]["per_iteration_s"] / runs[t]["per_iteration_s"], binary[t0] / binary[t]]
            for t in threads[1:]
            if "per_iteration_s" in runs[t]
        }
        row.setdefault("thread_ratios", {})[col] = ratios
        text = ", ".join(f"{k} {it:.2f} (binary {b:.2f})" for k, (it, b) in ratios.items())
        print(f"  {col:10s} {text}", flush=True)


def _print(row: dict, paths: list[str]) -> None:
    times = {p: row[p]["per_iteration_s"] for p in paths if "per_iteration_s" in row.get(p, {})}
    fastest = min(times, key=times.get) if times else None
    nest = row.get("nest", {})
    head = f"N={row['n_rec']} p={row['p_rec']} synapses={row['synapses']:.3g} (repeat {row['repeat']}): "
    head += (
        f"NEST {nest['per_iteration_s']:.3f} s/it, {nest['peak_mb']:.0f} MB"
        if "per_iteration_s" in nest
        else (f"NEST failed: {nest['error']}" if nest else "NEST not run")
    )
    print(head, flush=True)
    for p in paths:
        r = row.get(p, {})
        if "error" in r:
            print(f"  {p:10s} failed: {r['error']}", flush=True)
            continue
        mark = "*" if p == fastest == row["auto"] else " "
        auto = f"{'auto' if p == row['auto'] else '':4s}{mark}"
        vs_nest = f"{r['vs_nest']:.3f}" if "vs_nest" in r else "-"
        print(
            f"  {p:10s} {auto} {r['per_iteration_s']:.3f} s/it  {r['peak_mb']:.0f} MB  "
            f"{r['bytes_per_synapse']:.0f} B/synapse  {r['ns_per_synapse_step']:.2f} ns/synapse-step  "
            f"x NEST {vs_nest}  x minimum {r['vs_minimum']:.1f}  rate {r['rate_hz']:.1f} Hz  "
            f"chunk {r['chunk']}  Python {100 * r['python_share']:.0f} %",
            flush=True,
        )
        for name, own_s in r["top"]:
            print(f"      {own_s:7.3f} s  {name}", flush=True)


def _profiled_child(profile: bool) -> str:
    """bench_vs_nest's neuroplast child, also timing the simulation's binary (Python's share is the rest of
    the iterations) and, with ``profile``, running the iterations under cProfile (the top 8 functions by
    their own time, in the BENCH line as ``top``)."""
    setup = (
        "from neuroplast.network.engine import NeuroplastStandaloneDevice as _Dev\n"
        "import cProfile, pstats\n"
        "_binary, _run_binary = [0.0], _Dev.run\n"
        "def _timed_binary(self, *a, **k):\n"
        "    t = time.perf_counter(); r = _run_binary(self, *a, **k); _binary[0] += time.perf_counter() - t\n"
        "    return r\n"
        "_Dev.run = _timed_binary\n"
        f"_prof = cProfile.Profile() if {profile!r} else None\n"
        "rows = []\n"
        "_loop0 = time.perf_counter(); _prof and _prof.enable()\n"
    )
    report = (
        "_st = pstats.Stats(_prof).stats if _prof else {}\n"
        "_top = sorted(((f'{Path(k[0]).name}:{k[1]}({k[2]})', v[2]) for k, v in _st.items()),\n"
        "              key=lambda x: -x[1])\n"
        'print("BENCH " + json.dumps({"python_share": 1 - _binary[0] / _loop, "top": _top[:8], '
    )
    swaps = {
        "rows = []\n": setup,
        "    w.finish(tr.final_weights())\n": (
            "    _prof and _prof.disable(); _loop = time.perf_counter() - _loop0\n"
            "    w.finish(tr.final_weights())\n"
        ),
        'print("BENCH " + json.dumps({': "from pathlib import Path\n" + report,
    }
    child = _NP_CHILD
    for old, new in swaps.items():
        assert child.count(old) == 1, f"bench_vs_nest's neuroplast child changed: {old!r}"
        child = child.replace(old, new)
    return child


# NEST's example with values and whole lines replaced (scripts/nest_example.py), nest.Simulate timed.
_NEST_CHILD_LINES = _NEST_CHILD.replace(
    'src = patched_source(Path(sys.argv[1]), json.loads(sys.argv[2]), simulate="_timed_simulate")',
    'src = patched_source(Path(sys.argv[1]), json.loads(sys.argv[2]), simulate="_timed_simulate", '
    "lines=json.loads(sys.argv[4]))",
)
assert _NEST_CHILD_LINES != _NEST_CHILD, "bench_vs_nest's NEST child changed"

if __name__ == "__main__":
    raise SystemExit(main())
