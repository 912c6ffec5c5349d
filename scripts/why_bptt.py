"""Why exact BPTT trains the pattern-generation task worse than e-prop at e-prop's learning rate.

docs/sweeps.md: on models/sine.toml (Adam 3e-4, 40 iterations) BPTT ended at a mean loss of 81 against
e-prop's 6. This script measures, at the initial weights of each seed (the NumPy reference, the same
trajectory for both gradients):

1. the cosine between e-prop's and BPTT's gradient, per projection, and their norms — BPTT with the reset
   path detached (rule ``bptt``) and through the reset too (rule ``bptt-full``);
2. how the *gradient* each rule follows predicts the change of the loss, and what the loss of the spiking
   network really does: Adam's first step is Δw = −η g/(|g| + ε) ≈ −η sign(g) per weight, so the loss
   predicted to first order by the (surrogate) BPTT gradient ∇E is ΔE ≈ ∇E · Δw, and the loss after the
   step is simulated.  BPTT's ∇E is the exact gradient of the surrogate model: where its prediction and
   the simulated change disagree, the surrogate's derivative through many recurrent steps does not
   describe the spiking network.

    python scripts/why_bptt.py [--seeds 0 1 2 3 4] [--steps 1e-5 3e-5 1e-4 3e-4 1e-3]

It prints one table per seed; docs/results.md quotes it.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from neuroplast.build import build
from neuroplast.config import load_config
from neuroplast.gradients.bptt import bptt_grads, trial_loss
from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData

FIELDS = {"input": "w_in", "recurrent": "w_rec", "output": "w_out", "bias": "b_out"}


def _trial(setup, weights, trial) -> TrialData:
    tr = setup.cfg.training
    return TrialData.make(
        setup.params, weights, trial.x, trial.target, trial.mask, tr.loss, c_reg=tr.reg_coeff,
        f_target=setup.f_target,
    )  # fmt: skip


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))


def _adam_first_step(weights, grads: dict[str, np.ndarray], eta: float, eps: float):
    """The weights after Adam's first step on ``grads`` (bias-corrected moments: m̂ = g, v̂ = g²)."""
    change = {}
    for key, name in FIELDS.items():
        g = np.asarray(grads[key], dtype=float)
        change[name] = getattr(weights, name) - eta * g / (np.abs(g) + eps)
    return dataclasses.replace(weights, **change), change


def measure(config: str, seed: int, steps: list[float]) -> None:
    cfg = load_config(config)
    setup = build(cfg, seed=seed)
    w0 = setup.weights
    trial = setup.task.trials(0, 1)[0]
    td = _trial(setup, w0, trial)
    e0 = trial_loss(td)
    g_bptt = bptt_grads(td)
    g_eprop = eprop_grads(td)  # symmetric feedback B = W_outᵀ
    cos = {k: _cos(g_eprop[k], g_bptt[k]) for k in ("input", "recurrent", "output")}
    ratio = {k: np.linalg.norm(g_bptt[k]) / np.linalg.norm(g_eprop[k]) for k in ("input", "recurrent")}
    g_full = bptt_grads(td, detach_reset=False)  # through the reset too (rule bptt-full)
    cos_full = {k: _cos(g_eprop[k], g_full[k]) for k in ("input", "recurrent")}
    ratio_full = {k: np.linalg.norm(g_full[k]) / np.linalg.norm(g_eprop[k]) for k in ("input", "recurrent")}
    print(f"\nseed {seed}: loss at the initial weights E0 = {e0:.4g}")
    print(
        "  cos(e-prop, BPTT): "
        + ", ".join(f"{k} {v:.3f}" for k, v in cos.items())
        + "; |BPTT| / |e-prop|: "
        + ", ".join(f"{k} {v:.3g}" for k, v in ratio.items())
    )
    print(
        "  BPTT through the reset too: cos(e-prop, it): "
        + ", ".join(f"{k} {v:.3f}" for k, v in cos_full.items())
        + "; |it| / |e-prop|: "
        + ", ".join(f"{k} {v:.3g}" for k, v in ratio_full.items())
    )
    print("  Adam's first step of size eta along each rule's gradient:")
    print("  eta      | BPTT: predicted dE | simulated dE | e-prop: predicted dE | simulated dE")
    eps = cfg.training.adam_eps
    for eta in steps:
        row = []
        for g in (g_bptt, g_eprop):
            w1, new = _adam_first_step(w0, g, eta, eps)
            predicted = sum(
                float(np.sum(g_bptt[k] * (new[n] - getattr(w0, n)))) for k, n in FIELDS.items()
            )  # first order, with the exact surrogate gradient
            simulated = trial_loss(_trial(setup, w1, trial)) - e0
            row += [predicted, simulated]
        print(f"  {eta:<8g} | {row[0]:>18.4g} | {row[1]:>12.4g} | {row[2]:>20.4g} | {row[3]:>12.4g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="models/sine.toml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=float, nargs="+", default=[1e-5, 3e-5, 1e-4, 3e-4, 1e-3])
    args = ap.parse_args()
    for seed in args.seeds:
        measure(args.config, seed, args.steps)


if __name__ == "__main__":
    main()
