"""Benchmark (issue 24): a new seed of a sparse network on cpp_standalone, and the simulation's speed, on two
source trees (before and after a change), alternating, in one run.

Each tree runs in child processes (``PYTHONPATH=<tree>``) with a compiled-network cache of its own:

* ``seeds`` — ``neuroplast run CONFIG --seed 1`` fills the tree's cache, then ``--seed 2, 3, …`` (one per
  repeat, the trees alternating) are timed: wall time of the whole command, and whether it compiled;
* ``speed`` — on a warm cache, the wall time of ``--iterations`` training iterations of one process after its
  network is ready (build and first launch excluded; with ``--chunk K`` give a multiple of K), the trees
  alternating.

Example (the trees from ``git archive``)::

    git archive e7c0777 | tar -x -C /tmp/before && git archive HEAD | tar -x -C /tmp/after
    OPENBLAS_NUM_THREADS=1 python scripts/bench_sparse_seeds.py seeds /tmp/before /tmp/after --repeats 2
    OPENBLAS_NUM_THREADS=1 python scripts/bench_sparse_seeds.py speed /tmp/before /tmp/after --n-rec 1000 \\
        --p 0.1 --chunk 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: models/sine.toml made sparse (recurrent connections drawn from the seed) on cpp_standalone.
SEEDS_CHANGES = {"device": '"cpp_standalone"', "p_rec": "0.1"}

_SPEED_CHILD = """
import json, sys, time, tomllib
from neuroplast.config import parse_config
from neuroplast.training.trainer import Trainer
data = tomllib.loads(open(sys.argv[1]).read())
cfg = parse_config(data)
tr = Trainer.from_config(cfg)
for _ in range(max(1, getattr(tr, "chunk", 0))):  # the first launch (all of a chunk's iterations): untimed
    tr.run_iteration()
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    tr.run_iteration()
print(json.dumps({"seconds": time.perf_counter() - start, "hit": getattr(tr.net, "cache_hit", None)}))
"""


def _config(text: str, changes: dict[str, str]) -> str:
    """``text`` (a TOML config) with ``key = value`` lines replaced or added to their table."""
    lines = text.splitlines()
    for key, value in changes.items():
        hit = [k for k, line in enumerate(lines) if line.split("=")[0].strip() == key]
        if hit:
            lines[hit[0]] = f"{key} = {value}"
        else:
            table = "[simulation]" if key in ("device", "chunk_iterations") else "[network]"
            lines.insert(lines.index(table) + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def _env(tree: Path, cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "NEUROPLAST_CACHE": str(cache),
        "OPENBLAS_NUM_THREADS": "1",
    }


def _run(tree: Path, cache: Path, config: Path, seed: int, work: Path) -> dict:
    """One timed ``neuroplast run`` of ``seed``: wall time, and what the command said of the network."""
    out = work / f"{tree.name}_{seed}.h5"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "neuroplast", "run", str(config), "--seed", str(seed), "--out", str(out)],
        env=_env(tree, cache),
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: seed {seed} failed:\n{proc.stderr[-2000:]}")
    ready = [line for line in proc.stderr.splitlines() if "network ready" in line]
    return {"tree": str(tree), "seed": seed, "wall_s": round(wall, 2), "reused": "reused" in "".join(ready)}


def seeds(trees: list[Path], repeats: int, work: Path) -> list[dict]:
    """Seed 1 fills each tree's cache; seeds 2, 3, … are timed, the trees alternating."""
    root = Path(__file__).resolve().parents[1]
    config = work / "sparse_sine.toml"
    config.write_text(_config((root / "models" / "sine.toml").read_text(), SEEDS_CHANGES))
    caches = {tree: work / f"cache_{k}" for k, tree in enumerate(trees)}
    for tree in trees:
        _run(tree, caches[tree], config, 1, work)
    rows = []
    for r in range(repeats):
        for tree in trees:
            rows.append(_run(tree, caches[tree], config, 2 + r, work))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def speed(trees: list[Path], repeats: int, work: Path, n_rec: int, p: float, chunk: int, iterations: int):
    """Training iterations of a sparse network on a warm cache, the trees alternating."""
    root = Path(__file__).resolve().parents[1]
    changes = {
        **SEEDS_CHANGES,
        "n_rec": str(n_rec),
        "p_rec": repr(p),
        "p_in": repr(p),
        "chunk_iterations": str(chunk),
    }
    config = work / "sparse_speed.toml"
    config.write_text(_config((root / "models" / "sine.toml").read_text(), changes))
    caches = {tree: work / f"cache_speed_{k}" for k, tree in enumerate(trees)}
    rows = []
    for r in range(repeats + 1):  # the first round fills the caches (not reported)
        for tree in trees:
            proc = subprocess.run(
                [sys.executable, "-c", _SPEED_CHILD, str(config), str(iterations)],
                env=_env(tree, caches[tree]),
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"{tree}: {proc.stderr[-2000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            if r:
                ms = round(1e3 * got["seconds"] / iterations, 2)
                rows.append({"tree": str(tree), "per_iteration_ms": ms, "reused": got["hit"]})
                print(json.dumps(rows[-1]), flush=True)
    for tree in trees:
        times = [row["per_iteration_ms"] for row in rows if row["tree"] == str(tree)]
        print(f"{tree}: median {statistics.median(times):.2f} ms per iteration ({times})", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["seeds", "speed"])
    ap.add_argument("trees", nargs="+", type=Path, help="source trees (PYTHONPATH of their runs)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n-rec", type=int, default=1000, help="speed: recurrent neurons")
    ap.add_argument("--p", type=float, default=0.1, help="speed: connection probability (input, recurrent)")
    ap.add_argument("--chunk", type=int, default=1, help="speed: simulation.chunk_iterations (0: auto)")
    ap.add_argument("--iterations", type=int, default=10, help="speed: timed iterations per process")
    ap.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = ap.parse_args()
    trees = [t.resolve() for t in args.trees]
    with tempfile.TemporaryDirectory(prefix="bench_sparse_") as tmp:
        if args.what == "seeds":
            rows = seeds(trees, args.repeats, Path(tmp))
        else:
            rows = speed(trees, args.repeats, Path(tmp), args.n_rec, args.p, args.chunk, args.iterations)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
