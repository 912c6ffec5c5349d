"""Benchmark: the factorized e-prop gradient of a batch, trial by trial vs batched (NumPy only).

    python scripts/bench_eprop_batch.py [--batch 32] [--steps 2250] [--n-rec 100] [--n-alif 50]
                                        [--n-in 40] [--n-out 2] [--repeats 5] [--simulate] [--threads 2]
                                        [--bptt]

Times ``[eprop_grads(t) for t in trials]`` (what the factorized path did per trial) against one
``eprop_grads_batch(trials, threads=1)`` call on the same :class:`~neuroplast.gradients.trial.TrialData`,
and that call with its per-trial work in ``--threads`` threads (fastest of ``--repeats`` after a warm-up;
the trials' derived arrays err, pre, reg are computed before timing), and checks that all give the same
bits.  Default sizes are models/evidence.toml's network (100 neurons,
the last 50 ALIF, 40 inputs, 2 readouts, cross-entropy with a recall window, rate regularization) with
2,250 steps.  The trajectories are random (spikes at ≈ 20 Hz, ψ ≥ 0 with zeros where refractory, a
random readout), or with ``--simulate`` the NumPy reference :func:`~neuroplast.model.dynamics.simulate`
of random input.  Each trial has its own random feedback B.  Last line, machine-readable:
``eprop batch B=<B> T=<T>: per-trial <ms> ms, batched <ms> ms, x<speed-up>, <n> threads <ms> ms, same bits
<bool>``.  ``--bptt`` times exact BPTT the same way (``bptt_grads`` per trial against ``bptt_grads_batch``,
alternating).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neuroplast.gradients.bptt import bptt_grads, bptt_grads_batch
from neuroplast.gradients.eprop import eprop_grads, eprop_grads_batch
from neuroplast.gradients.trial import TrialData
from neuroplast.model.dynamics import Trajectory, simulate
from neuroplast.model.params import ModelParams, Weights


def make_trials(args) -> list[TrialData]:
    """``args.batch`` trials of one network, each with its own input, label, trajectory and B."""
    rng = np.random.default_rng(0)
    N, T = args.n_rec, args.steps
    beta = np.r_[np.zeros(N - args.n_alif), np.full(args.n_alif, 0.17)]
    params = ModelParams.from_time_constants(
        n_rec=N, tau_m=20.0, tau_a=2000.0, beta=beta, v_th=0.6, n_ref=5, tau_out=20.0
    )
    w = Weights(
        rng.normal(0.0, 1.0 / np.sqrt(args.n_in), (N, args.n_in)),
        rng.normal(0.0, 0.3 / np.sqrt(N), (N, N)),
        rng.normal(0.0, 1.0 / np.sqrt(N), (args.n_out, N)),
        np.zeros(args.n_out),
    )
    mask = np.zeros(T)
    mask[-T // 5 :] = 1.0
    trials = []
    for b in range(args.batch):
        x = (rng.random((T, args.n_in)) < 0.04).astype(float)
        target = np.zeros((T, args.n_out))
        target[:, b % args.n_out] = 1.0
        if args.simulate:
            traj = simulate(params, w, x).squeeze()
        else:
            z = (rng.random((T, N)) < 0.02).astype(float)
            refr = rng.random((T, N)) < 0.05
            psi = np.where(refr, 0.0, np.maximum(0.0, rng.normal(0.1, 0.1, (T, N))))
            y = rng.normal(0.0, 1.0, (T, args.n_out))
            traj = Trajectory(rng.normal(size=(T, N)), rng.random((T, N)), z, psi, refr, y, batched=False)
        fb = rng.normal(0.0, 1.0 / np.sqrt(N), (N, args.n_out))
        t = TrialData(params, w, x, traj, target, mask, "cross_entropy", 300.0, 0.01, fb)
        _ = (t.err, t.pre, t.reg)  # derived arrays: computed once, not timed
        trials.append(t)
    return trials


def timed(run, repeats: int):
    """Fastest wall and CPU time (ms) of ``run()`` over ``repeats`` calls after a warm-up, and its result
    (the fastest, not the median: on a shared machine the slower runs measure the other processes)."""
    run()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return 1e3 * min(walls), 1e3 * min(cpus), out


def bench_bptt(trials: list[TrialData], args) -> None:
    """``[bptt_grads(t) for t in trials]`` against one ``bptt_grads_batch(trials)``, alternating (each timed
    ``--repeats`` times, the fastest kept), and whether they give the same bits."""
    loop = lambda: [bptt_grads(t) for t in trials]  # noqa: E731
    batch = lambda: bptt_grads_batch(trials)  # noqa: E731
    walls: dict[str, list[float]] = {"loop": [], "batch": []}
    outs = {}
    for _ in range(args.repeats):  # alternating, so that both see the same machine
        for name, run in (("loop", loop), ("batch", batch)):
            t0 = time.perf_counter()
            outs[name] = run()
            walls[name].append(1e3 * (time.perf_counter() - t0))
    same = all(
        np.array_equal(a[k], b[k]) for a, b in zip(outs["loop"], outs["batch"], strict=True) for k in a
    )
    lo, ba = min(walls["loop"]), min(walls["batch"])
    head = f"bptt batch B={args.batch} T={args.steps}"
    print(f"{head}: per-trial {lo:.0f} ms, batched {ba:.0f} ms, x{lo / ba:.2f}, same bits {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2250)
    ap.add_argument("--n-rec", type=int, default=100)
    ap.add_argument("--n-alif", type=int, default=50)
    ap.add_argument("--n-in", type=int, default=40)
    ap.add_argument("--n-out", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--simulate", action="store_true", help="NumPy-simulated trajectories instead of random")
    ap.add_argument("--threads", type=int, default=2, help="threads of the batched call's per-trial work")
    ap.add_argument(
        "--bptt",
        action="store_true",
        help="time exact BPTT instead: bptt_grads per trial vs bptt_grads_batch",
    )
    args = ap.parse_args()
    trials = make_trials(args)
    if args.bptt:
        bench_bptt(trials, args)
        return
    loop_ms, loop_cpu, loop = timed(lambda: [eprop_grads(t) for t in trials], args.repeats)
    batch_ms, batch_cpu, batch = timed(lambda: eprop_grads_batch(trials, threads=1), args.repeats)
    thr_ms, _, thr = timed(lambda: eprop_grads_batch(trials, threads=args.threads), args.repeats)
    same = all(
        np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k])
        for a, b, c in zip(loop, batch, thr, strict=True)
        for k in a
    )
    print(f"per trial: {loop_ms / args.batch:.1f} ms/trial; batched: {batch_ms / args.batch:.2f} ms/trial")
    print(f"CPU time: per-trial loop {loop_cpu:.0f} ms, batched {batch_cpu:.0f} ms")
    print(
        f"eprop batch B={args.batch} T={args.steps}: per-trial {loop_ms:.0f} ms, batched {batch_ms:.0f} ms, "
        f"x{loop_ms / batch_ms:.1f}, {args.threads} threads {thr_ms:.0f} ms, same bits {same}"
    )


if __name__ == "__main__":
    main()
