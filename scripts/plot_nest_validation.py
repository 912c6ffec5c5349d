"""docs/figures/nest_sine_validation.png and the numbers of docs/validation.md, from data/ (no NEST).

    python scripts/plot_nest_validation.py [--iterations 200] [--out docs/figures/nest_sine_validation.png]
                                           [--json FILE]

Trains ``models/nest_sine.toml`` on the NumPy reference twice — as neuroplast is, and with the
validation-only emulation of NEST's late update (tests/nest/emulation.py) — and puts both next to NEST's
own losses (data/nest_reference.h5, scripts/make_nest_reference.py): the loss curves on one plot, and
|loss − NEST's| / NEST's on a log axis below (0 is drawn at 1e-17).  Prints, per iteration, the size of
the term NEST's late update misses (η · max |L_T ē_T| over the synapses it affects) and the relative
loss differences; ``--json`` writes them.  About 0.5 s per iteration and run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from nest_example import write_json  # noqa: E402

from neuroplast.analysis.plots import _pyplot, _save  # noqa: E402
from neuroplast.build import build  # noqa: E402
from neuroplast.config import load_config  # noqa: E402
from neuroplast.plasticity.reference import NumpySimulator  # noqa: E402
from neuroplast.training.trainer import Trainer  # noqa: E402
from tests.nest.emulation import LateUpdateSimulator, late_inputs, reference  # noqa: E402

FLOOR = 1e-17  # where an exact agreement is drawn on the log axis


def train(simulator_cls, n: int) -> tuple[np.ndarray, object]:
    """Losses of n iterations of models/nest_sine.toml on a NumPy simulator, and the simulator."""
    setup = build(load_config(ROOT / "models" / "nest_sine.toml"))
    sim = simulator_cls.of(setup)
    trainer = Trainer(setup, sim)
    return np.array([trainer.iterate().losses[0] for _ in range(n)]), sim


def measure(n: int) -> dict:
    """Every number of the figure and of docs/validation.md."""
    nest = reference()["sine/loss"][:n]
    plain, _ = train(NumpySimulator, n)
    emulated, sim = train(LateUpdateSimulator, n)
    setup = build(load_config(ROOT / "models" / "nest_sine.toml"))
    late = late_inputs(setup.task.trials(0, 1)[0].x)
    eta = setup.cfg.training.learning_rate
    term = [float(eta * np.abs(t[:, late]).max()) for t in sim.terms]
    rel = lambda a: (np.abs(a - nest) / np.abs(nest)).tolist()  # noqa: E731
    first = int(np.argmax(np.abs(plain - nest) / nest > 1e-10)) + 1
    return {
        "iterations": n,
        "late_inputs": np.flatnonzero(late).tolist(),
        "late_synapses": int(late.sum() * setup.weights.n_rec),
        "nest": nest.tolist(),
        "neuroplast": plain.tolist(),
        "emulated": emulated.tolist(),
        "rel_plain": rel(plain),
        "rel_emulated": rel(emulated),
        "first_iteration_over_1e-10": first,
        "missing_term_max": term,
    }


def plot(m: dict, out: Path) -> Path:
    plt = _pyplot()
    it = np.arange(1, m["iterations"] + 1)
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(7.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax.plot(it, m["nest"], color="black", lw=2.4, label="NEST 3.10 (data/nest_reference.h5)")
    ax.plot(it, m["neuroplast"], color="tab:red", lw=1.2, label="neuroplast, models/nest_sine.toml")
    ax.plot(it, m["emulated"], color="tab:blue", lw=1, ls="--", label="neuroplast + NEST's late update")
    ax.set_ylabel("loss ½ Σ_t (y_t − y*_t)²")
    ax.set_title("NEST's e-prop sine-wave example: NEST vs neuroplast, same seed")
    ax.legend(frameon=False)
    for key, color, label in (
        ("rel_plain", "tab:red", "neuroplast"),
        ("rel_emulated", "tab:blue", "neuroplast + late update (validation only)"),
    ):
        bx.semilogy(it, np.maximum(m[key], FLOOR), color=color, lw=1, marker=".", ms=3, label=label)
    bx.semilogy(it, m["missing_term_max"], color="tab:gray", lw=1, label="η max |L_T ē_T| (the missed term)")
    bx.axhline(1e-10, color="black", lw=0.6, ls=":")
    bx.set_ylim(FLOOR / 3, 1)
    bx.set_ylabel("|loss − NEST| / NEST\n(1e-17: equal)")
    bx.set_xlabel("iteration")
    bx.legend(frameon=False, fontsize=8, loc="center right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "nest_sine_validation.png"))
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    m = measure(args.iterations)
    print(f"wrote {plot(m, Path(args.out))}")
    print(f"late inputs {m['late_inputs']} ({m['late_synapses']} synapses)")
    print(f"first iteration with a loss difference > 1e-10: {m['first_iteration_over_1e-10']}")
    print(f"max relative loss difference, emulated: {max(m['rel_emulated']):.3g}")
    for k in (0, 1, 7, 8, 9, len(m["nest"]) - 1):
        if k < len(m["nest"]):
            print(
                f"iteration {k + 1}: NEST {m['nest'][k]:.12f} neuroplast {m['neuroplast'][k]:.12f} "
                f"(rel {m['rel_plain'][k]:.2e}; emulated {m['rel_emulated'][k]:.2e}); "
                f"missed term {m['missing_term_max'][k]:.3g}"
            )
    return write_json(args.json, m)


if __name__ == "__main__":
    sys.exit(main())
