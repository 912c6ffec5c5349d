"""Benchmark: one trial's factors of ``neuroplast analyze``, alif fast path vs the derived path of any model.

    python scripts/bench_model_factors.py [--n-rec 100] [--n-in 100] [--steps 1000] [--repeat 3]

Times (best of ``--repeat``, one process, NumPy only) what analyze computes per trial
(:mod:`neuroplast.gradients.model_truncated`): L*, the truncated signals of the default hop counts
(0, 1, 2, 4, 8, 16, 32), the factorized sums of 13 signals (L*, the rule's, 7 truncated, a random B's and
the n_out + 1 = 3 moment signals of B*) for both hidden projections, the eligibility row norms and two
contractions per projection — for ``alif`` (half the neurons adaptive) through :class:`AlifFactors` (the
hand-written fast path) and :class:`ModelFactors` (its derived Jacobians), and for ``lif_syn`` and
``adlif`` through :class:`ModelFactors`.  A random network (W_in, W_rec ~ N(0, σ), 5 % input spikes per
step, MSE against a random target, rate regularizer) that spikes; the simulation is not timed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from neuroplast.gradients.derived import ModelTrial, alif_trial
from neuroplast.gradients.model_truncated import AlifFactors, ModelFactors
from neuroplast.gradients.trial import TrialData
from neuroplast.model.neurons import get_neuron
from neuroplast.model.params import ModelParams, Weights

#: Input weight scale per model (adlif's drive enters as (1 − α) c).
GAIN = {"alif": 1.0, "lif_syn": 0.5, "adlif": 12.0}
KS = [0, 1, 2, 4, 8, 16, 32]


def _problem(
    n_rec: int, n_in: int, T: int, gain: float
) -> tuple[ModelParams, Weights, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    beta = np.r_[np.zeros(n_rec - n_rec // 2), np.full(n_rec // 2, 0.6)]
    params = ModelParams.from_time_constants(
        n_rec=n_rec, tau_m=20.0, tau_a=200.0, beta=beta, v_th=0.3, n_ref=2, tau_out=20.0
    )
    w = Weights(
        rng.normal(0.0, 0.3 * gain * np.sqrt(12 / n_in), (n_rec, n_in)),
        rng.normal(0.0, 0.3 * gain * np.sqrt(10 / n_rec), (n_rec, n_rec)),
        rng.normal(0.0, 1.0, (2, n_rec)),
        np.zeros(2),
    )
    x = (rng.random((T, n_in)) < 0.05).astype(float)
    return params, w, x, rng.normal(0.0, 0.5, (T, 2))


def _values(name: str, params: ModelParams) -> dict[str, Any]:
    model = get_neuron(name)
    if name == "alif":
        return {"alpha": params.alpha, "rho": params.rho, "beta": params.beta}
    return {p.name: float(np.exp(-1.0 / p.default)) if p.decay else p.default for p in model.parameters}


def _analysis(f: Any) -> None:
    """The factor calls of one trial of analyze, in its order."""
    star = f.ideal_signal()
    trunc = f.truncated_signals(KS, full=star)
    T, N = star.shape
    rng = np.random.default_rng(1)
    stack = np.stack([star, trunc[0] + 0.1, *trunc.values(), *rng.normal(size=(4, T, N))])
    g = f.factorize(stack)
    masks = {"input": f.weights.mask_in, "recurrent": f.weights.mask_rec}
    for name, mask in masks.items():
        f.row_norms(name, mask)
        f.contract(name, g[name][0] - g[name][1])
        f.contract(name, g[name][0])


def _best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-rec", type=int, default=100)
    ap.add_argument("--n-in", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"N = {a.n_rec}, n_in = {a.n_in}, T = {a.steps}: seconds per trial (best of {a.repeat})")
    for name in ("alif", "lif_syn", "adlif"):
        params, w, x, target = _problem(a.n_rec, a.n_in, a.steps, GAIN[name])
        mask = np.ones(a.steps)
        if name == "alif":
            tr = TrialData.make(params, w, x, target, mask, "mse", c_reg=0.1, f_target=0.01)
            fast = _best(lambda tr=tr: _analysis(AlifFactors(tr)), a.repeat)
            mt = alif_trial(tr)
            print(f"alif     fast path (AlifFactors):   {fast:7.3f} s   rate {tr.z.mean() * 1e3:.0f} Hz")
        else:
            model = get_neuron(name)
            mt = ModelTrial.make(model, _values(name, params), params, w, x, target, mask, "mse", c_reg=0.1)
        derived = _best(lambda mt=mt: _analysis(ModelFactors(mt)), a.repeat)
        rate = mt.traj.z.mean() * 1e3
        print(f"{name:<8} derived (ModelFactors):     {derived:7.3f} s   rate {rate:.0f} Hz")


if __name__ == "__main__":
    main()
