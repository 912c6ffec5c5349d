"""Benchmark: ms per trial of the online and factorized e-prop paths.

    python scripts/bench_eprop.py [--device cpp_standalone] [--steps 1000] [--repeats 3]
                                  [--sizes 100:1.0,1000:1.0,10000:0.01] [--update-every K] [--sweep]

For every size N (with recurrent connection probability p) the script builds the network once per
path (compilation is *not* timed), then times whole trials (median of ``--repeats``):

* online:     Brian2 accumulates Σ_t L ē per synapse (no recording), then the gradient is read back;
              event-driven (a synapse is updated only at steps where its postsynaptic ψ ≠ 0, the default
              for the piecewise-linear surrogate used here); ``--sweep`` also times the per-step sweep over
              every synapse;
* factorized: Brian2 simulates and records ψ, z per neuron; NumPy contracts F^T z̄.

With ``--update-every K`` it also times the online path learning inside the trial (an SGD step every K
steps, symmetric e-prop, docs/model.md §6; the weight monitors included).

It prints ms per trial, ns per synapse-step of the online path, and the factorized/online ratio.
Input: 100 Poisson channels at 20 Hz, dense input projection, MSE on a sine target.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.model.losses import get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.network.builder import Brian2Network
from neuroplast.training.trainer import trajectory_of


def make(n: int, p_rec: float, n_in: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = ModelParams.from_time_constants(
        n_rec=n, tau_m=20.0, tau_a=500.0, beta=0.0, v_th=0.5, n_ref=2, tau_out=20.0
    )
    mask_rec = rng.random((n, n)) < p_rec
    fan = max(1.0, n * p_rec)
    w = Weights(
        rng.normal(0.0, 1.0 / np.sqrt(n_in), (n, n_in)),
        rng.normal(0.0, 0.3 / np.sqrt(fan), (n, n)),
        rng.normal(0.0, 1.0 / np.sqrt(n), (1, n)),
        np.zeros(1),
        mask_rec=mask_rec,
    )
    return params, w


def timed(run, repeats: int):
    """Median wall time (ms) of ``run()`` over ``repeats`` calls after a warm-up call, and the last result."""
    run()  # warm-up (file system caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), res


def bench(n: int, p_rec: float, args) -> dict:
    params, w = make(n, p_rec, args.n_in)
    T = args.steps
    rng = np.random.default_rng(1)
    x = (rng.random((T, args.n_in)) < 20e-3).astype(float)
    target = np.sin(2 * np.pi * np.arange(T) / 250.0)[:, None]
    mask = np.ones(T)
    loss = get_loss("mse")
    n_syn = int(w.mask_in.sum() + w.mask_rec.sum() + w.mask_out.sum())
    out = {"N": n, "p_rec": p_rec, "synapses": n_syn}

    net = Brian2Network(params, w, T, device=args.device, gradients=True, regularization=False, record=False)
    out["online_ms"], res = timed(lambda: net.run_trial(w, x, target=target, mask=mask), args.repeats)
    out["rate_hz"] = float(res.spike_count.mean() / (T * params.dt * 1e-3))
    out["event_driven"] = net.event_driven
    g_online = res.grads

    def build(**kw) -> Brian2Network:
        return Brian2Network(params, w, T, device=args.device, regularization=False, record=False, **kw)

    if args.sweep:
        net = build(gradients=True, event_driven=False)
        out["sweep_ms"], res_sweep = timed(
            lambda: net.run_trial(w, x, target=target, mask=mask), args.repeats
        )
        out["sweep_rel_diff"] = max(
            float(np.linalg.norm(res_sweep.grads[k] - g_online[k]) / np.linalg.norm(g_online[k]))
            for k in ("input", "recurrent", "output")
        )

    net = Brian2Network(params, w, T, device=args.device, gradients=False, record=True)

    def factorized():
        r = net.run_trial(w, x, target=target, mask=mask)
        return eprop_grads(TrialData(params, w, x, trajectory_of(r, r.y), target, mask, loss), w.w_out.T)

    out["factorized_ms"], g = timed(factorized, args.repeats)
    rel = max(
        np.linalg.norm(g[k] - g_online[k]) / max(np.linalg.norm(g_online[k]), 1e-300)
        for k in ("input", "recurrent", "output")
    )
    out["max_rel_diff"] = float(rel)
    if args.update_every:
        from neuroplast.plasticity.rules import get_rule

        net = build(gradients=True, update_every=args.update_every, rule_code=get_rule("eprop").brian2_update)
        kw = dict(target=target, mask=mask, learning_rate=1e-6)
        out["in_trial_ms"], _ = timed(lambda: net.run_trial(w, x, **kw), args.repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpp_standalone", choices=["runtime", "cpp_standalone"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-in", type=int, default=100)
    ap.add_argument("--sizes", default="100:1.0,1000:1.0,10000:0.01", help="comma-separated N:p_rec pairs")
    ap.add_argument("--update-every", type=int, default=0, help="also time in-trial learning every K steps")
    ap.add_argument("--sweep", action="store_true", help="also time the per-step sweep path")
    args = ap.parse_args()
    rows = []
    for item in args.sizes.split(","):
        n, p = item.split(":")
        rows.append(bench(int(n), float(p), args))
        r = rows[-1]
        ns = 1e6 * r["online_ms"] / (r["synapses"] * args.steps)
        ratio = r["factorized_ms"] / r["online_ms"]
        print(
            f"N={r['N']:>6} p_rec={r['p_rec']:<5} synapses={r['synapses']:>9}  rate={r['rate_hz']:5.1f} Hz  "
            f"online {r['online_ms']:9.1f} ms/trial ({ns:6.2f} "
            f"ns/synapse-step)  factorized {r['factorized_ms']:9.1f} ms/trial  "
            f"factorized/online {ratio:5.2f}  max rel diff {r['max_rel_diff']:.1e}"
            + (
                f"  sweep {r['sweep_ms']:9.1f} ms/trial "
                f"({1e6 * r['sweep_ms'] / (r['synapses'] * args.steps):.2f} ns, "
                f"rel diff {r['sweep_rel_diff']:.1e})"
                if args.sweep
                else ""
            )
            + (
                f"  in-trial (every {args.update_every}) {r['in_trial_ms']:9.1f} ms/trial "
                f"(x{r['in_trial_ms'] / r['online_ms']:.2f} online)"
                if args.update_every
                else ""
            ),
            flush=True,
        )
    print(f"device={args.device} steps={args.steps} repeats={args.repeats} (median)")


if __name__ == "__main__":
    main()
