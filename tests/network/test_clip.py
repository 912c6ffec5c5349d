"""network/equations.py: the compiled networks' branch-free ``clip`` against Brian2's own, value by value."""

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

_PROGRAM = r"""
#include <cstdio>
#include <cstring>
#include <cstdint>
template <typename T>
static inline T _clip(const T value, const double a_min, const double a_max)
{
    if (value < a_min)
        return a_min;
    if (value > a_max)
        return a_max;
    return value;
}
%(clip)s
int main() {
    double v[3];
    int differ = 0;
    while (std::fread(v, sizeof(double), 3, stdin) == 3) {
        const double a = _clip(v[0], v[1], v[2]), b = neuroplast_clip(v[0], v[1], v[2]);
        if (std::memcmp(&a, &b, sizeof(double)) != 0) differ++;
        std::fwrite(&b, sizeof(double), 1, stdout);
    }
    std::fprintf(stderr, "%%d\n", differ);
    return 0;
}
"""


def _run(tmp_path, clip_cpp: str, triples: np.ndarray) -> tuple[int, np.ndarray]:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src, exe = tmp_path / "clip.cpp", tmp_path / "clip"
    src.write_text(_PROGRAM % {"clip": clip_cpp})
    # the compiled networks' flags (devices.STRICT_FLAGS)
    subprocess.run(
        [cxx, "-O3", "-fno-fast-math", "-ffp-contract=off", "-std=c++11", "-o", exe, src], check=True
    )
    proc = subprocess.run([exe], input=triples.astype(np.float64).tobytes(), capture_output=True, check=True)
    return int(proc.stderr), np.frombuffer(proc.stdout, dtype=np.float64)


def _triples() -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = [(x, lo, hi) for x in SPECIAL for lo, hi in BOUNDS]
    rows += [(x, 0.0, 1.0) for x in rng.normal(0.5, 1.0, 2000)]
    rows += [(x, 0.0, 5.0) for x in rng.integers(-2, 7, 200).astype(float)]
    return np.array(rows)


@pytest.mark.parametrize("sse2", [True, False], ids=["sse2", "portable"])
def test_branch_free_clip_is_brian2s_clip_bit_for_bit(tmp_path, sse2: bool) -> None:
    """Every value, signed zeros and NaN included, the same bits as Brian2's ``_clip`` (SSE2's form, and
    the portable one of other processors)."""
    triples = _triples()
    code = eq.CLIP_CPP if sse2 else eq.CLIP_CPP.replace("#if defined(__SSE2__) || defined(_M_X64)", "#if 0")
    assert sse2 or code != eq.CLIP_CPP
    differ, got = _run(tmp_path, code, triples)
    assert differ == 0
    want = np.clip(triples[:, 0], triples[:, 1], triples[:, 2])  # NumPy's clip agrees away from NaN/±0 ties
    plain = ~np.isnan(triples[:, 0]) & (triples[:, 0] != 0.0)
    assert np.array_equal(got[plain], want[plain])
    nan = struct.unpack("<Q", struct.pack("<d", np.nan))[0]
    assert all(struct.unpack("<Q", struct.pack("<d", g))[0] == nan for g in got[np.isnan(triples[:, 0])])


def test_the_comparison_sees_a_clip_that_differs(tmp_path) -> None:
    """The comparator can disagree: a clip that swaps max's operands (``maxsd(value, a_min)``: a NaN gives
    a_min, −0 gives +0) differs from Brian2's."""
    swapped = eq.CLIP_CPP.replace(
        "_mm_max_sd(_mm_set_sd(a_min), _mm_set_sd(value))", "_mm_max_sd(_mm_set_sd(value), _mm_set_sd(a_min))"
    )
    assert swapped != eq.CLIP_CPP
    differ, _ = _run(tmp_path, swapped, _triples())
    assert differ > 0


def test_every_clip_call_of_abstract_code_is_rewritten() -> None:
    code = "r = clip(r - 1.0, 0.0, n_ref)\npsi = g * clip(1.0 - abs(x), 0.0, 1.0)\nmy_clip(x) + np.clip(y)\n"
    out = eq.branch_free_clip(code)
    assert out.count(f"{eq.CLIP_FUNCTION}(") == 2 and "my_clip(x)" in out and "np.clip(y)" in out
