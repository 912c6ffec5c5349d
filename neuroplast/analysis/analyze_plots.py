"""PNG figures of :func:`neuroplast.analysis.analyze.analyze_run` (matplotlib, Agg backend).

:func:`plot_analysis` writes into a folder (existing figures of the same name are overwritten):

* ``gap_time.png`` — gap density ⟨gap_t, G⟩/‖G‖² over trial time (mean over trials, sums to 1), the
  per-step densities of the exact gradient and of the rule along g*, ‖gap_t‖/‖G‖, with the task's event
  windows shaded (evidence: cues, delay, recall; sine: phase quarters and the target);
* ``neurons.png`` — per-neuron eligibility-weighted cosine between L̃_j and L*_j against firing rate,
  pooled over trials (dominated by the trials with the largest L*) and per trial averaged over trials,
  the neuron kinds of the run's model marked apart (``alif``: LIF and ALIF; ``adlif``: LIF and AdLIF);
* ``counterfactual.png`` — cosine with BPTT of the learning signal truncated to k hops through W_rec vs k,
  with the least-squares fixed feedback B*, the logged rule and a random B as horizontal lines, and the
  loss-decrease proxy;
* ``training.png`` — cosine between applied updates and −g* per iteration and accumulated, per
  projection; singular values of the accumulated ΔW_rec (and of −Σ g*_rec).

For a rule with an eligibility of its own (``res["own_eligibility"]``) every curve is on that eligibility,
and the exact gradient is the run's reference (``res["reference"]``; :mod:`neuroplast.analysis.analyze`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.analysis.analyze_report import neuron_groups
from neuroplast.analysis.plots import _pyplot, _save  # one figure backend and save policy

__all__ = ["ANALYZE_FIGURES", "plot_analysis"]

#: File names written by :func:`plot_analysis`.
ANALYZE_FIGURES = ("gap_time.png", "neurons.png", "counterfactual.png", "training.png")
#: Colours of the neuron kinds in ``neurons.png``, in the order of :func:`neuron_groups` (LIF, ALIF first).
_KIND_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")

#: Reference lines of counterfactual.png closer than this (cosines) are drawn as one on top of the other.
SAME_LINE = 1e-12
_WINDOW_COLORS = {"cues": "tab:green", "gaps": "0.45", "delay": "tab:orange", "recall": "tab:red"}
#: Colours of windows of other names (the sine period's quarters), in turn.
_OTHER_COLORS = ("tab:blue", "tab:olive", "tab:purple", "tab:brown")
#: Opacity of the shaded windows; their legend swatches are drawn twice as opaque, with an edge, so that a
#: light window still shows in the legend.
_SHADE_ALPHA = 0.2


def _window_colors(res: dict[str, Any]) -> dict[str, Any]:
    """One colour per window label (labels repeat, e.g. every cue)."""
    labels = list(dict.fromkeys(lab for lab, _, _ in res["events"]["windows"]))
    others = iter(_OTHER_COLORS * len(labels))
    return {lab: _WINDOW_COLORS.get(lab) or next(others) for lab in labels}


def _shade(ax: Any, res: dict[str, Any], legend: bool) -> list[Any]:
    """Shade the task's windows; the legend swatches of their labels (``legend``) or none."""
    from matplotlib.patches import Patch

    dt = res["dt_ms"]
    colors = _window_colors(res)
    for lab, a, b in res["events"]["windows"]:
        ax.axvspan(a * dt, b * dt, color=colors[lab], alpha=_SHADE_ALPHA, lw=0)
    if not legend:
        return []
    return [
        Patch(facecolor=c, alpha=min(1.0, 2 * _SHADE_ALPHA), edgecolor=c, lw=1.0, label=lab)
        for lab, c in colors.items()
    ]


def plot_gap_time(res: dict[str, Any], out: Path) -> Path:
    """``gap_time.png`` (see the module docstring)."""
    plt = _pyplot()
    d = res["time"]["hidden"]
    T, dt = res["T"], res["dt_ms"]
    t_ms = np.arange(1, T + 1) * dt
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True, height_ratios=(2, 2, 1))
    ax = axes[0]
    swatches = _shade(ax, res, legend=True)
    ax.plot(t_ms, d["gap_density"] / dt, color="k", lw=1.0, label="gap ⟨gap_t, G⟩/‖G‖² (Σ = 1)")
    ax.set_ylabel("gap density (1/ms)")
    fr = "; ".join(f"{k}: {v:.2f}" for k, v in d["window_fraction"].items())
    ax.set_title(
        f"{Path(res['file']).name} ({res['rule']}, {len(res['trials'])} trials): where the gap g* − ĝ "
        f"arises\nfraction of the gap per window: {fr}",
        fontsize=9,
    )
    lines, labels = ax.get_legend_handles_labels()
    # beside the axes, not over the curves
    ax.legend(
        lines + swatches,
        labels + [p.get_label() for p in swatches],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title=f"shaded: {res['events'].get('title', 'the task windows')}" if swatches else None,
        title_fontsize=7,
    )
    ax = axes[1]
    _shade(ax, res, legend=False)
    ax.plot(t_ms, d["exact_density"] / dt, color="tab:blue", lw=1.0, label="exact L*_t e_t along ĝ* (Σ = 1)")
    ax.plot(t_ms, d["rule_density"] / dt, color="tab:purple", lw=1.0, label="rule L̃_t e_t along ĝ*")
    ax.set_ylabel("density along g* (1/ms)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax = axes[2]
    ax.plot(t_ms, d["gap_norm_rel"], color="0.3", lw=0.8, label="‖gap_t‖ / ‖G‖")
    tgt = res["events"].get("target")
    if res["task_kind"] == "regression" and tgt is not None:
        ax2 = ax.twinx()
        ax2.plot(t_ms, tgt[:, 0], color="tab:cyan", lw=0.8, label="target")
        ax2.set_ylabel("target", color="tab:cyan", fontsize=8)
    ax.set_ylabel("‖gap_t‖/‖G‖", fontsize=8)
    ax.set_xlabel("time in trial (ms)")
    fig.tight_layout()
    return _save(fig, out / "gap_time.png")


def plot_neurons(res: dict[str, Any], out: Path) -> Path:
    """``neurons.png`` (see the module docstring)."""
    plt = _pyplot()
    n = res["neurons"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, title in (
        (axes[0], "cosine", "pooled over trials"),
        (axes[1], "cosine_trial_mean", "per trial, mean over trials"),
    ):
        for (lab, sel), color in zip(neuron_groups(n), _KIND_COLORS, strict=False):
            if np.any(sel):
                c = n[key][sel]
                ax.scatter(
                    n["rate_hz"][sel],
                    c,
                    s=14,
                    color=color,
                    alpha=0.7,
                    label=f"{lab} neurons (n = {int(sel.sum())}): mean cosine over them {np.nanmean(c):.2f}",
                )
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("firing rate (Hz, mean over analysed trials)")
        ax.set_ylabel("cos(L̃_j, L*_j) over time")
        ax.set_title(f"cos(L̃_j, L*_j) weighted by Σ_i (e_ji^t)², {title}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out / "neurons.png")


def plot_counterfactual(res: dict[str, Any], out: Path) -> Path:
    """``counterfactual.png`` (see the module docstring)."""
    plt = _pyplot()
    cf = res["counterfactual"]
    ks = cf["ks"]
    xlab = [("T" if bp else str(k)) for k, bp in zip(ks, cf["k_is_bptt"], strict=True)]
    x = np.arange(len(ks))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.6))
    ax = axes[0]
    for part, style in (("hidden", "-o"), ("input", "--"), ("recurrent", ":")):
        ax.plot(x, cf["truncated"][part]["cosine_mean"], style, label=f"truncated L^(k), {part}")
    lines = (
        (cf["bstar_cosine_mean"], "tab:red", f"least-squares fixed B* ({cf['bstar_cosine_mean']:.3f})"),
        (
            cf["bstar_relative_cosine_mean"],
            "tab:pink",
            f"B*, trials weighted 1/‖L*‖² ({cf['bstar_relative_cosine_mean']:.3f})",
        ),
        (np.nanmean(cf["rule"]["hidden"]["cosine"]), "tab:green", "logged rule"),
        (np.nanmean(cf["random"]["hidden"]["cosine"]), "0.5", "random fixed B"),
    )
    for i, (v, color, lab) in enumerate(lines):
        # a line that a later one equals (the logged rule is a random B: its own) is drawn wide beneath it
        covered = any(abs(float(w) - float(v)) <= SAME_LINE for w, _, _ in lines[i + 1 :])
        ax.axhline(
            v,
            color=color,
            lw=3.0 if covered else 1.2,
            ls="-.",
            label=f"{lab}" if "B*" in lab else f"{lab} ({v:.3f})",
        )
    ax.set_xticks(x, xlab)
    if res.get("own_eligibility"):  # the k-hop signals on the rule's own eligibility: T is L* on it
        ax.set_xlabel("hops k back through W_rec, on the rule's eligibility (0 = the rule, T = L*)")
    else:
        ax.set_xlabel("hops k back through W_rec (0 = e-prop, T = BPTT)")
    ax.set_ylabel(f"cosine with {res.get('reference', 'bptt')} (hidden weights, mean over trials)")
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.02)
    # below the axes: inside, the legend would cover reference lines (the random B's is near 0)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax = axes[1]
    ax.plot(x, cf["truncated"]["hidden"]["decrease_same_lr_mean"], "-o", label="⟨ĝ, g*⟩ / ‖g*‖² (same lr)")
    ax.axhline(1.0, color="0.5", lw=0.5)
    ax.set_xticks(x, xlab)
    ax.set_xlabel("hops k back through W_rec")
    ax.set_ylabel("first-order loss decrease relative to BPTT")
    dec = cf["truncated"]["hidden"]["decrease_same_lr_mean"]
    if np.all(dec[np.isfinite(dec)] > 0):
        ax.set_yscale("log")
    else:  # a rule that increases the loss to first order
        ax.set_yscale("symlog", linthresh=1e-2)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.suptitle(
        f"{Path(res['file']).name}: counterfactual rules on {len(res['trials'])} logged trials", fontsize=10
    )
    fig.tight_layout()
    return _save(fig, out / "counterfactual.png")


def plot_training(res: dict[str, Any], out: Path) -> Path:
    """``training.png`` (see the module docstring)."""
    plt = _pyplot()
    tr = res["training"]
    its = tr["iterations"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax = axes[0]
    for name, color in (("input", "tab:blue"), ("recurrent", "tab:orange"), ("output", "tab:green")):
        if its.size:
            ax.plot(its, tr[name]["per_iteration"], color=color, lw=0.5, alpha=0.5)
            ax.plot(its, tr[name]["cumulative"], color=color, lw=1.5, label=f"{name}: accumulated")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel("cos(applied updates, −g*)")
    ax.set_title("updates vs exact gradient (thin: per iteration)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    s = tr["spectrum"]
    s = s[s > 1e-12 * s[0]] if s.size else s  # drop rounding-level values (silent neurons: zero rows)
    if s.size and s[0] > 0:
        ax.semilogy(
            np.arange(1, s.size + 1), s / s[0], ".-", label=f"Σ ΔW_rec (eff. rank {tr['effective_rank']:.1f})"
        )
    sg = tr["spectrum_grad"]
    sg = sg[sg > 1e-12 * sg[0]] if sg.size else sg
    if sg.size and sg[0] > 0:
        ax.semilogy(
            np.arange(1, sg.size + 1), sg / sg[0], ".-", color="0.5", label="−Σ g*_rec (analysed iterations)"
        )
    ax.set_xlabel("index")
    ax.set_ylabel("singular value / largest")
    ax.set_title("spectrum of the accumulated recurrent change", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out / "training.png")


def plot_analysis(res: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the four figures of the module docstring for an :func:`analyze_run` result; returns paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_gap_time(res, out),
        plot_neurons(res, out),
        plot_counterfactual(res, out),
        plot_training(res, out),
    ]
