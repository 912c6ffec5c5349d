"""Text and JSON views of an :func:`neuroplast.analysis.analyze.analyze_run` result."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["neuron_groups", "plain", "summary_lines"]


def neuron_groups(neurons: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """The neurons of an analysis grouped by kind (``neurons["kind"]``, from the run's neuron model:
    ``LIF``/``ALIF`` for ``alif``): ``(kind, boolean selection (N,))``, non-adapting kinds first, then in
    order of the first neuron of each kind."""
    kinds = np.asarray(neurons["kind"]).astype(str)
    adaptive = np.asarray(neurons.get("adaptive", np.zeros(kinds.shape, dtype=bool)), dtype=bool)
    order: list[str] = []
    for flag in (False, True):
        for k in kinds[adaptive == flag]:
            if k not in order:
                order.append(str(k))
    return [(k, kinds == k) for k in order]


def plain(o: Any) -> Any:
    """JSON-ready copy: arrays to lists, NaN/inf to None, tuples to lists, NumPy scalars to Python."""
    if isinstance(o, dict):
        return {str(k): plain(v) for k, v in o.items()}
    if isinstance(o, np.ndarray):
        return plain(o.tolist())
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    if isinstance(o, np.generic):
        return plain(o.item())
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def _f(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def _logged_lines(check: dict[str, Any] | None) -> list[str]:
    """Line 0 of the summary: the rule's gradient as analyze computes it against the logged one."""
    if not check or not np.asarray(check["rule"]).size:
        return ["0. logged gradient: the log holds none of the rule's (nothing to check)"]
    verdict = "reproduced" if check["ok"] else f"DIFFERS (tolerance {check['tolerance']:.0e})"
    line = (
        f"0. logged gradient {check['estimator']!r} (input, recurrent) {verdict}: max |g_rule - logged| / "
        f"|logged| = {_f(check['max'])} over {np.asarray(check['rule']).size} trials"
    )
    if check.get("eprop_eligibility") is not None:
        line += f"; with e-prop's eligibility instead: min {_f(check['eprop_eligibility_min'])}"
    return [line]


def summary_lines(res: dict[str, Any]) -> list[str]:
    """The human summary that ``neuroplast analyze`` prints (one item per line)."""
    h = res["time"]["hidden"]
    cf = res["counterfactual"]
    n = res["neurons"]
    tr = res["training"]
    ref = res.get("reference", "bptt")
    elig = res.get("eligibility", "e-prop's")
    own = bool(res.get("own_eligibility", False))
    lines = [
        f"{res['file']}: rule {res['rule']}, {len(res['trials'])} trials analysed, T = {res['T']} steps; "
        f"eligibility: {elig}; exact gradient g*: {ref}",
    ]
    lines += [f"   note: {note}" for note in res.get("notes", [])]
    lines += _logged_lines(res.get("logged_check"))
    gap_of = "sum_t L*_t e_t - g_rule on the rule's eligibility" if own else "g* - g_rule"
    lines.append(
        f"1. gap {gap_of} (hidden weights): |gap| / |{'sum_t L*_t e_t' if own else 'g*'}| = "
        f"{_f(h['gap_over_exact'])} (mean over trials); share of the gap per window (steps):"
    )
    for lab, frac in h["window_fraction"].items():
        lines.append(f"     {lab:<16} {frac:7.3f}  ({h['window_steps'][lab]} steps)")
    for lab, sel in neuron_groups(n):
        if np.any(sel):
            c, ct = n["cosine"][sel], n["cosine_trial_mean"][sel]
            lines.append(
                f"2. {lab} neurons ({int(sel.sum())}): eligibility-weighted cos(L_rule, L*) pooled: median "
                f"{_f(float(np.nanmedian(c)))}; per trial: median {_f(float(np.nanmedian(ct)))}, "
                f"mean {_f(float(np.nanmean(ct)))}; "
                f"rate {_f(float(np.mean(n['rate_hz'][sel])))} Hz"
            )
    ks = ["T" if b else str(k) for k, b in zip(cf["ks"], cf["k_is_bptt"], strict=True)]
    cos = cf["truncated"]["hidden"]["cosine_mean"]
    lines.append(
        f"3. cosine with {ref} (hidden, mean over trials) of the signal truncated to k hops through W_rec"
        + (" on the rule's eligibility:" if own else ":")
    )
    lines.append("     " + "  ".join(f"k={k}: {_f(c)}" for k, c in zip(ks, cos, strict=True)))
    lines.append(
        f"   least-squares fixed feedback B*: cosine {_f(cf['bstar_cosine_mean'])} (signal fit R^2 "
        f"{_f(cf['bstar_fit_r2'])}); with every trial weighted by 1/|L*|^2: "
        f"{_f(cf['bstar_relative_cosine_mean'])}; "
        f"logged rule {_f(float(np.nanmean(cf['rule']['hidden']['cosine'])))}; "
        f"random B {_f(float(np.nanmean(cf['random']['hidden']['cosine'])))}"
    )
    if tr["iterations"].size:
        lines.append(
            "4. cos(accumulated updates, -accumulated g*) after the last analysed iteration: "
            + ", ".join(
                f"{p} {_f(tr[p]['cumulative'][-1])}" for p in ("input", "recurrent", "output", "bias")
            )
        )
    s = tr["spectrum"]
    if s.size:
        top = ", ".join(_f(v) for v in s[:5])
        lines.append(
            f"   singular values of sum dW_rec: {top}, ... (effective rank {_f(tr['effective_rank'])})"
        )
    return lines
