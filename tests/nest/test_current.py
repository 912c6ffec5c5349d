"""NEST 3.10's current e-prop models, emulated exactly (tests/nest/current_emulation.py).

(a) Without NEST: the emulation regenerates the workloads NEST was given (digests in
data/nest_current.json) and reproduces NEST's losses in the file, and those of NEST's own published test.
(b) ``pytest -m nest``: NEST runs scripts/nest_current.py live (child process, 1 thread) and the emulation
matches it.  (c) Comparators that can disagree: switching one feature of the emulation (optimizer per step
or per spike, Adam's catch-up, the ISI trace cutoff) moves the losses far beyond the tolerance, and gradient
descent per step vs per spike stays within rounding, as NEST documents.

Tolerance ``RTOL = 1e-10`` relative: the emulation does NEST's operations per synapse in NEST's order,
so what remains is the order of summing one step's input currents and libm's last bits; measured 0.0
(bit-identical losses) on every workload and iteration in the file but ``evidence`` (≤ 4.5e-16). 1e-10
leaves room for such last-bit differences carried through 20 000 steps and is 6 orders of magnitude below
the smallest feature effect checked in (c).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers import ROOT
from tests.nest import current_emulation as ce

RTOL = 1e-10
NO_NEST = "NEST is not installed (pip install '.[nest]')"
#: iterations of each workload in the default suite (a few seconds in all); all of them under -m slow
QUICK = {
    "test_adam": 5,
    "test_adapt": 5,
    "test_adam_spike": 5,
    "sine": 2,
    "cutoff": 1,
    "clip": 1,
    "evidence": 1,
    "test_exponential": 5,  # NEST's other three surrogate functions
    "test_fast_sigmoid": 5,
    "test_arctan": 5,
}
ALL = [*QUICK, "adam_spike"]  # Adam per spike on the example: its catch-up loops take 3 s per sequence


@pytest.fixture(scope="module")
def ref() -> dict:
    return ce.reference()


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _emulate(name: str, n_iter: int, **change) -> np.ndarray:
    return _emulate_cached(name, n_iter, tuple(sorted(change.items()))).copy()


@functools.lru_cache(maxsize=32)
def _emulate_cached(name: str, n_iter: int, change: tuple) -> np.ndarray:
    s = replace(ce.settings_for(name, n_iter), **dict(change))
    return ce.simulate(s, ce.workload_for(name, s))["loss"]


def test_file_has_every_workload(ref) -> None:
    assert ref["nest_version"].startswith("3.10")
    assert set(ref["workloads"]) == set(ALL)


@pytest.mark.parametrize("name", sorted(ALL))
def test_workload_is_what_nest_was_given(ref, name: str) -> None:
    """Initial weights (read back from NEST), input spike times and target: the same SHA-256."""
    entry = ref["workloads"][name]
    s = ce.settings_for(name, entry["iterations"])
    assert ce.digests(ce.workload_for(name, s), s) == entry["digests"]


@pytest.mark.parametrize("name", ["test_adam", "test_adapt"])
def test_nests_published_test_losses(ref, name: str) -> None:
    """NEST's test_eprop_regression publishes its losses with 14 decimals: file and emulation agree."""
    entry = ref["workloads"][name]
    published = np.asarray(entry["loss_published"])
    np.testing.assert_allclose(entry["loss"], published, rtol=0, atol=6e-15)
    np.testing.assert_allclose(_emulate(name, 5), published, rtol=0, atol=6e-15)


@pytest.mark.parametrize("name", sorted(QUICK))
def test_emulation_reproduces_nests_losses(ref, name: str) -> None:
    n = QUICK[name]
    nest = ref["workloads"][name]["loss"][:n]
    assert _rel(_emulate(name, n), nest) <= RTOL


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALL))
def test_emulation_reproduces_every_iteration(ref, name: str) -> None:
    entry = ref["workloads"][name]
    assert _rel(_emulate(name, entry["iterations"]), entry["loss"]) <= RTOL


# (c) comparators: the same check with one feature switched must fail by far
#: (switch, measured max relative change of the 5 losses of test_adam; asserted > 1e-3 = 1e7 × RTOL)
SWITCHES = {
    "optimize_each_step=False (Adam once per spike)": (dict(optimize_each_step=False), 0.63),
    "adam_catch_up=False (one Adam step per call)": (dict(adam_catch_up=False), 0.12),
    "eprop_isi_trace_cutoff 100 -> 10 ms": (dict(cutoff=10), 0.35),
    "no ISI trace cutoff": (dict(cutoff=10**9), 0.18),
}


@pytest.fixture(scope="module")
def adam_base() -> np.ndarray:
    return _emulate("test_adam", 5)


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_switching_a_feature_moves_the_losses_far_beyond_tolerance(ref, adam_base, switch: str) -> None:
    change, measured = SWITCHES[switch]
    nest = ref["workloads"]["test_adam"]["loss"]
    assert _rel(adam_base, nest) <= RTOL
    moved = _rel(_emulate("test_adam", 5, **change), nest)
    assert moved > 1e-3
    assert moved == pytest.approx(measured, rel=0.05)


def test_adam_per_spike_is_nests_own_other_setting(ref) -> None:
    """The switched emulation is not just different: it is NEST's test_adam_spike (Adam once per spike)."""
    spike = ref["workloads"]["test_adam_spike"]["loss"]
    assert _rel(_emulate("test_adam", 5, optimize_each_step=False), spike) <= RTOL
    assert _rel(spike, ref["workloads"]["test_adam"]["loss"]) > 0.1


def test_gradient_descent_per_step_equals_per_spike_up_to_rounding(ref) -> None:
    """NEST's example: "both yield same results for gradient descent" — measured 1.6e-15 (test_adapt)."""
    nest = ref["workloads"]["test_adapt"]["loss"]
    per_spike = _emulate("test_adapt", 5, optimize_each_step=False)
    assert 0 < _rel(per_spike, nest) < 1e-13


# (b) live NEST
@pytest.mark.nest
@pytest.mark.e2e
@pytest.mark.skipif(
    importlib.util.find_spec("nest") is None, reason="NEST is not installed (pip install '.[nest]')"
)
def test_live_nest_matches_the_emulation_and_the_file(tmp_path) -> None:
    """NEST runs every workload (3 sequences of the example ones) in a child process; emulation ≤ RTOL."""
    n = 3
    out = tmp_path / "current.json"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "nest_current.py"),
        "--out",
        str(out),
        "--iterations",
        str(n),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    live = json.loads(out.read_text())
    ref = ce.reference()
    assert live["nest_version"] == ref["nest_version"]
    for name, entry in live["workloads"].items():
        k = entry["iterations"]
        assert entry["digests"] == ref["workloads"][name]["digests"], name
        assert _rel(entry["loss"], ref["workloads"][name]["loss"][:k]) <= RTOL, name
        assert _rel(_emulate(name, k), entry["loss"]) <= RTOL, name
