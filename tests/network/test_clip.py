"""network/equations.py: the compiled networks' branch-free ``clip`` and ``int(x > a)`` against Brian2's own,
value by value, in loops that the networks' flags vectorize."""

from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np
import pytest

from neuroplast.network import equations as eq

#: Values where a clip can go wrong: both bounds, either side of them, ±0, ±inf, NaN, subnormals.
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1.0 + 2**-52, -(2**-1074), 2**-1074, np.inf, -np.inf, np.nan, 3.0, 4.0]
#: (a_min, a_max) pairs of the network's calls: ψ's clip(1 − |u|, 0, 1), the refractory clip(r − 1, 0, n_ref).
BOUNDS = [(0.0, 1.0), (0.0, 5.0), (0.0, 0.0), (-0.0, 0.0), (0.0, -0.0)]

#: Brian2's own forms (``_clip`` of its C++ support code, ``int_`` of ``brianlib/stdint_compat.h``).
_BRIAN2 = r"""
template <typename T>
static inline T _clip(const T value, const double a_min, const double a_max)
{
    if (value < a_min)
        return a_min;
    if (value > a_max)
        return a_max;
    return value;
}
template<typename T> inline int int_(T value) { return (int)value; }
template<> inline int int_(bool value) { return value ? 1 : 0; }
"""

# Every row's Brian2 value and ours, each in a loop over all rows (the networks' flags vectorize such loops:
# our function's vector form is what a network computes), then compared bit for bit.
_PROGRAM = r"""
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <vector>
%(brian2)s
%(ours)s
int main() {
    std::vector<double> v;
    double x;
    while (std::fread(&x, sizeof(double), 1, stdin) == 1) v.push_back(x);
    const size_t n = v.size() / 3;
    std::vector<double> a(n), b(n), c(n), want(n), got(n);
    for (size_t i = 0; i < n; i++) { a[i] = v[3 * i]; b[i] = v[3 * i + 1]; c[i] = v[3 * i + 2]; }
    for (size_t i = 0; i < n; i++) want[i] = %(brian2_call)s;
    for (size_t i = 0; i < n; i++) got[i] = %(our_call)s;
    int differ = 0;
    for (size_t i = 0; i < n; i++) differ += std::memcmp(&want[i], &got[i], sizeof(double)) != 0;
    std::fwrite(got.data(), sizeof(double), n, stdout);
    std::fprintf(stderr, "%%d\n", differ);
    return 0;
}
"""
_CLIP = {"brian2_call": "_clip(a[i], b[i], c[i])", "our_call": "neuroplast_clip(a[i], b[i], c[i])"}
_ABOVE = {"brian2_call": "(double)int_(a[i] > b[i])", "our_call": "neuroplast_above(a[i], b[i])"}


def _run(tmp_path, ours: str, calls: dict, triples: np.ndarray) -> tuple[int, np.ndarray]:
    from neuroplast.network.devices import STRICT_FLAGS

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src, exe = tmp_path / "clip.cpp", tmp_path / "clip"
    src.write_text(_PROGRAM % {"brian2": _BRIAN2, "ours": ours, **calls})
    # the compiled networks' flags, -std included
    subprocess.run([cxx, *STRICT_FLAGS, "-o", exe, src], check=True)
    proc = subprocess.run([exe], input=triples.astype(np.float64).tobytes(), capture_output=True, check=True)
    return int(proc.stderr), np.frombuffer(proc.stdout, dtype=np.float64)


def _triples() -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = [(x, lo, hi) for x in SPECIAL for lo, hi in BOUNDS]
    rows += [(x, 0.0, 1.0) for x in rng.normal(0.5, 1.0, 2000)]
    rows += [(x, 0.0, 5.0) for x in rng.integers(-2, 7, 200).astype(float)]
    return np.array(rows)


def test_branch_free_clip_is_brian2s_clip_bit_for_bit(tmp_path) -> None:
    """Every value, signed zeros and NaN included, the same bits as Brian2's ``_clip``."""
    triples = _triples()
    differ, got = _run(tmp_path, eq.CLIP_CPP, _CLIP, triples)
    assert differ == 0
    want = np.clip(triples[:, 0], triples[:, 1], triples[:, 2])  # NumPy's clip agrees away from NaN/±0 ties
    plain = ~np.isnan(triples[:, 0]) & (triples[:, 0] != 0.0)
    assert np.array_equal(got[plain], want[plain])
    nan = struct.unpack("<Q", struct.pack("<d", np.nan))[0]
    assert all(struct.unpack("<Q", struct.pack("<d", g))[0] == nan for g in got[np.isnan(triples[:, 0])])


def test_the_comparison_sees_a_clip_that_differs(tmp_path) -> None:
    """The comparator can disagree: a clip that swaps max's operands (``value > a_min ? value : a_min``:
    a NaN gives a_min, −0 against +0 gives +0) differs from Brian2's."""
    swapped = eq.CLIP_CPP.replace("a_min > value ? a_min : value", "value > a_min ? value : a_min")
    assert swapped != eq.CLIP_CPP
    differ, _ = _run(tmp_path, swapped, _CLIP, _triples())
    assert differ > 0


def test_above_is_brian2s_int_of_a_comparison_bit_for_bit(tmp_path) -> None:
    """``neuroplast_above(x, a)`` is ``(double) int_(x > a)`` for every x (NaN, ±0, ±inf, around a); one
    that counts ties as above (``>=``) differs."""
    triples = _triples()
    triples[:, 1] = np.where(np.arange(len(triples)) % 2, 0.5, 0.0)  # the thresholds of the networks' calls
    differ, got = _run(tmp_path, eq.ABOVE_CPP, _ABOVE, triples)
    assert differ == 0
    assert np.array_equal(got, (triples[:, 0] > triples[:, 1]).astype(float))
    ties = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [-0.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    differ, _ = _run(tmp_path, eq.ABOVE_CPP.replace("x > a", "x >= a"), _ABOVE, ties)
    assert differ == 3


def test_every_clip_call_and_int_comparison_of_abstract_code_is_rewritten() -> None:
    code = (
        "refr = int(r > 0.5)\nr = clip(r - 1.0, 0.0, n_ref)\npsi = g * clip(1.0 - abs(x), 0.0, 1.0)\n"
        "my_clip(x) + np.clip(y)\nk = 2 * int(r > 1)\nactive = int(t > t_first_update)\n  e = int(v>1e-3)\n"
    )
    out = eq.branch_free(code)
    assert out.count(f"{eq.CLIP_FUNCTION}(") == 2 and "my_clip(x)" in out and "np.clip(y)" in out
    assert f"refr = {eq.ABOVE_FUNCTION}(r, 0.5)\n" in out and f"  e = {eq.ABOVE_FUNCTION}(v, 1e-3)\n" in out
    # inside an expression, or against a variable: left to Brian2
    assert "k = 2 * int(r > 1)\n" in out and "active = int(t > t_first_update)\n" in out
