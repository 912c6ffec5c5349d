"""Comparison metrics between a gradient estimate ĝ and the exact gradient g (pure NumPy).

Every function takes two arrays of the same shape and a number ``batch_axes`` of leading axes that index
independent samples (e.g. ``batch_axes=1`` for ``(n_trials, n_edges)`` arrays: one value per trial).  The
remaining axes are flattened into one vector per sample.  Gradients are in loss units per unit weight; all
metrics are dimensionless.

* :func:`cosine_similarity`  ⟨ĝ, g⟩ / (‖ĝ‖ ‖g‖)                       ∈ [−1, 1]
* :func:`relative_error`     ‖ĝ − g‖ / ‖g‖                             ≥ 0
* :func:`sign_agreement`     fraction of entries with |g| > tiny whose signs agree   ∈ [0, 1]
* :func:`norm_ratio`         ‖ĝ‖ / ‖g‖                                  ≥ 0

A sample whose exact gradient is zero (or that contains NaN, i.e. "not computed" in the run log) gives NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["cosine_similarity", "relative_error", "sign_agreement", "norm_ratio", "all_metrics", "METRICS"]


def _rows(est: ArrayLike, exact: ArrayLike, batch_axes: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Both arrays as (n_samples, n_entries) float64, plus the batch shape."""
    a = np.asarray(est, dtype=np.float64)
    b = np.asarray(exact, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"estimate and exact gradient differ in shape: {a.shape} vs {b.shape}")
    if not 0 <= batch_axes <= a.ndim:
        raise ValueError(f"batch_axes must be in [0, {a.ndim}] for arrays of shape {a.shape}")
    batch = a.shape[:batch_axes]
    n = int(np.prod(batch, dtype=np.int64))
    return a.reshape(n, -1), b.reshape(n, -1), batch


def _out(values: np.ndarray, batch: tuple) -> np.ndarray | float:
    values = values.reshape(batch)
    return float(values) if values.ndim == 0 else values


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def cosine_similarity(est: ArrayLike, exact: ArrayLike, *, batch_axes: int = 0) -> np.ndarray | float:
    """Cosine similarity ⟨ĝ, g⟩ / (‖ĝ‖ ‖g‖).

    Parameters
    ----------
    est, exact : array_like, same shape
        Estimate ĝ and exact gradient g (any units, the same for both).
    batch_axes : int
        Number of leading axes that index samples; 0 compares the whole arrays.

    Returns
    -------
    float or numpy.ndarray of shape ``est.shape[:batch_axes]``
        Dimensionless, in [−1, 1]; NaN where either norm is zero or an entry is NaN.
    """
    a, b, batch = _rows(est, exact, batch_axes)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return _out(_safe_div(np.einsum("ij,ij->i", a, b), den), batch)


def relative_error(est: ArrayLike, exact: ArrayLike, *, batch_axes: int = 0) -> np.ndarray | float:
    """Relative error ‖ĝ − g‖ / ‖g‖ (Euclidean / Frobenius norms).

    Parameters
    ----------
    est, exact : array_like, same shape
    batch_axes : int
        Number of leading axes that index samples.

    Returns
    -------
    float or numpy.ndarray
        Dimensionless, ≥ 0 (0 = identical); NaN where ‖g‖ = 0 or an entry is NaN.
    """
    a, b, batch = _rows(est, exact, batch_axes)
    return _out(_safe_div(np.linalg.norm(a - b, axis=1), np.linalg.norm(b, axis=1)), batch)


def sign_agreement(
    est: ArrayLike, exact: ArrayLike, *, batch_axes: int = 0, rtol: float = 1e-9, atol: float = 0.0
) -> np.ndarray | float:
    """Fraction of the entries with a clearly non-zero exact gradient whose sign ĝ gets right.

    Parameters
    ----------
    est, exact : array_like, same shape
    batch_axes : int
        Number of leading axes that index samples.
    rtol, atol : float
        An entry counts when ``|g| > atol + rtol · max|g|`` (max over the sample): entries of g that are
        zero up to rounding carry no sign.

    Returns
    -------
    float or numpy.ndarray
        In [0, 1]; NaN where no entry counts or an entry is NaN.
    """
    a, b, batch = _rows(est, exact, batch_axes)
    with np.errstate(invalid="ignore"):
        tiny = atol + rtol * np.max(np.abs(b), axis=1, initial=0.0)
        counted = np.abs(b) > tiny[:, None]
        agree = (np.sign(a) == np.sign(b)) & counted
        n = counted.sum(axis=1).astype(np.float64)
        frac = _safe_div(agree.sum(axis=1).astype(np.float64), n)
    bad = np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1)
    return _out(np.where(bad, np.nan, frac), batch)


def norm_ratio(est: ArrayLike, exact: ArrayLike, *, batch_axes: int = 0) -> np.ndarray | float:
    """Norm ratio ‖ĝ‖ / ‖g‖ (1 = right magnitude).

    Parameters
    ----------
    est, exact : array_like, same shape
    batch_axes : int
        Number of leading axes that index samples.

    Returns
    -------
    float or numpy.ndarray
        Dimensionless, ≥ 0; NaN where ‖g‖ = 0 or an entry is NaN.
    """
    a, b, batch = _rows(est, exact, batch_axes)
    return _out(_safe_div(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)), batch)


#: Metric name → function, in table order.
METRICS = {
    "cosine": cosine_similarity,
    "rel_error": relative_error,
    "sign_agreement": sign_agreement,
    "norm_ratio": norm_ratio,
}


def all_metrics(est: ArrayLike, exact: ArrayLike, *, batch_axes: int = 0) -> dict[str, np.ndarray | float]:
    """Every metric of :data:`METRICS` for the same pair of arrays.

    Parameters
    ----------
    est, exact : array_like, same shape
    batch_axes : int
        Number of leading axes that index samples.

    Returns
    -------
    dict of str to float or numpy.ndarray
        ``cosine``, ``rel_error``, ``sign_agreement``, ``norm_ratio``.
    """
    return {name: fn(est, exact, batch_axes=batch_axes) for name, fn in METRICS.items()}
