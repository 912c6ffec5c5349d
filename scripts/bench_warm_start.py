"""Benchmark: how soon a warm run trains, and what changing a run's options costs (nothing may recompile).

    python scripts/bench_warm_start.py [--config models/sine.toml] [--repeats 3] [--json FILE]

1. A cold run fills a fresh compile cache (``NEUROPLAST_CACHE`` in a temporary folder; not timed as a
   figure: it is the compiler's time).
2. Warm start, ``--repeats`` times, each in a fresh Python process: the time from the process's start to
   (a) the end of the imports (``neuroplast.training`` and Brian2), (b) the network ready (config, build,
   the cached compiled network found and loaded), (c) the end of the first training iteration, with the
   interpreter's own start-up measured separately (``python -c pass``).
3. No recompile: ``neuroplast run`` with ``--iterations`` 40 then 200, ``--seed`` 5, a learning rate
   changed in the config, then ``--resume`` extending the 40-iteration log (a sparse network's new seed
   reuses the build too — its synapses are read at launch, ``network/edges.py``;
   ``scripts/bench_sparse_seeds.py`` times that): each command's
   "network ready" line must say "reused the compiled network", and the cache must hold one compiled
   network at the end.

Prints one line per figure; ``--json`` also writes them.  Nothing here is a test (docs/benchmarks.md).
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

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import sys, time
t0 = float(sys.argv[1])
marks = {}
from neuroplast.config import load_config
from neuroplast.training.trainer import Trainer
import brian2  # what the network needs: counted with the imports
marks["imports"] = time.time() - t0
cfg = load_config(sys.argv[2])
trainer = Trainer.from_config(cfg)
marks["network ready"] = time.time() - t0
marks["cache hit"] = bool(getattr(trainer.net, "cache_hit", False))
trainer.run_iteration()
marks["first iteration done"] = time.time() - t0
print(repr(marks))
"""


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["NEUROPLAST_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _probe(config: Path, cache: Path) -> dict:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, repr(t0), str(config)],
        capture_output=True,
        text=True,
        env=_env(cache),
        check=True,
    )
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr of a dict of floats


def _interpreter(cache: Path) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=_env(cache))
    return time.time() - t0


def _run(args: list[str], cwd: Path, cache: Path) -> tuple[float, str]:
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "neuroplast", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(cache),
    )
    if proc.returncode != 0:
        raise SystemExit(f"neuroplast run {' '.join(args)} failed:\n{proc.stderr}")
    ready = next((line for line in proc.stderr.splitlines() if "network ready" in line), "")
    return time.time() - t0, ready


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "models" / "sine.toml"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    config = Path(args.config).resolve()
    results: dict = {"config": str(config)}
    with tempfile.TemporaryDirectory() as tmp:
        work, cache = Path(tmp), Path(tmp) / "cache"
        t, _ = _run([str(config), "--out", "cold.h5", "--iterations", "1"], work, cache)
        print(f"cold run (compiles; not a figure): {t:.1f} s")
        probes = [_probe(config, cache) for _ in range(args.repeats)]
        interp = statistics.median(_interpreter(cache) for _ in range(args.repeats))
        assert all(p["cache hit"] for p in probes), "the warm start did not find the compiled network"
        results["interpreter_s"] = interp
        print(f"python start-up alone: {interp:.2f} s (median of {args.repeats})")
        for key in ("imports", "network ready", "first iteration done"):
            values = [p[key] for p in probes]
            results[key.replace(" ", "_") + "_s"] = values
            print(f"{key:>22}: {statistics.median(values):.2f} s after the process started "
                  f"(runs: {', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
        text = config.read_text()
        lr = work / "lr.toml"
        lr.write_text(_with_learning_rate(text))
        commands = [
            ("--iterations 40", [str(config), "--out", "a.h5", "--iterations", "40"]),
            ("--iterations 200", [str(config), "--out", "b.h5", "--iterations", "200"]),
            ("--seed 5", [str(config), "--out", "c.h5", "--iterations", "40", "--seed", "5"]),
            (
                "--rule eprop-random",
                [str(config), "--out", "d.h5", "--iterations", "40", "--rule", "eprop-random"],
            ),
            ("learning rate x2", [str(lr), "--out", "e.h5", "--iterations", "40"]),
            ("--resume a.h5 --iterations 80", [str(config), "--resume", "a.h5", "--iterations", "80"]),
        ]
        results["commands"] = {}
        for name, cmd in commands:
            t, ready = _run(cmd, work, cache)
            reused = "reused the compiled network" in ready
            results["commands"][name] = {"wall_s": t, "reused": reused}
            print(
                f"{name:>32}: {t:5.1f} s, {'reused the compiled network' if reused else 'COMPILED: ' + ready}"
            )
        entries = (
            [p for p in (cache / "standalone").glob("*") if p.is_dir()]
            if (cache / "standalone").is_dir()
            else []
        )
        results["compiled_networks"] = len(entries)
        print(f"compiled networks in the cache at the end: {len(entries)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def _with_learning_rate(text: str) -> str:
    """The config with ``training.learning_rate`` doubled (a run-time value: no recompile)."""
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("learning_rate"):
            value = float(line.split("=", 1)[1])
            line = f"learning_rate = {2 * value!r}"
        lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
