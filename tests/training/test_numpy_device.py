"""``simulation.device = "numpy"``: the NumPy reference trains the same run as the Brian2 network.

The spikes are the same (the dynamics are the same operations in the same order, docs/model.md); the
gradients are NumPy's factorized e-prop, which sums the same terms in another order than the online
accumulators of the Brian2 network, so every float agrees to rounding, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.plasticity.reference import NumpySimulator
from neuroplast.training.trainer import Trainer
from tests.helpers import record_arrays
from tests.training.test_chunked import SINE, _cfg

#: Relative agreement of the two trainings' floats: per-operation rounding (≈ 1e-16) of sums over ≤ 200 steps,
#: carried through 5 Adam steps (measured ≤ 1e-14 on this config); 1e-11 leaves room, far below any
#: difference of substance (a changed gradient term moves these numbers by > 1e-4).
RTOL = 1e-11


def _compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[list[str], float]:
    """The keys whose integers or shapes differ, and the largest relative difference of the floats."""
    exact, worst = [], 0.0
    for key in a:
        x, y = a[key], b[key]
        if x.shape != y.shape or (x.dtype.kind != "f" and not np.array_equal(x, y)):
            exact.append(key)
        elif x.dtype.kind == "f" and x.size:
            scale = max(float(np.max(np.abs(y))), 1e-300)
            worst = max(worst, float(np.max(np.abs(x - y))) / scale)
    return exact, worst


@pytest.mark.brian2
def test_the_numpy_device_trains_the_run_of_the_brian2_network() -> None:
    brian2 = Trainer.from_config(_cfg(SINE, 0))
    numpy = Trainer.from_config(_cfg(SINE, 0).replace("simulation", device="numpy"))
    assert isinstance(numpy.net, NumpySimulator) and not isinstance(brian2.net, NumpySimulator)
    n = brian2.cfg.training.iterations
    want = [brian2.run_iteration() for _ in range(n)]
    got = [numpy.run_iteration() for _ in range(n)]
    a = {f"{r.iteration}{k}": v for r in want for k, v in record_arrays(r).items()}
    b = {f"{r.iteration}{k}": v for r in got for k, v in record_arrays(r).items()}
    # the NumPy reference also hands over every trial's recurrent states (the Brian2 network records none)
    assert a.keys() <= b.keys() and all(".states/" in k for k in b.keys() - a.keys())
    exact, worst = _compare(a, b)
    assert not exact, exact  # spikes, counts and shapes: identical
    assert worst < RTOL, worst
    # the comparison can disagree: a learning rate 0.1 % larger moves the run far beyond RTOL
    tr = _cfg(SINE, 0).training
    other = Trainer.from_config(
        _cfg(SINE, 0)
        .replace("simulation", device="numpy")
        .replace("training", learning_rate=tr.learning_rate * 1.001)
    )
    c = {
        f"{r.iteration}{k}": v
        for r in [other.run_iteration() for _ in range(n)]
        for k, v in record_arrays(r).items()
    }
    exact, worst = _compare(a, c)
    assert exact or worst > 1e-6, worst
