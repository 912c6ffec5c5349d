"""Write data/nest_current.json: NEST 3.10's *current* e-prop models on its own examples, per iteration.

    python scripts/nest_current.py [--out data/nest_current.json] [--iterations 20] [--only NAME]
                                   [--debug DIR]

Needs NEST (``pip install '.[nest]'``); one NEST process, 1 thread, well under a minute per workload.
NEST 3.10's wheel ships one example of the current models that needs no downloaded data,
``eprop_supervised_regression_sine-waves.py`` (``eprop_iaf`` → ``eprop_readout``, ``eprop_synapse`` with
the ``weight_optimizer``); the N-MNIST example needs a download, and the evidence-accumulation,
lemniscate and handwriting examples exist only for the legacy ``_bsshslm_2020`` models.  Each workload
runs that example file from the wheel with ``do_plotting = False`` and a few lines changed (the
``WORKLOADS`` table; a changed line that is not found exactly once stops the script):

* ``sine``: the example itself at ``--iterations`` sequences of 1000 steps (gradient descent once per
  spike, ``optimize_each_step = False``, ISI trace cutoff 100 ms);
* ``test_adam`` / ``test_adapt``: the two settings of NEST's own test ``test_eprop_regression``
  (testsuite/pytests/synapses/test_eprop_plasticity.py: 5 sequences of 100 steps, surrogate width 0.03,
  ``optimize_each_step = True``; Adam with ``eprop_iaf``, gradient descent with ``eprop_iaf_adapt``),
  whose published losses are stored next to ours; ``test_adam_spike``: ``test_adam`` with Adam once per
  spike (``optimize_each_step = False``); ``test_exponential``, ``test_fast_sigmoid``, ``test_arctan``:
  ``test_adam`` with NEST's other three surrogate functions;
* ``evidence``: not an example of NEST's — NEST 3.10 has none for the current models — but the legacy
  evidence-accumulation example's task and network on them (:func:`run_evidence`; 50 ``eprop_iaf`` and 50
  ``eprop_iaf_adapt`` with t_ref 5 ms, 2 readouts with one-hot targets and a learning window, Adam per
  spike), 3 sequences of 2250 steps;
* ``adam_spike``, ``cutoff``, ``clip``: the example (``--iterations`` sequences) with Adam once per
  spike, with the ISI trace cutoff shortened to 10 ms, and with ``Wmin``/``Wmax`` = ∓0.005 pA (the weight
  optimizer clips every update), features the emulation must also reproduce.

For each workload the file holds NEST's loss ½ Σ_t (y_t − y*_t)² per sequence (as the example computes
it), the changed parameters and SHA-256 digests of what NEST was given (initial weights read back with
``GetConnections``, input spike times, target), so that tests/nest/current_emulation.py can show that it
regenerates the same workload from the seed.  ``--debug DIR`` also writes NEST's recordings (.npz).
tests/nest/test_current.py compares the emulation with this file; docs/validation.md explains it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from nest_example import example_path, nest_version, run_example  # noqa: E402

EXAMPLE = "eprop_supervised_regression_sine-waves.py"

_SEQ = '    "sequence": 1000,  # time steps of one full sequence'
_WIDTH = '    "surrogate_gradient_width": 1.0 / 33.3,  # width scaling of the pseudo-derivative'
_TYPE = '        "type": "gradient_descent",  # algorithm to optimize the weights'
_EACH = '        "optimize_each_step": False,  # call optimizer every time step (True) or once per spike (False); both'  # noqa: E501
_ADAPT = '    params_nrn_rec["adapt_beta"] = 0.0  # adaptation scaling'
_MODEL = 'model_nrn_rec = "eprop_iaf"'
_WMIN = '        "Wmin": -100.0,  # pA, minimal limit of the synaptic weights'
_WMAX = '        "Wmax": 100.0,  # pA, maximal limit of the synaptic weights'
_SURR = '    "surrogate_gradient_function": "piecewise_linear",  # surrogate gradient / pseudo-derivative function'  # noqa: E501
_CREATE = 'gen_spk_in = nest.Create("spike_generator", n_in)'
_SCALE = 'if model_nrn_rec == "eprop_iaf":'

#: sequences of 2250 steps of the evidence workload (the emulation takes about 4 s per sequence)
EVIDENCE_ITERATIONS = 3

#: The published losses of NEST 3.10's test_eprop_regression (copied as numbers from the test file).
PUBLISHED = {
    "test_adam": [0.14000491891386, 0.28735818029752, 0.22263713699860, 0.23015072431384, 0.17565248170694],
    "test_adapt": [0.02242584487453, 0.01916753791522, 0.00571493935652, 0.00037875376195, 0.00037823157578],
}

#: name → (number of iterations or None for --iterations, changed lines, parameters in words)
WORKLOADS: dict[str, tuple[int | None, dict[str, str], dict]] = {
    "sine": (None, {}, {}),
    "test_adam": (
        5,
        {
            _SEQ: '    "sequence": 100,',
            _WIDTH: '    "surrogate_gradient_width": 0.03,',
            _TYPE: '        "type": "adam",',
            _EACH: '        "optimize_each_step": True,',
        },
        {
            "steps_sequence": 100,
            "surrogate_gradient_width": 0.03,
            "optimizer": "adam",
            "optimize_each_step": True,
        },
    ),
    "test_adapt": (
        5,
        {
            _SEQ: '    "sequence": 100,',
            _WIDTH: '    "surrogate_gradient_width": 0.03,',
            _EACH: '        "optimize_each_step": True,',
            _MODEL: 'model_nrn_rec = "eprop_iaf_adapt"',
            _ADAPT: "    params_nrn_rec.update(adapt_beta=0.0174, adapt_tau=2000.0, adaptation=0.0)",
            _SCALE: 'if model_nrn_rec in ["eprop_iaf", "eprop_iaf_adapt"]:',  # as the test scales them
        },
        {
            "steps_sequence": 100,
            "surrogate_gradient_width": 0.03,
            "optimize_each_step": True,
            "neuron": "eprop_iaf_adapt",
            "adapt_beta": 0.0174,
            "adapt_tau_ms": 2000.0,
        },
    ),
    "test_adam_spike": (
        5,
        {
            _SEQ: '    "sequence": 100,',
            _WIDTH: '    "surrogate_gradient_width": 0.03,',
            _TYPE: '        "type": "adam",',
        },
        {
            "steps_sequence": 100,
            "surrogate_gradient_width": 0.03,
            "optimizer": "adam",
            "optimize_each_step": False,
        },
    ),
    **{
        f"test_{short}": (
            5,
            {
                _SEQ: '    "sequence": 100,',
                _WIDTH: '    "surrogate_gradient_width": 0.03,',
                _TYPE: '        "type": "adam",',
                _EACH: '        "optimize_each_step": True,',
                _SURR: f'    "surrogate_gradient_function": "{function}",',
            },
            {
                "steps_sequence": 100,
                "surrogate_gradient_width": 0.03,
                "optimizer": "adam",
                "optimize_each_step": True,
                "surrogate_gradient_function": function,
            },
        )
        for short, function in (
            ("exponential", "exponential"),
            ("fast_sigmoid", "fast_sigmoid_derivative"),
            ("arctan", "arctan_derivative"),
        )
    },
    "adam_spike": (
        None,
        {_TYPE: '        "type": "adam",'},
        {"optimizer": "adam", "optimize_each_step": False},
    ),
    "cutoff": (
        None,
        {_CREATE: "_cutoff(10.0)\n" + _CREATE},
        {"eprop_isi_trace_cutoff_ms": 10.0},
    ),
    "evidence": (EVIDENCE_ITERATIONS, {}, {}),
    "clip": (
        None,
        {_WMIN: '        "Wmin": -0.005,', _WMAX: '        "Wmax": 0.005,'},
        {
            "Wmin": -0.005,
            "Wmax": 0.005,
            "initial_weights": "scaled, then clipped to [Wmin, Wmax] (NEST requires it)",
        },
    ),
}

#: The example's own parameters, recorded in the file (each workload changes some, above).
BASE = {
    "example": f"pynest/examples/eprop_plasticity/{EXAMPLE}",
    "rng_seed": 1,
    "n_in": 100,
    "n_rec": 100,
    "n_out": 1,
    "steps_sequence": 1000,
    "resolution_ms": 1.0,
    "neuron": "eprop_iaf",
    "readout": "eprop_readout",
    "tau_m_ms": 30.0,
    "tau_m_readout_ms": 30.0,
    "V_th": 0.03,
    "t_ref_ms": 0.0,
    "c_reg": "300 / sequence duration (ms)",
    "f_target_hz": 10.0,
    "kappa": 0.97,
    "kappa_reg": 0.97,
    "surrogate_gradient": "piecewise_linear",
    "surrogate_gradient_height": 10.0,
    "surrogate_gradient_width": 1.0 / 33.3,
    "eprop_isi_trace_cutoff_ms": 100.0,
    "flush_event_send_interval_ms": "sequence duration",
    "optimizer": "gradient_descent",
    "eta": "1e-4 * (1 - kappa)^2",
    "batch_size": 1,
    "optimize_each_step": False,
    "Wmin": -100.0,
    "Wmax": 100.0,
    "adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "weights": "W_in, W_rec, B scaled by 1 - kappa; W_out by 1 - kappa (float32 draws)",
    "input_spike_prob": 0.05,
    "periods_steps": [1000, 500, 333, 200],
    "loss": "0.5 * sum_t (y_t - y*_t)^2 per sequence",
}


def digest(a: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of an array as contiguous float64."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes()).hexdigest()[:16]


def _dense(conns: dict, n_post: int, n_pre: int) -> np.ndarray:
    """The example's ``get_weights`` record as a dense post × pre float64 matrix."""
    w = np.zeros((n_post, n_pre))
    w[np.asarray(conns["targets"]), np.asarray(conns["senders"])] = conns["weight"]
    return w


def run_evidence(n_iter: int, debug: dict | None = None, **change) -> dict:
    """The ``evidence`` workload in NEST: the legacy example's task and network on the current models.

    Built here (NEST 3.10 has no such example for the current models), with the values of
    tests/nest/current_emulation.py's ``settings_for("evidence")`` and its draws (``evidence_workload``):
    50 ``eprop_iaf`` + 50 ``eprop_iaf_adapt`` (τ_m 20 ms, V_th 0.6, t_ref 5 ms, τ_a 2 s), 2
    ``eprop_readout`` with one-hot targets and a learning window over the 150 recall steps (mean-squared
    error, as NEST's current N-MNIST example classifies), Adam once per spike (η 5e-3, ε 1e-8).
    """
    import nest

    from tests.nest.current_emulation import EVIDENCE, digests, evidence_workload, settings_for

    s = replace(settings_for("evidence", n_iter), **change)  # change: only to debug
    w = evidence_workload(s)
    seq, n_out = s.steps_sequence, w.w_out.shape[0]
    n_task = n_iter * seq
    nest.ResetKernel()
    nest.set(resolution=1.0, total_num_virtual_procs=1, print_time=False)
    common = {
        "C_m": 1.0,
        "c_reg": s.c_reg,
        "E_L": 0.0,
        "eprop_isi_trace_cutoff": float(s.cutoff),
        "f_target": s.f_target,
        "flush_event_send_interval": float(seq),
        "I_e": 0.0,
        "kappa": s.kappa,
        "kappa_reg": s.kappa_reg,
        "surrogate_gradient_function": "piecewise_linear",
        "surrogate_gradient_height": s.height,
        "surrogate_gradient_width": s.width,
        "t_ref": s.t_ref,
        "tau_m": s.tau_m,
        "V_m": 0.0,
        "V_th": s.v_th,
    }
    adaptive = dict(common, adapt_beta=s.adapt_beta, adapt_tau=s.adapt_tau, adaptation=0.0)
    out_params = {"C_m": 1.0, "E_L": 0.0, "eprop_isi_trace_cutoff": float(s.cutoff), "I_e": 0.0}
    out_params.update({"tau_m": s.tau_m_out, "V_m": 0.0})
    gen_in = nest.Create("spike_generator", EVIDENCE["n_in"])
    nrns_in = nest.Create("parrot_neuron", EVIDENCE["n_in"])
    nrns_rec = nest.Create("eprop_iaf", EVIDENCE["n_reg"], common) + nest.Create(
        "eprop_iaf_adapt", EVIDENCE["n_ad"], adaptive
    )
    nrns_out = nest.Create("eprop_readout", n_out, out_params)
    gen_target = nest.Create("step_rate_generator", n_out)
    gen_window = nest.Create("step_rate_generator")
    mm_out = nest.Create(
        "multimeter",
        {
            "interval": 1.0,
            "record_from": ["readout_signal", "target_signal"],
            "start": 2.0,
            "stop": 2.0 + n_task,
        },
    )
    optimizer = {"type": s.optimizer, "batch_size": 1, "eta": s.eta, "beta_1": s.beta_1, "beta_2": s.beta_2}
    optimizer.update({"epsilon": s.epsilon, "optimize_each_step": False, "Wmin": s.w_min, "Wmax": s.w_max})
    nest.SetDefaults("eprop_synapse", {"optimizer": optimizer})
    syn = {"synapse_model": "eprop_synapse", "delay": 1.0}
    all_to_all = {"rule": "all_to_all", "allow_autapses": False}
    one_to_one = {"rule": "one_to_one"}
    nest.Connect(gen_in, nrns_in, one_to_one, {"synapse_model": "static_synapse", "delay": 1.0})
    nest.Connect(nrns_in, nrns_rec, all_to_all, dict(syn, weight=w.w_in.astype(np.float32)))
    nest.Connect(nrns_rec, nrns_rec, all_to_all, dict(syn, weight=w.w_rec.astype(np.float32)))
    nest.Connect(nrns_rec, nrns_out, all_to_all, dict(syn, weight=w.w_out.astype(np.float32)))
    feedback = {"synapse_model": "eprop_learning_signal_connection", "delay": 1.0, "weight": w.b}
    nest.Connect(nrns_out, nrns_rec, all_to_all, feedback)
    rate = {"synapse_model": "rate_connection_delayed", "delay": 1.0}
    nest.Connect(gen_target, nrns_out, one_to_one, dict(rate, receptor_type=2))
    nest.Connect(gen_window, nrns_out, "all_to_all", dict(rate, receptor_type=1))
    nest.Connect(mm_out, nrns_out, "all_to_all", {"synapse_model": "static_synapse", "delay": 1.0})
    gen_in.set([{"spike_times": t} for t in w.spike_times])
    times = np.arange(0.0, float(n_task), 1.0) + 2.0
    gen_target.set(
        [{"amplitude_times": times, "amplitude_values": w.target_steps[:, k]} for k in range(n_out)]
    )
    gen_window.set({"amplitude_times": times, "amplitude_values": w.window_steps})
    back = {
        "w_in": _dense(_conns(nrns_in, nrns_rec), len(nrns_rec), len(nrns_in)),
        "w_rec": _dense(_conns(nrns_rec, nrns_rec), len(nrns_rec), len(nrns_rec)),
        "w_out": _dense(_conns(nrns_rec, nrns_out), n_out, len(nrns_rec)),
        "b": _dense(_conns(nrns_out, nrns_rec), len(nrns_rec), n_out),
    }
    sr = nest.Create("spike_recorder")
    nest.Connect(nrns_rec, sr)
    nest.Simulate(n_task + 5.0)
    ev = mm_out.get("events")
    if debug is not None:
        debug.update(out=ev, spikes=sr.get("events"), rec0=nrns_rec[0].global_id)
    senders = np.asarray(ev["senders"])
    y = np.array([np.asarray(ev["readout_signal"])[senders == i] for i in np.unique(senders)])
    tgt = np.array([np.asarray(ev["target_signal"])[senders == i] for i in np.unique(senders)])
    y, tgt = y.reshape(n_out, n_iter, 1, seq), tgt.reshape(n_out, n_iter, 1, seq)
    loss = 0.5 * np.mean(np.sum((y - tgt) ** 2, axis=3), axis=(0, 2))
    given = digests(w, s)
    given.update(
        {
            "input": digest(back["w_in"]),
            "recurrent": digest(back["w_rec"]),
            "output": digest(back["w_out"]),
            "feedback": digest(back["b"]),
        }
    )
    return {
        "iterations": n_iter,
        "changed": {
            "built": "by scripts/nest_current.py (run_evidence): the legacy evidence-accumulation example's "
            "task and network on the current models; values in tests/nest/current_emulation.py settings_for",
            "steps_sequence": seq,
            "neurons": "50 eprop_iaf + 50 eprop_iaf_adapt, 2 eprop_readout, 40 inputs",
            "optimizer": "adam",
            "eta": s.eta,
            "epsilon": s.epsilon,
            "loss": "0.5 * mean over readouts of sum over the recall window of (y - y*)^2",
        },
        "loss": [float(x) for x in loss],
        "digests": given,
    }


def _conns(pre, post) -> dict:
    """GetConnections as the example's ``get_weights`` record (senders/targets from 0)."""
    import nest

    c = nest.GetConnections(pre, post).get(["source", "target", "weight"])
    return {
        "senders": np.asarray(c["source"]) - pre[0].global_id,
        "targets": np.asarray(c["target"]) - post[0].global_id,
        "weight": c["weight"],
    }


def run(name: str, iterations: int, debug: Path | None = None) -> dict:
    """Run one workload of ``WORKLOADS`` in this process; its entry of the JSON file."""
    import nest

    if name == "evidence":
        return run_evidence(EVIDENCE_ITERATIONS)

    path = example_path(EXAMPLE)
    if path is None:
        sys.exit(f"nest_current: NEST's {EXAMPLE} not found (pip install '.[nest]')")
    n_fixed, lines, changed = WORKLOADS[name]
    n_iter = n_fixed or iterations
    ns: dict = {}

    def _cutoff(ms: float) -> None:
        ns["params_nrn_rec"]["eprop_isi_trace_cutoff"] = ms
        ns["params_nrn_out"]["eprop_isi_trace_cutoff"] = ms

    ns["_cutoff"] = _cutoff
    if name == "clip":
        lines = dict(lines)
        lines["params_common_syn_eprop = {"] = (
            "weights_in_rec, weights_rec_rec, weights_rec_out = (\n"
            "    np.clip(w, -0.005, 0.005) for w in (weights_in_rec, weights_rec_rec, weights_rec_out)\n"
            ")\n"
            "params_common_syn_eprop = {"
        )
        # eprop_synapse's default weight (1 pA) must lie in [Wmin, Wmax] too
        lines['nest.SetDefaults("eprop_synapse", params_common_syn_eprop)'] = (
            'nest.SetDefaults("eprop_synapse", {"weight": 0.0})\n'
            'nest.SetDefaults("eprop_synapse", params_common_syn_eprop)'
        )
    ns = run_example(path, {"n_iter": n_iter, "do_plotting": False}, ns, lines=lines)
    assert nest.GetKernelStatus("total_num_virtual_procs") == 1
    n_in, n_rec, n_out = ns["n_in"], ns["n_rec"], ns["n_out"]
    pre = ns["weights_pre_train"]
    w_in = _dense(pre["in_rec"], n_rec, n_in)
    w_rec = _dense(pre["rec_rec"], n_rec, n_rec)
    w_out = _dense(pre["rec_out"], n_out, n_rec)
    fb = nest.GetConnections(ns["nrns_out"], ns["nrns_rec"]).get(["source", "target", "weight"])
    b = np.zeros((n_rec, n_out))
    b[
        np.asarray(fb["target"]) - ns["nrns_rec"][0].global_id,
        np.asarray(fb["source"]) - ns["nrns_out"][0].global_id,
    ] = fb["weight"]
    spike_times = [np.asarray(p["spike_times"], dtype=np.float64) for p in ns["params_gen_spk_in"]]
    first = np.concatenate([t[t < ns["duration"]["sequence"] + 1] for t in spike_times])
    out = {
        "iterations": n_iter,
        "changed": changed,
        "loss": [float(x) for x in np.asarray(ns["loss"], dtype=float)],
        "digests": {
            "input": digest(w_in),
            "recurrent": digest(w_rec),
            "output": digest(w_out),
            "feedback": digest(b),
            "spike_times_first_sequence": digest(np.sort(first)),
            "target": digest(
                np.asarray(ns["params_gen_rate_target"]["amplitude_values"][: ns["steps"]["sequence"]])
            ),
        },
    }
    if name in PUBLISHED:
        out["loss_published"] = PUBLISHED[name]
    if debug is not None:
        debug.mkdir(parents=True, exist_ok=True)
        mm_out, mm_rec = ns["events_mm_out"], ns["events_mm_rec"]
        np.savez(
            debug / f"{name}.npz",
            w_in=w_in,
            w_rec=w_rec,
            w_out=w_out,
            b=b,
            out_times=mm_out["times"],
            out_v=mm_out["V_m"],
            out_y=mm_out["readout_signal"],
            out_target=mm_out["target_signal"],
            out_err=mm_out["error_signal"],
            rec_times=mm_rec["times"],
            rec_v=mm_rec["V_m"],
            rec_psi=mm_rec["surrogate_gradient"],
            rec_L=mm_rec["learning_signal"],
            rec_senders=mm_rec["senders"],
            sr_rec_times=ns["events_sr_rec"]["times"],
            sr_rec_senders=ns["events_sr_rec"]["senders"] - ns["nrns_rec"][0].global_id,
            sr_in_times=ns["events_sr_in"]["times"],
            sr_in_senders=ns["events_sr_in"]["senders"] - ns["nrns_in"][0].global_id,
            loss=np.asarray(ns["loss"], dtype=float),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "data" / "nest_current.json"))
    ap.add_argument("--iterations", type=int, default=20, help="sequences of the example workloads (20)")
    ap.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="run only this workload")
    ap.add_argument("--debug", type=Path, default=None, help="also write NEST's recordings here (.npz)")
    args = ap.parse_args(argv)
    names = args.only or list(WORKLOADS)
    data = {
        "about": (
            "NEST's current e-prop models (eprop_iaf, eprop_iaf_adapt, eprop_readout, eprop_synapse with "
            "the weight_optimizer) on its sine-wave example and its test_eprop_regression, written by "
            "scripts/nest_current.py; tests/nest/test_current.py reproduces the losses with the NumPy "
            "emulation tests/nest/current_emulation.py (docs/validation.md)."
        ),
        "nest_version": nest_version(),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "parameters": BASE,
        "workloads": {},
    }
    for name in names:
        data["workloads"][name] = run(name, args.iterations, args.debug)
        print(name, data["workloads"][name]["loss"][:5], flush=True)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
