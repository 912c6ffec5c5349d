"""Benchmark: a training iteration of the evidence workload at batch 32, checkouts alternating.

    python scripts/bench_batch_launches.py [--roots DIR,DIR] [--path auto] [--iterations 12] [--repeats 3]

The workload of ``scripts/bench_vs_nest.py --evidence`` (``models/evidence.toml`` at NEST's example size: 40
inputs, 50 LIF + 50 ALIF, 2 readouts, 7 cues, 2250 steps, batch 32) with ``training.path`` = ``--path``, on
``simulation.device = "auto"``.  For every repeat and every checkout of ``--roots`` in turn, a child process
builds the trainer (the compile, with each checkout's own ``NEUROPLAST_CACHE`` under the system's temporary
folder, is not timed) and times ``Trainer.iterate`` + ``record`` of ``--iterations`` iterations.  Printed
per child: the path, the iterations per launch and why, the mean per iteration (with several iterations
per launch the launch's cost lands on the first of each: the mean is the figure), the median from the
second iteration on, and every iteration's time.  No NEST: compare checkouts within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, statistics, sys, time
root, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path[:0] = [root + "/scripts", root]
import neuroplast
assert neuroplast.__file__.startswith(root), neuroplast.__file__
from bench_vs_nest import _config
from neuroplast.config import parse_config
from neuroplast.training.trainer import Trainer
data = _config("evidence", n)
data["training"]["path"] = path
tr = Trainer.from_config(parse_config(data))
ts = []
for _ in range(n):
    t0 = time.perf_counter()
    tr.record(tr.iterate())
    ts.append(time.perf_counter() - t0)
out = {"path": tr.gradient_path, "chunk": tr.chunk, "reason": tr.chunk_reason, "all_s": ts}
out.update(mean_s=sum(ts) / n, median_s=statistics.median(ts[1:] or ts))
print("BENCH " + json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roots", default=str(ROOT), help="neuroplast checkouts, alternating (comma-separated)")
    ap.add_argument("--path", default="auto", help="training.path: auto, online or factorized")
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    roots = [str(Path(r).resolve()) for r in args.roots.split(",")]
    for rep in range(1, args.repeats + 1):
        for root in roots:
            cache = Path(tempfile.gettempdir()) / f"np-bench-batch-{Path(root).name}"
            env = {**os.environ, "PYTHONPATH": root, "NEUROPLAST_CACHE": str(cache)}
            cmd = [sys.executable, "-c", _CHILD, root, args.path, str(args.iterations)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
            if proc.returncode or line is None:
                sys.exit(f"bench_batch_launches: child failed ({root}):\n{proc.stderr[-3000:]}")
            r = json.loads(line[6:])
            times = ", ".join(f"{1e3 * t:.0f}" for t in r["all_s"])
            print(
                f"[#{rep} {Path(root).name}] {r['path']}, {r['chunk'] or 1} it/launch ({r['reason']}): "
                f"mean {1e3 * r['mean_s']:.1f} ms/it, median from the 2nd {1e3 * r['median_s']:.1f} ms "
                f"[{times}]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
