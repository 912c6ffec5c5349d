"""Benchmark of the HDF5 run log: logging overhead of ``neuroplast run`` and trace-writing throughput.

(a) Logging overhead.  One :class:`~neuroplast.training.trainer.Trainer` is built and warmed up (one
    iteration, so that Brian2's code generation/compilation is never timed).  Then, for every iteration, the
    training step (``Trainer.iterate``) and the logging that ``neuroplast run`` does after it
    (:func:`neuroplast.training.runner.log_iteration`: trials, spikes, inputs, targets, per-trial gradients,
    weights, updates and the resume state, with a flush per iteration) are timed separately, on the same
    iterations.
    Overhead = logging time / training time.  File creation and ``finish`` (once per run) are reported
    apart.

(b) Trace throughput.  ``RunWriter.add_trace`` + flush of float32 blocks of ``steps x neurons`` (as
    ``--trace`` writes them), MB/s of float32 payload, file closed (and flushed) inside the timing.

Usage::

    python scripts/bench_hdf5.py [--config models/sine.toml] [--iterations 10] [--trials 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def logging_overhead(config: str, iterations: int, folder: Path) -> dict[str, float]:
    """Time training steps and their logging separately on the same iterations.

    Parameters
    ----------
    config : str
        Model config (TOML).
    iterations : int
        Timed iterations (after one warm-up iteration, which is not logged).
    folder : Path
        Where the run log is written.

    Returns
    -------
    dict
        ``train_s``, ``log_s`` (sums over the timed iterations), ``overhead_pct``, ``setup_s`` (file
        creation), ``finish_s``, ``file_mb``.
    """
    from neuroplast.config import load_config
    from neuroplast.io import RunWriter
    from neuroplast.training.runner import log_iteration
    from neuroplast.training.trainer import Trainer

    cfg = load_config(config)
    cfg = cfg.replace("training", iterations=iterations + 1)
    trainer = Trainer.from_config(cfg)
    trainer.run_iteration()  # warm-up: Brian2 code generation and compilation happen here
    out = folder / "bench.h5"
    t0 = time.perf_counter()
    writer = RunWriter(out, **trainer.log_header(), force=True)
    setup_s = time.perf_counter() - t0
    train_s = log_s = 0.0
    with writer:
        for _ in range(iterations):
            t0 = time.perf_counter()
            log = trainer.iterate()
            t1 = time.perf_counter()
            log_iteration(writer, trainer.record(log))
            t2 = time.perf_counter()
            train_s += t1 - t0
            log_s += t2 - t1
        t0 = time.perf_counter()
        writer.finish(trainer.final_weights())
        writer.close()
        finish_s = time.perf_counter() - t0
    return {
        "train_s": train_s,
        "log_s": log_s,
        "overhead_pct": 100.0 * log_s / train_s,
        "setup_s": setup_s,
        "finish_s": finish_s,
        "file_mb": out.stat().st_size / 1e6,
        "n_rec": cfg.network.n_rec,
        "n_steps": cfg.simulation.n_steps,
        "batch": cfg.training.batch_size,
    }


def trace_throughput(folder: Path, steps: int, neurons: int, trials: int) -> dict[str, float]:
    """MB/s of ``add_trace`` + flush + close for ``trials`` blocks of ``steps x neurons`` float32.

    Returns
    -------
    dict
        ``mb`` (float32 payload), ``seconds``, ``mb_per_s``.
    """
    from neuroplast.io import RunWriter

    rng = np.random.default_rng(0)
    block = rng.normal(size=(steps, neurons)).astype(np.float32)
    ids = np.arange(neurons)
    out = folder / f"trace_{neurons}.h5"
    with RunWriter(
        out,
        config_toml="[bench]\n",
        dt_ms=1.0,
        seed=0,
        populations={"recurrent": {"alpha": np.zeros(neurons)}, "input": {}, "readout": {}},
        projections_edges={"bias": None},
        n_in=1,
        n_out=1,
        task_kind="regression",
        n_steps=steps,
        force=True,
    ) as w:
        t0 = time.perf_counter()
        for k in range(trials):
            w.add_trace("recurrent", "v", block, ids, start_step=k * steps)
            if (k + 1) % 16 == 0:  # the writer flushes every 16 trials / every iteration in a real run
                w.flush()
        w.close()
        seconds = time.perf_counter() - t0
    mb = trials * block.nbytes / 1e6
    return {"mb": mb, "seconds": seconds, "mb_per_s": mb / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="models/sine.toml")
    ap.add_argument("--iterations", type=int, default=10, help="timed training iterations (default 10)")
    ap.add_argument("--trials", type=int, default=50, help="trace blocks per shape (default 50)")
    ap.add_argument("--steps", type=int, default=1000, help="steps per trace block (default 1000)")
    ap.add_argument("--skip-training", action="store_true", help="only the trace throughput")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_training:
            r = logging_overhead(args.config, args.iterations, folder)
            print(
                f"(a) {args.config} (n_rec {r['n_rec']}, n_steps {r['n_steps']}, batch {r['batch']}), "
                f"{args.iterations} iterations after warm-up:"
            )
            print(
                f"    training {r['train_s']:.3f} s ({r['train_s'] / args.iterations * 1e3:.1f} ms/it), "
                f"logging {r['log_s']:.3f} s ({r['log_s'] / args.iterations * 1e3:.2f} ms/it) "
                f"-> overhead {r['overhead_pct']:.2f} %"
            )
            print(
                f"    once per run: create file {r['setup_s'] * 1e3:.1f} ms, finish+close "
                f"{r['finish_s'] * 1e3:.1f} ms; file {r['file_mb']:.2f} MB"
            )
        print(f"(b) trace writing, {args.trials} blocks of {args.steps} steps x N float32:")
        for n in (100, 300, 1000):
            t = trace_throughput(folder, args.steps, n, args.trials)
            print(f"    N = {n:4d}: {t['mb']:7.1f} MB in {t['seconds']:.3f} s -> {t['mb_per_s']:7.0f} MB/s")


if __name__ == "__main__":
    main()
