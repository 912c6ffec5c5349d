"""Write data/nest_reference.h5: NEST 3.10 running its own e-prop examples, per iteration.

    python scripts/make_nest_reference.py [--out data/nest_reference.h5] [--updates 8] [--iterations 200]

Needs NEST (``pip install '.[nest]'``); one NEST process, 1 thread, about a minute.  It runs
``eprop_supervised_regression_sine-waves_bsshslm_2020.py`` from the wheel unchanged except for
``n_iter``, ``do_plotting = False`` and its one ``nest.Simulate`` call, which runs in pieces that stop
after each of the first ``--updates`` + 1 sequences to read every weight with ``GetConnections``
(NEST 3.10's ``weight_recorder`` gives one target and weight for all of a neuron's e-prop synapses, so
it cannot be used), and stores, float64:

* ``sine/loss`` (iterations,): NEST's per-iteration loss ½ Σ_t (y_t − y*_t)², as the example computes it;
* ``sine/input`` (T, n_in) uint8, ``sine/target`` (T,): the frozen input spikes (row t − 1 is step t) and
  the target, as the example generated them;
* ``sine/initial/{input,recurrent,output,feedback}``: the initial W_in (N × n_in), W_rec (N × N),
  W_out (n_out × N) and B (N × n_out), dense, post × pre;
* ``sine/updates/{input,recurrent,output}`` (updates, …): every weight after update k = 1 …
  ``--updates``, read at the end of sequence k + 1 (NEST applies update k at the synapse's first
  presynaptic spike in sequence k + 1); NaN for a synapse whose presynaptic neuron was silent in it
  (its update waits for its next spike);
* ``sine/final/{input,recurrent,output}``: the weights after the last update (the example's forced
  final update).

It also runs NEST's own test ``test_eprop_classification`` (testsuite/pytests/synapses/
test_eprop_bsshslm_2020_plasticity.py, evidence accumulation, batch 1, 5 iterations; the test's last
check is turned into a copy of its variables) and stores ``evidence/loss`` (5,), ``evidence/input``
(5 · 2250, 40) uint8 (the input spikes of the five sequences in a row) and ``evidence/labels`` (5,).

The root attributes give the NEST, NumPy and Python versions and the example's file name and
parameters.  tests/nest/ compare neuroplast with this file without NEST; docs/validation.md explains it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from nest_example import example_path, nest_version, patched_source, run_example  # noqa: E402

SINE = "eprop_supervised_regression_sine-waves_bsshslm_2020.py"
SEQUENCE = 1000  # steps of one sequence in the sine example
#: Sequence k (0-based) of the sine example: its input spikes reach the recurrent neurons in
#: (1000 k + OFFSET, 1000 (k + 1) + OFFSET] ms (the parrots relay step s at 1000 k + 2 + s ms; step 0 has no
#: spike); recurrent spikes of sequence k lie in the same window.
OFFSET = 2.0


def _dense(pop_pre, pop_post) -> np.ndarray:
    """GetConnections weights of pop_pre → pop_post as a dense post × pre matrix."""
    import nest

    c = nest.GetConnections(pop_pre, pop_post).get(["source", "target", "weight"])
    out = np.zeros((len(pop_post), len(pop_pre)))
    out[np.asarray(c["target"]) - pop_post[0].global_id, np.asarray(c["source"]) - pop_pre[0].global_id] = c[
        "weight"
    ]
    return out


def _chunked_simulate(ns: dict, n_updates: int, store: dict):
    """``nest.Simulate`` that stops after sequences 1 … n_updates to read every weight.

    After sequence k every synapse whose presynaptic neuron spiked in it has received update k (NEST
    applies an update at the synapse's first presynaptic spike after it); the others (silent neuron) are
    NaN.  Then the rest of the simulation runs as one piece.
    """
    import nest

    def simulate(total: float) -> None:
        done = 0.0
        rows = {"input": [], "recurrent": [], "output": []}
        for k in range(1, n_updates + 1):
            until = SEQUENCE * (k + 1) + OFFSET
            nest.Simulate(until - done)
            done = until
            ev = ns["sr_rec"].get("events")
            t, who = np.asarray(ev["times"]), np.asarray(ev["senders"]) - ns["nrns_rec"][0].global_id
            lo = SEQUENCE * k + OFFSET
            rec_active = np.zeros(len(ns["nrns_rec"]), dtype=bool)
            rec_active[who[(t > lo) & (t <= until)]] = True
            in_active = np.asarray(ns["input_spike_bools"]).any(axis=1)  # frozen: every sequence alike
            pairs = (
                ("input", "nrns_in", "nrns_rec", in_active),
                ("recurrent", "nrns_rec", "nrns_rec", rec_active),
            )
            for name, pre, post, active in (*pairs, ("output", "nrns_rec", "nrns_out", rec_active)):
                w = _dense(ns[pre], ns[post])
                w[:, ~active] = np.nan
                rows[name].append(w)
        nest.Simulate(total - done)
        store.update({f"updates/{k}": np.array(v) for k, v in rows.items()})

    return simulate


def sine(n_iter: int, n_updates: int) -> tuple[dict, dict]:
    """Run NEST's sine-wave example; (datasets, parameters)."""
    path = example_path(SINE)
    if path is None:
        sys.exit(f"make_nest_reference: NEST's {SINE} not found (pip install '.[nest]')")
    values = {"n_iter": n_iter, "do_plotting": False}
    ns: dict = {}
    store: dict = {}
    ns["_simulate"] = _chunked_simulate(ns, n_updates, store)
    ns = run_example(path, values, ns, lines={'nest.Simulate(duration["sim"])': '_simulate(duration["sim"])'})
    pre, post = ns["weights_pre_train"], ns["weights_post_train"]
    data = {
        "loss": np.asarray(ns["loss"], dtype=float),
        "input": np.asarray(ns["input_spike_bools"], dtype=np.uint8).T.copy(),
        "target": np.asarray(ns["target_signal"], dtype=float)[0, 0, 0].copy(),
        "initial/input": pre["in_rec"]["weight_matrix"],
        "initial/recurrent": pre["rec_rec"]["weight_matrix"],
        "initial/output": pre["rec_out"]["weight_matrix"],
        "initial/feedback": np.asarray(ns["weights_out_rec"], dtype=float),
        **store,
        "final/input": post["in_rec"]["weight_matrix"],
        "final/recurrent": post["rec_rec"]["weight_matrix"],
        "final/output": post["rec_out"]["weight_matrix"],
    }
    params = {
        "example": SINE,
        "changed": json.dumps(values),
        "rng_seed": int(ns["rng_seed"]),
        "n_in": int(ns["n_in"]),
        "n_rec": int(ns["n_rec"]),
        "n_out": int(ns["n_out"]),
        "eta": float(ns["params_common_syn_eprop"]["optimizer"]["eta"]),
        "c_reg": float(ns["params_nrn_rec"]["c_reg"]),
        "f_target_hz": float(ns["params_nrn_rec"]["f_target"]),
        "tau_m_ms": float(ns["params_nrn_rec"]["tau_m"]),
        "tau_m_readout_ms": float(ns["params_nrn_out"]["tau_m"]),
        "V_th": float(ns["params_nrn_rec"]["V_th"]),
        "t_ref_ms": float(ns["params_nrn_rec"]["t_ref"]),
    }
    return data, params


NEST_TEST = "test_eprop_bsshslm_2020_plasticity.py"
#: NEST's published batch-1 losses of test_eprop_classification (its last assert needs them).
EVIDENCE_LOSSES = [0.741152550006, 0.740388187700, 0.665785233177, 0.663644193322, 0.729428962844]


def evidence() -> tuple[dict, dict]:
    """Run NEST's test_eprop_classification (batch 1); (datasets, parameters)."""
    import importlib.util

    test = Path(importlib.util.find_spec("nest").origin).parent
    test = test / "share" / "nest" / "testsuite" / "pytests" / "synapses" / NEST_TEST
    store: dict = {}
    ns = {"__name__": "nest_test", "_store": store}
    src = patched_source(
        test, {}, lines={"    if batch_size == 1:": "    _store.update(locals())\n    if False:"}
    )
    exec(compile(src, str(test), "exec"), ns)
    ns["test_eprop_classification"](1, EVIDENCE_LOSSES)
    data = {
        "loss": np.asarray(store["loss"], dtype=float),
        "input": np.asarray(store["input_spike_bools_arr"], dtype=np.uint8),
        "labels": np.asarray(store["target_cues_list"], dtype=np.int64),
    }
    return data, {"test": f"{NEST_TEST}::test_eprop_classification", "batch_size": 1, "n_iter": 5}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "data" / "nest_reference.h5"))
    ap.add_argument("--updates", type=int, default=8, help="updates whose weights are stored (sine)")
    ap.add_argument("--iterations", type=int, default=200, help="sine iterations whose losses are stored")
    args = ap.parse_args(argv)
    data, params = sine(args.iterations, args.updates)
    ev_data, ev_params = evidence()
    tmp = Path(args.out + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(
            {
                "nest_version": nest_version(),
                "numpy_version": np.__version__,
                "python_version": platform.python_version(),
                "made_by": "scripts/make_nest_reference.py",
            }
        )
        group = f.create_group("sine")
        group.attrs.update(params)
        for name, value in data.items():
            group.create_dataset(name, data=value, compression="gzip", shuffle=True)
        group = f.create_group("evidence")
        group.attrs.update(ev_params)
        for name, value in ev_data.items():
            group.create_dataset(name, data=value, compression="gzip", shuffle=True)
    tmp.replace(args.out)
    print(f"wrote {args.out}: sine {len(data['loss'])} losses, {args.updates} updates; evidence 5 losses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
