"""Rules and a neuron model from another package: examples/plugin_rule registers ``eprop-sign`` and
``superspike-alpha`` (a rule with its own trace — per-synapse and postsynaptic state — and its own learning
signal; entry point ``neuroplast.rules``) and ``resonate`` (``neuroplast.neurons``), and neuroplast trains,
logs and compares with them (needs ``pip install ./examples/plugin_rule``, as the README's test command does).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from neuroplast.io import open_run
from tests.helpers import ROOT, SINE, run_cli


@pytest.mark.brian2
@pytest.mark.e2e
def test_plugin_rule_through_entry_point(tmp_path):
    """The example package (examples/plugin_rule) registers `eprop-sign` via the entry point."""
    out = tmp_path / "sign.h5"
    r = run_cli(
        "run",
        str(SINE),
        "--rule",
        "eprop-sign",
        "--iterations",
        "2",
        "--out",
        str(out),
        "--quiet",
        cwd=tmp_path,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    run = open_run(out)
    assert "eprop-sign" in run.projection("recurrent").estimators
    w_out = run.projection("output").weights[0]
    fb = run.projection("feedback").weights[0]
    expected = np.mean(np.abs(w_out)) * np.sign(w_out)
    np.testing.assert_allclose(fb, expected, rtol=1e-15, atol=0)


PLUGIN_MODEL = ROOT / "examples" / "plugin_rule" / "resonate.toml"


def _resonate(tmp_path, device: str, **changes) -> Path:
    text = PLUGIN_MODEL.read_text(encoding="utf-8").replace('device = "auto"', f'device = "{device}"')
    for key, value in changes.items():
        text = text.replace(f"{key} = ", f"{key} = {value}  # ", 1)
    path = tmp_path / f"resonate_{device}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plugin_neuron_model_trains_logs_and_compares(tmp_path):
    """The example package's neuron model (``resonate``, entry point ``neuroplast.neurons``) with its own
    config keys, trained by the package's rule, logged, compared with exact BPTT and RTRL and analysed
    (``neuroplast analyze``) — no file under neuroplast/ names either (NumPy device: the default suite)."""
    from neuroplast.analysis.compare import compare_run
    from neuroplast.config import load_config, to_toml
    from neuroplast.model.neurons import NEURONS
    from neuroplast.training.runner import run_training

    assert "resonate" in NEURONS
    for path in (ROOT / "neuroplast").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not any(name in text for name in ("resonate", "eprop-sign", "superspike-alpha")), path
    cfg = load_config(_resonate(tmp_path, "numpy", iterations=3))
    assert dict(cfg.network.model_keys) == {"tau_res_ms": 30.0, "res_theta": 0.3}
    assert "res_theta = 0.3" in to_toml(cfg)
    out = run_training(cfg, tmp_path / "res.h5", progress=False)
    res = compare_run(out, progress=False, rtrl=True)
    for proj in ("input", "recurrent"):
        m = res["projections"][proj]
        assert np.all(m["rtrl"]["rel_error"]["per_trial"] < 1e-12)  # the two factorizations agree
        assert np.all(m["eprop-sign"]["rel_error"]["per_trial"] > 1e-2)  # the rule is not BPTT
    assert tomllib.loads(open_run(out).config_toml)["network"]["res_theta"] == 0.3
    # the other readers of a run take the plugin model too: the comparator's self-test and the figures
    from neuroplast.analysis.compare import self_test
    from neuroplast.analysis.plots import FIGURES, plot_run

    report = self_test(out)
    assert report["ok"] and len(report["checks"]) == 3 * len(report["trials"])
    figures = plot_run(out, out_dir=tmp_path / "plots")
    assert sorted(p.name for p in figures["written"]) == sorted(FIGURES), figures["notes"]
    # and `neuroplast analyze`: the model's derived factors (k = T is BPTT; k = 0 is symmetric e-prop,
    # not the package's rule, which feeds back sign(W_out))
    from neuroplast.analysis.analyze_plots import ANALYZE_FIGURES
    from neuroplast.cli import main

    ana = tmp_path / "analyze"
    assert main(["analyze", str(out), "--out", str(ana), "--quiet", "--k", "0,1,4,T"]) == 0
    data = json.loads((ana / "analysis.json").read_text(encoding="utf-8"))
    assert data["neurons"]["model"] == "resonate" and set(data["neurons"]["kind"]) == {"resonate"}
    cos = data["counterfactual"]["truncated"]["hidden"]["cosine_mean"]
    assert all(np.isfinite(cos)) and abs(cos[-1] - 1.0) < 1e-10 and abs(cos[1] - 1.0) > 1e-9
    assert sorted(p.name for p in ana.iterdir()) == sorted([*ANALYZE_FIGURES, "analysis.json"])


def test_plugin_model_keys_belong_to_their_model(tmp_path):
    """A plugin model's key is refused for another model, one line naming it."""
    path = _resonate(tmp_path, "numpy")
    path.write_text(path.read_text(encoding="utf-8").replace('neuron = "resonate"', 'neuron = "lif_syn"'))
    r = run_cli("run", str(path), "--out", str(tmp_path / "x.h5"), cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and not (tmp_path / "x.h5").exists()
    assert r.stderr.strip().count("\n") == 0 and "network.tau_res_ms: unknown key" in r.stderr


@pytest.mark.brian2
@pytest.mark.e2e
def test_plugin_neuron_model_runs_in_brian2(tmp_path):
    """The plugin model on Brian2 (statements generated from its equations) trains the run of the NumPy
    reference: the same spikes, the same losses to rounding."""
    logs = {}
    for device in ("runtime", "numpy"):
        out = tmp_path / f"{device}.h5"
        r = run_cli(
            "run",
            str(_resonate(tmp_path, device, iterations=2)),
            "--out",
            str(out),
            "--quiet",
            cwd=tmp_path,
            timeout=900,
        )
        assert r.returncode == 0, r.stderr
        logs[device] = open_run(out)
    a, b = logs["runtime"], logs["numpy"]
    assert np.array_equal(a.spikes("recurrent")[1], b.spikes("recurrent")[1])
    np.testing.assert_allclose(a.trials["loss"], b.trials["loss"], rtol=1e-11, atol=0)


LIF_SYN = ROOT / "models" / "lif_syn.toml"


def _lif_syn(tmp_path, device: str, iterations: int) -> Path:
    text = LIF_SYN.read_text(encoding="utf-8").replace('device = "auto"', f'device = "{device}"')
    text = text.replace("iterations = ", f"iterations = {iterations}  # ", 1)
    path = tmp_path / f"lif_syn_{device}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plugin_rule_with_its_own_trace_and_signal(tmp_path):
    """``superspike-alpha`` (per-synapse α-filtered eligibility, α-filtered learning signal: state the rule
    declares per synapse and per postsynaptic neuron) trains lif_syn, is logged under its name, compared
    with exact BPTT — a gradient of its own, neither BPTT nor e-prop's — and analysed on its own
    eligibility and signal (NumPy device: the default suite)."""
    from neuroplast.analysis.compare import compare_run
    from neuroplast.config import load_config
    from neuroplast.training.runner import run_training

    cfg = load_config(_lif_syn(tmp_path, "numpy", 3))
    out = run_training(cfg, tmp_path / "ssa.h5", progress=False, rule="superspike-alpha")
    run = open_run(out)
    assert "superspike-alpha" in run.projection("recurrent").estimators
    assert np.all(np.isfinite(run.trials["loss"]))
    res = compare_run(out, progress=False)
    for proj in ("input", "recurrent"):
        m = res["projections"][proj]
        assert np.all(m["superspike-alpha"]["rel_error"]["per_trial"] > 1e-2)  # not BPTT
        assert np.all(m["superspike-alpha"]["cosine"]["per_trial"] > 0.0)  # but a descent direction
    # analyze measures it on its own eligibility and its own signal: the logged gradient is reproduced
    # (Σ_t L^rule_t ē_t, same sums in another order: ≤ 1e-9 is analyze's tolerance, measured ≈ 2e-15), and
    # e-prop's eligibility with that signal would not be (the check can disagree)
    from neuroplast.cli import main

    ana = tmp_path / "analyze"
    assert main(["analyze", str(out), "--out", str(ana), "--quiet"]) == 0
    data = json.loads((ana / "analysis.json").read_text(encoding="utf-8"))
    check = data["logged_check"]
    assert data["own_eligibility"] and check["ok"] and check["max"] < 1e-12
    assert check["eprop_eligibility_min"] > 1e-3
    assert any("its learning signal is its own" in note for note in data["notes"])


@pytest.mark.brian2
@pytest.mark.e2e
def test_plugin_rule_with_its_own_trace_runs_in_brian2(tmp_path):
    """``superspike-alpha`` on cpp_standalone (its trace generated into the network: the postsynaptic
    filter in its own slot, the synapse filters in the sweep) trains the NumPy reference's run: the same
    spikes, the same losses to rounding over 3 Adam steps (measured ≤ 3e-16)."""
    logs = {}
    for device in ("cpp_standalone", "numpy"):
        out = tmp_path / f"{device}.h5"
        r = run_cli(
            "run", str(_lif_syn(tmp_path, device, 3)), "--rule", "superspike-alpha", "--out", str(out),
            "--quiet", cwd=tmp_path, timeout=900,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        logs[device] = open_run(out)
    a, b = logs["cpp_standalone"], logs["numpy"]
    assert np.array_equal(a.spikes("recurrent")[1], b.spikes("recurrent")[1])
    np.testing.assert_allclose(a.trials["loss"], b.trials["loss"], rtol=1e-11, atol=0)
