"""Initial weights, registered by name (``network.init``): :data:`INITIALIZERS`.

An initializer turns the ``[network]`` table, the number of inputs and the seed into the initial
:class:`~neuroplast.model.params.Weights` (with the connectivity masks) and, optionally, an initial
feedback matrix B that rules with random feedback use instead of drawing their own.

* ``gaussian`` (the default): masks from ``p_in``/``p_rec``, W ~ N(0, (scale/√fan_in)²) from
  ``numpy.random.default_rng([seed, 0])`` — neuroplast's own draws.
* ``nest-sine`` and ``nest-evidence``: the draws of NEST 3.10's e-prop examples
  (``eprop_supervised_regression_sine-waves_bsshslm_2020.py`` and
  ``eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py``): the legacy generator
  ``np.random.seed(seed)``, then in this order W_in = randn(n_in, N)ᵀ/√n_in, W_rec = randn(N, N)ᵀ/√N
  with its diagonal zeroed, W_out and B, each cast to float32 (the examples' ``dtype_weights``).
  The sine example draws W_out = randn(N, n_out)ᵀ/√N and B = randn(N, n_out)/√N; the evidence example
  W_out = U(−l, l) of shape (N, n_out) transposed, l = √(3 / max(1, (N + n_out)/2)) (Glorot), and
  B = randn(N, n_out) unscaled.  ``w_*_scale`` multiply the cast draws (1 reproduces NEST exactly).
  Connectivity is all-to-all without autapses (``p_in = p_rec = 1``, checked by the config).
* ``nest-current-sine``: the draws of NEST 3.10's *current* sine-wave example
  (``eprop_supervised_regression_sine-waves.py``, the ``nest-current`` device, docs/validation.md): the
  ``nest-sine`` draws, then, in float32 as the example computes them, W_in, W_rec, W_out and B times
  ``1 − κ`` with the example's κ = 0.97 (:data:`NEST_CURRENT_SCALE`; the example's ``eprop_iaf`` network);
  ``w_*_scale`` multiply the result in float64 (1 reproduces NEST exactly).

The NEST examples draw their task data from the same generator right after the weights; the NEST tasks
(:mod:`neuroplast.tasks.nest`) replay these draws with :func:`legacy_stream` to continue it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroplast.model.connectivity import Connectivity
from neuroplast.model.params import Weights
from neuroplast.registry import Registry

__all__ = [
    "Initial",
    "INITIALIZERS",
    "register_initializer",
    "initialize",
    "legacy_stream",
    "NEST_INITS",
    "NEST_CURRENT_SCALE",
]


@dataclass(frozen=True)
class Initial:
    """What an initializer returns.

    Attributes
    ----------
    weights : Weights
        Initial weights and connectivity masks.
    feedback : ndarray (N, n_out) or None
        Initial feedback matrix B for rules with random feedback (``None``: the rule draws its own).
    """

    weights: Weights
    feedback: np.ndarray | None = None


#: ``(network table, n_in, seed) -> Initial``; the ``network.init`` names.
Initializer = Callable[[Any, int, int], Initial]


def _check_initializer(obj: object, name: str) -> None:
    if not callable(obj):
        raise TypeError(f"{obj!r} is not an initializer (not callable)")


#: Initializers by name (``network.init``).
INITIALIZERS: Registry[Initializer] = Registry("initializer", check=_check_initializer)


def register_initializer(name: str):
    """Function decorator: register ``fn(network, n_in, seed) -> Initial`` under ``name``."""

    def deco(fn: Initializer) -> Initializer:
        INITIALIZERS.register(name, fn)
        return fn

    return deco


def initialize(name: str, network: Any, n_in: int, seed: int) -> Initial:
    """The initial weights (and feedback) of the initializer registered as ``name``."""
    return INITIALIZERS.get(name)(network, int(n_in), int(seed))


#: Rows of an N × N matrix drawn at a time by :func:`gaussian` (a block of float64 draws per step instead of
#: the whole matrix: 2**22 values, 32 MB).
_BLOCK_VALUES = 2**22


def _row_blocks(n_rows: int, n_cols: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_VALUES // max(1, n_cols))
    return [(r, min(n_rows, r + step)) for r in range(0, n_rows, step)]


@register_initializer("gaussian")
def gaussian(network: Any, n_in: int, seed: int) -> Initial:
    """Masks from ``p_in``/``p_rec`` and W ~ N(0, (w_*_scale/√(fan_in · p))²), ``default_rng([seed, 0])``.

    The recurrent mask and weights are drawn a block of rows at a time — the generator's stream, and so
    every value, is that of one draw of the whole matrix — and only the weights on the mask are kept: the
    result is :class:`~neuroplast.model.connectivity.EdgeWeights` (bit for bit the dense :class:`Weights`
    of these draws, made if read), with no N × N float64 array at any time (at N = 10,000 two of them were
    1.6 GB while the run was built).
    """
    n = network
    N = n.n_rec
    rng = np.random.default_rng([seed, 0])
    mask_in = rng.random((N, n_in)) < n.p_in
    mask_rec = np.empty((N, N), dtype=bool)
    for r0, r1 in _row_blocks(N, N):
        mask_rec[r0:r1] = rng.random((r1 - r0, N)) < n.p_rec
    np.fill_diagonal(mask_rec, False)  # no autapses
    w_in = rng.normal(0.0, n.w_in_scale / np.sqrt(max(1.0, n_in * n.p_in)), (N, n_in))
    scale = n.w_rec_scale / np.sqrt(max(1.0, N * n.p_rec))
    on_mask = [rng.normal(0.0, scale, (r1 - r0, N))[mask_rec[r0:r1]] for r0, r1 in _row_blocks(N, N)]
    w_out = rng.normal(0.0, n.w_out_scale / np.sqrt(N), (n.n_out, N))
    conn = Connectivity.from_masks(mask_in, mask_rec, np.ones((n.n_out, N), dtype=bool))
    del mask_rec
    vectors = {
        "input": conn.to_edges("input", w_in),
        "recurrent": conn.from_mask_order("recurrent", np.concatenate(on_mask) if on_mask else np.zeros(0)),
        "output": conn.to_edges("output", w_out),
        "bias": np.zeros(n.n_out),
    }
    return Initial(conn.edge_weights(vectors))


# ------------------------------------------------------------------------------------------- NEST's draws
def _f32(a: np.ndarray) -> np.ndarray:
    """NEST's ``np.array(a, dtype=np.float32)``, held as float64 (NEST stores weights as double)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _nest_sine_readout(rs: np.random.RandomState, n_rec: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    w_out = _f32(rs.randn(n_rec, n_out).T / np.sqrt(n_rec))
    b = _f32(rs.randn(n_rec, n_out) / np.sqrt(n_rec))
    return w_out, b


def _nest_evidence_readout(
    rs: np.random.RandomState, n_rec: int, n_out: int
) -> tuple[np.ndarray, np.ndarray]:
    limit = np.sqrt(3.0 * (1.0 / max(1.0, (n_rec + n_out) / 2.0)))
    w_out = _f32(rs.uniform(low=-limit, high=limit, size=(n_rec, n_out)).T)
    b = _f32(rs.randn(n_rec, n_out))
    return w_out, b


#: The NEST initializers' readout draws (W_out, B), by initializer name.
NEST_INITS: dict[str, Callable[[np.random.RandomState, int, int], tuple[np.ndarray, np.ndarray]]] = {
    "nest-sine": _nest_sine_readout,
    "nest-evidence": _nest_evidence_readout,
}


def _nest_draws(
    kind: str, rs: np.random.RandomState, n_in: int, n_rec: int, n_out: int
) -> tuple[np.ndarray, ...]:
    """W_in, W_rec, W_out, B in the order and precision of NEST's example ``kind``."""
    w_in = _f32(rs.randn(n_in, n_rec).T / np.sqrt(n_in))
    w_rec = _f32(rs.randn(n_rec, n_rec).T / np.sqrt(n_rec))
    np.fill_diagonal(w_rec, 0.0)
    w_out, b = NEST_INITS[kind](rs, n_rec, n_out)
    return w_in, w_rec, w_out, b


def legacy_stream(kind: str, seed: int, n_in: int, n_rec: int, n_out: int) -> np.random.RandomState:
    """``np.random.RandomState(seed)`` after NEST example ``kind`` drew its weights (for its task data)."""
    rs = np.random.RandomState(int(seed))
    _nest_draws(kind, rs, n_in, n_rec, n_out)
    return rs


def _nest_initializer(kind: str) -> Initializer:
    def init(network: Any, n_in: int, seed: int) -> Initial:
        n = network
        rs = np.random.RandomState(int(seed))
        w_in, w_rec, w_out, b = _nest_draws(kind, rs, n_in, n.n_rec, n.n_out)
        dense_in = np.ones((n.n_rec, n_in), dtype=bool)
        dense_rec = ~np.eye(n.n_rec, dtype=bool)
        weights = Weights(
            w_in * n.w_in_scale,
            w_rec * n.w_rec_scale,
            w_out * n.w_out_scale,
            np.zeros(n.n_out),
            dense_in,
            dense_rec,
        )
        return Initial(weights, b)

    init.all_to_all = True  # type: ignore[attr-defined]  # the config refuses p_in, p_rec < 1
    init.__name__ = init.__qualname__ = f"nest_{kind.split('-')[1]}"
    init.__doc__ = f"NEST's ``{kind}`` example draws (module docstring); B is its feedback matrix."
    return init


for _kind in NEST_INITS:
    register_initializer(_kind)(_nest_initializer(_kind))


#: The weight scale of NEST's current sine-wave example, ``1 − kappa`` with its ``kappa = 0.97``.
NEST_CURRENT_SCALE = 1.0 - 0.97


@register_initializer("nest-current-sine")
def nest_current_sine(network: Any, n_in: int, seed: int) -> Initial:
    """NEST's current sine-wave example draws (module docstring); B is its feedback matrix."""
    n = network
    rs = np.random.RandomState(int(seed))
    w_in, w_rec, w_out, b = _nest_draws("nest-sine", rs, n_in, n.n_rec, n.n_out)
    scale = np.float32(NEST_CURRENT_SCALE)

    def scaled(w: np.ndarray) -> np.ndarray:
        # the example's ``w *= 1 - kappa`` on a float32 array: one float32 product per weight
        return (w.astype(np.float32) * scale).astype(np.float64)

    weights = Weights(
        scaled(w_in) * n.w_in_scale,
        scaled(w_rec) * n.w_rec_scale,
        scaled(w_out) * n.w_out_scale,
        np.zeros(n.n_out),
        np.ones((n.n_rec, n_in), dtype=bool),
        ~np.eye(n.n_rec, dtype=bool),
    )
    return Initial(weights, scaled(b))


nest_current_sine.all_to_all = True  # type: ignore[attr-defined]  # the config refuses p_in, p_rec < 1
