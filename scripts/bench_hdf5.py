"""Benchmark of the HDF5 run log: logging overhead of ``neuroplast run`` and trace-writing throughput.

(a) Logging overhead.  One :class:`~neuroplast.training.trainer.Trainer` is built as ``neuroplast run``
    builds it for ``--iterations`` iterations (on ``models/sine.toml``: the chunked engine, many iterations
    per Brian2 launch) and warmed up with one launch that is not logged (Brian2's code generation and
    compilation are never timed).  Then, for every one of ``--iterations`` iterations (whole launches), the
    training step (``Trainer.iterate``: its share of the launch, gradient, Adam), preparing the record
    (``Trainer.record``) and writing it (:func:`neuroplast.training.runner.log_iteration`: trials, spikes,
    inputs, targets, per-trial gradients, weights, updates and the resume state, with the flush schedule of
    ``neuroplast run``: one flush per launch) are timed separately, on the same iterations.  Means over the
    iterations (a launch and a flush each land on one iteration of their window).  Overhead = (record +
    log) / all three.  File creation and ``finish`` (once per run) are reported apart.

(b) Trace throughput.  ``RunWriter.add_trace`` + flush of float32 blocks of ``steps x neurons`` (as
    ``--trace`` writes them), MB/s of float32 payload, file closed (and flushed) inside the timing.

Usage::

    python scripts/bench_hdf5.py [--config models/sine.toml] [--iterations 200] [--trials 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def logging_overhead(config: str, iterations: int, folder: Path) -> dict[str, float]:
    """Time training steps, their records and their logging separately on the same iterations.

    Parameters
    ----------
    config : str
        Model config (TOML).
    iterations : int
        Timed iterations (after a warm-up launch, which is not logged).
    folder : Path
        Where the run log is written.

    Returns
    -------
    dict
        ``train_s``, ``record_s``, ``log_s`` (wall-clock sums over the timed iterations), ``record_cpu_s``,
        ``log_cpu_s`` (the process's CPU time of the same: steadier on a shared machine), ``overhead_pct``,
        ``chunk`` (iterations per launch), ``flushes``, ``setup_s`` (file creation), ``finish_s``,
        ``file_mb``.
    """
    from neuroplast.build import build
    from neuroplast.config import load_config
    from neuroplast.io import RunWriter
    from neuroplast.training.runner import _flush_schedule, log_iteration
    from neuroplast.training.trainer import Trainer, chunk_length

    cfg = load_config(config).replace("training", iterations=iterations)
    # the launches of a run of `iterations`, after one more launch of the same length as warm-up
    k = chunk_length(cfg, sum(v[0].size for v in build(cfg).connectivity.edges.values()))
    cfg = cfg.replace("training", iterations=k + iterations)
    if k > 1 and cfg.simulation.chunk_iterations == 0:  # auto would even out over k + iterations
        cfg = cfg.replace("simulation", chunk_iterations=k)
    trainer = Trainer.from_config(cfg)
    for _ in range(trainer.chunk or 1):  # warm-up: Brian2 code generation and compilation happen here
        trainer.run_iteration()
    out = folder / "bench.h5"
    t0 = time.perf_counter()
    writer = _flush_schedule(RunWriter(out, **trainer.log_header(), force=True), trainer)
    setup_s = time.perf_counter() - t0
    flushes = [0]
    flush = writer.flush

    def counted() -> None:
        flushes[0] += 1
        flush()

    writer.flush = counted
    train_s = record_s = log_s = record_cpu_s = log_cpu_s = 0.0
    with writer:
        for _ in range(iterations):
            t0 = time.perf_counter()
            log = trainer.iterate()
            t1, c1 = time.perf_counter(), time.process_time()
            record = trainer.record(log)
            t2, c2 = time.perf_counter(), time.process_time()
            log_iteration(writer, record)
            t3, c3 = time.perf_counter(), time.process_time()
            train_s += t1 - t0
            record_s += t2 - t1
            log_s += t3 - t2
            record_cpu_s += c2 - c1
            log_cpu_s += c3 - c2
        n_flushes = flushes[0]
        t0 = time.perf_counter()
        writer.finish(trainer.final_weights())
        writer.close()
        finish_s = time.perf_counter() - t0
    return {
        "train_s": train_s,
        "record_s": record_s,
        "log_s": log_s,
        "record_cpu_s": record_cpu_s,
        "log_cpu_s": log_cpu_s,
        "overhead_pct": 100.0 * (record_s + log_s) / (train_s + record_s + log_s),
        "chunk": trainer.chunk,
        "flushes": n_flushes,
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
    ap.add_argument("--iterations", type=int, default=200, help="timed training iterations (default 200)")
    ap.add_argument("--trials", type=int, default=50, help="trace blocks per shape (default 50)")
    ap.add_argument("--steps", type=int, default=1000, help="steps per trace block (default 1000)")
    ap.add_argument("--skip-training", action="store_true", help="only the trace throughput")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_training:
            r = logging_overhead(args.config, args.iterations, folder)
            n = args.iterations
            total = r["train_s"] + r["record_s"] + r["log_s"]
            print(
                f"(a) {args.config} (n_rec {r['n_rec']}, n_steps {r['n_steps']}, batch {r['batch']}, "
                f"{r['chunk'] or 1} iterations per launch), {n} iterations after warm-up, "
                f"{r['flushes']} flushes:"
            )
            for what in ("train", "record", "log"):
                sec = r[f"{what}_s"]
                cpu = f", CPU {r[f'{what}_cpu_s'] * 1e3 / n:.3f} ms/it" if f"{what}_cpu_s" in r else ""
                print(f"    {what:6s} {sec * 1e3 / n:7.3f} ms/it ({100 * sec / total:5.1f} %{cpu})")
            print(f"    -> record + log {r['overhead_pct']:.2f} % of the iteration")
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
